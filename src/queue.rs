//! [`Queue`]: the library's front door. Open a queue home, enqueue, inspect, wait for jobs,
//! retry from the DLQ, recover, and read or change config. Workers and the spool ingester open
//! their own connections from the same [`Home`].
//!
//! A `Queue` is `Send + Sync`: share one between threads (`Arc<Queue>`); its connection is
//! behind a mutex, held for one call at a time.

use crate::config::{self, ConfigEntry, Settings};
use crate::error::{Error, Result};
use crate::home::Home;
use crate::job::{Attempt, Job, JobSpec, Source, State};
use crate::store::{BackupReport, Overwrite, StateCounts, Store, WorkerRecord};
use crate::time::now_ms;
use crate::worker::registry;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// What `init` found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitReport {
    /// The database already held a queue (its jobs were kept).
    pub already_initialised: bool,
    /// `config/queuectl.toml` was written because none existed.
    pub wrote_config: bool,
    /// The database had an older schema and was migrated (after a backup).
    pub migrated: Option<MigrateReport>,
}

/// What [`Queue::migrate`] (or the migration in `init`) found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrateReport {
    /// The schema version found.
    pub from: i64,
    /// The schema version now (this build's).
    pub to: i64,
    /// The backup written before migrating; `None` when there was nothing to migrate.
    pub backup: Option<BackupReport>,
    /// The queuectl that last migrated the database (after this run), if recorded.
    pub last_migrated_by: Option<String>,
}

/// The numbers `queuectl status` shows.
#[derive(Debug, Clone)]
pub struct Status {
    /// Jobs per state.
    pub counts: StateCounts,
    /// Waiting jobs (pending or failed) that are due now.
    pub due_now: u64,
    /// Waiting jobs scheduled later (delayed jobs and retries in backoff).
    pub scheduled: u64,
    /// Waiting jobs per kind.
    pub waiting_by_kind: BTreeMap<String, u64>,
    /// Live worker processes.
    pub workers: Vec<WorkerRecord>,
    /// `processing` jobs whose worker is gone, not recovered yet, and why (job id, reason):
    /// e.g. their lost run still has processes that recovery must stop first.
    pub lost_jobs: Vec<(String, String)>,
}

/// What `recover` did.
#[derive(Debug, Clone, Default)]
pub struct RecoverReport {
    /// Jobs moved out of `processing`, with their new state.
    pub recovered: Vec<(String, State)>,
    /// Worker rows removed because their process is gone.
    pub removed_workers: Vec<WorkerRecord>,
    /// Lost jobs left `processing`, with the reason: their run still has processes that could
    /// not be stopped (or not be confirmed as the run's) in time.
    pub held: Vec<(String, String)>,
}

/// What [`Queue::wait`] saw when it returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitReport {
    /// The wait ended because its timeout passed, not because the jobs finished.
    pub timed_out: bool,
    /// Each job waited for with its state then, in the order given (empty when waiting for the
    /// whole queue).
    pub jobs: Vec<(String, State)>,
    /// Jobs per state in the whole queue then (only when waiting for the whole queue).
    pub counts: Option<StateCounts>,
}

impl WaitReport {
    /// Jobs waited for that are dead (in the whole queue, when waiting for all of it).
    pub fn dead(&self) -> u64 {
        match &self.counts {
            Some(counts) => counts.dead,
            None => self.jobs.iter().filter(|(_, s)| *s == State::Dead).count() as u64,
        }
    }

    /// Jobs waited for that completed (in the whole queue, when waiting for all of it).
    pub fn completed(&self) -> u64 {
        match &self.counts {
            Some(counts) => counts.completed,
            None => self.jobs.iter().filter(|(_, s)| *s == State::Completed).count() as u64,
        }
    }

    /// Jobs waited for that have not finished (pending, processing or failed).
    pub fn unfinished(&self) -> u64 {
        match &self.counts {
            Some(c) => c.pending + c.processing + c.failed,
            None => self.jobs.iter().filter(|(_, s)| !s.is_final()).count() as u64,
        }
    }
}

/// How often [`Queue::wait`] looks at the store's change token.
const WAIT_POLL: Duration = Duration::from_millis(5);

