//! What a worker pool reports while it runs, and the observers that receive it.

use crate::executor::Outcome;
use crate::job::Job;
use std::time::Duration;

/// One thing that happened in a worker pool. The CLI prints these; hooks react to them.
#[derive(Debug, Clone)]
pub enum WorkerEvent {
    /// The pool registered and its threads are ready.
    Started {
        /// The worker's id (`host:pid:start`).
        worker_id: String,
        /// This process's id.
        pid: u32,
        /// The number of executor threads.
        threads: usize,
        /// The job kinds it runs.
        kinds: Vec<String>,
    },
    /// A thread started running a job.
    JobStarted {
        /// The thread's number (1-based).
        thread: usize,
        /// The job as claimed.
        job: Job,
        /// The attempt number this run will be if it counts.
        attempt: u32,
    },
    /// A job succeeded.
    JobCompleted {
        /// The thread's number.
        thread: usize,
        /// The job as claimed.
        job: Job,
        /// How long the attempt took.
        duration: Duration,
        /// The attempt's outcome.
        outcome: Outcome,
    },
    /// An attempt failed and a retry is scheduled.
    JobRetrying {
        /// The thread's number.
        thread: usize,
        /// The job as claimed.
        job: Job,
        /// The attempt that failed (1-based).
        attempt: u32,
        /// The most runs the job may have (`max_retries + 1`).
        max_runs: u32,
        /// The delay before the retry.
        delay: Duration,
        /// The attempt's outcome.
        outcome: Outcome,
    },
    /// A job used up its retries and moved to the DLQ.
    JobDead {
        /// The thread's number.
        thread: usize,
        /// The job as claimed.
        job: Job,
        /// Attempts made.
        attempts: u32,
        /// The last attempt's outcome.
        outcome: Outcome,
    },
    /// A forced shutdown killed a job; it went back to pending and the attempt did not count.
    JobReleased {
        /// The thread's number.
        thread: usize,
        /// The job as claimed.
        job: Job,
    },
    /// A job's result was not recorded because another process took the job over (this worker
    /// was presumed dead, e.g. after a long pause).
    ResultDiscarded {
        /// The thread's number.
        thread: usize,
        /// The job as claimed.
        job: Job,
    },
    /// A job ran past its timeout and its process group was signalled.
    JobTimedOut {
        /// The thread's number.
        thread: usize,
        /// The job's id.
        job_id: String,
        /// The signal sent (`SIGTERM`, then `SIGKILL`).
        signal: &'static str,
    },
    /// Jobs of a dead worker were recovered.
    Recovered {
        /// Each job's id and new state.
        jobs: Vec<(String, crate::job::State)>,
    },
    /// The pool stopped claiming and is waiting for running jobs.
    Stopping {
        /// True for a forced stop (running jobs are killed and released).
        forced: bool,
        /// Jobs still running.
        running: usize,
    },
    /// The pool exited.
    Stopped {
        /// Jobs this pool ran to an end (any outcome).
        jobs_run: u64,
    },
    /// The settings were read again: on request (a [`ReloadRequest`](super::ReloadRequest),
    /// e.g. the CLI's SIGHUP), or by the periodic re-read when it found a change.
    SettingsReloaded {
        /// True when a reload was requested; false for the periodic re-read, which reports
        /// only changes.
        requested: bool,
        /// What changed (empty: nothing, or the reload failed).
        changes: Vec<crate::config::SettingChange>,
        /// Why the settings could not be read; the pool keeps the previous ones.
        error: Option<String>,
    },
    /// Something worth telling a person that is not an error of a job.
    Warning(String),
}

/// Receives a pool's events. Called on the pool's coordinator thread, so it must return
/// quickly; do slow work (network, processes) on a thread of your own.
pub trait Observer: Send + Sync {
    /// Called once per event.
    fn on_event(&self, event: &WorkerEvent);
}

impl<F> Observer for F
where
    F: Fn(&WorkerEvent) + Send + Sync,
{
    fn on_event(&self, event: &WorkerEvent) {
        self(event)
    }
}
