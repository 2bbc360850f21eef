//! What the end of an attempt does to its job: the one pure decision the worker pool (results
//! from its executor threads) and recovery (attempts lost with their worker) both take.
//!
//! `settle` turns a claimed job and how its attempt ended into the row the store applies
//! (guarded by the claim's lease) and the transition the caller reports: completed; failed
//! with a retry at `finished_at + min(base^attempts, backoff_max_seconds)`; dead once the retries
//! are used up; or released to run again without counting (an attempt a shutdown interrupted).
//! No clock, no database: the tests below drive it directly.
//!
//! What the executor asked for adjusts a failure: [`Retry::Never`] (`Outcome::discard`) makes
//! it dead at once, [`Retry::After`] (`Outcome::retry_after`) replaces the backoff delay (the
//! attempt still counts, so used-up retries still end in the DLQ). An attempt that overran its
//! timeout is a timeout, whatever the executor returned afterwards (a success included), and
//! follows the retry policy; only a forced shutdown's interruption takes precedence over it.

use crate::backoff::{RetryDecision, RetryPolicy};
use crate::executor::Retry;
use crate::job::{Job, State, MAX_DELAY_SECONDS};
use crate::store::{AttemptOutcome, FinishedAttempt};
use crate::time::{format_duration, Millis};
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
    /// What the executor asked for after a failure (ignored for other outcomes).
    pub retry: Retry,
    /// The timeout the attempt overran, if it did: the attempt is recorded as timed out
    /// (failed) unless a forced shutdown interrupted it.
    pub timed_out: Option<Duration>,
}