/// An open queue.
#[derive(Debug)]
pub struct Queue {
    home: Home,
    store: Mutex<Box<dyn Store>>,
    /// Set by [`Queue::tolerate_broken_config_file`]: settings leave the config file out.
    ignore_config_file: bool,
    /// Set by [`Queue::tolerate_broken_config_file`]: the settings as read then, so one
    /// read-only command sees one version of the file even if it changes meanwhile.
    settings_snapshot: Option<Settings>,
}

impl Queue {
    /// Creates the queue in `home` (database, default config file, spool directories), or opens
    /// it keeping every job if it exists already.
    pub fn init(home: &Home) -> Result<(Queue, InitReport)> {
        crate::home::create_dir(home.root(), 0o755)?;
        if let Some(parent) = home.db().sqlite_path().and_then(Path::parent) {
            crate::home::create_dir(parent, 0o755)?;
        }
        // 0600 in a 0700 directory whatever the umask: its hooks run commands.
        let wrote_config = config::write_default_file(&home.config_path())?;
        // A broken file is refused before the database is created, so a refused init leaves
        // nothing behind.
        config::read_config_file(&home.config_path())?;
        let (store, version) = crate::store::create(home.db())?;
        // Version 0 is a new file (or an interrupted `init`): nothing in it to keep.
        let migrated = if version > 0 {
            upgrade(store.as_ref(), version)?
        } else {
            store.migrate()?;
            None
        };
        let queue = Queue::with_store(home, store);
        let settings = queue.settings()?;
        crate::spool::create_layout(&settings.spool_dir)?;
        Ok((
            queue,
            InitReport {
                already_initialised: version > 0,
                wrote_config,
                migrated,
            },
        ))
    }

    /// Opens the queue in `home`; [`Error::NotInitialised`] (naming the home) if `init` never ran,
    /// [`Error::SchemaTooOld`] if its schema needs [`Queue::migrate`] first. Creates and changes
    /// nothing.
    pub fn open(home: &Home) -> Result<Queue> {
        let store = crate::store::open(home.db())?;
        Ok(Queue::with_store(home, store))
    }

    /// Creates the queue's database in `home` (or opens it, migrating an older schema after a
    /// backup) without writing a config file or spool directories: for programs that keep
    /// settings in code, and for the testing kit.
    pub fn create(home: &Home) -> Result<Queue> {
        crate::home::create_dir(home.root(), 0o755)?;
        if let Some(parent) = home.db().sqlite_path().and_then(Path::parent) {
            crate::home::create_dir(parent, 0o755)?;
        }
        let (store, version) = crate::store::create(home.db())?;
        if version > 0 {
            upgrade(store.as_ref(), version)?;
        } else {
            store.migrate()?;
        }
        Ok(Queue::with_store(home, store))
    }

    fn with_store(home: &Home, store: Box<dyn Store>) -> Queue {
        Queue {
            home: home.clone(),
            store: Mutex::new(store),
            ignore_config_file: false,
            settings_snapshot: None,
        }
    }

    /// Opens the queue in `home`, first bringing an older schema up to date after writing a
    /// backup beside the database (`queue.db.bak-v{N}-{time}`). A current database is opened
    /// unchanged (the report's `backup` is `None`). `queuectl migrate` and `worker start`.
    pub fn migrate(home: &Home) -> Result<(Queue, MigrateReport)> {
        let (store, version) = crate::store::open_existing(home.db())?;
        let report = match upgrade(store.as_ref(), version)? {
            Some(report) => report,
            None => MigrateReport {
                from: version,
                to: version,
                backup: None,
                last_migrated_by: store.last_migrated_by()?,
            },
        };
        Ok((Queue::with_store(home, store), report))
    }

    /// Writes a consistent copy of the queue database to `dest` while workers run (see
    /// [`Store::backup_to`] for the refusals). Works on an older schema too, which is what one
    /// wants before an upgrade; the copy keeps that schema.
    pub fn backup(home: &Home, dest: &Path, overwrite: Overwrite) -> Result<BackupReport> {
        let (store, _) = crate::store::open_existing(home.db())?;
        store.backup_to(dest, overwrite)
    }

