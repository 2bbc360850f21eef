//! The worker pool: one coordinator (the caller's thread) and N executor threads.
//!
//! ```text
//!   coordinator ── claim (BEGIN IMMEDIATE … RETURNING) ──> per-thread channel ──> executor thread
//!        ^                                                                          │
//!        └──────────────── outcome channel <── Outcome (never touches the DB) <─────┘
//! ```
//!
//! Only the coordinator talks to the database: it claims at most as many jobs as there are idle
//! threads, records every outcome (retry/DLQ decisions in one place), heartbeats the worker row,
//! recovers the jobs of dead workers, enforces timeouts and drives shutdown. While idle it polls
//! SQLite's `data_version` every couple of milliseconds, so a job enqueued by another process
//! starts within milliseconds without a daemon or a fixed sleep, and it sleeps exactly until the
//! next scheduled job is due.

use super::events::{Observer, WorkerEvent};
use super::orphans::OrphanKiller;
use super::registry;
use crate::config::load_entries;
use crate::config::Settings;
use crate::error::{Error, Result};
use crate::executor::{signal_group, ExecContext, Executor, Outcome, ShellExecutor, SlotState};
use crate::home::Home;
use crate::job::{Job, SHELL_KIND};
use crate::lifecycle::{settle, AttemptEnd, Transition};
use crate::shutdown::Shutdown;
use crate::store::{AttemptOutcome, Store, StoreErrorKind, WorkerRecord};
use crate::time::{now_ms, Millis};
use crossbeam_channel::{bounded, unbounded, Receiver, RecvTimeoutError, Sender};
use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often an idle coordinator checks for new work (`PRAGMA data_version`, a shutdown
/// request). Cheap enough to be frequent; it bounds pickup latency.
const IDLE_POLL: Duration = Duration::from_millis(2);
/// After a claim, the worker row's list of running jobs is refreshed at most this often.
const SLOTS_REFRESH: Duration = Duration::from_millis(250);
/// Even with no sign of change, look for due work this often (clock jumps, missed versions).
const SAFETY_CLAIM_INTERVAL: Duration = Duration::from_secs(1);
/// After a forced stop, how long the database may keep failing before the pool gives up
/// recording its results and exits.
const FORCED_STOP_STORAGE_PATIENCE: Duration = Duration::from_secs(10);
/// How often to reap while a lost run's leftover processes are being stopped.
const REAP_WHILE_STOPPING: Duration = Duration::from_millis(200);

/// A request to re-read the settings at once, shared between whoever decides (the CLI's SIGHUP
/// handling) and a running pool. The library installs no signal handler: the caller calls
/// [`ReloadRequest::request`], and the pool's coordinator picks it up within one pass of its
/// loop and reports the result as [`WorkerEvent::SettingsReloaded`].
#[derive(Debug, Clone, Default)]
pub struct ReloadRequest {
    pending: Arc<AtomicBool>,
}

impl ReloadRequest {
    /// A request nobody has made yet.
    pub fn new() -> ReloadRequest {
        ReloadRequest::default()
    }

    /// Asks the pool to reload. Requests made before the pool gets to them count as one.
    /// Only sets a flag, so it is safe to call from a signal-handling thread.
    pub fn request(&self) {
        self.pending.store(true, Ordering::SeqCst);
    }

    /// Takes a pending request, if any.
    fn take(&self) -> bool {
        self.pending.swap(false, Ordering::SeqCst)
    }
}

/// Builds and runs a worker pool: executors per job kind, observers, thread count.
pub struct PoolBuilder {
    home: Home,
    threads: Option<usize>,
    executors: BTreeMap<String, Arc<dyn Executor>>,
    observers: Vec<Arc<dyn Observer>>,
    until_empty: bool,
    until_idle: bool,
    shell_hooks: bool,
    reload: ReloadRequest,
}

impl std::fmt::Debug for PoolBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolBuilder")
            .field("home", &self.home)
            .field("threads", &self.threads)
            .field("kinds", &self.executors.keys().collect::<Vec<_>>())
            .field("until_empty", &self.until_empty)
            .field("until_idle", &self.until_idle)
            .finish()
    }
}

impl PoolBuilder {
    /// A pool for the queue in `home` with the shell executor for `shell` jobs.
    pub fn new(home: &Home) -> PoolBuilder {
        let mut executors: BTreeMap<String, Arc<dyn Executor>> = BTreeMap::new();
        executors.insert(SHELL_KIND.to_string(), Arc::new(ShellExecutor));
        PoolBuilder {
            home: home.clone(),
            threads: None,
            executors,
            observers: Vec::new(),
            until_empty: false,
            until_idle: false,
            shell_hooks: true,
            reload: ReloadRequest::default(),
        }
    }

