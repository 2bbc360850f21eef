//! `spool status`: every name in `incoming/` and what becomes of it, so no file sits there
//! without a word. It reads and checks files exactly as the ingester does (see `read.rs`) but
//! moves nothing and does not take the ingest lock.

use super::identity::{self, NameKind};
use super::ingest::{list_incoming, not_utf8_refusal};
use super::read::{self, Examined, Memory, ReadContext};
use super::SpoolPaths;
use crate::config::open_with_settings;
use crate::error::Result;
use crate::home::Home;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// What the ingester will do with a file in `incoming/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncomingState {
    /// Complete and valid: the next pass adds its jobs (unless an id clashes in the database).
    Ready,
    /// Left for later (open for writing, not parsing yet, ...); the reason says until when.
    Waiting,
    /// The next pass moves it to `failed/`, for the reason given.
    Refused,
    /// Not a spool file (a dotfile or another extension): never read, never moved.
    Ignored,
}

impl IncomingState {
    /// The lower-case name used in output.
    pub fn as_str(self) -> &'static str {
        match self {
            IncomingState::Ready => "ready",
            IncomingState::Waiting => "waiting",
            IncomingState::Refused => "refused",
            IncomingState::Ignored => "ignored",
        }
    }
}

/// One name in `incoming/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncomingFile {
    /// The name, escaped for display: control characters as `\n`, `\u{1b}`, ..., bytes that
    /// are not UTF-8 as `\xff`.
    pub name: String,
    /// What the ingester will do with it.
    pub state: IncomingState,
    /// Why, in one line.
    pub reason: String,
    /// Its size in bytes, for a regular file.
    pub size: Option<u64>,
    /// How long since it last changed, by its time stamps (the earlier of modification and
    /// change time), in milliseconds.
    pub unchanged_ms: Option<u64>,
}

/// The state of a spool directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoolStatus {
    /// The spool directory.
    pub dir: PathBuf,
    /// The process holding the ingest lock (a worker, `spool watch` or `spool ingest`), if
    /// any; `None` also when the lock table cannot be read (`/proc/locks`).
    pub ingester_pid: Option<u32>,
    /// Every name in `incoming/`, sorted.
    pub files: Vec<IncomingFile>,
    /// How many files are in `failed/`.
    pub failed: usize,
}

/// Looks at the spool of `home` without changing anything.
pub fn status(home: &Home) -> Result<SpoolStatus> {
    let (_, settings) = open_with_settings(home)?;
    let paths = SpoolPaths::new(&settings.spool_dir);
    let cx = ReadContext {
        settings: &settings,
        paths: &paths,
        my_uid: read::current_uid(),
    };
    let mut memory = Memory::default();
    let mut files = Vec::new();
    for name in list_incoming(&paths)? {
        let meta = fs::symlink_metadata(paths.incoming.join(&name)).ok();
        let size = meta.as_ref().filter(|m| m.is_file()).map(|m| m.len());
        let unchanged_ms = meta.as_ref().map(|m| read::stamp_age(m).as_millis() as u64);
        let (state, reason) = match identity::classify(&name) {
            NameKind::Dotfile => (
                IncomingState::Ignored,
                "a dotfile (a writer's scratch file): never read".to_string(),
            ),
            NameKind::Other => (
                IncomingState::Ignored,
                "not a spool file name (*.json or *.ndjson, in any case): never read".to_string(),
            ),
            NameKind::NotUtf8(_) => match not_utf8_refusal(&paths, &name) {
                Some(refusal) => (IncomingState::Refused, refusal.reason),
                None => continue,
            },
            NameKind::Spool(format, text) => match read::examine(&cx, &mut memory, text, format)? {
                Examined::Ready(file) => {
                    let jobs = file.jobs.jobs.len();
                    (
                        IncomingState::Ready,
                        format!(
                            "complete ({jobs} job{}): added by the next ingestion pass",
                            if jobs == 1 { "" } else { "s" }
                        ),
                    )
                }
                Examined::Refused(refusal) => (IncomingState::Refused, refusal.reason),
                Examined::Later(waiting) => (IncomingState::Waiting, waiting.reason),
                Examined::Gone => continue,
            },
        };
        files.push(IncomingFile {
            name: identity::display_name(&name),
            state,
            reason: identity::escape_text(&reason).into_owned(),
            size,
            unchanged_ms,
        });
    }
    Ok(SpoolStatus {
        ingester_pid: lock_holder(&paths.lock),
        failed: super::failed::list_failed_in(&paths.failed)?.len(),
        dir: paths.root,
        files,
    })
}

/// The PID holding the `flock` on `lock`, from `/proc/locks`. Taking the lock to find out
/// would make a `spool ingest` started at that moment skip its pass.
fn lock_holder(lock: &Path) -> Option<u32> {
    let meta = fs::metadata(lock).ok()?;
    let (major, minor) = split_dev(meta.dev());
    let table = fs::read_to_string("/proc/locks").ok()?;
    table.lines().find_map(|line| {
        // "1: FLOCK  ADVISORY  WRITE 4242 fd:00:131 0 EOF"; a waiter has "->" after "1:".
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.get(1) != Some(&"FLOCK") {
            return None;
        }
        let mut place = fields.get(5)?.split(':');
        let line_major = u64::from_str_radix(place.next()?, 16).ok()?;
        let line_minor = u64::from_str_radix(place.next()?, 16).ok()?;
        let ino: u64 = place.next()?.parse().ok()?;
        (ino == meta.ino() && (line_major, line_minor) == (major, minor))
            .then(|| fields.get(4)?.parse().ok())
            .flatten()
    })
}

/// The major and minor numbers of a device number, as glibc encodes them.
fn split_dev(dev: u64) -> (u64, u64) {
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    (major, minor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_process_holding_the_ingest_lock() {
        let dir = tempfile::tempdir().unwrap();
        let paths = SpoolPaths::new(dir.path());
        let lock = super::super::watch::try_lock(&paths).unwrap().unwrap();
        if fs::metadata("/proc/locks").is_err() {
            eprintln!("no /proc/locks here: nothing to check");
            return;
        }
        assert_eq!(lock_holder(&paths.lock), Some(std::process::id()));
        drop(lock);
        assert_eq!(lock_holder(&paths.lock), None);
    }

    #[test]
    fn device_numbers_split_like_glibc() {
        assert_eq!(split_dev(0x0801), (8, 1));
        assert_eq!(split_dev(0xfd00), (0xfd, 0));
        // major 259, minor 65536 (an NVMe partition numbered past 255); the low byte of that
        // minor is zero.
        let dev = (259u64 << 8) | (65536u64 << 12);
        assert_eq!(split_dev(dev), (259, 65536));
    }
}