    /// For commands that only read the queue (or act without settings): if the settings cannot
    /// be read because of the config file (malformed, unreadable, a bad value), ignore the file
    /// from now on, so that defaults and `config set` values apply, and return its error for
    /// the caller to show as a warning. A problem that ignoring the file does not cure (say a
    /// bad stored value) is left for the command itself to report. Either way the settings
    /// read here are kept for the rest of this `Queue`'s life ([`Queue::settings`] returns them),
    /// so a file that changes under a running command cannot fail it halfway.
    pub fn tolerate_broken_config_file(&mut self) -> Option<Error> {
        let problem = match self.settings() {
            Ok(settings) => {
                self.settings_snapshot = Some(settings);
                return None;
            }
            Err(problem) => problem,
        };
        // A database error (a lock held too long) is not the file's fault: ignoring the file
        // could only hide it, so the command meets it and reports it.
        if !matches!(problem, Error::Config(_) | Error::Io { .. }) {
            return None;
        }
        self.ignore_config_file = true;
        if let Ok(settings) = self.settings() {
            self.settings_snapshot = Some(settings);
            Some(problem)
        } else {
            self.ignore_config_file = false;
            None
        }
    }

    /// The queue's home.
    pub fn home(&self) -> &Home {
        &self.home
    }

    /// The underlying store, locked for this thread until the guard is dropped (for the
    /// CLI's and the spool ingester's lower-level needs). Hold it briefly: every other call on
    /// this `Queue` waits for it.
    pub fn store(&self) -> MutexGuard<'_, Box<dyn Store>> {
        // A panic while holding the lock leaves the connection as usable as before: each
        // store call is one transaction.
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every config key with its effective value and where it came from.
    pub fn config_entries(&self) -> Result<Vec<ConfigEntry>> {
        let stored = self.store().config_values()?;
        if self.ignore_config_file {
            return config::effective(&BTreeMap::new(), &stored);
        }
        config::effective(&config::read_config_file(&self.home.config_path())?, &stored)
    }

    /// The config file's per-kind policies (`[kinds.NAME]` tables), by kind; none while the
    /// file is being ignored ([`Queue::tolerate_broken_config_file`]).
    pub fn kind_policies(&self) -> Result<BTreeMap<String, config::KindPolicy>> {
        if self.ignore_config_file {
            return Ok(BTreeMap::new());
        }
        Ok(config::read_config(&self.home.config_path())?.kinds)
    }

    /// The effective, typed settings, with the config file's kind tables.
    pub fn settings(&self) -> Result<Settings> {
        if let Some(settings) = &self.settings_snapshot {
            return Ok(settings.clone());
        }
        if self.ignore_config_file {
            return Settings::from_entries(self.home.root(), &self.config_entries()?);
        }
        let file = config::read_config(&self.home.config_path())?;
        let stored = self.store().config_values()?;
        Ok(
            Settings::from_entries(self.home.root(), &config::effective(&file.values, &stored)?)?
                .with_kinds(file.kinds),
        )
    }

    /// One key's effective value.
    pub fn config_get(&self, key: &str) -> Result<ConfigEntry> {
        let def = config::key_def(key)?;
        Ok(self
            .config_entries()?
            .into_iter()
            .find(|e| e.key == def.name)
            .expect("every key has an entry"))
    }

    /// Stores a value (overriding the config file); returns the canonical key and value.
    pub fn config_set(&self, key: &str, value: &str) -> Result<(&'static str, String)> {
        let def = config::key_def(key)?;
        let value = config::normalize_value(def, value)?;
        // Refuse to store anything while the file is broken: the user must see that first.
        let file = config::read_config_file(&self.home.config_path())?;
        // Check the settings the new value would make (rules across keys, such as the lease
        // being at least three heartbeats), before storing it.
        let mut stored = self.store().config_values()?;
        stored.insert(def.name.to_string(), value.clone());
        Settings::from_entries(self.home.root(), &config::effective(&file, &stored)?)?;
        self.store().config_set(def.name, &value)?;
        Ok((def.name, value))
    }

