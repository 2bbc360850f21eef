//! One ingestion pass over `incoming/`: check, read, parse and validate each file, commit the
//! jobs of many files per transaction, then remove the files (or refuse them to `failed/`).

use super::identity::{self, Format};
use super::{IngestReport, SpoolEvent, SpoolPaths, ERROR_SUFFIX};
use crate::config::Settings;
use crate::error::{Error, Result};
use crate::home::Home;
use crate::job::{parse_jobs, parse_ndjson, Source};
use crate::queue::{prepare_jobs, Queue};
use crate::store::{SpoolFileJobs, SpoolFileResult, Store};
use crate::time::{format_ms, now_ms};
use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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
/// are left for a later pass (`files_left`). Problems with single files are reported as
/// events and never fail the pass; an error means the database or the spool directory itself
/// could not be used.
pub fn ingest_once(home: &Home, on_event: &dyn Fn(&SpoolEvent)) -> Result<IngestReport> {
    let mut queue = Queue::open(home)?;
    let settings = queue.settings()?;
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
    forget_old_files(queue.store());
    let mut writing = HashSet::new();
    let outcome = run_pass(queue.store_mut(), &settings, &paths, &mut writing, on_event)?;
    Ok(outcome.report)
}

/// Drops identities of files committed long ago. Failing to is harmless (the table only
/// grows), so it is not worth failing a pass for.
pub(crate) fn forget_old_files(store: &Store) {
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

/// What a pass did, and when a file it left should be looked at again.
#[derive(Debug, Default)]
pub(crate) struct PassOutcome {
    pub report: IngestReport,
    /// The soonest a file left for later may be complete (or old enough to refuse).
    pub retry_in: Option<Duration>,
}

/// One ingestion pass. The caller holds the ingest lock. `writing` holds the names the watcher
/// saw opened for writing and not closed since: such a file is left alone while it is younger
/// than `spool_settle_ms`, so a line-by-line writer is not caught half way.
pub(crate) fn run_pass(
    store: &mut Store,
    settings: &Settings,
    paths: &SpoolPaths,
    writing: &mut HashSet<String>,
    on_event: &dyn Fn(&SpoolEvent),
) -> Result<PassOutcome> {
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
        let entry = entry.map_err(|e| Error::io(&paths.incoming, e))?;
        // Names that are not UTF-8 cannot be a job's source; like other names, they are ignored.
        if let Some(name) = entry.file_name().to_str() {
            if let Some(format) = identity::format_of(name) {
                names.push((name.to_string(), format));
            }
        }
    }
    // Oldest names first for writers that name files by time; also makes passes repeatable.
    names.sort_by(|a, b| a.0.cmp(&b.0));
    if !writing.is_empty() {
        let listed: HashSet<&str> = names.iter().map(|(n, _)| n.as_str()).collect();
        writing.retain(|name| listed.contains(name.as_str()));
    }

    let mut pass = Pass {
        store,
        settings,
        paths,
        on_event,
        my_uid: current_uid(),
        outcome: PassOutcome::default(),
        batch: Batch::default(),
    };
    for (name, format) in names {
        let still_writing = writing.contains(&name);
        match examine(&pass, &name, format, still_writing)? {
            Examined::Ready(file) => {
                pass.batch.push(file);
                if pass.batch.files.len() >= MAX_BATCH_FILES || pass.batch.jobs >= MAX_BATCH_JOBS {
                    pass.commit_batch()?;
                }
            }
            Examined::Refused(refusal) => pass.refuse(refusal),
            Examined::Later(retry_in) => {
                pass.outcome.report.files_left += 1;
                let soonest = pass.outcome.retry_in.map_or(retry_in, |r| r.min(retry_in));
                pass.outcome.retry_in = Some(soonest);
            }
            Examined::Gone => {}
        }
    }
    pass.commit_batch()?;
    Ok(pass.outcome)
}

