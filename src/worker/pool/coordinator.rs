//! The coordinator: the pool's one thread that talks to the database. It claims work for idle
//! executor threads, records what comes back, heartbeats the worker row, recovers the jobs of
//! dead workers, reloads settings and drives shutdown.

use super::slots::Slot;
use super::thread::{executor_thread, Assignment, Done};
use super::{PoolReport, ReloadRequest};
use crate::config::{load_settings, KindPolicy, Settings};
use crate::error::{Error, Result};
use crate::executor::{Executor, SlotState};
use crate::home::Home;
use crate::shutdown::Shutdown;
use crate::store::{Store, StoreErrorKind, WorkerRecord};
use crate::time::{now_ms, Millis};
use crate::worker::events::{Observer, WorkerEvent};
use crate::worker::orphans::OrphanKiller;
use crate::worker::registry;
use crossbeam_channel::{bounded, unbounded, Receiver, RecvTimeoutError};
use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often an idle coordinator checks for new work (the store's change token, a shutdown
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

/// `settings` with the kind policies given in code over its own (the file's), field by field.
pub(super) fn with_code_kinds(settings: Settings, code: &BTreeMap<String, KindPolicy>) -> Settings {
    let kinds = crate::config::overlay_kinds(&settings.kinds, code);
    settings.with_kinds(kinds)
}

/// What [`Coordinator::start`] needs.
pub(super) struct Setup {
    pub(super) home: Home,
    pub(super) store: Box<dyn Store>,
    pub(super) settings: Settings,
    pub(super) threads: usize,
    pub(super) executors: BTreeMap<String, Arc<dyn Executor>>,
    pub(super) observers: Vec<Arc<dyn Observer>>,
    pub(super) until_empty: bool,
    pub(super) until_idle: bool,
    /// The settings came from code: never re-read them from the queue.
    pub(super) settings_in_code: bool,
    /// Kind policies from code, laid over the file's at every reload.
    pub(super) kind_policies: BTreeMap<String, KindPolicy>,
}

/// The coordinator loop's own bookkeeping, kept across a retried step.
struct LoopState {
    inbox: Vec<Done>,
    last_version: i64,
    claim_needed: bool,
    next_due: Option<Millis>,
    last_claim: Instant,
    /// The last write of the worker row (a heartbeat, or a refresh of what the threads run).
    last_heartbeat: Instant,
    /// The last periodic pass of step 5 (database health, settings reload, heartbeat): kept
    /// apart from `last_heartbeat`, which slot refreshes move every 250 ms on a busy worker.
    last_periodic: Instant,
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
            last_periodic: Instant::now(),
            last_reap: None,
            reap_soon: false,
            stopping_announced: false,
            forced_done: false,
        }
    }
}

pub(super) struct Coordinator {
    pub(super) home: Home,
    pub(super) store: Box<dyn Store>,
    pub(super) settings: Settings,
    pub(super) kinds: Vec<String>,
    observers: Vec<Arc<dyn Observer>>,
    until_empty: bool,
    until_idle: bool,
    pub(super) worker: WorkerRecord,
    pub(super) slots: Vec<Slot>,
    done_rx: Receiver<Done>,
    /// What the pool did so far.
    pub(super) report: PoolReport,
    /// The set of running jobs changed since the worker row was last written.
    pub(super) slots_dirty: bool,
    /// The config file's shell hooks, whose failures come back as warnings to report.
    pub(super) hooks: Option<Arc<crate::worker::hooks::ShellHooks>>,
    /// When the worker row was last written: workers on other hosts judge this worker by it.
    pub(super) last_heartbeat_ok: Instant,
    /// Running jobs were stopped because the database was out of reach for a lease.
    pub(super) fenced: bool,
    /// Stops what lost runs of dead workers left running, across reap passes.
    killer: OrphanKiller,
    /// This queue's identity in its jobs' environment (`QUEUECTL_QUEUE`).
    pub(super) queue_id: Arc<str>,
    /// Lost jobs held back at the last reap, with the reason reported (each reason once).
    held_reported: BTreeMap<String, String>,
    /// Why the settings last failed to reload, if they did: the warning is emitted once per
    /// distinct problem, not on every heartbeat.
    settings_error: Option<String>,
    /// Reload requests from the caller (SIGHUP in the CLI).
    pub(super) reload: ReloadRequest,
    /// The settings came from code: they are never re-read.
    settings_in_code: bool,
    /// Kind policies from code, laid over the file's at every reload.
    kind_policies: BTreeMap<String, KindPolicy>,
}