    /// Drops a stored value so the file (or default) applies again; returns whether one existed.
    pub fn config_unset(&self, key: &str) -> Result<(&'static str, bool)> {
        let def = config::key_def(key)?;
        // As with `config_set`: a broken file must be seen (and fixed) before anything changes,
        // and so must settings that would be unusable without the value.
        let file = config::read_config_file(&self.home.config_path())?;
        let mut stored = self.store().config_values()?;
        stored.remove(def.name);
        Settings::from_entries(self.home.root(), &config::effective(&file, &stored)?)?;
        Ok((def.name, self.store().config_unset(def.name)?))
    }

    /// Enqueues one job from the library API; returns its id.
    pub fn enqueue(&self, spec: JobSpec) -> Result<String> {
        Ok(self.enqueue_located(vec![(None, spec)], Source::Api)?.remove(0))
    }

    /// Enqueues a batch from the library API in one durable transaction, all or nothing;
    /// returns the ids in order. A refused job is named by its index (`index 3`).
    pub fn enqueue_batch(&self, specs: impl IntoIterator<Item = JobSpec>) -> Result<Vec<String>> {
        let located = specs
            .into_iter()
            .enumerate()
            .map(|(index, spec)| (Some(format!("index {index}")), spec))
            .collect();
        self.enqueue_located(located, Source::Api)
    }

    /// Enqueues a batch from `source` in one durable transaction, all or nothing; returns the
    /// ids in order. Each spec may carry its place in the input (`line 3`) for error messages.
    pub fn enqueue_located(&self, specs: Vec<(Option<String>, JobSpec)>, source: Source) -> Result<Vec<String>> {
        let jobs = crate::intake::prepare_jobs(specs, &source, now_ms())?;
        self.store().insert_jobs(&jobs, true)?;
        Ok(jobs.into_iter().map(|j| j.id).collect())
    }

    /// One job, with its captured output.
    pub fn get(&self, id: &str) -> Result<Job> {
        self.store().get_job(id)?.ok_or_else(|| Error::NotFound(id.to_string()))
    }

    /// The attempt history of the job with this id, oldest first.
    pub fn history(&self, id: &str) -> Result<Vec<Attempt>> {
        let job = self.get(id)?;
        self.store().attempts(job.seq)
    }

    /// Waits until the jobs with these ids are all finished (completed or dead), or, with no
    /// ids, until no job in the queue is waiting or running; at most `timeout` (`None`: for
    /// ever). An id that does not exist is an error at once, not a wait that cannot end. Polls
    /// the store's change token every few milliseconds, so it returns right after the commit
    /// that finished the last job; a timeout is not an error: see [`WaitReport::timed_out`].
    pub fn wait(&self, ids: &[impl AsRef<str>], timeout: Option<Duration>) -> Result<WaitReport> {
        let ids: Vec<String> = ids.iter().map(|id| id.as_ref().to_string()).collect();
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        if !ids.is_empty() {
            let states = self.store().job_states(&ids)?;
            if let Some(missing) = ids.iter().find(|id| !states.contains_key(*id)) {
                return Err(Error::NotFound(missing.clone()));
            }
        }
        let mut last_version = None;
        loop {
            let timed_out = deadline.is_some_and(|d| Instant::now() >= d);
            let version = self.store().change_token()?;
            if timed_out || last_version != Some(version) {
                last_version = Some(version);
                let report = self.wait_report(&ids, timed_out)?;
                if timed_out || report.unfinished() == 0 {
                    return Ok(report);
                }
            }
            let pause = match deadline {
                Some(d) => WAIT_POLL.min(d.saturating_duration_since(Instant::now())),
                None => WAIT_POLL,
            };
            std::thread::sleep(pause);
        }
    }

    fn wait_report(&self, ids: &[String], timed_out: bool) -> Result<WaitReport> {
        let store = self.store();
        if ids.is_empty() {
            return Ok(WaitReport {
                timed_out,
                jobs: Vec::new(),
                counts: Some(store.counts()?),
            });
        }
        let states = store.job_states(ids)?;
        Ok(WaitReport {
            timed_out,
            jobs: ids
                .iter()
                .map(|id| (id.clone(), states.get(id).copied().unwrap_or(State::Pending)))
                .collect(),
            counts: None,
        })
    }

