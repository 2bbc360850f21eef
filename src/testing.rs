//! Helpers for testing code that embeds queuectl: run an executor or a typed handler on one job
//! without a pool or a database, and open a throw-away queue.
//!
//! ```
//! use queuectl::testing::{self, TempQueue};
//! use queuectl::{ExecContext, JobArgs, JobSpec, Outcome};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize)]
//! struct Resize { width: u32 }
//! impl JobArgs for Resize { const KIND: &'static str = "resize"; }
//!
//! fn resize(args: Resize, _: &ExecContext) -> Outcome {
//!     if args.width == 0 { Outcome::discard("width 0") } else { Outcome::success() }
//! }
//!
//! // A handler on its arguments: no database, no pool.
//! assert!(testing::run_handler(resize, &Resize { width: 8 }).success);
//! // A payload that does not fit fails the attempt, naming the field.
//! let bad = testing::run_handler_on(resize, JobSpec::kind("resize", serde_json::json!({"width": "big"})));
//! assert!(bad.error.unwrap().contains("payload.width"));
//!
//! // A real queue in a temporary directory, removed on drop (no config file, spool or hooks).
//! let queue = TempQueue::new()?;
//! queue.enqueue(JobSpec::typed(&Resize { width: 8 })?.with_id("r1"))?;
//! let report = queue.pool().job(resize).until_empty(true).run(&queuectl::Shutdown::new())?;
//! assert_eq!(report.completed, 1);
//! # Ok::<(), queuectl::Error>(())
//! ```

use crate::error::{Error, Result};
use crate::executor::{CancelReason, CancelToken, ExecContext, Executor, Outcome, TypedExecutor};
use crate::home::Home;
use crate::job::{Job, JobArgs, JobSpec};
use crate::lifecycle::{timed_out_as_failure, AttemptEnd};
use crate::queue::Queue;
use crate::store::AttemptOutcome;
use crate::time::now_ms;
use crate::worker::PoolBuilder;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The output kept of each stream when a [`Harness`] does not say (the default setting).
const DEFAULT_OUTPUT_LIMIT: usize = 64 * 1024;

/// A job as it would be right after `spec` was enqueued now: pending, never run (see
/// [`Job::from_spec`]). The id is the spec's, or a new UUID.
pub fn job(spec: JobSpec) -> Job {
    Job::from_spec(spec, now_ms())
}

/// Runs `executor` on the job `spec` describes, as the pool would run its first attempt, and
/// returns the [`Outcome`] the pool would record (a panic is a failure naming it).
pub fn run(executor: &dyn Executor, spec: JobSpec) -> Outcome {
    Harness::new().run(executor, spec)
}

/// Runs a typed handler on `args`, through the same path as a pool's
/// [`PoolBuilder::job`]: the arguments are written to a payload and read back.
pub fn run_handler<A, F>(handler: F, args: &A) -> Outcome
where
    A: JobArgs + 'static,
    F: Fn(A, &ExecContext) -> Outcome + Send + Sync + 'static,
{
    Harness::new().run_handler(handler, args)
}

/// Runs a typed handler on the job `spec` describes (say, a payload that does not fit `A`).
pub fn run_handler_on<A, F>(handler: F, spec: JobSpec) -> Outcome
where
    A: JobArgs + 'static,
    F: Fn(A, &ExecContext) -> Outcome + Send + Sync + 'static,
{
    Harness::new().run_handler_on(handler, spec)
}

/// Runs one attempt without a pool, with the attempt number, timeout and cancellation a test
/// chooses. A timeout is enforced as the pool does it: the attempt's [`CancelToken`] fires at
/// the deadline, and whatever the executor returns after it is recorded as a timeout.
#[derive(Debug, Clone)]
pub struct Harness {
    attempt: u32,
    timeout: Option<Duration>,
    output_limit: usize,
    home: Option<PathBuf>,
    token: CancelToken,
}

impl Default for Harness {
    fn default() -> Self {
        Harness::new()
    }
}

impl Harness {
    /// Attempt 1, no timeout, the default output limit, the system's temporary directory as
    /// the home, a token nobody fires.
    pub fn new() -> Harness {
        Harness {
            attempt: 1,
            timeout: None,
            output_limit: DEFAULT_OUTPUT_LIMIT,
            home: None,
            token: CancelToken::new(),
        }
    }