/// A worker id's last part: its start in milliseconds, made unique within the process, so two
/// pools a program starts in the same millisecond still have ids of their own.
fn unique_start_ms(now: Millis) -> Millis {
    use std::sync::atomic::{AtomicI64, Ordering};
    static LAST: AtomicI64 = AtomicI64::new(0);
    let mut last = LAST.load(Ordering::SeqCst);
    loop {
        let next = now.max(last + 1);
        match LAST.compare_exchange(last, next, Ordering::SeqCst, Ordering::SeqCst) {
            Ok(_) => return next,
            Err(seen) => last = seen,
        }
    }
}

impl Coordinator {
    pub(super) fn start(setup: Setup) -> Result<Coordinator> {
        let Setup {
            home,
            store,
            settings,
            threads,
            executors,
            observers,
            until_empty,
            until_idle,
            settings_in_code,
            kind_policies,
        } = setup;
        let pid = std::process::id();
        let host = registry::host_name();
        let now = now_ms();
        let kinds: Vec<String> = executors.keys().cloned().collect();
        let worker = WorkerRecord {
            id: format!("{host}:{pid}:{}", unique_start_ms(now)),
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
        store.set_unresponsive_timeout(Duration::from_secs((settings.lease_seconds / 3).max(1)))?;
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
            until_idle,
            worker,
            slots,
            done_rx,
            report: PoolReport::default(),
            slots_dirty: false,
            hooks: None,
            last_heartbeat_ok: Instant::now(),
            fenced: false,
            killer: OrphanKiller::default(),
            queue_id,
            held_reported: BTreeMap::new(),
            settings_error: None,
            reload: ReloadRequest::default(),
            settings_in_code,
            kind_policies,
        };
        coordinator.emit(&WorkerEvent::Started {
            worker_id: coordinator.worker.id.clone(),
            pid,
            threads,
            kinds: coordinator.kinds.clone(),
        });
        Ok(coordinator)
    }

    pub(super) fn emit(&self, event: &WorkerEvent) {
        for observer in &self.observers {
            // An observer's panic must not take the pool (and its running jobs) down with it.
            let _ = std::panic::catch_unwind(AssertUnwindSafe(|| observer.on_event(event)));
        }
    }

    /// The periodic re-read (each heartbeat, and before recording a failure).
    pub(super) fn reload_settings(&mut self) {
        self.reload_settings_as(false);
    }

    /// Reads the settings again. A change is reported either way, so the log says when new
    /// values took effect; a requested reload also reports "no change" and every failure, while
    /// the periodic one reports a failure once per distinct problem, not every heartbeat.
    fn reload_settings_as(&mut self, requested: bool) {
        if self.settings_in_code {
            // Settings given in code are the pool's for its whole run.
            if requested {
                self.emit(&WorkerEvent::SettingsReloaded {
                    requested,
                    changes: Vec::new(),
                    error: None,
                });
            }
            return;
        }
        match load_settings(&self.home, self.store.as_ref()) {
            Ok(settings) => {
                let settings = with_code_kinds(settings, &self.kind_policies);
                if let Some(hooks) = &self.hooks {
                    hooks.set_commands(settings.hooks.clone());
                }
                let changes = self.settings.changes_to(&settings);
                let _ = self
                    .store
                    .set_unresponsive_timeout(Duration::from_secs((settings.lease_seconds / 3).max(1)));
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
    /// Runs the loop, then stops the threads and removes the worker row whatever happened.
    pub(super) fn run_to_end(&mut self, shutdown: &Shutdown) -> Result<PoolReport> {
        let result = self.run(shutdown);
        self.finish();
        result.map(|_| self.report)
    }

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
            let announce = !st.stopping_announced;
            if announce {
                st.stopping_announced = true;
                self.emit(&WorkerEvent::Stopping {
                    forced: shutdown.is_forced(),
                    running: self.busy(),
                });
            }
            if shutdown.is_forced() && !st.forced_done {
                st.forced_done = true;
                let running = self.busy() - st.inbox.len().min(self.busy());
                if running > 0 {
                    self.emit(&WorkerEvent::Stopping { forced: true, running });
                }
                // Before any write: a slow database must not delay stopping what runs.
                self.kill_running(&st.inbox);
            }
            if announce {
                self.heartbeat(true)?;
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
                    self.dispatch(job, shutdown);
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
                    if self.until_idle && self.busy() == 0 && st.next_due.is_none_or(|due| due > now_ms()) {
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
        if st.last_periodic.elapsed() >= heartbeat_every {
            st.last_periodic = Instant::now();
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

    fn heartbeat(&mut self, stopping: bool) -> Result<()> {
        let now = now_ms();
        let slots = self.slots_json();
        // A shell job whose process has not started yet is recorded again at the next refresh,
        // so recovery can find its process group should this worker die.
        self.slots_dirty = self.shell_without_pid();
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
            jobs_run: self.report.attempts,
        });
    }
}