fn current_uid() -> u32 {
    // SAFETY: geteuid(2) has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// A file ready to commit, with what is needed to remove it afterwards.
struct ReadyFile {
    jobs: SpoolFileJobs,
    ino: u64,
    size: u64,
    uid: u32,
}

/// Why a file is refused, and what `NAME.error.txt` should say about it.
struct Refusal {
    name: String,
    reason: String,
    /// The inode seen, so a file renamed over the refused one is not moved by mistake.
    ino: Option<u64>,
    size: Option<u64>,
    uid: Option<u32>,
}

impl Refusal {
    fn new(name: &str, reason: impl Into<String>) -> Refusal {
        Refusal {
            name: name.to_string(),
            reason: reason.into(),
            ino: None,
            size: None,
            uid: None,
        }
    }

    fn of(name: &str, meta: &fs::Metadata, reason: impl Into<String>) -> Refusal {
        Refusal {
            name: name.to_string(),
            reason: reason.into(),
            ino: Some(meta.ino()),
            // A directory's or device's "size" would only mislead in NAME.error.txt.
            size: meta.file_type().is_file().then_some(meta.len()),
            uid: Some(meta.uid()),
        }
    }
}

enum Examined {
    Ready(ReadyFile),
    Refused(Refusal),
    /// May still be being written: look again after this long.
    Later(Duration),
    /// Vanished or replaced while being examined: the next pass sees what is there now.
    Gone,
}

#[derive(Default)]
struct Batch {
    files: Vec<SpoolFileJobs>,
    meta: Vec<(u64, u64, u32)>,
    jobs: usize,
}

impl Batch {
    fn push(&mut self, file: ReadyFile) {
        self.jobs += file.jobs.jobs.len();
        self.meta.push((file.ino, file.size, file.uid));
        self.files.push(file.jobs);
    }
}

struct Pass<'a> {
    store: &'a mut Store,
    settings: &'a Settings,
    paths: &'a SpoolPaths,
    on_event: &'a dyn Fn(&SpoolEvent),
    my_uid: u32,
    outcome: PassOutcome,
    batch: Batch,
}

fn describe_type(file_type: &fs::FileType) -> &'static str {
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

fn mtime_ns(meta: &fs::Metadata) -> i128 {
    meta.mtime() as i128 * 1_000_000_000 + meta.mtime_nsec() as i128
}

/// How long ago the file was last modified (zero for a modification time in the future).
fn age(meta: &fs::Metadata) -> Duration {
    let mtime = UNIX_EPOCH
        + Duration::new(
            meta.mtime().max(0) as u64,
            meta.mtime_nsec().clamp(0, 999_999_999) as u32,
        );
    SystemTime::now().duration_since(mtime).unwrap_or(Duration::ZERO)
}