    /// Jobs in enqueue order, optionally of one state, at most `limit`.
    pub fn list(&self, state: Option<State>, limit: Option<u64>) -> Result<Vec<Job>> {
        self.store().list_jobs(state, limit)
    }

    /// Jobs matching a `list` filter, newest first unless it asks for oldest first.
    pub fn list_filtered(&self, filter: &crate::store::ListFilter) -> Result<Vec<Job>> {
        self.store().list_filtered(filter)
    }

    /// Ids starting with `prefix`, in id order, at most `limit` (callers ask for one more than
    /// they show, to know there are more).
    pub fn ids_with_prefix(&self, prefix: &str, limit: u64) -> Result<Vec<String>> {
        self.store().ids_with_prefix(prefix, limit)
    }

    /// The ids right before and after `id` in id order, to find the shortest form of `id`
    /// no other job's id starts with.
    pub fn id_neighbours(&self, id: &str) -> Result<(Option<String>, Option<String>)> {
        self.store().id_neighbours(id)
    }

    /// Counts, due/scheduled split and live workers (dead workers' rows are not shown; a
    /// worker's periodic reap or `recover` removes them and recovers their jobs).
    pub fn status(&self) -> Result<Status> {
        let settings = self.settings()?;
        let now = now_ms();
        let host = registry::host_name();
        let store = self.store();
        // Read-only: rows of dead workers are left for a worker's reap or `recover` to remove
        // together with the recovery of their jobs, in one transaction.
        let workers: Vec<WorkerRecord> = store
            .workers()?
            .into_iter()
            .filter(|w| registry::worker_alive(w, now, settings.lease_seconds, &host))
            .collect();
        let counts = store.counts()?;
        let scheduled = store.count_scheduled(now)?;
        let waiting = counts.pending + counts.failed;
        Ok(Status {
            counts,
            due_now: waiting.saturating_sub(scheduled),
            scheduled,
            waiting_by_kind: store.waiting_by_kind()?,
            lost_jobs: registry::lost_jobs(store.as_ref(), &settings)?,
            workers,
        })
    }

    /// Puts dead jobs back to `pending` (attempts reset); all or nothing: an id that does not
    /// exist or is not dead refuses the whole call.
    pub fn dlq_retry(&self, ids: &[impl AsRef<str>]) -> Result<usize> {
        let ids: Vec<String> = ids.iter().map(|id| id.as_ref().to_string()).collect();
        self.store().dlq_retry(&ids)
    }

    /// Puts every dead job back to `pending`.
    pub fn dlq_retry_all(&self) -> Result<usize> {
        self.store().dlq_retry_all()
    }

    /// Recovers every `processing` job whose worker is provably gone (its process is dead, or
    /// on another host its heartbeat is older than twice the lease): each counts as a failed
    /// attempt with the error `worker lost`. On this host, what a lost run left running is
    /// stopped first (SIGTERM, SIGKILL after `stop_grace_seconds`), so this may take that long;
    /// a job whose leftovers cannot be stopped stays `processing` and is reported in `held`.
    pub fn recover(&self) -> Result<RecoverReport> {
        let settings = self.settings()?;
        let mut killer = crate::worker::orphans::OrphanKiller::default();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(settings.stop_grace_seconds + 5);
        let mut total = RecoverReport::default();
        loop {
            let report = registry::reap(self.store().as_mut(), &settings, None, &mut killer)?;
            total.recovered.extend(report.recovered);
            total.removed_workers.extend(report.removed_workers);
            if report.stopping == 0 || std::time::Instant::now() >= deadline {
                total.held = report.held;
                return Ok(total);
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
}

/// Migrates a database at `version` (not 0) to the current schema after a backup; `None` when it
/// is current already.
fn upgrade(store: &dyn Store, version: i64) -> Result<Option<MigrateReport>> {
    if version >= store.supported_schema_version() {
        return Ok(None);
    }
    let backup = store.backup_before_migration(version)?;
    store.migrate()?;
    Ok(Some(MigrateReport {
        from: version,
        to: store.schema_version()?,
        backup,
        last_migrated_by: store.last_migrated_by()?,
    }))
}
