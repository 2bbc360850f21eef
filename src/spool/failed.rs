//! Rejected spool files: listing them with their reasons and putting one back into `incoming/`.

use super::{SpoolPaths, ERROR_SUFFIX};
use crate::config::open_with_settings;
use crate::error::{Error, Result};
use crate::home::Home;
use crate::time::Millis;
use std::fs;
use std::io::ErrorKind;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

/// A file in `spool/failed/` and why it was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedFile {
    /// Its name in `failed/` (what `queuectl spool retry` takes).
    pub name: String,
    /// Its full path.
    pub path: PathBuf,
    /// The first line of `NAME.error.txt`: why it was refused.
    pub reason: String,
    /// All of `NAME.error.txt` (reason, size, owner, time).
    pub details: String,
    /// Its size in bytes (0 for what is not a regular file).
    pub size: u64,
    /// When it was refused (when its reason was written), if known.
    pub rejected_at: Option<Millis>,
}

/// Every file in the spool's `failed/` directory, oldest refusal first.
pub fn list_failed(home: &Home) -> Result<Vec<FailedFile>> {
    let (_, settings) = open_with_settings(home)?;
    list_failed_in(&SpoolPaths::new(&settings.spool_dir).failed)
}

fn modified_ms(meta: &fs::Metadata) -> Option<Millis> {
    meta.modified()
        .ok()?
        .duration_since(UNIX_EPOCH)
        .ok()
        .map(|d| d.as_millis() as Millis)
}

pub(crate) fn list_failed_in(failed: &Path) -> Result<Vec<FailedFile>> {
    let entries = match fs::read_dir(failed) {
        Ok(entries) => entries,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(failed, e)),
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(failed, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(ERROR_SUFFIX) || name.starts_with('.') {
            continue;
        }
        let path = failed.join(&name);
        let meta = match fs::symlink_metadata(&path) {
            Ok(meta) => meta,
            Err(_) => continue,
        };
        let reason_path = failed.join(format!("{name}{ERROR_SUFFIX}"));
        let (details, rejected_at) = match fs::read_to_string(&reason_path) {
            Ok(text) => (text, fs::metadata(&reason_path).ok().as_ref().and_then(modified_ms)),
            // Moving the file in by hand, or an interrupted retry, leaves no reason.
            Err(_) => (String::from("no reason recorded"), Some(meta.ctime() * 1000)),
        };
        let reason = details.lines().next().unwrap_or("").to_string();
        let size = if meta.is_file() { meta.len() } else { 0 };
        files.push(FailedFile {
            name,
            path,
            reason,
            details,
            size,
            rejected_at,
        });
    }
    files.sort_by(|a, b| a.rejected_at.cmp(&b.rejected_at).then_with(|| a.name.cmp(&b.name)));
    Ok(files)
}

/// Moves the rejected file `name` from `failed/` back into `incoming/` (and drops its reason),
/// so the ingester reads it again; returns its new path. Fix the file first: an unchanged file
/// is refused again.
pub fn retry_failed(home: &Home, name: &str) -> Result<PathBuf> {
    let (_, settings) = open_with_settings(home)?;
    retry_failed_in(&SpoolPaths::new(&settings.spool_dir), name)
}

fn retry_failed_in(paths: &SpoolPaths, name: &str) -> Result<PathBuf> {
    if name.is_empty() || name.contains('/') || name == "." || name == ".." || name.ends_with(ERROR_SUFFIX) {
        return Err(Error::InvalidArgument(format!(
            "`{}` is not the name of a rejected spool file (give a name from `queuectl spool failed`)",
            name.escape_debug()
        )));
    }
    let source = paths.failed.join(name);
    if fs::symlink_metadata(&source).is_err() {
        return Err(Error::InvalidArgument(format!(
            "no rejected spool file named `{}` in {} (see `queuectl spool failed`)",
            name.escape_debug(),
            paths.failed.display()
        )));
    }
    let target = paths.incoming.join(name);
    if fs::symlink_metadata(&target).is_ok() {
        return Err(Error::InvalidArgument(format!(
            "{} already exists; it would be replaced (rename one of them first)",
            target.display()
        )));
    }
    fs::rename(&source, &target).map_err(|e| Error::io(&source, e))?;
    let reason_path = paths.failed.join(format!("{name}{ERROR_SUFFIX}"));
    match fs::remove_file(&reason_path) {
        Err(e) if e.kind() != ErrorKind::NotFound => Err(Error::io(&reason_path, e)),
        _ => Ok(target),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_and_retries() {
        let dir = tempfile::tempdir().unwrap();
        super::super::create_layout(dir.path()).unwrap();
        let paths = SpoolPaths::new(dir.path());
        fs::write(paths.failed.join("a.json"), "{").unwrap();
        fs::write(
            paths.failed.join("a.json.error.txt"),
            "invalid job: malformed JSON\n\nsize: 1 bytes\n",
        )
        .unwrap();
        fs::write(paths.failed.join("orphan.json.error.txt"), "x\n").unwrap();
        let files = list_failed_in(&paths.failed).unwrap();
        assert_eq!(files.len(), 1);
        assert_eq!(
            (files[0].name.as_str(), files[0].reason.as_str(), files[0].size),
            ("a.json", "invalid job: malformed JSON", 1)
        );

        let e = retry_failed_in(&paths, "b.json").unwrap_err();
        assert!(
            matches!(e, Error::InvalidArgument(_)) && e.to_string().contains("no rejected spool file named `b.json`")
        );
        assert!(retry_failed_in(&paths, "../queue.db").is_err());
        fs::write(paths.incoming.join("a.json"), "{}").unwrap();
        assert!(retry_failed_in(&paths, "a.json")
            .unwrap_err()
            .to_string()
            .contains("already exists"));
        fs::remove_file(paths.incoming.join("a.json")).unwrap();
        let moved = retry_failed_in(&paths, "a.json").unwrap();
        assert_eq!(fs::read_to_string(moved).unwrap(), "{");
        assert!(!paths.failed.join("a.json.error.txt").exists());
        assert!(list_failed_in(&paths.failed).unwrap().is_empty());
    }
}
