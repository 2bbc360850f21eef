//! Where a file goes once it has been examined: after its jobs are committed it is deleted
//! (or moved to `done/`), unless it changed since it was read; a refused file goes to
//! `failed/` beside `NAME.error.txt`.
//!
//! The rule is that nothing a writer wrote disappears without a trace. A committed file is
//! removed only under a read lease (no writer has it open) and only if it still holds what was
//! read. It is first moved out of `incoming/`, and the lease is checked once more after the
//! move: a writer that opened it in between (its `open` waits on the lease) then writes into
//! a file that is going to `failed/`, not into a deleted one.

use super::identity;
use super::lease::{Lease, LeaseCheck};
use super::read::{open_for_reading, read_capped, ReadVersion, Refusal, Version};
use super::{SpoolPaths, ERROR_SUFFIX};
use crate::error::{Error, Result};
use crate::time::{format_ms, now_ms};
use std::fs::{self, File, OpenOptions};
use std::io::ErrorKind;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The name a committed file has between leaving `incoming/` and being deleted. Only the
/// holder of the ingest lock uses it, one file at a time.
const REMOVING: &str = ".removing";

/// What became of a committed file.
#[derive(Debug)]
pub(crate) enum Finished {
    /// Deleted, or moved to `done/`.
    Removed,
    /// Another file has its name now, or it is gone: nothing to do (the next pass reads
    /// whatever is there).
    NotThere,
    /// It was written to after it was read, or is open for writing: it must not be deleted.
    /// It goes to `failed/` with this reason; it is at `at` now.
    Changed { at: PathBuf, reason: String, size: u64 },
    /// A writer opened it while it was being deleted in place (only where it cannot first be
    /// moved out of `incoming/`): what it writes is lost, and this warning is the trace.
    Lost(String),
}

/// Removes (or moves to `done/`) the committed file `name` if it still holds what was read.
///
/// `jobs` is how many jobs the file added, for the reason given when it changed.
pub(crate) fn finish_committed(
    paths: &SpoolPaths,
    name: &str,
    read: &ReadVersion,
    jobs: usize,
    keep: bool,
    max_bytes: u64,
) -> Result<Finished> {
    let path = paths.incoming.join(name);
    let file = match open_for_reading(&path) {
        Ok(file) => file,
        // Gone, or a symlink renamed over it: not the file that was read.
        Err(e) if e.kind() == ErrorKind::NotFound || e.raw_os_error() == Some(libc::ELOOP) => {
            return Ok(Finished::NotThere)
        }
        Err(e) => return Err(Error::io(&path, e)),
    };
    let meta = file.metadata().map_err(|e| Error::io(&path, e))?;
    if meta.ino() != read.version.ino {
        return Ok(Finished::NotThere);
    }
    let read_size = read.version.size;
    let lease = match Lease::take(&file) {
        LeaseCheck::Held(lease) => Some(lease),
        LeaseCheck::OpenForWriting => {
            return Ok(Finished::Changed {
                at: path,
                size: meta.len(),
                reason: format!(
                    "the file was opened for writing again after it was read ({read_size} bytes read, \
                     {jobs} {} added to the queue): it is kept here, with anything written to it later; \
                     remove those jobs from it before retrying it, and write each batch to a new file \
                     renamed into incoming/",
                    plural_jobs(jobs)
                ),
            })
        }
        LeaseCheck::Unavailable => None,
    };
    if Version::of(&meta) != read.version && !holds(&file, read, max_bytes) {
        return Ok(Finished::Changed {
            at: path,
            size: meta.len(),
            reason: changed_reason(read_size, jobs, meta.len()),
        });
    }
    let destination = if keep {
        crate::home::create_dir(&paths.done, 0o700)?;
        paths.done.join(identity::free_name(&paths.done, name))
    } else {
        paths.root.join(REMOVING)
    };
    if let Err(e) = fs::rename(&path, &destination) {
        if keep || e.raw_os_error() != Some(libc::EXDEV) {
            return Err(Error::io(&path, e));
        }
        // incoming/ is a mount of its own: delete it in place, still under the lease.
        fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
        return Ok(match &lease {
            // Deleted already, so there is no file left to keep: say so loudly instead.
            Some(lease) if !lease.intact() => Finished::Lost(format!(
                "{} was opened for writing while it was being deleted after its jobs were added; \
                 anything written to it then is lost (write in spool/tmp/ and rename into incoming/)",
                identity::escape_text(name)
            )),
            _ => Finished::Removed,
        });
    }
    match fs::symlink_metadata(&destination) {
        Ok(moved) if moved.ino() == read.version.ino => {}
        _ => {
            // Another file was renamed over the name between the open and the rename: that
            // one was moved. Put it back for the next pass.
            put_back(paths, &destination, name)?;
            return Ok(Finished::NotThere);
        }
    }
    if let Some(lease) = &lease {
        if !lease.intact() {
            return Ok(Finished::Changed {
                at: destination,
                size: meta.len(),
                reason: format!(
                    "the file was opened for writing while it was being removed after it was read \
                     ({read_size} bytes read, {jobs} {} added to the queue): it is kept here, with \
                     anything written to it then; remove those jobs from it before retrying it",
                    plural_jobs(jobs)
                ),
            });
        }
    }
    if !keep {
        fs::remove_file(&destination).map_err(|e| Error::io(&destination, e))?;
    }
    Ok(Finished::Removed)
}