    /// Reloads the settings whenever `request` is made (the CLI makes it on SIGHUP), beside the
    /// periodic re-read at each heartbeat.
    pub fn reload_on(mut self, request: ReloadRequest) -> Self {
        self.reload = request;
        self
    }

    /// The number of executor threads (default: config `worker_count`).
    pub fn threads(mut self, threads: usize) -> Self {
        self.threads = Some(threads);
        self
    }

    /// Runs jobs of `kind` with `executor`. The pool claims only kinds it has executors for.
    pub fn executor(mut self, kind: impl Into<String>, executor: impl Executor + 'static) -> Self {
        self.executors.insert(kind.into(), Arc::new(executor));
        self
    }

    /// Removes the built-in shell executor, so the pool leaves `shell` jobs to other workers.
    pub fn without_shell(mut self) -> Self {
        self.executors.remove(SHELL_KIND);
        self
    }

    /// Adds an observer of the pool's events (life-cycle hooks for library users).
    pub fn observer(mut self, observer: impl Observer + 'static) -> Self {
        self.observers.push(Arc::new(observer));
        self
    }

    /// Exit once no job of the pool's kinds is pending, processing or waiting for a retry.
    pub fn until_empty(mut self, until_empty: bool) -> Self {
        self.until_empty = until_empty;
        self
    }

    /// Exit once no job of the pool's kinds is due now and none of this pool's jobs runs. Unlike
    /// [`until_empty`](Self::until_empty), jobs scheduled for later (including retries waiting
    /// for their backoff) and jobs other workers run do not keep the pool up.
    pub fn until_idle(mut self, until_idle: bool) -> Self {
        self.until_idle = until_idle;
        self
    }

    /// Whether to run the `[hooks]` shell commands of the config file (default true).
    pub fn shell_hooks(mut self, enabled: bool) -> Self {
        self.shell_hooks = enabled;
        self
    }

    /// Runs the pool on the calling thread until `shutdown` fires (or, with
    /// [`until_empty`](Self::until_empty) or [`until_idle`](Self::until_idle), the queue is
    /// drained). Returns how many jobs it ran.
    pub fn run(self, shutdown: &Shutdown) -> Result<u64> {
        if self.executors.is_empty() {
            return Err(Error::InvalidArgument(
                "the pool has no executors: register at least one job kind".into(),
            ));
        }
        let store = crate::store::open(self.home.db())?;
        let settings = Settings::from_entries(self.home.root(), &load_entries(&self.home, store.as_ref())?)?;
        let threads = self.threads.unwrap_or(settings.worker_count);
        if threads == 0 || threads > 1024 {
            return Err(Error::InvalidArgument(format!(
                "thread count must be from 1 to 1024, got {threads}"
            )));
        }
        let mut observers = self.observers;
        let hooks = if self.shell_hooks {
            let hooks = Arc::new(super::hooks::ShellHooks::new(&self.home, settings.hooks.clone()));
            observers.push(hooks.clone());
            Some(hooks)
        } else {
            None
        };
        let mut coordinator = Coordinator::start(
            self.home,
            store,
            settings,
            threads,
            self.executors,
            observers,
            self.until_empty,
        )?;
        coordinator.hooks = hooks;
        coordinator.until_idle = self.until_idle;
        coordinator.reload = self.reload;
        let result = coordinator.run(shutdown);
        coordinator.finish();
        result.map(|_| coordinator.jobs_run)
    }
}

/// Work sent to an executor thread.
struct Assignment {
    job: Job,
    context: ExecContext,
}

/// What an executor thread sends back.
struct Done {
    thread: usize,
    job: Job,
    outcome: Outcome,
    /// How long the executor ran the job: from its call to its return (for a shell job, spawn
    /// to exit), not including any time the coordinator then waited to record the result.
    duration: Duration,
    started_at: Millis,
    /// Wall-clock time the executor returned: the attempt's recorded finish time.
    finished_at: Millis,
    cancelled: bool,
}

/// The coordinator's view of one executor thread.
struct Slot {
    sender: Sender<Assignment>,
    state: Arc<SlotState>,
    handle: Option<std::thread::JoinHandle<()>>,
    running: Option<Running>,
}

struct Running {
    job: Job,
    started_at: Millis,
    deadline: Option<Instant>,
    term_sent_at: Option<Instant>,
    kill_sent: bool,
}