    /// The attempt number the executor sees.
    pub fn attempt(mut self, attempt: u32) -> Self {
        self.attempt = attempt;
        self
    }

    /// A timeout, enforced by firing the token at the deadline.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Bytes of each output stream a shell job keeps.
    pub fn output_limit(mut self, bytes: usize) -> Self {
        self.output_limit = bytes;
        self
    }

    /// The home (a shell job's working directory unless it sets `cwd`).
    pub fn home(mut self, home: impl Into<PathBuf>) -> Self {
        self.home = Some(home.into());
        self
    }

    /// The attempt's cancellation: fire a clone of `token` from another thread to see how the
    /// executor reacts to a forced stop.
    pub fn cancel_token(mut self, token: CancelToken) -> Self {
        self.token = token;
        self
    }

    /// The context an executor would get.
    pub fn context(&self) -> ExecContext {
        let home = self.home.clone().unwrap_or_else(std::env::temp_dir);
        ExecContext::standalone(home, self.attempt, self.timeout, self.output_limit)
            .with_cancel_token(self.token.clone())
    }

    /// Runs `executor` on the job `spec` describes and returns the outcome the pool would
    /// record.
    pub fn run(&self, executor: &dyn Executor, spec: JobSpec) -> Outcome {
        let mut job = job(spec);
        job.attempts = self.attempt.saturating_sub(1);
        self.run_job(executor, &job)
    }

    /// Runs `executor` on `job` as it is.
    pub fn run_job(&self, executor: &dyn Executor, job: &Job) -> Outcome {
        let context = self.context();
        let watchdog = self.timeout.map(|timeout| {
            let (stop, stopped) = crossbeam_channel::bounded::<()>(0);
            let token = self.token.clone();
            let thread = std::thread::spawn(move || {
                if let Err(crossbeam_channel::RecvTimeoutError::Timeout) = stopped.recv_timeout(timeout) {
                    token.cancel(CancelReason::TimedOut);
                }
            });
            (stop, thread)
        });
        let outcome = crate::worker::pool::run_guarded(executor, job, &context);
        let timed_out = context.is_timed_out();
        if let Some((stop, thread)) = watchdog {
            drop(stop);
            let _ = thread.join();
        }
        if !timed_out {
            return outcome;
        }
        let end = AttemptEnd {
            error: outcome.error.clone(),
            timed_out: self.timeout,
            ..AttemptEnd::new(
                if outcome.success {
                    AttemptOutcome::Completed
                } else {
                    AttemptOutcome::Failed
                },
                now_ms(),
            )
        };
        Outcome {
            success: false,
            error: timed_out_as_failure(end).error,
            retry: Default::default(),
            ..outcome
        }
    }

    /// Runs a typed handler on `args` (written to a payload and read back, as in a pool).
    pub fn run_handler<A, F>(&self, handler: F, args: &A) -> Outcome
    where
        A: JobArgs + 'static,
        F: Fn(A, &ExecContext) -> Outcome + Send + Sync + 'static,
    {
        match JobSpec::typed(args) {
            Ok(spec) => self.run_handler_on(handler, spec),
            Err(e) => Outcome::failure(e.to_string()),
        }
    }

    /// Runs a typed handler on the job `spec` describes.
    pub fn run_handler_on<A, F>(&self, handler: F, spec: JobSpec) -> Outcome
    where
        A: JobArgs + 'static,
        F: Fn(A, &ExecContext) -> Outcome + Send + Sync + 'static,
    {
        self.run(&TypedExecutor::<A, F>::new(handler), spec)
    }
}

/// A queue in a new temporary directory, removed (with everything in it) when dropped. By
/// default only the database is written: no config file, no spool directories; pools from
/// [`TempQueue::pool`] run no shell hooks. Dereferences to its [`Queue`].
#[derive(Debug)]
pub struct TempQueue {
    queue: Queue,
    home: Home,
    dir: TempDir,
}

/// What a [`TempQueue`] writes beside its database.
#[derive(Debug, Clone, Copy, Default)]
pub struct TempQueueBuilder {
    config_file: bool,
    spool: bool,
}

