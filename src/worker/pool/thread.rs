//! The executor threads: each takes one assignment at a time from its own channel, runs the
//! job's executor (catching a panic) and sends back what happened. They never touch the
//! database.

use crate::executor::{ExecContext, Executor, Outcome};
use crate::job::Job;
use crate::time::{now_ms, Millis};
use crossbeam_channel::{Receiver, Sender};
use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Work sent to an executor thread.
pub(super) struct Assignment {
    pub(super) job: Job,
    pub(super) context: ExecContext,
}

/// What an executor thread sends back.
pub(super) struct Done {
    pub(super) thread: usize,
    pub(super) job: Job,
    pub(super) outcome: Outcome,
    /// How long the executor ran the job: from its call to its return (for a shell job, spawn
    /// to exit), not including any time the coordinator then waited to record the result.
    pub(super) duration: Duration,
    pub(super) started_at: Millis,
    /// Wall-clock time the executor returned: the attempt's recorded finish time.
    pub(super) finished_at: Millis,
    /// A forced stop cancelled the attempt before the executor returned.
    pub(super) cancelled: bool,
    /// The timeout the attempt had overrun when the executor returned, if it had.
    pub(super) timed_out: Option<Duration>,
}

/// Runs `executor` on `job`, turning a panic into a failure naming it: what the pool's threads
/// and the testing kit both call.
pub(crate) fn run_guarded(executor: &dyn Executor, job: &Job, context: &ExecContext) -> Outcome {
    std::panic::catch_unwind(AssertUnwindSafe(|| executor.execute(job, context))).unwrap_or_else(|panic| {
        let message = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        Outcome::failure(format!("executor panicked: {message}"))
    })
}

pub(super) fn executor_thread(
    thread: usize,
    receiver: Receiver<Assignment>,
    done: Sender<Done>,
    executors: BTreeMap<String, Arc<dyn Executor>>,
) {
    for Assignment { job, context } in receiver.iter() {
        let started = Instant::now();
        let started_at = job.started_at.unwrap_or_else(now_ms);
        let outcome = match executors.get(&job.kind) {
            Some(executor) => run_guarded(executor.as_ref(), &job, &context),
            None => Outcome::failure(format!("no executor for kind `{}`", job.kind)),
        };
        let duration = started.elapsed();
        let finished_at = now_ms();
        // Read once the executor has returned: a timeout that fired before counts whatever
        // the executor said; one that fires after this is too late to matter.
        let cancelled = context.is_shutdown();
        let timed_out = if context.is_timed_out() {
            Some(context.timeout.unwrap_or_default())
        } else {
            None
        };
        if done
            .send(Done {
                thread,
                job,
                outcome,
                duration,
                started_at,
                finished_at,
                cancelled,
                timed_out,
            })
            .is_err()
        {
            return;
        }
    }
}
