//! Examining one file in `incoming/`: the checks (type, owner, links, size), whether a writer
//! still has it open, reading it, and parsing it into validated jobs. Nothing here moves or
//! deletes a file, so `spool status` uses it too.

use super::identity::{self, Format};
use super::lease::{Lease, LeaseCheck};
use super::SpoolPaths;
use crate::config::Settings;
use crate::error::{Error, Result};
use crate::intake::prepare_jobs;
use crate::job::{parse_jobs, parse_ndjson, Source};
use crate::store::SpoolFileJobs;
use crate::time::now_ms;
use std::collections::{HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How soon a file that a writer has open is looked at again without an event. Closing it
/// wakes a watching ingester at once (inotify's close-after-write); this is the safety net.
pub(crate) const OPEN_FOR_WRITING_RETRY: Duration = Duration::from_secs(1);

/// The byte order mark some Windows tools put at the start of UTF-8 text. JSON forbids it, so
/// it is dropped before parsing rather than refusing the file.
const UTF8_BOM: &str = "\u{feff}";

/// One version of a file: what has to stay the same for the file to still hold what was
/// read. The change time is included because a writer can put the modification time back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Version {
    pub ino: u64,
    pub size: u64,
    pub mtime_ns: i128,
    pub ctime_ns: i128,
}

impl Version {
    pub(crate) fn of(meta: &fs::Metadata) -> Version {
        Version {
            ino: meta.ino(),
            size: meta.len(),
            mtime_ns: meta.mtime() as i128 * 1_000_000_000 + meta.mtime_nsec() as i128,
            ctime_ns: meta.ctime() as i128 * 1_000_000_000 + meta.ctime_nsec() as i128,
        }
    }
}

/// What an ingester remembers between passes about the files in `incoming/`.
#[derive(Debug, Default)]
pub(crate) struct Memory {
    /// Names the watcher saw opened for writing and not closed since. Used only where the
    /// kernel cannot say (no lease): such a file is left alone while younger than
    /// `spool_settle_ms`.
    pub writing: HashSet<String>,
    /// When each name was first seen in its current version, by the monotonic clock: a file's
    /// age does not depend on its time stamps alone, which may lie in the future.
    seen: HashMap<String, (Version, Instant)>,
    /// Report every file left for later (a single pass), not only lingering ones.
    report_every_wait: bool,
    /// Since when each file has been left for later, and the last reason reported for it.
    waits: HashMap<String, (Instant, Option<String>)>,
}

impl Memory {
    /// The memory of a single pass (`spool ingest`): it has no earlier pass to wait on, so
    /// every file it leaves is reported.
    pub(crate) fn single_pass() -> Memory {
        Memory {
            report_every_wait: true,
            ..Memory::default()
        }
    }

    /// How long this process has seen `name` unchanged (zero the first time).
    fn unchanged_for(&mut self, name: &str, version: Version) -> Duration {
        let now = Instant::now();
        match self.seen.get(name) {
            Some((seen, since)) if *seen == version => now.saturating_duration_since(*since),
            _ => {
                self.seen.insert(name.to_string(), (version, now));
                Duration::ZERO
            }
        }
    }

    /// Forgets names that are no longer in `incoming/`.
    pub(crate) fn retain(&mut self, listed: &HashSet<&str>) {
        self.writing.retain(|name| listed.contains(name.as_str()));
        self.seen.retain(|name, _| listed.contains(name.as_str()));
        self.waits.retain(|name, _| listed.contains(name.as_str()));
    }

    /// Whether to report that `name` is left for later for `reason`: once per reason, and in a
    /// watching ingester only once the file has waited `settle` (a writer closing its file a
    /// moment later is not news; a file that lingers is).
    pub(crate) fn should_report_wait(&mut self, name: &str, reason: &str, settle: Duration) -> bool {
        let (since, reported) = self
            .waits
            .entry(name.to_string())
            .or_insert_with(|| (Instant::now(), None));
        if reported.as_deref() == Some(reason) || (!self.report_every_wait && since.elapsed() < settle) {
            return false;
        }
        *reported = Some(reason.to_string());
        true
    }

    /// The file is no longer waiting (ingested, refused or gone).
    pub(crate) fn done_waiting(&mut self, name: &str) {
        self.waits.remove(name);
    }
}

/// How long ago a file last changed by its time stamps: from the earlier of its modification
/// and change times, so a modification time set in the future does not make a file young
/// forever, while a writer that sets it back on purpose is believed. Zero if both lie in the
/// future (the clock went back).
pub(crate) fn stamp_age(meta: &fs::Metadata) -> Duration {
    let time =
        |secs: i64, nanos: i64| UNIX_EPOCH + Duration::new(secs.max(0) as u64, nanos.clamp(0, 999_999_999) as u32);
    let changed = time(meta.mtime(), meta.mtime_nsec()).min(time(meta.ctime(), meta.ctime_nsec()));
    SystemTime::now().duration_since(changed).unwrap_or(Duration::ZERO)
}

