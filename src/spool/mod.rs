//! The spool directory: other programs enqueue by dropping JSON files into `incoming/`.
//!
//! ## Layout
//!
//! ```text
//! spool/tmp/        writers create files here (same file system as incoming/)
//! spool/incoming/   complete *.json / *.ndjson files appear here by atomic rename; watched
//! spool/failed/     rejected files, each with NAME.error.txt saying why
//! spool/done/       ingested files, only with spool_keep_ingested = true
//! ```
//!
//! ## The writer's contract
//!
//! Write `spool/tmp/NAME.json` (or `.ndjson`, in any case), then rename it into
//! `spool/incoming/`. Use a unique NAME: renaming over a file that was not ingested yet
//! replaces it. A `*.json` file holds one job object or a JSON array of them; a `*.ndjson` file
//! holds one job per line; a leading UTF-8 byte order mark is skipped. The fields are those of
//! `queuectl enqueue`. Dotfiles and other names are ignored; a name that is not UTF-8 is
//! refused. A file written in place works too: it is not read while anyone has it open for
//! writing (a read lease says so, see `lease.rs`), and one that does not parse yet is given
//! `spool_settle_ms` to be completed before it is refused. [`submit`] writes a file by this
//! contract.
//!
//! ## Ingestion
//!
//! One ingester per spool at a time (an exclusive lock on `spool/.ingest.lock`). File events
//! are only wake-up hints: on any event, at start and on a periodic tick the ingester re-lists
//! `incoming/`, so a lost event (an inotify overflow) delays a file but never loses it. For
//! each file: checks (regular file, one link, owner, size), no writer (a lease), read, parse,
//! validate (`read.rs`), then the jobs of many files are inserted in one durable transaction
//! (each file all or nothing), and only after the commit are the files removed, each only if
//! it still holds what was read and no one has it open for writing; otherwise it goes to
//! `failed/` with a reason (`dispose.rs`). The commit records each file's identity, and jobs
//! without an `id` get one derived from that identity, so a file re-read after a crash adds
//! nothing twice. [`status`] shows, without changing anything, what a pass would do with
//! each file and why.
//!
//! The library never prints: progress and problems are reported as [`SpoolEvent`]s.

mod dispose;
mod failed;
mod identity;
mod ingest;
mod lease;
mod read;
#[cfg(test)]
mod reader_props;
mod status;
mod submit;
mod watch;

pub use failed::{list_failed, retry_failed, FailedFile};
pub use identity::escape_text;
pub use ingest::ingest_once;
pub use status::{status, IncomingFile, IncomingState, SpoolStatus};
pub use submit::{submit, submit_to_dir};
pub use watch::{spawn_watcher, watch};

use crate::error::Result;
use std::fmt;
use std::path::{Path, PathBuf};

/// The lock file that makes one process the spool's only ingester.
pub const LOCK_FILE: &str = ".ingest.lock";
/// The suffix of the file that says why a file in `failed/` was refused.
pub const ERROR_SUFFIX: &str = ".error.txt";

/// Creates `incoming/`, `tmp/` and `failed/` under the spool directory, mode 0700.
pub fn create_layout(spool_dir: &Path) -> Result<()> {
    for sub in ["incoming", "tmp", "failed"] {
        crate::home::create_dir(&spool_dir.join(sub), 0o700)?;
    }
    crate::home::create_dir(spool_dir, 0o700)
}

/// The paths of one spool directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SpoolPaths {
    pub root: PathBuf,
    pub incoming: PathBuf,
    pub tmp: PathBuf,
    pub failed: PathBuf,
    pub done: PathBuf,
    pub lock: PathBuf,
}

impl SpoolPaths {
    pub fn new(root: &Path) -> SpoolPaths {
        SpoolPaths {
            root: root.to_path_buf(),
            incoming: root.join("incoming"),
            tmp: root.join("tmp"),
            failed: root.join("failed"),
            done: root.join("done"),
            lock: root.join(LOCK_FILE),
        }
    }
}

/// Something the spool ingester did or noticed, for the caller to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpoolEvent {
    /// Ingestion of this `incoming/` directory started, with file events or, when they are
    /// unavailable, by polling.
    Watching {
        /// The watched `incoming/` directory.
        dir: PathBuf,
        /// True when file events could not be set up and the directory is polled instead.
        polling: bool,
    },
    /// Another process holds the spool's ingest lock: this one skips ingestion
    /// ([`ingest_once`]) or waits for the lock ([`watch`]).
    LockHeld {
        /// The spool directory.
        dir: PathBuf,
    },
    /// The lock was acquired after [`SpoolEvent::LockHeld`]: the other ingester is gone.
    LockAcquired {
        /// The spool directory.
        dir: PathBuf,
    },
    /// A file's jobs were committed and the file removed (or moved to `done/`).
    Ingested {
        /// The file's name in `incoming/`.
        file: String,
        /// How many jobs it added.
        jobs: usize,
    },
    /// A file whose jobs had been committed before (the ingester stopped between the commit
    /// and removing the file) was removed now; nothing was added twice.
    AlreadyIngested {
        /// The file's name in `incoming/`.
        file: String,
    },
    /// A file is left in `incoming/` for a later pass (reported once per file and reason; by a
    /// watching ingester only once the file has waited `spool_settle_ms`).
    Waiting {
        /// The file's name in `incoming/`.
        file: String,
        /// Why, and until when (e.g. it is open for writing).
        reason: String,
    },
    /// A file was refused and moved to `failed/`, next to `NAME.error.txt`.
    Rejected {
        /// The file's name in `incoming/`.
        file: String,
        /// Its name in `failed/` (differs from `file` when that name was taken).
        failed_as: String,
        /// Why it was refused.
        reason: String,
    },
    /// The spool directory or `incoming/` is writable by other users, who can therefore run
    /// commands as this user.
    Insecure {
        /// The directory.
        dir: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// A problem ingestion survives (it retries); one line naming the thing.
    Warning(String),
}

