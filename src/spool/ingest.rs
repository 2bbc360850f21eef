//! One ingestion pass over `incoming/`: examine each file (see `read.rs`), commit the jobs of
//! many files per transaction, then remove the committed files and refuse the bad ones to
//! `failed/` (see `dispose.rs`).

use super::dispose::{self, Finished};
use super::identity::{self, NameKind};
use super::read::{self, Examined, Memory, ReadContext, ReadVersion, Refusal};
use super::{IngestReport, SpoolEvent, SpoolPaths};
use crate::config::Settings;
use crate::error::{Error, Result};
use crate::home::Home;
use crate::store::{SpoolFileJobs, SpoolFileResult, Store};
use crate::time::now_ms;
use std::collections::HashSet;
use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::time::Duration;

/// The most files committed in one transaction: large enough that a burst costs a handful of
/// synced commits, small enough that one transaction never holds the write lock for long.
pub(crate) const MAX_BATCH_FILES: usize = 1000;
/// The most jobs committed in one transaction (files of many jobs fill a batch sooner).
pub(crate) const MAX_BATCH_JOBS: usize = 20_000;
/// How long the identity of an ingested file is remembered (see
/// [`Store::forget_spool_files_before`]).
pub(crate) const REMEMBER_FILES_FOR: Duration = Duration::from_secs(7 * 24 * 3600);

/// Runs one ingestion pass over the spool of `home` and returns what it did.
///
/// If another process holds the spool's ingest lock, nothing is done: the report says
/// `lock_held` and a [`SpoolEvent::LockHeld`] is sent. Files that may still be being written
/// (open for writing, or not parsing yet and younger than `spool_settle_ms`) are left for a
/// later pass (`files_left`), each reported as a [`SpoolEvent::Waiting`]. Problems with single
/// files are reported as events and never fail the pass; an error means the database or the
/// spool directory itself could not be used.
pub fn ingest_once(home: &Home, on_event: &dyn Fn(&SpoolEvent)) -> Result<IngestReport> {
    let (mut store, settings) = crate::config::open_with_settings(home)?;
    let paths = SpoolPaths::new(&settings.spool_dir);
    super::create_layout(&paths.root)?;
    check_permissions(&paths, on_event);
    let Some(_lock) = super::watch::try_lock(&paths)? else {
        on_event(&SpoolEvent::LockHeld {
            dir: paths.root.clone(),
        });
        return Ok(IngestReport {
            lock_held: true,
            ..IngestReport::default()
        });
    };
    let mut memory = Memory::single_pass();
    let outcome = run_pass(store.as_mut(), &settings, &paths, &mut memory, on_event)?;
    // After the pass: housekeeping must not delay ingestion (it waits for the write lock).
    forget_old_files(store.as_ref());
    Ok(outcome.report)
}

/// Drops identities of files committed long ago. Failing to is harmless (the table only
/// grows), so it is not worth failing a pass for.
pub(crate) fn forget_old_files(store: &dyn Store) {
    let cutoff = now_ms() - REMEMBER_FILES_FOR.as_millis() as i64;
    let _ = store.forget_spool_files_before(cutoff);
}

/// Sends [`SpoolEvent::Insecure`] for the spool directory and `incoming/` if other users can
/// write into them: they could then run commands as this user.
pub(crate) fn check_permissions(paths: &SpoolPaths, on_event: &dyn Fn(&SpoolEvent)) {
    for dir in [&paths.root, &paths.incoming] {
        // Followed: a symlink's own mode is always 0777; what counts is the directory's.
        if let Ok(meta) = fs::metadata(dir) {
            if meta.mode() & 0o022 != 0 {
                on_event(&SpoolEvent::Insecure {
                    dir: dir.clone(),
                    mode: meta.mode() & 0o7777,
                });
            }
        }
    }
}

/// The names in `incoming/`, sorted (oldest first for writers that name files by time; also
/// makes passes repeatable). Fails if `incoming/` is not a directory.
pub(crate) fn list_incoming(paths: &SpoolPaths) -> Result<Vec<OsString>> {
    let incoming_meta = fs::symlink_metadata(&paths.incoming).map_err(|e| Error::io(&paths.incoming, e))?;
    if !incoming_meta.is_dir() {
        return Err(Error::Other(format!(
            "{} is not a directory (a symbolic link or file is refused)",
            paths.incoming.display()
        )));
    }
    let mut names = Vec::new();
    let entries = fs::read_dir(&paths.incoming).map_err(|e| Error::io(&paths.incoming, e))?;
    for entry in entries {
        names.push(entry.map_err(|e| Error::io(&paths.incoming, e))?.file_name());
    }
    names.sort();
    Ok(names)
}