impl AttemptEnd {
    /// An attempt that ended as `outcome` at `finished_at`, with nothing else known.
    pub fn new(outcome: AttemptOutcome, finished_at: Millis) -> AttemptEnd {
        AttemptEnd {
            outcome,
            started_at: None,
            finished_at,
            exit_code: None,
            error: None,
            stdout: None,
            stderr: None,
            retry: Retry::Policy,
            timed_out: None,
        }
    }
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
/// own `max_retries` and its kind's policy already applied). Failed and lost attempts count
/// towards the retries; an interrupted one does not.
pub fn settle(job: &Job, end: AttemptEnd, policy: &RetryPolicy) -> (FinishedAttempt, Transition) {
    let end = timed_out_as_failure(end);
    let counted = if end.outcome.counts() {
        job.attempts + 1
    } else {
        job.attempts
    };
    let (new_state, run_at, transition) = match end.outcome {
        AttemptOutcome::Completed => (State::Completed, None, Transition::Completed),
        AttemptOutcome::Interrupted => (State::Pending, Some(end.finished_at), Transition::Released),
        AttemptOutcome::Failed | AttemptOutcome::Lost => match (end.retry, policy.decide(counted)) {
            (Retry::Never, _) | (_, RetryDecision::Dead) => (State::Dead, None, Transition::Dead { attempts: counted }),
            (retry, RetryDecision::RetryAfter(backoff)) => {
                let delay = match retry {
                    Retry::After(asked) => asked.min(Duration::from_secs_f64(MAX_DELAY_SECONDS)),
                    _ => backoff,
                };
                (
                    State::Failed,
                    Some(
                        end.finished_at
                            .saturating_add(delay.as_millis().min(i64::MAX as u128) as i64),
                    ),
                    Transition::Retry {
                        attempt: counted,
                        delay,
                    },
                )
            }
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

/// An attempt that overran its timeout, as the failure it is (unless a forced shutdown
/// interrupted it, which does not count either way). The executor's own word is kept in the
/// message when it said something else.
pub(crate) fn timed_out_as_failure(mut end: AttemptEnd) -> AttemptEnd {
    let Some(timeout) = end.timed_out else {
        return end;
    };
    if end.outcome == AttemptOutcome::Interrupted {
        return end;
    }
    let timed_out = format!("timed out after {}", format_duration(timeout));
    let said = match (end.outcome, end.error.take()) {
        (_, Some(error)) if error.starts_with("timed out") => {
            end.error = Some(error);
            None
        }
        (AttemptOutcome::Completed, _) => Some("it then returned a success".to_string()),
        (_, Some(error)) => Some(format!("it then returned: {error}")),
        (_, None) => None,
    };
    if end.error.is_none() {
        end.error = Some(match said {
            Some(said) => format!("{timed_out} ({said})"),
            None => timed_out,
        });
    }
    end.outcome = AttemptOutcome::Failed;
    end.retry = Retry::Policy;
    end
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
            started_at: Some(1_000),
            exit_code: Some(1),
            error: Some("boom".into()),
            ..AttemptEnd::new(outcome, 5_000)
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

    #[test]
    fn a_discarded_attempt_is_dead_at_once_with_retries_left() {
        let end = AttemptEnd {
            retry: Retry::Never,
            ..end(AttemptOutcome::Failed)
        };
        let (row, transition) = settle(&job(0), end, &policy(5));
        assert_eq!(transition, Transition::Dead { attempts: 1 });
        assert_eq!((row.new_state, row.attempts, row.run_at), (State::Dead, 1, None));
        assert_eq!(row.error.as_deref(), Some("boom"));
    }

    #[test]
    fn retry_after_replaces_the_backoff_and_counts_the_attempt() {
        let asked = AttemptEnd {
            retry: Retry::After(Duration::from_millis(90_000)),
            ..end(AttemptOutcome::Failed)
        };
        let (row, transition) = settle(&job(1), asked.clone(), &policy(3));
        assert_eq!(
            transition,
            Transition::Retry {
                attempt: 2,
                delay: Duration::from_secs(90)
            }
        );
        assert_eq!(
            (row.new_state, row.attempts, row.run_at),
            (State::Failed, 2, Some(95_000))
        );
        // It counts: with the retries used up, the job is dead like after any failure.
        let (row, transition) = settle(&job(3), asked, &policy(3));
        assert_eq!(transition, Transition::Dead { attempts: 4 });
        assert_eq!(row.new_state, State::Dead);
    }

    #[test]
    fn retry_after_is_capped_at_the_longest_schedule() {
        let asked = AttemptEnd {
            retry: Retry::After(Duration::from_secs(u64::MAX / 4)),
            ..end(AttemptOutcome::Failed)
        };
        let (_, transition) = settle(&job(0), asked, &policy(3));
        assert_eq!(
            transition,
            Transition::Retry {
                attempt: 1,
                delay: Duration::from_secs_f64(MAX_DELAY_SECONDS)
            }
        );
    }

    #[test]
    fn an_overrun_attempt_is_a_timeout_whatever_it_returned() {
        let late_success = AttemptEnd {
            error: None,
            exit_code: None,
            timed_out: Some(Duration::from_secs(5)),
            ..end(AttemptOutcome::Completed)
        };
        let (row, transition) = settle(&job(0), late_success, &policy(3));
        assert_eq!((row.outcome, row.new_state), (AttemptOutcome::Failed, State::Failed));
        assert_eq!(
            row.error.as_deref(),
            Some("timed out after 5s (it then returned a success)")
        );
        assert!(matches!(transition, Transition::Retry { attempt: 1, .. }));

        // A discard after the deadline is still a timeout: the retry policy decides.
        let late_discard = AttemptEnd {
            retry: Retry::Never,
            timed_out: Some(Duration::from_secs(5)),
            ..end(AttemptOutcome::Failed)
        };
        let (row, _) = settle(&job(0), late_discard, &policy(3));
        assert_eq!(row.new_state, State::Failed);
        assert_eq!(
            row.error.as_deref(),
            Some("timed out after 5s (it then returned: boom)")
        );

        // The shell executor names its timeout itself; that message is kept.
        let shell = AttemptEnd {
            error: Some("timed out after 5s".into()),
            timed_out: Some(Duration::from_secs(5)),
            ..end(AttemptOutcome::Failed)
        };
        let (row, _) = settle(&job(0), shell, &policy(3));
        assert_eq!(row.error.as_deref(), Some("timed out after 5s"));
        assert_eq!(row.exit_code, Some(1));
    }

    #[test]
    fn a_forced_stop_of_an_overrun_attempt_still_releases_it() {
        let end = AttemptEnd {
            timed_out: Some(Duration::from_secs(5)),
            ..end(AttemptOutcome::Interrupted)
        };
        let (row, transition) = settle(&job(2), end, &policy(3));
        assert_eq!(transition, Transition::Released);
        assert_eq!((row.new_state, row.attempts), (State::Pending, 2));
    }
}