/// The coordinator loop's own bookkeeping, kept across a retried step.
struct LoopState {
    inbox: Vec<Done>,
    last_version: i64,
    claim_needed: bool,
    next_due: Option<Millis>,
    last_claim: Instant,
    last_heartbeat: Instant,
    last_reap: Option<Instant>,
    /// The last reap left lost jobs held (their leftovers being stopped): reap again soon.
    reap_soon: bool,
    stopping_announced: bool,
    forced_done: bool,
}

impl LoopState {
    fn new() -> LoopState {
        LoopState {
            inbox: Vec::new(),
            last_version: 0,
            claim_needed: true,
            next_due: None,
            last_claim: Instant::now(),
            last_heartbeat: Instant::now(),
            last_reap: None,
            reap_soon: false,
            stopping_announced: false,
            forced_done: false,
        }
    }
}

struct Coordinator {
    home: Home,
    store: Box<dyn Store>,
    settings: Settings,
    kinds: Vec<String>,
    observers: Vec<Arc<dyn Observer>>,
    until_empty: bool,
    until_idle: bool,
    worker: WorkerRecord,
    slots: Vec<Slot>,
    done_rx: Receiver<Done>,
    jobs_run: u64,
    /// The set of running jobs changed since the worker row was last written.
    slots_dirty: bool,
    /// The config file's shell hooks, whose failures come back as warnings to report.
    hooks: Option<Arc<super::hooks::ShellHooks>>,
    /// When the worker row was last written: workers on other hosts judge this worker by it.
    last_heartbeat_ok: Instant,
    /// Running jobs were stopped because the database was out of reach for a lease.
    fenced: bool,
    /// Stops what lost runs of dead workers left running, across reap passes.
    killer: OrphanKiller,
    /// This queue's identity in its jobs' environment (`QUEUECTL_QUEUE`).
    queue_id: Arc<str>,
    /// Lost jobs held back at the last reap, with the reason reported (each reason once).
    held_reported: BTreeMap<String, String>,
    /// Why the settings last failed to reload, if they did: the warning is emitted once per
    /// distinct problem, not on every heartbeat.
    settings_error: Option<String>,
    /// Reload requests from the caller (SIGHUP in the CLI).
    reload: ReloadRequest,
}

impl Coordinator {
    fn start(
        home: Home,
        store: Box<dyn Store>,
        settings: Settings,
        threads: usize,
        executors: BTreeMap<String, Arc<dyn Executor>>,
        observers: Vec<Arc<dyn Observer>>,
        until_empty: bool,
    ) -> Result<Coordinator> {
        let pid = std::process::id();
        let host = registry::host_name();
        let now = now_ms();
        let kinds: Vec<String> = executors.keys().cloned().collect();
        let worker = WorkerRecord {
            id: format!("{host}:{pid}:{now}"),
            pid,
            host,
            proc_start: registry::process_start_time(pid),
            started_at: now,
            heartbeat_at: now,
            threads: threads as u32,
            kinds: kinds.clone(),
            slots: serde_json::Value::Array(vec![]),
            stopping: false,
            version: env!("CARGO_PKG_VERSION").to_string(),
        };
        // Wait less than the default for a write lock: a step that cannot get it is retried
        // (with running jobs unaffected) instead of stalling the loop for long.
        store.set_lock_timeout(Duration::from_secs(5))?;
        store.register_worker(&worker)?;
        let (done_tx, done_rx) = unbounded::<Done>();
        let mut slots = Vec::with_capacity(threads);
        for index in 0..threads {
            let (sender, receiver) = bounded::<Assignment>(1);
            let state = Arc::new(SlotState::default());
            let done_tx = done_tx.clone();
            let executors = executors.clone();
            let handle = std::thread::Builder::new()
                .name(format!("queuectl-exec-{}", index + 1))
                .spawn(move || executor_thread(index + 1, receiver, done_tx, executors))
                .map_err(|e| Error::Other(format!("could not start executor thread: {e}")))?;
            slots.push(Slot {
                sender,
                state,
                handle: Some(handle),
                running: None,
            });
        }
        let queue_id: Arc<str> = Arc::from(store.location().identity());
        let coordinator = Coordinator {
            home,
            store,
            settings,
            kinds,
            observers,
            until_empty,
            until_idle: false,
            worker,
            slots,
            done_rx,
            jobs_run: 0,
            slots_dirty: false,
            hooks: None,
            last_heartbeat_ok: Instant::now(),
            fenced: false,
            killer: OrphanKiller::default(),
            queue_id,
            held_reported: BTreeMap::new(),
            settings_error: None,
            reload: ReloadRequest::default(),
        };
        coordinator.emit(&WorkerEvent::Started {
            worker_id: coordinator.worker.id.clone(),
            pid,
            threads,
            kinds: coordinator.kinds.clone(),
        });
        Ok(coordinator)
    }