/// A path as one safe line of text (see [`escape_text`]).
fn shown(path: &Path) -> String {
    identity::display_name(path.as_os_str())
}

/// Each event displays as one line: names, reasons and paths are escaped (see
/// [`escape_text`]), so a file named with a newline cannot forge a line of the log.
impl fmt::Display for SpoolEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpoolEvent::Watching { dir, polling: false } => write!(f, "spool: watching {}", shown(dir)),
            SpoolEvent::Watching { dir, polling: true } => {
                write!(
                    f,
                    "spool: polling {} every {} ms",
                    shown(dir),
                    watch::POLL_INTERVAL.as_millis()
                )
            }
            SpoolEvent::LockHeld { dir } => {
                write!(
                    f,
                    "spool: another process is ingesting {} (it holds {LOCK_FILE})",
                    shown(dir)
                )
            }
            SpoolEvent::LockAcquired { dir } => {
                write!(f, "spool: the other ingester is gone; now ingesting {}", shown(dir))
            }
            SpoolEvent::Ingested { file, jobs } => {
                write!(
                    f,
                    "spool: ingested {jobs} job{} from {}",
                    if *jobs == 1 { "" } else { "s" },
                    escape_text(file)
                )
            }
            SpoolEvent::AlreadyIngested { file } => {
                write!(
                    f,
                    "spool: {} had already been ingested (before an interruption); removed it",
                    escape_text(file)
                )
            }
            SpoolEvent::Waiting { file, reason } => {
                write!(f, "spool: waiting for {}: {}", escape_text(file), escape_text(reason))
            }
            SpoolEvent::Rejected {
                file,
                failed_as,
                reason,
            } => {
                write!(
                    f,
                    "spool: rejected {}: {} (moved to failed/{})",
                    escape_text(file),
                    escape_text(reason),
                    escape_text(failed_as)
                )
            }
            SpoolEvent::Insecure { dir, mode } => {
                let who = if mode & 0o002 != 0 { "world" } else { "group" };
                write!(
                    f,
                    "spool: warning: {} is {who}-writable (mode {:04o}): whoever can write there can run \
                     commands as this user; run `chmod 700 {}`",
                    shown(dir),
                    mode & 0o7777,
                    shown(dir)
                )
            }
            SpoolEvent::Warning(text) => write!(f, "spool: warning: {}", escape_text(text)),
        }
    }
}

/// What one ingestion pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IngestReport {
    /// Files whose jobs were committed.
    pub files_ingested: usize,
    /// Jobs added by those files.
    pub jobs_added: usize,
    /// Files moved to `failed/`.
    pub files_rejected: usize,
    /// Files left in `incoming/` for a later pass because they may still be being written.
    pub files_left: usize,
    /// Names in `incoming/` that are not spool files (dotfiles, other extensions), left alone.
    pub files_ignored: usize,
    /// Another ingester holds the lock: nothing was done.
    pub lock_held: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_read_as_one_line() {
        let e = SpoolEvent::Ingested {
            file: "x.json".into(),
            jobs: 3,
        };
        assert_eq!(e.to_string(), "spool: ingested 3 jobs from x.json");
        let e = SpoolEvent::Ingested {
            file: "x.json".into(),
            jobs: 1,
        };
        assert_eq!(e.to_string(), "spool: ingested 1 job from x.json");
        let e = SpoolEvent::Insecure {
            dir: PathBuf::from("/s/incoming"),
            mode: 0o40777,
        };
        assert!(
            e.to_string()
                .starts_with("spool: warning: /s/incoming is world-writable (mode 0777)"),
            "{e}"
        );
        let e = SpoolEvent::Insecure {
            dir: PathBuf::from("/s"),
            mode: 0o770,
        };
        assert!(e.to_string().contains("is group-writable (mode 0770)"), "{e}");
        for event in [
            SpoolEvent::Rejected {
                file: "a\nspool: ingested 5 jobs from b.json".into(),
                failed_as: "a\n.json".into(),
                reason: "unknown field `x\ny`".into(),
            },
            SpoolEvent::Ingested {
                file: "a\rb.json".into(),
                jobs: 1,
            },
            SpoolEvent::AlreadyIngested {
                file: "a\nb.json".into(),
            },
            SpoolEvent::Waiting {
                file: "a\nb.json".into(),
                reason: "it is\nopen".into(),
            },
            SpoolEvent::Warning("x\ny".into()),
            SpoolEvent::LockHeld { dir: "/s\n/x".into() },
            SpoolEvent::Watching {
                dir: "/s\n/incoming".into(),
                polling: false,
            },
        ] {
            let line = event.to_string();
            assert!(!line.contains('\n') && !line.contains('\r'), "{line}");
        }
        let e = SpoolEvent::Rejected {
            file: "a\nb.json".into(),
            failed_as: "a\nb.json".into(),
            reason: "file is empty".into(),
        };
        assert_eq!(
            e.to_string(),
            "spool: rejected a\\nb.json: file is empty (moved to failed/a\\nb.json)"
        );
    }
}