/// The refusal of a spool file whose name is not UTF-8. It moves to `failed/` under the name
/// with each invalid byte sequence replaced by U+FFFD, so `spool retry` can take it back once
/// the writer is fixed.
pub(crate) fn not_utf8_refusal(paths: &SpoolPaths, name: &OsString) -> Option<Refusal> {
    let path = paths.incoming.join(name);
    let meta = fs::symlink_metadata(&path).ok()?;
    let text_name = name.to_string_lossy().into_owned();
    let reason = format!(
        "file name `{}` is not valid UTF-8; it is kept in failed/ as `{}` (give spool files UTF-8 names)",
        identity::display_name(name),
        identity::escape_text(&text_name)
    );
    Some(Refusal::of(&text_name, &path, &meta, reason))
}

/// What a pass did, and when a file it left should be looked at again.
#[derive(Debug, Default)]
pub(crate) struct PassOutcome {
    pub report: IngestReport,
    /// The soonest a file left for later may be complete (or old enough to refuse).
    pub retry_in: Option<Duration>,
}

/// One ingestion pass. The caller holds the ingest lock. `memory` carries what the caller
/// learnt in earlier passes (files seen opened for writing, how long each has been unchanged,
/// which waits were reported).
pub(crate) fn run_pass(
    store: &mut dyn Store,
    settings: &Settings,
    paths: &SpoolPaths,
    memory: &mut Memory,
    on_event: &dyn Fn(&SpoolEvent),
) -> Result<PassOutcome> {
    let names = list_incoming(paths)?;
    {
        let listed: HashSet<&str> = names.iter().filter_map(|n| n.to_str()).collect();
        memory.retain(&listed);
    }
    let mut pass = Pass {
        store,
        settings,
        paths,
        on_event,
        outcome: PassOutcome::default(),
        batch: Batch::default(),
    };
    match dispose::leftover_removal(paths) {
        Ok(None) => {}
        Ok(Some(refusal)) => pass.refuse(refusal),
        Err(e) => on_event(&SpoolEvent::Warning(format!(
            "could not clean up after an interrupted removal: {e}"
        ))),
    }
    let cx = ReadContext {
        settings,
        paths,
        my_uid: read::current_uid(),
    };
    for name in &names {
        let (format, name) = match identity::classify(name) {
            NameKind::Spool(format, text) => (format, text),
            NameKind::NotUtf8(_) => {
                if let Some(refusal) = not_utf8_refusal(paths, name) {
                    pass.refuse(refusal);
                }
                continue;
            }
            NameKind::Dotfile | NameKind::Other => {
                pass.outcome.report.files_ignored += 1;
                continue;
            }
        };
        match read::examine(&cx, memory, name, format)? {
            Examined::Ready(file) => {
                memory.done_waiting(name);
                pass.batch.push(*file);
                if pass.batch.files.len() >= MAX_BATCH_FILES || pass.batch.jobs >= MAX_BATCH_JOBS {
                    pass.commit_batch()?;
                }
            }
            Examined::Refused(refusal) => {
                memory.done_waiting(name);
                pass.refuse(refusal);
            }
            Examined::Later(waiting) => {
                pass.outcome.report.files_left += 1;
                let soonest = pass
                    .outcome
                    .retry_in
                    .map_or(waiting.retry_in, |r| r.min(waiting.retry_in));
                pass.outcome.retry_in = Some(soonest);
                let settle = Duration::from_millis(settings.spool_settle_ms);
                if memory.should_report_wait(name, &waiting.reason, settle) {
                    on_event(&SpoolEvent::Waiting {
                        file: name.to_string(),
                        reason: waiting.reason,
                    });
                }
            }
            Examined::Gone => memory.done_waiting(name),
        }
    }
    pass.commit_batch()?;
    Ok(pass.outcome)
}

#[derive(Default)]
struct Batch {
    files: Vec<SpoolFileJobs>,
    read: Vec<(ReadVersion, u32)>,
    jobs: usize,
}

impl Batch {
    fn push(&mut self, file: read::ReadyFile) {
        self.jobs += file.jobs.jobs.len();
        self.read.push((file.read, file.uid));
        self.files.push(file.jobs);
    }
}