/// Why a file is refused, and what `NAME.error.txt` should say about it.
#[derive(Debug)]
pub(crate) struct Refusal {
    /// Its name as text (for a name that is not UTF-8, the name it gets in `failed/`).
    pub name: String,
    /// Where it is now.
    pub path: PathBuf,
    pub reason: String,
    /// The inode seen, so a file renamed over the refused one is not moved by mistake.
    pub ino: Option<u64>,
    pub size: Option<u64>,
    pub uid: Option<u32>,
}

impl Refusal {
    pub(crate) fn of(name: &str, path: &Path, meta: &fs::Metadata, reason: impl Into<String>) -> Refusal {
        Refusal {
            name: name.to_string(),
            path: path.to_path_buf(),
            reason: reason.into(),
            ino: Some(meta.ino()),
            // A directory's or device's "size" would only mislead in NAME.error.txt.
            size: meta.file_type().is_file().then_some(meta.len()),
            uid: Some(meta.uid()),
        }
    }
}

/// Why a file is left in `incoming/` for now, and when to look again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Waiting {
    /// One line, without numbers that change from pass to pass (it is reported once per reason).
    pub reason: String,
    pub retry_in: Duration,
}

/// A file ready to commit, with what is needed to remove it afterwards.
pub(crate) struct ReadyFile {
    pub jobs: SpoolFileJobs,
    pub read: ReadVersion,
    pub uid: u32,
}

/// The version of a file that was read, and a digest of what was read.
#[derive(Debug, Clone)]
pub(crate) struct ReadVersion {
    pub version: Version,
    pub content_hash: String,
}

pub(crate) enum Examined {
    Ready(Box<ReadyFile>),
    Refused(Refusal),
    /// May still be being written: look again later.
    Later(Waiting),
    /// Vanished or replaced while being examined: the next pass sees what is there now.
    Gone,
}

/// What examining needs besides the file.
pub(crate) struct ReadContext<'a> {
    pub settings: &'a Settings,
    pub paths: &'a SpoolPaths,
    pub my_uid: u32,
}

pub(crate) fn current_uid() -> u32 {
    // SAFETY: geteuid(2) has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

pub(crate) fn describe_type(file_type: &fs::FileType) -> &'static str {
    if file_type.is_symlink() {
        "a symbolic link"
    } else if file_type.is_dir() {
        "a directory"
    } else if file_type.is_fifo() {
        "a named pipe (FIFO)"
    } else if file_type.is_socket() {
        "a socket"
    } else if file_type.is_block_device() || file_type.is_char_device() {
        "a device"
    } else {
        "not a regular file"
    }
}

/// Opens a file in `incoming/` for reading. O_NOFOLLOW and O_NONBLOCK: a symlink or FIFO
/// swapped in after a check must neither be followed nor block the ingester on open.
pub(crate) fn open_for_reading(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
}

/// Reads at most `max + 1` bytes from the start of `file` (one more than allowed shows that
/// the file is over the limit).
pub(crate) fn read_capped(file: &File, max: u64) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    std::io::Seek::rewind(&mut &*file)?;
    file.take(max + 1).read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Checks one file and, if it passes, reads and parses it.