    fn emit(&self, event: &WorkerEvent) {
        for observer in &self.observers {
            // An observer's panic must not take the pool (and its running jobs) down with it.
            let _ = std::panic::catch_unwind(AssertUnwindSafe(|| observer.on_event(event)));
        }
    }

    fn busy(&self) -> usize {
        self.slots.iter().filter(|s| s.running.is_some()).count()
    }

    /// The periodic re-read (each heartbeat, and before recording a failure).
    fn reload_settings(&mut self) {
        self.reload_settings_as(false);
    }

    /// Reads the settings again. A change is reported either way, so the log says when new
    /// values took effect; a requested reload also reports "no change" and every failure, while
    /// the periodic one reports a failure once per distinct problem, not every heartbeat.
    fn reload_settings_as(&mut self, requested: bool) {
        match load_entries(&self.home, self.store.as_ref()).and_then(|e| Settings::from_entries(self.home.root(), &e)) {
            Ok(settings) => {
                if let Some(hooks) = &self.hooks {
                    hooks.set_commands(settings.hooks.clone());
                }
                let changes = self.settings.changes_to(&settings);
                self.settings = settings;
                self.settings_error = None;
                if requested || !changes.is_empty() {
                    self.emit(&WorkerEvent::SettingsReloaded {
                        requested,
                        changes,
                        error: None,
                    });
                }
            }
            Err(e) => {
                let text = e.to_string();
                if requested {
                    self.emit(&WorkerEvent::SettingsReloaded {
                        requested,
                        changes: Vec::new(),
                        error: Some(text.clone()),
                    });
                    self.settings_error = Some(text);
                } else if self.settings_error.as_deref() != Some(text.as_str()) {
                    self.emit(&WorkerEvent::Warning(format!("keeping the previous settings: {text}")));
                    self.settings_error = Some(text);
                }
            }
        }
    }

