//! What the end of an attempt does to its job: the one pure decision the worker pool (results
//! from its executor threads) and recovery (attempts lost with their worker) both take.
//!
//! `settle` turns a claimed job and how its attempt ended into the row the store applies
//! (guarded by the claim's lease) and the transition the caller reports: completed; failed
//! with a retry at `finished_at + min(base^attempts, backoff_max_seconds)`; dead once the retries
//! are used up; or released to run again without counting (an attempt a shutdown interrupted).
//! No clock, no database: the tests below drive it directly.

use crate::backoff::{RetryDecision, RetryPolicy};
use crate::job::{Job, State};
use crate::store::{AttemptOutcome, FinishedAttempt};
use crate::time::Millis;
use std::time::Duration;

/// How an attempt ended, as the executor (or recovery) saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptEnd {
    /// How it ended.
    pub outcome: AttemptOutcome,
    /// When it started, if known.
    pub started_at: Option<Millis>,
    /// When it ended: a retry's delay counts from here.
    pub finished_at: Millis,
    /// The exit code, if the process exited.
    pub exit_code: Option<i32>,
    /// What went wrong (for everything but a completion).
    pub error: Option<String>,
    /// Captured standard output (already capped).
    pub stdout: Option<String>,
    /// Captured standard error (already capped).
    pub stderr: Option<String>,
}

/// What the attempt did to the job.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Transition {
    /// The job is done.
    Completed,
    /// The job failed and runs again after `delay`; `attempt` is the attempt that failed.
    Retry {
        /// The attempt that failed (1-based).
        attempt: u32,
        /// How long until it runs again.
        delay: Duration,
    },
    /// Retries are used up: the job moves to the dead-letter queue after `attempts` runs.
    Dead {
        /// Attempts made.
        attempts: u32,
    },
    /// The attempt does not count: the job is pending again at once.
    Released,
}

/// Decides what the end of an attempt of `job` (as claimed) does, under `policy` (the job's
/// own `max_retries` already applied). Failed and lost attempts count towards the retries;
/// an interrupted one does not.
pub fn settle(job: &Job, end: AttemptEnd, policy: &RetryPolicy) -> (FinishedAttempt, Transition) {
    let counted = if end.outcome.counts() {
        job.attempts + 1
    } else {
        job.attempts
    };
    let (new_state, run_at, transition) = match end.outcome {
        AttemptOutcome::Completed => (State::Completed, None, Transition::Completed),
        AttemptOutcome::Interrupted => (State::Pending, Some(end.finished_at), Transition::Released),
        AttemptOutcome::Failed | AttemptOutcome::Lost => match policy.decide(counted) {
            RetryDecision::RetryAfter(delay) => (
                State::Failed,
                Some(
                    end.finished_at
                        .saturating_add(delay.as_millis().min(i64::MAX as u128) as i64),
                ),
                Transition::Retry {
                    attempt: counted,
                    delay,
                },
            ),
            RetryDecision::Dead => (State::Dead, None, Transition::Dead { attempts: counted }),
        },
    };
    let row = FinishedAttempt {
        job_seq: job.seq,
        lease: job.lease,
        attempts: counted,
        outcome: end.outcome,
        new_state,
        run_at,
        started_at: end.started_at,
        finished_at: end.finished_at,
        exit_code: end.exit_code,
        error: end.error,
        stdout: end.stdout,
        stderr: end.stderr,
    };
    (row, transition)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::JobSpec;

    fn job(attempts: u32) -> Job {
        let mut job = Job::from_spec(JobSpec::shell("true").with_id("j"), 0);
        job.seq = 7;
        job.lease = 3;
        job.attempts = attempts;
        job
    }

    fn end(outcome: AttemptOutcome) -> AttemptEnd {
        AttemptEnd {
            outcome,
            started_at: Some(1_000),
            finished_at: 5_000,
            exit_code: Some(1),
            error: Some("boom".into()),
            stdout: None,
            stderr: None,
        }
    }

    fn policy(max_retries: u32) -> RetryPolicy {
        RetryPolicy {
            max_retries,
            backoff_base: 2.0,
            backoff_max_seconds: 3600,
        }
    }

    #[test]
    fn a_completion_counts_the_attempt_and_keeps_the_lease() {
        let (row, transition) = settle(&job(0), end(AttemptOutcome::Completed), &policy(3));
        assert_eq!(transition, Transition::Completed);
        assert_eq!((row.new_state, row.attempts, row.run_at), (State::Completed, 1, None));
        assert_eq!((row.job_seq, row.lease), (7, 3));
    }

    #[test]
    fn a_failure_retries_base_to_the_attempts_after_it_ended() {
        let (row, transition) = settle(&job(1), end(AttemptOutcome::Failed), &policy(3));
        assert_eq!(
            transition,
            Transition::Retry {
                attempt: 2,
                delay: Duration::from_secs(4)
            }
        );
        assert_eq!(
            (row.new_state, row.attempts, row.run_at),
            (State::Failed, 2, Some(9_000))
        );
    }

    #[test]
    fn the_failure_after_the_last_retry_is_dead() {
        let (row, transition) = settle(&job(3), end(AttemptOutcome::Failed), &policy(3));
        assert_eq!(transition, Transition::Dead { attempts: 4 });
        assert_eq!((row.new_state, row.run_at), (State::Dead, None));
        let (row, _) = settle(&job(0), end(AttemptOutcome::Failed), &policy(0));
        assert_eq!(row.new_state, State::Dead);
    }

    #[test]
    fn a_lost_attempt_counts_and_follows_the_retry_policy() {
        let (row, transition) = settle(&job(0), end(AttemptOutcome::Lost), &policy(3));
        assert_eq!(row.outcome, AttemptOutcome::Lost);
        assert_eq!(
            (row.new_state, row.attempts, row.run_at),
            (State::Failed, 1, Some(7_000))
        );
        assert!(matches!(transition, Transition::Retry { attempt: 1, .. }));
        let (row, _) = settle(&job(3), end(AttemptOutcome::Lost), &policy(3));
        assert_eq!(row.new_state, State::Dead);
    }

    #[test]
    fn an_interrupted_attempt_is_not_counted_and_runs_again_at_once() {
        let (row, transition) = settle(&job(2), end(AttemptOutcome::Interrupted), &policy(0));
        assert_eq!(transition, Transition::Released);
        assert_eq!(
            (row.new_state, row.attempts, row.run_at),
            (State::Pending, 2, Some(5_000))
        );
    }
}
