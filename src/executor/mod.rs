//! The executor seam: how a claimed job is run.
//!
//! An [`Executor`] gets a claimed [`Job`] and an [`ExecContext`] and returns an [`Outcome`]. It
//! never touches the database: the worker pool records outcomes in one place, which keeps write
//! locks few and the retry/DLQ decision in one code path. [`ShellExecutor`] (the `shell` kind)
//! is the built-in default; programs embedding the library register their own per job kind.

mod capture;
mod shell;

pub use capture::TailBuffer;
pub use shell::ShellExecutor;

use crate::job::Job;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The environment variable naming the claim (lease number) a job's processes belong to.
pub const LEASE_VAR: &str = "QUEUECTL_LEASE";
/// The environment variable naming the job a process belongs to.
pub const JOB_VAR: &str = "QUEUECTL_JOB_ID";
/// The environment variable naming the queue (its database) a job's process belongs to: job
/// ids and leases repeat across queues, so without it recovering a job in one queue could stop
/// a live run of the same id in another.
pub const QUEUE_VAR: &str = "QUEUECTL_QUEUE";

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Outcome {
    /// True when the job succeeded (exit code 0 for shell jobs).
    pub success: bool,
    /// What went wrong, for failures: `exit 1`, `killed by SIGKILL`, `timed out after 5s`, ...
    pub error: Option<String>,
    /// The process's exit code, when it exited normally.
    pub exit_code: Option<i32>,
    /// The tail of standard output.
    pub stdout: Option<String>,
    /// The tail of standard error.
    pub stderr: Option<String>,
}

impl Outcome {
    /// A success.
    pub fn success() -> Outcome {
        Outcome {
            success: true,
            ..Outcome::default()
        }
    }

    /// A failure with this message.
    pub fn failure(error: impl Into<String>) -> Outcome {
        Outcome {
            success: false,
            error: Some(error.into()),
            ..Outcome::default()
        }
    }

    /// The same outcome with an exit code.
    pub fn with_exit_code(mut self, code: i32) -> Outcome {
        self.exit_code = Some(code);
        self
    }

    /// The same outcome with captured output.
    pub fn with_output(mut self, stdout: impl Into<String>, stderr: impl Into<String>) -> Outcome {
        self.stdout = Some(stdout.into());
        self.stderr = Some(stderr.into());
        self
    }
}

/// Runs jobs of one kind. Called from the pool's executor threads, so it must be `Send + Sync`.
pub trait Executor: Send + Sync {
    /// Runs `job` and says how it ended. A panic is caught and recorded as a failure.
    fn execute(&self, job: &Job, context: &ExecContext) -> Outcome;
}

impl<F> Executor for F
where
    F: Fn(&Job, &ExecContext) -> Outcome + Send + Sync,
{
    fn execute(&self, job: &Job, context: &ExecContext) -> Outcome {
        self(job, context)
    }
}

/// State one executor thread shares with the pool's coordinator.
///
/// The coordinator reads `pid` to report it in `status` and to signal the job's process group
/// (timeouts, forced shutdown); the executor reads `cancelled` and `timed_out` to learn why its
/// process died.
#[derive(Debug, Default)]
pub struct SlotState {
    /// The process (group leader) of the running job, 0 when none.
    pid: AtomicU32,
    /// That process's start time (clock ticks since boot), so recovery can tell it from a later
    /// process that got the same PID; 0 when unknown.
    pid_start: AtomicU64,
    /// Set by a forced shutdown: the attempt does not count and the job goes back to pending.
    cancelled: AtomicBool,
    /// Set when the coordinator killed the job for running past its timeout.
    timed_out: AtomicBool,
}

impl SlotState {
    /// The running job's process id, if it has one.
    pub fn pid(&self) -> Option<u32> {
        match self.pid.load(Ordering::SeqCst) {
            0 => None,
            pid => Some(pid),
        }
    }

    /// The running job's process start time (clock ticks since boot), if known.
    pub fn pid_start(&self) -> Option<u64> {
        match self.pid_start.load(Ordering::SeqCst) {
            0 => None,
            start => Some(start),
        }
    }

    pub(crate) fn reset(&self) {
        self.pid.store(0, Ordering::SeqCst);
        self.pid_start.store(0, Ordering::SeqCst);
        self.cancelled.store(false, Ordering::SeqCst);
        self.timed_out.store(false, Ordering::SeqCst);
    }

    pub(crate) fn cancel(&self) {
        self.cancelled.store(true, Ordering::SeqCst);
    }

    pub(crate) fn mark_timed_out(&self) {
        self.timed_out.store(true, Ordering::SeqCst);
    }

    /// True once a forced shutdown cancelled this attempt.
    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::SeqCst)
    }

    /// True once the attempt was killed for running past its timeout.
    pub fn is_timed_out(&self) -> bool {
        self.timed_out.load(Ordering::SeqCst)
    }
}

/// What an executor knows about the attempt it runs.
#[derive(Debug, Clone)]
pub struct ExecContext {
    /// The attempt number (1-based) this run will be if it counts.
    pub attempt: u32,
    /// The queue home: the working directory of shell jobs unless they set `cwd`.
    pub home: PathBuf,
    /// The timeout in effect (the job's own, else config's).
    pub timeout: Option<Duration>,
    /// Bytes of each output stream to keep.
    pub output_limit: usize,
    pub(crate) slot: Arc<SlotState>,
    /// The queue's identity for the environment of shell jobs (`QUEUECTL_QUEUE`), by which
    /// recovery tells this queue's processes from another's; empty outside a pool.
    pub(crate) queue: Arc<str>,
}

impl ExecContext {
    /// A context for running a job outside a pool (tests, one-off runs).
    pub fn standalone(home: impl Into<PathBuf>, attempt: u32, timeout: Option<Duration>, output_limit: usize) -> Self {
        ExecContext {
            attempt,
            home: home.into(),
            timeout,
            output_limit,
            slot: Arc::new(SlotState::default()),
            queue: Arc::from(""),
        }
    }

    /// Records the process that runs the job, so timeouts and forced shutdown can reach its
    /// process group and `status` can show it.
    pub fn set_process(&self, pid: u32) {
        let start = if pid == 0 {
            0
        } else {
            crate::process::process_start_time(pid).unwrap_or(0)
        };
        self.slot.pid_start.store(start, Ordering::SeqCst);
        self.slot.pid.store(pid, Ordering::SeqCst);
    }

    /// True once a forced shutdown asked this attempt to stop; long-running custom executors
    /// should poll it and return early.
    pub fn is_cancelled(&self) -> bool {
        self.slot.is_cancelled()
    }

    /// True once the pool killed this attempt for running past its timeout.
    pub fn is_timed_out(&self) -> bool {
        self.slot.is_timed_out()
    }
}

/// Sends `signal` to the process group led by `pid`.
pub(crate) fn signal_group(pid: u32, signal: libc::c_int) {
    if pid == 0 || pid > i32::MAX as u32 {
        return;
    }
    // SAFETY: kill(2) with a negative pid signals that process group; no memory is involved.
    unsafe {
        libc::kill(-(pid as libc::pid_t), signal);
    }
}

/// The conventional name of a signal, e.g. `SIGKILL`.
pub fn signal_name(signal: i32) -> String {
    let name = match signal {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGTRAP => "SIGTRAP",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGUSR2 => "SIGUSR2",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGALRM => "SIGALRM",
        libc::SIGTERM => "SIGTERM",
        libc::SIGXCPU => "SIGXCPU",
        libc::SIGXFSZ => "SIGXFSZ",
        _ => return format!("signal {signal}"),
    };
    name.to_string()
}