    /// Runs the loop until shutdown (or `until_empty`). Database errors (a lock held too long,
    /// a full disk) are not fatal: finished attempts stay in the inbox, the error is reported,
    /// and the step is retried with a growing pause, while running jobs go on.
    fn run(&mut self, shutdown: &Shutdown) -> Result<()> {
        let mut state = LoopState::new();
        let mut failures = 0u32;
        let mut failing_since_forced: Option<Instant> = None;
        loop {
            match self.step(&mut state, shutdown) {
                Ok(true) => return Ok(()),
                Ok(false) => {
                    failures = 0;
                    failing_since_forced = None;
                }
                Err(Error::Storage(e)) if e.kind == StoreErrorKind::Corrupt => {
                    return Err(Error::Other(format!(
                        "the queue database {} is damaged ({e}): stopping; restore it from a backup",
                        self.store.location()
                    )));
                }
                Err(Error::Storage(e)) => {
                    failures += 1;
                    self.fence_if_unreachable(&state.inbox);
                    if e.kind == StoreErrorKind::Full {
                        // The WAL may be what filled the disk: fold it back and truncate it.
                        let _ = self.store.relieve_full();
                    }
                    if shutdown.is_forced() {
                        // A forced stop does not wait for the database for ever: running jobs
                        // are killed, and what cannot be recorded is recovered as lost later.
                        if !state.forced_done {
                            state.forced_done = true;
                            self.kill_running(&state.inbox);
                        }
                        let since = *failing_since_forced.get_or_insert_with(Instant::now);
                        if since.elapsed() >= FORCED_STOP_STORAGE_PATIENCE {
                            return Err(Error::Other(format!(
                                "forced stop: could not record results for {FORCED_STOP_STORAGE_PATIENCE:?} \
                                 (database error: {e}); the jobs stay processing and are recovered as lost"
                            )));
                        }
                    }
                    let pause = Duration::from_millis(100u64 << failures.min(6));
                    self.emit(&WorkerEvent::Warning(format!(
                        "database error, retrying in {pause:?}: {e}"
                    )));
                    // Keep enforcing timeouts while the database is unavailable; the pause is
                    // always waited out (a forced stop must not turn this into a busy loop).
                    self.enforce_timeouts();
                    let deadline = Instant::now() + pause;
                    while Instant::now() < deadline {
                        if let Ok(done) = self.done_rx.recv_timeout(Duration::from_millis(20)) {
                            state.inbox.push(done);
                        }
                        if shutdown.is_forced() && !state.forced_done {
                            state.forced_done = true;
                            self.kill_running(&state.inbox);
                        }
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// One pass of the coordinator loop; returns true when the pool should exit.
    fn step(&mut self, st: &mut LoopState, shutdown: &Shutdown) -> Result<bool> {
        if st.last_reap.is_none() {
            st.reap_soon = self.reap()?;
            st.last_reap = Some(Instant::now());
            st.last_version = self.store.change_token()?;
        }
        while let Ok(done) = self.done_rx.try_recv() {
            st.inbox.push(done);
        }
        if self.reload.take() {
            self.reload_settings_as(true);
        }

        // 1. Shutdown: stop claiming; when forced, kill what runs (it comes back cancelled).
        if shutdown.is_stopping() {
            if !st.stopping_announced {
                st.stopping_announced = true;
                self.emit(&WorkerEvent::Stopping {
                    forced: shutdown.is_forced(),
                    running: self.busy(),
                });
                self.heartbeat(true)?;
            }
            if shutdown.is_forced() && !st.forced_done {
                st.forced_done = true;
                let running = self.busy() - st.inbox.len().min(self.busy());
                if running > 0 {
                    self.emit(&WorkerEvent::Stopping { forced: true, running });
                }
                self.kill_running(&st.inbox);
            }
        }

        // 2. Decide whether to claim: only for idle threads, only when something may have
        //    changed (another process committed, a scheduled job fell due, a thread freed).
        let now = now_ms();
        let idle = self.slots.len() - self.busy() + st.inbox.len();
        let mut claim_limit = 0;
        if !shutdown.is_stopping() && idle > 0 {
            let version = self.store.change_token()?;
            if version != st.last_version {
                st.last_version = version;
                st.claim_needed = true;
            }
            if !st.inbox.is_empty()
                || st.next_due.map(|due| due <= now).unwrap_or(false)
                || st.last_claim.elapsed() >= SAFETY_CLAIM_INTERVAL
            {
                st.claim_needed = true;
            }
            if st.claim_needed {
                claim_limit = idle;
            }
        }

        // 3. Record outcomes and claim new work in one transaction.
        if !st.inbox.is_empty() || claim_limit > 0 {
            let claimed = self.record_and_claim(&st.inbox, claim_limit, now)?;
            st.inbox.clear();
            if claim_limit > 0 {
                st.claim_needed = false;
                st.last_claim = Instant::now();
                let got = claimed.len();
                for job in claimed {
                    self.dispatch(job);
                }
                if got == claim_limit {
                    // There may be more due work: look again as soon as a thread frees up.
                    st.claim_needed = true;
                    st.next_due = None;
                } else {
                    st.next_due = self.store.next_run_at(&self.kinds)?;
                    if self.until_empty && self.busy() == 0 && !self.store.has_unfinished(&self.kinds)? {
                        return Ok(true);
                    }
                    // Fewer claimed than asked for: nothing else is due now, unless a job fell
                    // due since the claim (then the next pass claims it).
                    if self.until_idle && self.busy() == 0 && !st.next_due.is_some_and(|due| due <= now_ms()) {
                        return Ok(true);
                    }
                }
            }
        }
        if self.slots_dirty && st.last_heartbeat.elapsed() >= SLOTS_REFRESH {
            // Let `status` see what the threads run soon, without a write per job.
            st.last_heartbeat = Instant::now();
            self.heartbeat(shutdown.is_stopping())?;
        }
        if shutdown.is_stopping() && self.busy() == 0 {
            return Ok(true);
        }

        if let Some(hooks) = &self.hooks {
            for warning in hooks.take_warnings() {
                self.emit(&WorkerEvent::Warning(warning));
            }
        }

        // 4. Timeouts: SIGTERM the group at the deadline, SIGKILL after the grace period.
        self.enforce_timeouts();

        // 5. Heartbeat, settings reload and lease recovery of other workers.
        let heartbeat_every = Duration::from_secs(self.settings.heartbeat_seconds.max(1));
        if st.last_heartbeat.elapsed() >= heartbeat_every {
            st.last_heartbeat = Instant::now();
            self.store.check_health()?;
            self.reload_settings();
            self.heartbeat(shutdown.is_stopping())?;
        }
        let reap_every = if st.reap_soon {
            // A lost run's leftovers are being stopped: recover its job as soon as they are gone.
            REAP_WHILE_STOPPING
        } else {
            Duration::from_secs((self.settings.lease_seconds / 3).max(1))
        };
        if st.last_reap.map(|t| t.elapsed() >= reap_every).unwrap_or(true) {
            st.last_reap = Some(Instant::now());
            st.reap_soon = self.reap()?;
        }

        // 6. Wait for an outcome, or until it is time to look again.
        let wait = if self.busy() == self.slots.len() {
            // All threads busy: nothing to claim; wake for outcomes, timeouts, heartbeats.
            Duration::from_millis(50)
        } else {
            IDLE_POLL
        };
        match self.done_rx.recv_timeout(wait) {
            Ok(done) => st.inbox.push(done),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                return Err(Error::Other("all executor threads ended unexpectedly".into()));
            }
        }
        Ok(false)
    }

    /// Cancels every running attempt and SIGKILLs its process group. Slots whose result is
    /// already in `inbox` are left alone: their process has been reaped and its PID may be
    /// someone else's by now.
    /// Self-fencing for a queue shared across hosts: workers on other hosts presume this one dead
    /// once its heartbeat is `2 * lease_seconds` old and run its jobs again. When the database
    /// has been out of reach (a partition, a server restart) for one lease, this worker stops
    /// its running jobs, so no job runs twice at the same time however the partition ends;
    /// their results could not be recorded anyway. On one host (SQLite) the process table
    /// decides liveness and a slow database never costs running jobs.
    fn fence_if_unreachable(&mut self, inbox: &[Done]) {
        let lease = Duration::from_secs(self.settings.lease_seconds.max(1));
        if self.fenced || !self.store.location().is_postgres() || self.last_heartbeat_ok.elapsed() < lease {
            return;
        }
        self.fenced = true;
        if self.busy() > inbox.len() {
            self.kill_running(inbox);
            self.emit(&WorkerEvent::Warning(format!(
                "the database has been out of reach for {}s (lease_seconds): stopped the running jobs, \
                 which workers on other hosts may recover",
                lease.as_secs()
            )));
        }
    }

    fn kill_running(&self, inbox: &[Done]) {
        for (index, slot) in self.slots.iter().enumerate() {
            if slot.running.is_none() || inbox.iter().any(|d| d.thread == index + 1) {
                continue;
            }
            slot.state.cancel();
            if let Some(pid) = slot.state.pid() {
                signal_group(pid, libc::SIGKILL);
            }
        }
    }

    fn dispatch(&mut self, job: Job) {
        let index = match self.slots.iter().position(|s| s.running.is_none()) {
            Some(index) => index,
            None => return, // cannot happen: we never claim more than the idle threads
        };
        let timeout_seconds = job.timeout_seconds.or(self.settings.job_timeout_seconds);
        let timeout = timeout_seconds.map(Duration::from_secs);
        let slot = &mut self.slots[index];
        slot.state.reset();
        let context = ExecContext {
            attempt: job.attempts + 1,
            home: self.home.root().to_path_buf(),
            timeout,
            output_limit: self.settings.output_limit_bytes,
            slot: slot.state.clone(),
            queue: self.queue_id.clone(),
        };
        let started = Instant::now();
        slot.running = Some(Running {
            job: job.clone(),
            started_at: job.started_at.unwrap_or_else(now_ms),
            deadline: timeout.map(|t| started + t),
            term_sent_at: None,
            kill_sent: false,
        });
        self.slots_dirty = true;
        let attempt = job.attempts + 1;
        let event = WorkerEvent::JobStarted {
            thread: index + 1,
            job: job.clone(),
            attempt,
        };
        // The channel has room: the slot was idle, so its single buffer place is free.
        let _ = slot.sender.send(Assignment { job, context });
        self.emit(&event);
    }

    fn enforce_timeouts(&mut self) {
        let grace = Duration::from_secs(self.settings.stop_grace_seconds);
        let mut events = Vec::new();
        for (index, slot) in self.slots.iter_mut().enumerate() {
            let Some(running) = slot.running.as_mut() else { continue };
            let Some(deadline) = running.deadline else { continue };
            let now = Instant::now();
            if now < deadline {
                continue;
            }
            let Some(pid) = slot.state.pid() else {
                // A custom executor has no process to signal: flag the timeout so it can poll
                // `ExecContext::is_timed_out` and give up.
                if !slot.state.is_timed_out() {
                    slot.state.mark_timed_out();
                    events.push(WorkerEvent::JobTimedOut {
                        thread: index + 1,
                        job_id: running.job.id.clone(),
                        signal: "none (custom executor)",
                    });
                }
                continue;
            };
            match running.term_sent_at {
                None => {
                    slot.state.mark_timed_out();
                    signal_group(pid, libc::SIGTERM);
                    running.term_sent_at = Some(now);
                    events.push(WorkerEvent::JobTimedOut {
                        thread: index + 1,
                        job_id: running.job.id.clone(),
                        signal: "SIGTERM",
                    });
                }
                Some(sent) if !running.kill_sent && now.duration_since(sent) >= grace => {
                    signal_group(pid, libc::SIGKILL);
                    running.kill_sent = true;
                    events.push(WorkerEvent::JobTimedOut {
                        thread: index + 1,
                        job_id: running.job.id.clone(),
                        signal: "SIGKILL",
                    });
                }
                Some(_) => {}
            }
        }
        for event in events {
            self.emit(&event);
        }
    }

    fn record_and_claim(&mut self, finished: &[Done], claim_limit: usize, claim_now: Millis) -> Result<Vec<Job>> {
        if finished.iter().any(|d| !d.outcome.success && !d.cancelled) {
            // Config changes apply from the next failure without a restart.
            self.reload_settings();
        }
        let mut rows = Vec::with_capacity(finished.len());
        let mut events = Vec::with_capacity(finished.len());
        for done in finished {
            let job = &done.job;
            // A success is a success even if a forced stop fired meanwhile: running it again
            // would repeat work that is done.
            let outcome = if done.outcome.success {
                AttemptOutcome::Completed
            } else if done.cancelled {
                AttemptOutcome::Interrupted
            } else {
                AttemptOutcome::Failed
            };
            let error = match outcome {
                AttemptOutcome::Completed => None,
                AttemptOutcome::Interrupted => Some("interrupted by a forced shutdown (attempt not counted)".into()),
                _ => Some(done.outcome.error.clone().unwrap_or_else(|| "failed".into())),
            };
            let policy = self.settings.retry_policy(job.max_retries);
            let end = AttemptEnd {
                outcome,
                started_at: Some(done.started_at),
                finished_at: done.finished_at,
                exit_code: done.outcome.exit_code,
                error,
                stdout: done.outcome.stdout.clone(),
                stderr: done.outcome.stderr.clone(),
            };
            let (row, transition) = settle(job, end, &policy);
            let (thread, job, outcome) = (done.thread, job.clone(), done.outcome.clone());
            let event = match transition {
                Transition::Completed => WorkerEvent::JobCompleted {
                    thread,
                    job,
                    duration: done.duration,
                    outcome,
                },
                Transition::Retry { attempt, delay } => WorkerEvent::JobRetrying {
                    thread,
                    job,
                    attempt,
                    max_runs: policy.max_retries + 1,
                    delay,
                    outcome,
                },
                Transition::Dead { attempts } => WorkerEvent::JobDead {
                    thread,
                    job,
                    attempts,
                    outcome,
                },
                Transition::Released => WorkerEvent::JobReleased { thread, job },
            };
            rows.push(row);
            events.push(event);
        }
        let (applied, claimed) =
            self.store
                .finish_and_claim(&self.worker.id, &rows, claim_limit, &self.kinds, claim_now)?;
        for ((done, event), ok) in finished.iter().zip(events).zip(applied) {
            self.slots[done.thread - 1].running = None;
            self.slots_dirty = true;
            self.jobs_run += 1;
            if ok {
                self.emit(&event);
            } else {
                self.emit(&WorkerEvent::ResultDiscarded {
                    thread: done.thread,
                    job: done.job.clone(),
                });
            }
        }
        Ok(claimed)
    }

    fn slots_json(&self) -> serde_json::Value {
        let slots: Vec<serde_json::Value> = self
            .slots
            .iter()
            .enumerate()
            .filter_map(|(index, slot)| {
                slot.running.as_ref().map(|running| {
                    serde_json::json!({
                        "thread": index + 1,
                        "job": running.job.id,
                        "kind": running.job.kind,
                        "command": running.job.command,
                        "pid": slot.state.pid(),
                        "pid_start": slot.state.pid_start(),
                        "started_at": running.started_at,
                    })
                })
            })
            .collect();
        serde_json::Value::Array(slots)
    }

    fn heartbeat(&mut self, stopping: bool) -> Result<()> {
        let now = now_ms();
        let slots = self.slots_json();
        // A shell job whose process has not started yet is recorded again at the next refresh,
        // so recovery can find its process group should this worker die.
        self.slots_dirty = self.slots.iter().any(|slot| {
            slot.running.as_ref().map(|r| r.job.kind == SHELL_KIND).unwrap_or(false) && slot.state.pid().is_none()
        });
        let found = self.store.heartbeat(&self.worker.id, now, &slots, stopping)?;
        self.last_heartbeat_ok = Instant::now();
        self.fenced = false;
        if !found {
            // Our row was removed: another process presumed us dead (possible only for workers
            // on other hosts, after a long silence) and recovered our jobs, which may already
            // run elsewhere. Stop our copies at once, so no job runs twice at the same time;
            // their results would be discarded anyway (the claim's lease has moved on).
            self.kill_running(&[]);
            self.worker.heartbeat_at = now;
            self.worker.slots = slots;
            self.worker.stopping = stopping;
            self.store.register_worker(&self.worker)?;
            self.emit(&WorkerEvent::Warning(
                "this worker was presumed dead by another process: its running jobs were stopped (they were \
                 recovered elsewhere); registered again"
                    .into(),
            ));
        }
        Ok(())
    }

    /// Recovers the jobs of dead workers. Returns true while a lost run's leftovers are being
    /// stopped, so the caller reaps again soon.
    fn reap(&mut self) -> Result<bool> {
        let report = registry::reap(
            self.store.as_mut(),
            &self.settings,
            Some(&self.worker.id),
            &mut self.killer,
        )?;
        if !report.recovered.is_empty() {
            self.emit(&WorkerEvent::Recovered { jobs: report.recovered });
        }
        let mut reported = BTreeMap::new();
        for (job, reason) in &report.held {
            if self.held_reported.get(job) != Some(reason) {
                self.emit(&WorkerEvent::Warning(format!(
                    "lost job {job} not recovered yet: {reason}"
                )));
            }
            reported.insert(job.clone(), reason.clone());
        }
        self.held_reported = reported;
        Ok(!report.held.is_empty())
    }

    fn finish(&mut self) {
        if self.busy() > 0 {
            // Only a fatal error leaves jobs running here. Stop them, and put them back to
            // pending if the database allows; otherwise they stay `processing` under this
            // worker and are recovered as lost once it is gone.
            self.kill_running(&[]);
            let deadline = Instant::now() + Duration::from_secs(10);
            let mut done = Vec::new();
            while done.len() < self.busy() && Instant::now() < deadline {
                if let Ok(d) = self.done_rx.recv_timeout(Duration::from_millis(50)) {
                    done.push(d);
                }
            }
            let _ = self.record_and_claim(&done, 0, now_ms());
        }
        // Closing the channels ends the executor threads (they are all idle by now).
        let handles: Vec<_> = self.slots.iter_mut().filter_map(|s| s.handle.take()).collect();
        self.slots.iter_mut().for_each(|s| {
            let (dead, _) = bounded(0);
            s.sender = dead;
        });
        for handle in handles {
            let _ = handle.join();
        }
        let _ = self.store.remove_worker(&self.worker.id);
        if let Some(hooks) = &self.hooks {
            hooks.wait_idle();
            for warning in hooks.take_warnings() {
                self.emit(&WorkerEvent::Warning(warning));
            }
        }
        self.emit(&WorkerEvent::Stopped {
            jobs_run: self.jobs_run,
        });
    }
}

fn executor_thread(
    thread: usize,
    receiver: Receiver<Assignment>,
    done: Sender<Done>,
    executors: BTreeMap<String, Arc<dyn Executor>>,
) {
    for Assignment { job, context } in receiver.iter() {
        let started = Instant::now();
        let started_at = job.started_at.unwrap_or_else(now_ms);
        let outcome = match executors.get(&job.kind) {
            Some(executor) => std::panic::catch_unwind(AssertUnwindSafe(|| executor.execute(&job, &context)))
                .unwrap_or_else(|panic| {
                    let message = panic
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "unknown panic".into());
                    Outcome::failure(format!("executor panicked: {message}"))
                }),
            None => Outcome::failure(format!("no executor for kind `{}`", job.kind)),
        };
        let duration = started.elapsed();
        let finished_at = now_ms();
        let cancelled = context.is_cancelled();
        if done
            .send(Done {
                thread,
                job,
                outcome,
                duration,
                started_at,
                finished_at,
                cancelled,
            })
            .is_err()
        {
            return;
        }
    }
}