struct Pass<'a> {
    store: &'a mut dyn Store,
    settings: &'a Settings,
    paths: &'a SpoolPaths,
    on_event: &'a dyn Fn(&SpoolEvent),
    outcome: PassOutcome,
    batch: Batch,
}

impl Pass<'_> {
    /// Commits the batch (durably), then removes the committed files and refuses the ones the
    /// database turned down. The order matters: a crash before the commit leaves every file to
    /// be read again; after it, each file is recognised by its key.
    fn commit_batch(&mut self) -> Result<()> {
        if self.batch.files.is_empty() {
            return Ok(());
        }
        let batch = std::mem::take(&mut self.batch);
        let results = self.store.ingest_spool_files(&batch.files)?;
        let mut storage_error = None;
        for ((file, (read, uid)), result) in batch.files.iter().zip(batch.read).zip(results) {
            match result {
                SpoolFileResult::Inserted(jobs) => {
                    self.outcome.report.files_ingested += 1;
                    self.outcome.report.jobs_added += jobs;
                    (self.on_event)(&SpoolEvent::Ingested {
                        file: file.name.clone(),
                        jobs,
                    });
                    self.finish(&file.name, &read, jobs, uid);
                }
                SpoolFileResult::AlreadyIngested => {
                    (self.on_event)(&SpoolEvent::AlreadyIngested {
                        file: file.name.clone(),
                    });
                    self.finish(&file.name, &read, file.jobs.len(), uid);
                }
                SpoolFileResult::Refused(Error::DuplicateId { id, location }) => {
                    let at = location.as_ref().map(|l| format!(" (at {l})")).unwrap_or_default();
                    let reason = match self.store.job_source(&id)? {
                        Some(source) => format!("job id `{id}`{at} already exists, added by {source}"),
                        None => format!("job id `{id}`{at} already exists"),
                    };
                    self.refuse(Refusal {
                        name: file.name.clone(),
                        path: self.paths.incoming.join(&file.name),
                        reason,
                        ino: Some(read.version.ino),
                        size: Some(read.version.size),
                        uid: Some(uid),
                    });
                }
                SpoolFileResult::Refused(error) => {
                    // Not the file's fault (a full disk, an I/O error): it stays in incoming/
                    // and the pass fails, so the caller retries later.
                    self.outcome.report.files_left += 1;
                    storage_error.get_or_insert(Error::Other(format!(
                        "could not add the jobs of {}: {error}",
                        identity::escape_text(&file.name)
                    )));
                }
            }
        }
        match storage_error {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }

    /// Removes (or moves to `done/`) a committed file, or refuses it to `failed/` if it was
    /// written to after it was read, so nothing written later is lost silently.
    fn finish(&mut self, name: &str, read: &ReadVersion, jobs: usize, uid: u32) {
        let settings = self.settings;
        match dispose::finish_committed(
            self.paths,
            name,
            read,
            jobs,
            settings.spool_keep_ingested,
            settings.spool_max_file_bytes,
        ) {
            Ok(Finished::Removed) | Ok(Finished::NotThere) => {}
            Ok(Finished::Changed { at, reason, size }) => self.refuse(Refusal {
                name: name.to_string(),
                path: at,
                reason,
                ino: Some(read.version.ino),
                size: Some(size),
                uid: Some(uid),
            }),
            Ok(Finished::Lost(warning)) => (self.on_event)(&SpoolEvent::Warning(warning)),
            // The jobs are committed; the file will be recognised and removed by a later pass.
            Err(e) => (self.on_event)(&SpoolEvent::Warning(format!("could not remove ingested file: {e}"))),
        }
    }

    /// Moves a refused file to `failed/` and says so.
    fn refuse(&mut self, refusal: Refusal) {
        match dispose::move_to_failed(self.paths, &refusal) {
            Ok(Some(failed_as)) => {
                self.outcome.report.files_rejected += 1;
                (self.on_event)(&SpoolEvent::Rejected {
                    file: refusal.name,
                    failed_as,
                    reason: refusal.reason,
                });
            }
            Ok(None) => {}
            Err(e) => (self.on_event)(&SpoolEvent::Warning(format!(
                "could not move refused file {} to failed/ ({}): {e}",
                identity::escape_text(&refusal.name),
                identity::escape_text(&refusal.reason)
            ))),
        }
    }
}