impl TempQueueBuilder {
    /// Also write the documented default config file (`config/queuectl.toml`).
    pub fn config_file(mut self, write: bool) -> Self {
        self.config_file = write;
        self
    }

    /// Also create the spool directories.
    pub fn spool(mut self, create: bool) -> Self {
        self.spool = create;
        self
    }

    /// Creates the queue.
    pub fn build(self) -> Result<TempQueue> {
        let dir = TempDir::new()?;
        let home = Home::new(dir.path());
        let queue = Queue::create(&home)?;
        if self.config_file {
            crate::config::write_default_file(&home.config_path())?;
        }
        if self.spool {
            crate::spool::create_layout(&queue.settings()?.spool_dir)?;
        }
        Ok(TempQueue { queue, home, dir })
    }
}

impl TempQueue {
    /// A queue with only its database.
    pub fn new() -> Result<TempQueue> {
        TempQueue::builder().build()
    }

    /// A queue that may also get a config file and spool directories.
    pub fn builder() -> TempQueueBuilder {
        TempQueueBuilder::default()
    }

    /// The queue.
    pub fn queue(&self) -> &Queue {
        &self.queue
    }

    /// Its home.
    pub fn home(&self) -> &Home {
        &self.home
    }

    /// The temporary directory (the home's root).
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A pool for this queue with shell hooks off (add executors, then `run` or `spawn`).
    pub fn pool(&self) -> PoolBuilder {
        PoolBuilder::new(&self.home).shell_hooks(false)
    }
}

impl std::ops::Deref for TempQueue {
    type Target = Queue;

    fn deref(&self) -> &Queue {
        &self.queue
    }
}

/// A directory of our own under the system's temporary directory, removed on drop.
#[derive(Debug)]
struct TempDir {
    path: PathBuf,
}

impl TempDir {
    fn new() -> Result<TempDir> {
        use std::os::unix::fs::DirBuilderExt;
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let base = std::env::temp_dir();
        for _ in 0..100 {
            let name = format!(
                "queuectl-test-{}-{}-{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed),
                uuid::Uuid::new_v4().simple()
            );
            let path = base.join(name);
            match std::fs::DirBuilder::new().mode(0o700).create(&path) {
                Ok(()) => return Ok(TempDir { path }),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(Error::io(&path, e)),
            }
        }
        Err(Error::Other(format!(
            "could not create a temporary directory in {}",
            base.display()
        )))
    }

    fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn a_temp_queue_writes_only_its_database_and_goes_away() {
        let path;
        {
            let queue = TempQueue::new().unwrap();
            path = queue.path().to_path_buf();
            assert!(!queue.home().config_path().exists());
            assert!(!queue.settings().unwrap().spool_dir.exists());
            queue.enqueue(JobSpec::shell("true").with_id("a")).unwrap();
            assert_eq!(queue.get("a").unwrap().id, "a");
        }
        assert!(!path.exists());
        let with = TempQueue::builder().config_file(true).spool(true).build().unwrap();
        assert!(with.home().config_path().exists());
        assert!(with.settings().unwrap().spool_dir.is_dir());
    }

    #[test]
    fn the_harness_enforces_a_timeout_through_the_token() {
        let waits = |_: &Job, context: &ExecContext| {
            if context.wait_timeout(Duration::from_secs(60)) {
                Outcome::success()
            } else {
                Outcome::failure("never cancelled")
            }
        };
        let started = Instant::now();
        let outcome = Harness::new()
            .timeout(Duration::from_millis(20))
            .run(&waits, JobSpec::kind("k", serde_json::json!({})));
        assert!(started.elapsed() < Duration::from_secs(30), "the token fired");
        assert!(!outcome.success);
        assert_eq!(
            outcome.error.as_deref(),
            Some("timed out after 0.02s (it then returned a success)")
        );
    }

    #[test]
    fn a_panicking_executor_is_a_failure_naming_the_panic() {
        let panics = |_: &Job, _: &ExecContext| -> Outcome { panic!("boom") };
        let outcome = run(&panics, JobSpec::kind("k", serde_json::json!(null)));
        assert_eq!(outcome.error.as_deref(), Some("executor panicked: boom"));
    }
}
