//! The worker pool: one coordinator and N executor threads.
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
//! the store's change token every couple of milliseconds, so a job enqueued by another process
//! starts within milliseconds without a daemon or a fixed sleep, and it sleeps exactly until the
//! next scheduled job is due.
//!
//! - this file: [`PoolBuilder`] (what the pool runs and with which settings), [`PoolReport`],
//!   [`PoolHandle`] (a pool on a thread of its own) and [`ReloadRequest`].
//! - `coordinator`: the loop (claims, heartbeats, reaps, shutdown, settings reloads).
//! - `slots`: the executor threads' slots: dispatch, timeouts, killing what runs.
//! - `record`: turning what came back into attempt rows and events.
//! - `thread`: the executor threads themselves.

mod coordinator;
mod record;
mod slots;
mod thread;

pub(crate) use thread::run_guarded;

use crate::config::{KindPolicy, Settings};
use crate::error::{Error, Result};
use crate::executor::{ExecContext, Executor, Outcome, ShellExecutor, TypedExecutor};
use crate::home::Home;
use crate::job::{JobArgs, SHELL_KIND};
use crate::shutdown::Shutdown;
use coordinator::Coordinator;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::events::Observer;

/// A request to re-read the settings at once, shared between whoever decides (the CLI's SIGHUP
/// handling) and a running pool. The library installs no signal handler: the caller calls
/// [`ReloadRequest::request`], and the pool's coordinator picks it up within one pass of its
/// loop and reports the result as [`WorkerEvent::SettingsReloaded`](super::WorkerEvent::SettingsReloaded).
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

/// What a pool did, returned when it stops ([`PoolBuilder::run`], [`PoolHandle::join`]).
///
/// Counts are of attempts this pool recorded, so a job that failed twice and then completed
/// adds 3 to `attempts`, 2 to `retried` and 1 to `completed`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolReport {
    /// Attempts whose end the pool recorded (or tried to: see `stale`).
    pub attempts: u64,
    /// Jobs that completed.
    pub completed: u64,
    /// Failed attempts with a retry scheduled.
    pub retried: u64,
    /// Jobs that moved to the dead-letter queue (retries used up, or discarded).
    pub dead: u64,
    /// Attempts a forced stop interrupted: not counted, their jobs are pending again.
    pub interrupted: u64,
    /// Results not applied because the job had been recovered from this pool meanwhile (a
    /// newer claim owns it).
    pub stale: u64,
}

/// Builds and runs a worker pool: executors per job kind, observers, thread count, settings.
pub struct PoolBuilder {
    home: Home,
    threads: Option<usize>,
    executors: BTreeMap<String, Arc<dyn Executor>>,
    observers: Vec<Arc<dyn Observer>>,
    until_empty: bool,
    until_idle: bool,
    shell_hooks: bool,
    reload: ReloadRequest,
    settings: Option<Settings>,
    kind_policies: BTreeMap<String, KindPolicy>,
}