fn plural_jobs(jobs: usize) -> &'static str {
    if jobs == 1 {
        "job"
    } else {
        "jobs"
    }
}

fn changed_reason(read_size: u64, jobs: usize, now_size: u64) -> String {
    format!(
        "the file changed after it was read ({read_size} bytes read and {jobs} {} added to the queue, \
         now {now_size} bytes): remove those jobs from it before retrying it; write each batch to a \
         new file and rename it into incoming/ instead of appending",
        plural_jobs(jobs)
    )
}

/// True when `file`, whose time stamps changed, still holds exactly what was read (touched or
/// chmod-ed, not written).
fn holds(file: &File, read: &ReadVersion, max_bytes: u64) -> bool {
    match read_capped(file, max_bytes) {
        Ok(bytes) => bytes.len() as u64 == read.version.size && identity::content_hash(&bytes) == read.content_hash,
        Err(_) => false,
    }
}

/// Moves a file that was taken out of `incoming/` by mistake back under `name`, or a free
/// name if `name` is taken by now. Linking fails rather than replacing what is there.
fn put_back(paths: &SpoolPaths, from: &Path, name: &str) -> Result<()> {
    let mut target = paths.incoming.join(name);
    loop {
        match fs::hard_link(from, &target) {
            Ok(()) => break,
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                target = paths.incoming.join(identity::free_name(&paths.incoming, name));
            }
            Err(e) => return Err(Error::io(&target, e)),
        }
    }
    fs::remove_file(from).map_err(|e| Error::io(from, e))
}

/// Deals with a file left under the removing name by an ingester that stopped between moving
/// a committed file out of `incoming/` and deleting it. Its jobs are committed, so it is
/// deleted, unless a writer has it open: then it is refused with a reason instead.
pub(crate) fn leftover_removal(paths: &SpoolPaths) -> Result<Option<Refusal>> {
    let path = paths.root.join(REMOVING);
    let file = match open_for_reading(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
            return Ok(None);
        }
        Err(e) => return Err(Error::io(&path, e)),
    };
    let meta = file.metadata().map_err(|e| Error::io(&path, e))?;
    if let LeaseCheck::OpenForWriting = Lease::take(&file) {
        return Ok(Some(Refusal::of(
            "interrupted-removal.json",
            &path,
            &meta,
            "an ingester stopped while removing this file after adding its jobs, and a writer has it \
             open: it is kept here with anything written to it; remove the jobs already added before \
             retrying it",
        )));
    }
    fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
    Ok(None)
}

/// Moves a refused file to `failed/` after writing `NAME.error.txt` beside it; returns its
/// name there, or `None` if the file was replaced or gone meanwhile (nothing to refuse).
///
/// The reason is written first: a crash between the two leaves the file where it was, to be
/// refused again, rather than a file in `failed/` with no reason.
pub(crate) fn move_to_failed(paths: &SpoolPaths, refusal: &Refusal) -> Result<Option<String>> {
    let failed = &paths.failed;
    crate::home::create_dir(failed, 0o700)?;
    let failed_as = identity::free_name(failed, &refusal.name);
    // One line each: the first line is the reason `spool failed` shows.
    let mut text = format!(
        "{}\n\nfile: {}\n",
        identity::escape_text(&refusal.reason),
        identity::escape_text(&refusal.name)
    );
    if let Some(size) = refusal.size {
        text.push_str(&format!("size: {size} bytes\n"));
    }
    if let Some(uid) = refusal.uid {
        text.push_str(&format!("owner: uid {uid}\n"));
    }
    text.push_str(&format!("rejected at: {}\n", format_ms(now_ms())));
    let reason_path = failed.join(format!("{failed_as}{ERROR_SUFFIX}"));
    write_private(&reason_path, text.as_bytes())?;
    if let Some(ino) = refusal.ino {
        match fs::symlink_metadata(&refusal.path) {
            Ok(meta) if meta.ino() == ino => {}
            _ => {
                // Replaced or gone since it was examined: not this file to move.
                let _ = fs::remove_file(&reason_path);
                return Ok(None);
            }
        }
    }
    let target = failed.join(&failed_as);
    match fs::rename(&refusal.path, &target) {
        Ok(()) => Ok(Some(failed_as)),
        Err(e) => {
            // Not moved: its reason goes too, or each pass would leave another one behind.
            let _ = fs::remove_file(&reason_path);
            if e.kind() == ErrorKind::NotFound {
                Ok(None)
            } else {
                Err(Error::io(&refusal.path, e))
            }
        }
    }
}

/// Writes a file readable by its owner only (reasons quote job content).
fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut file: File = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    file.write_all(bytes).map_err(|e| Error::io(path, e))
}

#[cfg(test)]
#[path = "dispose_tests.rs"]
mod tests;