pub(crate) fn examine(cx: &ReadContext<'_>, memory: &mut Memory, name: &str, format: Format) -> Result<Examined> {
    let settings = cx.settings;
    let path = cx.paths.incoming.join(name);
    let meta = match fs::symlink_metadata(&path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Examined::Gone),
        Err(e) => return Err(Error::io(&path, e)),
    };
    let refuse = |meta: &fs::Metadata, reason: String| Ok(Examined::Refused(Refusal::of(name, &path, meta, reason)));
    if !meta.file_type().is_file() {
        let what = describe_type(&meta.file_type());
        return refuse(&meta, format!("file is {what}; only regular files are accepted"));
    }
    let file = match open_for_reading(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Examined::Gone),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return refuse(&meta, "file is a symbolic link; only regular files are accepted".into())
        }
        Err(e) => return refuse(&meta, format!("file cannot be opened: {e}")),
    };
    let stat = file.metadata().map_err(|e| Error::io(&path, e))?;
    if stat.ino() != meta.ino() || stat.dev() != meta.dev() {
        return Ok(Examined::Gone);
    }
    if !stat.file_type().is_file() {
        let what = describe_type(&stat.file_type());
        return refuse(&stat, format!("file is {what}; only regular files are accepted"));
    }
    if stat.uid() != cx.my_uid && !settings.spool_allowed_uids.contains(&stat.uid()) {
        return refuse(
            &stat,
            format!(
                "file is owned by uid {}, not by this user (uid {}) or a uid in spool_allowed_uids",
                stat.uid(),
                cx.my_uid
            ),
        );
    }
    let settle = Duration::from_millis(settings.spool_settle_ms);
    let version = Version::of(&stat);
    let unchanged_for = stamp_age(&stat).max(memory.unchanged_for(name, version));
    let young = unchanged_for < settle;
    let settle_wait = settle.saturating_sub(unchanged_for).max(Duration::from_millis(10));
    let later = |reason: &str, retry_in: Duration| {
        Ok(Examined::Later(Waiting {
            reason: reason.to_string(),
            retry_in,
        }))
    };
    if stat.nlink() > 1 {
        // A writer that link()s into incoming/ and then unlinks its scratch name passes
        // through two links for a moment; only a lasting second link is refused.
        if young {
            return later(
                "it has more than one hard link; refused unless that ends within spool_settle_ms",
                settle_wait,
            );
        }
        return refuse(
            &stat,
            format!(
                "file has {} hard links; a file with more than one link is refused (it may be another user's file)",
                stat.nlink()
            ),
        );
    }
    let max = settings.spool_max_file_bytes;
    if stat.len() > max {
        return refuse(
            &stat,
            format!(
                "file is {} bytes, over the limit of {max} bytes (spool_max_file_bytes)",
                stat.len()
            ),
        );
    }
    let lease = match Lease::take(&file) {
        LeaseCheck::Held(lease) => Some(lease),
        LeaseCheck::OpenForWriting => {
            return later(
                "it is open for writing; it is read once every writer has closed it",
                OPEN_FOR_WRITING_RETRY,
            )
        }
        LeaseCheck::Unavailable => {
            if memory.writing.contains(name) && young {
                return later(
                    "a writer opened it and has not closed it (the kernel cannot say for sure here); \
                     it is read once it is closed or unchanged for spool_settle_ms",
                    settle_wait,
                );
            }
            None
        }
    };
    let bytes = match read_capped(&file, max) {
        Ok(bytes) => bytes,
        // Refused rather than failing the pass: one unreadable file must not stop the spool.
        Err(e) => return refuse(&stat, format!("file cannot be read: {e}")),
    };
    // A writer that opened it while it was being read breaks the lease: what was read may be
    // half of what it writes.
    let broken = lease.as_ref().is_some_and(|lease| !lease.intact());
    drop(lease);
    if broken {
        return later(
            "it is open for writing; it is read once every writer has closed it",
            OPEN_FOR_WRITING_RETRY,
        );
    }
    if bytes.len() as u64 > max {
        return refuse(
            &stat,
            format!("file is over the limit of {max} bytes (spool_max_file_bytes)"),
        );
    }
    let after = file.metadata().map_err(|e| Error::io(&path, e))?;
    if Version::of(&after) != version {
        return later("it changed while being read", settle.max(Duration::from_millis(10)));
    }
    drop(file);
    if bytes.is_empty() {
        if young {
            return later(
                "it is empty; refused if it is still empty after spool_settle_ms",
                settle_wait,
            );
        }
        return refuse(&stat, "file is empty".into());
    }
    let content_hash = identity::content_hash(&bytes);
    let key = identity::file_key(name, stat.ino(), stat.len(), version.mtime_ns, &content_hash);
    let text = match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => {
            if young {
                return later(
                    "it is not UTF-8 text yet; refused if it still is not after spool_settle_ms",
                    settle_wait,
                );
            }
            let offset = e.utf8_error().valid_up_to();
            return refuse(
                &stat,
                format!("file is not UTF-8 text (invalid byte at offset {offset})"),
            );
        }
    };
    let text = text.strip_prefix(UTF8_BOM).unwrap_or(&text);
    let parsed = match format {
        Format::Json => parse_jobs(text),
        Format::Ndjson => parse_ndjson(text),
    };
    let mut specs = match parsed {
        Ok(specs) => specs,
        Err(e) => {
            if young && !identity::is_complete(text, format) {
                return later(
                    "it does not parse yet; refused if it still does not after spool_settle_ms",
                    settle_wait,
                );
            }
            return refuse(&stat, e.to_string());
        }
    };
    // Ids derived from the file's identity, not random: a file read again after a crash
    // between the commit and the unlink must map to the same jobs.
    for (index, (_, spec)) in specs.iter_mut().enumerate() {
        if spec.id.is_none() {
            spec.id = Some(identity::derived_id(&key, index));
        }
    }
    // The source is shown by `list` and `show`: escaped, so a name cannot forge a line there.
    let source = Source::Spool(identity::escape_text(name).into_owned());
    let jobs = match prepare_jobs(specs, &source, now_ms()) {
        Ok(jobs) => jobs,
        Err(e) => return refuse(&stat, e.to_string()),
    };
    Ok(Examined::Ready(Box::new(ReadyFile {
        jobs: SpoolFileJobs {
            file_key: key,
            name: name.to_string(),
            jobs,
        },
        read: ReadVersion { version, content_hash },
        uid: stat.uid(),
    })))
}