impl std::fmt::Debug for PoolBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolBuilder")
            .field("home", &self.home)
            .field("threads", &self.threads)
            .field("kinds", &self.executors.keys().collect::<Vec<_>>())
            .field("until_empty", &self.until_empty)
            .field("until_idle", &self.until_idle)
            .field("settings", &self.settings)
            .field("kind_policies", &self.kind_policies)
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
            settings: None,
            kind_policies: BTreeMap::new(),
        }
    }

    /// Reloads the settings whenever `request` is made (the CLI makes it on SIGHUP), beside the
    /// periodic re-read at each heartbeat.
    pub fn reload_on(mut self, request: ReloadRequest) -> Self {
        self.reload = request;
        self
    }

    /// The number of executor threads (default: the settings' `worker_count`).
    pub fn threads(mut self, threads: usize) -> Self {
        self.threads = Some(threads);
        self
    }

    /// Runs jobs of `kind` with `executor`. The pool claims only kinds it has executors for.
    pub fn executor(mut self, kind: impl Into<String>, executor: impl Executor + 'static) -> Self {
        self.executors.insert(kind.into(), Arc::new(executor));
        self
    }

    /// Runs jobs of kind `A::KIND` with `handler`, which gets the payload read as `A`. A payload
    /// that does not fit `A` is a failed attempt whose error names the field (see
    /// [`Job::args`](crate::Job::args)); the retry policy then applies as to any failure.
    ///
    /// ```no_run
    /// # use queuectl::{ExecContext, Home, JobArgs, Outcome, PoolBuilder};
    /// # #[derive(serde::Serialize, serde::Deserialize)]
    /// # struct Resize { width: u32 }
    /// # impl JobArgs for Resize { const KIND: &'static str = "resize"; }
    /// # let home = Home::new("/tmp/q");
    /// let pool = PoolBuilder::new(&home).job(|args: Resize, _: &ExecContext| {
    ///     if args.width == 0 {
    ///         return Outcome::discard("width 0 can never work");
    ///     }
    ///     Outcome::success()
    /// });
    /// ```
    pub fn job<A, F>(self, handler: F) -> Self
    where
        A: JobArgs + 'static,
        F: Fn(A, &ExecContext) -> Outcome + Send + Sync + 'static,
    {
        self.executor(A::KIND, TypedExecutor::<A, F>::new(handler))
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

    /// Uses `settings` as they are instead of reading the queue's (config file, environment,
    /// `config set`): typed, checked when the pool starts ([`Settings::validate`]), and written
    /// nowhere. Other processes of the queue are not affected. The pool then never reloads
    /// settings. Start from [`Settings::defaults`] and change what you need.
    pub fn settings(mut self, settings: Settings) -> Self {
        self.settings = Some(settings);
        self
    }

    /// Sets the retry and timeout policy of one job kind, over the config file's
    /// `[kinds.NAME]` table for it (field by field: what `policy` leaves unset, the file may
    /// still set). A job's own `max_retries` and `timeout_seconds` still win. See
    /// [`config`](crate::config) for the whole order.
    pub fn kind_policy(mut self, kind: impl Into<String>, policy: KindPolicy) -> Self {
        let kind = kind.into();
        let under = self.kind_policies.get(&kind).copied().unwrap_or_default();
        self.kind_policies.insert(kind, policy.or(under));
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

    /// Whether to run the `[hooks]` shell commands of the settings (default true).
    pub fn shell_hooks(mut self, enabled: bool) -> Self {
        self.shell_hooks = enabled;
        self
    }

    /// Runs the pool on the calling thread until `shutdown` fires (or, with
    /// [`until_empty`](Self::until_empty) or [`until_idle`](Self::until_idle), the queue is
    /// drained). Returns what it did: attempts recorded and how they ended.
    pub fn run(self, shutdown: &Shutdown) -> Result<PoolReport> {
        let mut coordinator = self.start()?;
        coordinator.run_to_end(shutdown)
    }

    /// Starts the pool on a thread of its own and returns at once with a handle to stop it and
    /// collect its report, so an embedding program needs no thread for it. Problems found when
    /// starting (no executors, a queue that cannot be opened, bad settings) are returned here.
    pub fn spawn(self) -> Result<PoolHandle> {
        let shutdown = Shutdown::new();
        let mut coordinator = self.start()?;
        let stop = shutdown.clone();
        let thread = std::thread::Builder::new()
            .name("queuectl-pool".into())
            .spawn(move || coordinator.run_to_end(&stop))
            .map_err(|e| Error::Other(format!("could not start the pool thread: {e}")))?;
        Ok(PoolHandle {
            shutdown,
            thread: Some(thread),
        })
    }

    /// Opens the queue, settles the settings and starts the executor threads.
    fn start(self) -> Result<Coordinator> {
        if self.executors.is_empty() {
            return Err(Error::InvalidArgument(
                "the pool has no executors: register at least one job kind".into(),
            ));
        }
        for (kind, policy) in &self.kind_policies {
            policy.validate(kind)?;
        }
        if let Some(settings) = &self.settings {
            settings.validate()?;
        }
        let store = crate::store::open(self.home.db())?;
        let base = match &self.settings {
            Some(settings) => settings.clone(),
            None => crate::config::load_settings(&self.home, store.as_ref())?,
        };
        let settings = coordinator::with_code_kinds(base, &self.kind_policies);
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
        let mut coordinator = Coordinator::start(coordinator::Setup {
            home: self.home,
            store,
            settings,
            threads,
            executors: self.executors,
            observers,
            until_empty: self.until_empty,
            until_idle: self.until_idle,
            settings_in_code: self.settings.is_some(),
            kind_policies: self.kind_policies,
        })?;
        coordinator.hooks = hooks;
        coordinator.reload = self.reload;
        Ok(coordinator)
    }
}

/// A pool running on a thread of its own ([`PoolBuilder::spawn`]).
///
/// Dropping the handle stops the pool gracefully and waits for it; call
/// [`join`](Self::join) to get its report (or its error).
#[derive(Debug)]
pub struct PoolHandle {
    shutdown: Shutdown,
    thread: Option<std::thread::JoinHandle<Result<PoolReport>>>,
}

impl PoolHandle {
    /// Asks for a graceful stop: claim nothing more, let running jobs finish.
    pub fn stop(&self) {
        self.shutdown.request_stop();
    }

    /// Asks for a forced stop: cancel running jobs (their [`CancelToken`](crate::executor::CancelToken)s
    /// fire at once, shell jobs are killed) and put them back to pending.
    pub fn force_stop(&self) {
        self.shutdown.force();
    }

    /// The pool's stop signal, to hand to whatever decides when to stop (a signal handler).
    pub fn shutdown(&self) -> &Shutdown {
        &self.shutdown
    }

    /// True once the pool has stopped (by itself with `until_empty`/`until_idle`, on a stop
    /// request, or on an error); [`join`](Self::join) then returns at once.
    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().map(|t| t.is_finished()).unwrap_or(true)
    }

    /// Waits for the pool to stop and returns its report. It stops by itself only with
    /// `until_empty`/`until_idle`; otherwise call [`stop`](Self::stop) first.
    pub fn join(mut self) -> Result<PoolReport> {
        self.wait()
    }

    fn wait(&mut self) -> Result<PoolReport> {
        match self.thread.take() {
            Some(thread) => thread
                .join()
                .unwrap_or_else(|_| Err(Error::Other("the pool thread panicked".into()))),
            None => Err(Error::Other("the pool was already joined".into())),
        }
    }
}

impl Drop for PoolHandle {
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.shutdown.request_stop();
            let _ = self.wait();
        }
    }
}