/// Checks one file and, if it passes, reads and parses it.
fn examine(pass: &Pass<'_>, name: &str, format: Format, still_writing: bool) -> Result<Examined> {
    let settings = pass.settings;
    let path = pass.paths.incoming.join(name);
    let meta = match fs::symlink_metadata(&path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Examined::Gone),
        Err(e) => return Err(Error::io(&path, e)),
    };
    if !meta.file_type().is_file() {
        let what = describe_type(&meta.file_type());
        return Ok(Examined::Refused(Refusal::of(
            name,
            &meta,
            format!("file is {what}; only regular files are accepted"),
        )));
    }
    // O_NOFOLLOW and O_NONBLOCK: a symlink or FIFO swapped in after the lstat above must
    // neither be followed nor block the ingester on open.
    let file = match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(&path)
    {
        Ok(file) => file,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Examined::Gone),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Ok(Examined::Refused(Refusal::new(
                name,
                "file is a symbolic link; only regular files are accepted",
            )))
        }
        Err(e) => {
            return Ok(Examined::Refused(Refusal::of(
                name,
                &meta,
                format!("file cannot be opened: {e}"),
            )))
        }
    };
    let stat = file.metadata().map_err(|e| Error::io(&path, e))?;
    if stat.ino() != meta.ino() || stat.dev() != meta.dev() {
        return Ok(Examined::Gone);
    }
    if !stat.file_type().is_file() {
        let what = describe_type(&stat.file_type());
        return Ok(Examined::Refused(Refusal::of(
            name,
            &stat,
            format!("file is {what}; only regular files are accepted"),
        )));
    }
    if stat.uid() != pass.my_uid && !settings.spool_allowed_uids.contains(&stat.uid()) {
        return Ok(Examined::Refused(Refusal::of(
            name,
            &stat,
            format!(
                "file is owned by uid {}, not by this user (uid {}) or a uid in spool_allowed_uids",
                stat.uid(),
                pass.my_uid
            ),
        )));
    }
    let settle = Duration::from_millis(settings.spool_settle_ms);
    let file_age = age(&stat);
    let young = file_age < settle;
    let wait = settle.saturating_sub(file_age).max(Duration::from_millis(10));
    if stat.nlink() > 1 {
        // A writer that link()s into incoming/ and then unlinks its scratch name passes
        // through two links for a moment; only a lasting second link is refused.
        if young {
            return Ok(Examined::Later(wait));
        }
        return Ok(Examined::Refused(Refusal::of(
            name,
            &stat,
            format!(
                "file has {} hard links; a file with more than one link is refused (it may be another user's file)",
                stat.nlink()
            ),
        )));
    }
    let max = settings.spool_max_file_bytes;
    if stat.len() > max {
        return Ok(Examined::Refused(Refusal::of(
            name,
            &stat,
            format!(
                "file is {} bytes, over the limit of {max} bytes (spool_max_file_bytes)",
                stat.len()
            ),
        )));
    }
    if still_writing && young {
        return Ok(Examined::Later(wait));
    }
    let mut bytes = Vec::with_capacity(stat.len() as usize + 1);
    if let Err(e) = (&file).take(max + 1).read_to_end(&mut bytes) {
        // Refused rather than failing the pass: one unreadable file must not stop the spool.
        return Ok(Examined::Refused(Refusal::of(
            name,
            &stat,
            format!("file cannot be read: {e}"),
        )));
    }
    if bytes.len() as u64 > max {
        return Ok(Examined::Refused(Refusal::of(
            name,
            &stat,
            format!("file is over the limit of {max} bytes (spool_max_file_bytes)"),
        )));
    }
    let after = file.metadata().map_err(|e| Error::io(&path, e))?;
    if after.len() != bytes.len() as u64 || mtime_ns(&after) != mtime_ns(&stat) {
        // It changed while being read: someone is still writing it.
        return Ok(Examined::Later(settle.max(Duration::from_millis(10))));
    }
    drop(file);
    if bytes.is_empty() {
        if young {
            return Ok(Examined::Later(wait));
        }
        return Ok(Examined::Refused(Refusal::of(name, &stat, "file is empty")));
    }
    let key = identity::file_key(name, stat.ino(), stat.len(), mtime_ns(&stat), &bytes);
    let text = match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => {
            if young {
                return Ok(Examined::Later(wait));
            }
            let offset = e.utf8_error().valid_up_to();
            return Ok(Examined::Refused(Refusal::of(
                name,
                &stat,
                format!("file is not UTF-8 text (invalid byte at offset {offset})"),
            )));
        }
    };
    let parsed = match format {
        Format::Json => parse_jobs(&text),
        Format::Ndjson => parse_ndjson(&text),
    };
    let mut specs = match parsed {
        Ok(specs) => specs,
        Err(e) => {
            if young && !identity::is_complete(&text, format) {
                return Ok(Examined::Later(wait));
            }
            return Ok(Examined::Refused(Refusal::of(name, &stat, e.to_string())));
        }
    };
    // Ids derived from the file's identity, not random: a file read again after a crash
    // between the commit and the unlink must map to the same jobs.
    for (index, (_, spec)) in specs.iter_mut().enumerate() {
        if spec.id.is_none() {
            spec.id = Some(identity::derived_id(&key, index));
        }
    }
    let jobs = match prepare_jobs(specs, &Source::Spool(name.to_string()), now_ms()) {
        Ok(jobs) => jobs,
        Err(e) => return Ok(Examined::Refused(Refusal::of(name, &stat, e.to_string()))),
    };
    Ok(Examined::Ready(ReadyFile {
        jobs: SpoolFileJobs {
            file_key: key,
            name: name.to_string(),
            jobs,
        },
        ino: stat.ino(),
        size: stat.len(),
        uid: stat.uid(),
    }))
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
        for ((file, (ino, size, uid)), result) in batch.files.iter().zip(batch.meta).zip(results) {
            match result {
                SpoolFileResult::Inserted(jobs) => {
                    self.remove_ingested(&file.name, ino, size, uid);
                    self.outcome.report.files_ingested += 1;
                    self.outcome.report.jobs_added += jobs;
                    (self.on_event)(&SpoolEvent::Ingested {
                        file: file.name.clone(),
                        jobs,
                    });
                }
                SpoolFileResult::AlreadyIngested => {
                    self.remove_ingested(&file.name, ino, size, uid);
                    (self.on_event)(&SpoolEvent::AlreadyIngested {
                        file: file.name.clone(),
                    });
                }
                SpoolFileResult::Refused(Error::DuplicateId { id, location }) => {
                    let at = location.as_ref().map(|l| format!(" (at {l})")).unwrap_or_default();
                    let reason = match self.store.job_source(&id)? {
                        Some(source) => format!("job id `{id}`{at} already exists, added by {source}"),
                        None => format!("job id `{id}`{at} already exists"),
                    };
                    self.refuse(Refusal {
                        name: file.name.clone(),
                        reason,
                        ino: Some(ino),
                        size: Some(size),
                        uid: Some(uid),
                    });
                }
                SpoolFileResult::Refused(error) => {
                    // Not the file's fault (a full disk, an I/O error): it stays in incoming/
                    // and the pass fails, so the caller retries later.
                    self.outcome.report.files_left += 1;
                    storage_error.get_or_insert(Error::Other(format!(
                        "could not add the jobs of {}: {error}",
                        file.name
                    )));
                }
            }
        }
        match storage_error {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }

    /// Removes (or moves to `done/`) a committed file, unless another file has been renamed
    /// over it since it was read: that one is new and the next pass takes it.
    ///
    /// A file that grew or shrank after it was read (a writer appending to a file already in
    /// `incoming/`, which the contract does not allow) is not deleted: what was read is
    /// committed, and the file goes to `failed/` saying so, so nothing written later is lost
    /// silently.
    fn remove_ingested(&mut self, name: &str, ino: u64, size: u64, uid: u32) {
        let path = self.paths.incoming.join(name);
        match fs::symlink_metadata(&path) {
            Ok(meta) if meta.ino() == ino && meta.len() == size => {}
            Ok(meta) if meta.ino() == ino => {
                let reason = format!(
                    "the file changed after it was read ({size} bytes read and added, now {} bytes): \
                     the jobs of the first {size} bytes are in the queue; write each batch to a new file \
                     and rename it into incoming/ instead of appending",
                    meta.len()
                );
                self.refuse(Refusal {
                    name: name.to_string(),
                    reason,
                    ino: Some(ino),
                    size: Some(meta.len()),
                    uid: Some(uid),
                });
                return;
            }
            _ => return,
        }
        let result = if self.settings.spool_keep_ingested {
            crate::queue::create_dir(&self.paths.done, 0o700).and_then(|_| {
                let target = self.paths.done.join(identity::free_name(&self.paths.done, name));
                fs::rename(&path, &target).map_err(|e| Error::io(&target, e))
            })
        } else {
            match fs::remove_file(&path) {
                Err(e) if e.kind() != ErrorKind::NotFound => Err(Error::io(&path, e)),
                _ => Ok(()),
            }
        };
        if let Err(e) = result {
            // The jobs are committed; the file will be recognised and removed by a later pass.
            (self.on_event)(&SpoolEvent::Warning(format!("could not remove ingested file: {e}")));
        }
    }

    /// Moves a refused file to `failed/` after writing `NAME.error.txt` beside it. The reason
    /// is written first: a crash between the two leaves the file in `incoming/`, to be refused
    /// again, rather than a file in `failed/` with no reason.
    fn refuse(&mut self, refusal: Refusal) {
        match self.move_to_failed(&refusal) {
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
                refusal.name, refusal.reason
            ))),
        }
    }

    fn move_to_failed(&self, refusal: &Refusal) -> Result<Option<String>> {
        let failed = &self.paths.failed;
        crate::queue::create_dir(failed, 0o700)?;
        let source = self.paths.incoming.join(&refusal.name);
        let failed_as = identity::free_name(failed, &refusal.name);
        let mut text = format!("{}\n\nfile: {}\n", refusal.reason, refusal.name);
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
            match fs::symlink_metadata(&source) {
                Ok(meta) if meta.ino() == ino => {}
                _ => {
                    // Replaced or gone since it was examined: not this file to move.
                    let _ = fs::remove_file(&reason_path);
                    return Ok(None);
                }
            }
        }
        let target = failed.join(&failed_as);
        match fs::rename(&source, &target) {
            Ok(()) => Ok(Some(failed_as)),
            Err(e) if e.kind() == ErrorKind::NotFound => {
                let _ = fs::remove_file(&reason_path);
                Ok(None)
            }
            Err(e) => Err(Error::io(&source, e)),
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
