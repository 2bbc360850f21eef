//! Recording what came back: each finished attempt through [`settle`] into the row the store
//! applies and the event observers get, then one transaction that records them all and claims
//! new work.

use super::coordinator::Coordinator;
use super::thread::Done;
use crate::error::Result;
use crate::job::Job;
use crate::lifecycle::{settle, AttemptEnd, Transition};
use crate::store::AttemptOutcome;
use crate::time::Millis;
use crate::worker::events::WorkerEvent;

/// How an attempt ended, from what its executor thread sent back.
fn attempt_end(done: &Done) -> AttemptEnd {
    // A success is a success even if a forced stop fired meanwhile: running it again would
    // repeat work that is done (a timeout that fired first still makes it a timeout: `settle`).
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
    AttemptEnd {
        outcome,
        started_at: Some(done.started_at),
        finished_at: done.finished_at,
        exit_code: done.outcome.exit_code,
        error,
        stdout: done.outcome.stdout.clone(),
        stderr: done.outcome.stderr.clone(),
        retry: done.outcome.retry,
        timed_out: done.timed_out,
    }
}

impl Coordinator {
    pub(super) fn record_and_claim(
        &mut self,
        finished: &[Done],
        claim_limit: usize,
        claim_now: Millis,
    ) -> Result<Vec<Job>> {
        if finished.iter().any(|d| !d.outcome.success && !d.cancelled) {
            // Config changes apply from the next failure without a restart.
            self.reload_settings();
        }
        let mut rows = Vec::with_capacity(finished.len());
        let mut events = Vec::with_capacity(finished.len());
        for done in finished {
            let job = &done.job;
            let policy = self.settings.retry_policy_for(job);
            let (row, transition) = settle(job, attempt_end(done), &policy);
            let (thread, job, mut outcome) = (done.thread, job.clone(), done.outcome.clone());
            if done.timed_out.is_some() && row.outcome == AttemptOutcome::Failed {
                // Observers see what was recorded: a timeout's message, not a late success.
                outcome.success = false;
                outcome.error = row.error.clone();
            }
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
            events.push((event, transition));
        }
        let (applied, claimed) =
            self.store
                .finish_and_claim(&self.worker.id, &rows, claim_limit, &self.kinds, claim_now)?;
        for ((done, (event, transition)), ok) in finished.iter().zip(events).zip(applied) {
            self.slots[done.thread - 1].running = None;
            self.slots_dirty = true;
            self.report.attempts += 1;
            if ok {
                match transition {
                    Transition::Completed => self.report.completed += 1,
                    Transition::Retry { .. } => self.report.retried += 1,
                    Transition::Dead { .. } => self.report.dead += 1,
                    Transition::Released => self.report.interrupted += 1,
                }
                self.emit(&event);
            } else {
                self.report.stale += 1;
                self.emit(&WorkerEvent::ResultDiscarded {
                    thread: done.thread,
                    job: done.job.clone(),
                });
            }
        }
        Ok(claimed)
    }
}
