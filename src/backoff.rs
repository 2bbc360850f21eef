//! The retry policy: what happens to a job after a failed attempt.
//!
//! A pure function so that it can be unit tested without a database or a clock.
//! `max_retries` counts *retries*: a job with `max_retries = 3` runs at most 4 times. After failed
//! attempt `n` (n = 1, 2, ...) the next run is `backoff_base ^ n` seconds later, capped by
//! `backoff_max_seconds`, which is the spec's `delay = base ^ attempts`.

use std::time::Duration;

/// What to do with a job after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RetryDecision {
    /// Run it again after this delay.
    RetryAfter(Duration),
    /// Retries are used up: move it to the dead-letter queue.
    Dead,
}

/// The retry policy in effect when a failure is recorded.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// How many retries a job gets after its first run.
    pub max_retries: u32,
    /// The base of the exponential backoff, at least 1.
    pub backoff_base: f64,
    /// The longest delay between two attempts, in seconds.
    pub backoff_max_seconds: u64,
}

impl RetryPolicy {
    /// The delay before the retry that follows failed attempt number `attempts` (1-based).
    pub fn delay_after(&self, attempts: u32) -> Duration {
        let cap = self.backoff_max_seconds as f64;
        let seconds = self.backoff_base.max(1.0).powi(attempts.min(i32::MAX as u32) as i32);
        let seconds = if seconds.is_finite() { seconds.min(cap) } else { cap };
        Duration::from_secs_f64(seconds.max(0.0))
    }

    /// Decides what follows failed attempt number `attempts` (1-based, already counted).
    pub fn decide(&self, attempts: u32) -> RetryDecision {
        if attempts <= self.max_retries {
            RetryDecision::RetryAfter(self.delay_after(attempts))
        } else {
            RetryDecision::Dead
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(max_retries: u32, backoff_base: f64) -> RetryPolicy {
        RetryPolicy {
            max_retries,
            backoff_base,
            backoff_max_seconds: 3600,
        }
    }

    #[test]
    fn delay_is_base_to_the_power_of_attempts() {
        let p = policy(3, 2.0);
        assert_eq!(p.delay_after(1), Duration::from_secs(2));
        assert_eq!(p.delay_after(2), Duration::from_secs(4));
        assert_eq!(p.delay_after(3), Duration::from_secs(8));
    }

    #[test]
    fn max_retries_counts_retries_not_runs() {
        let p = policy(3, 2.0);
        assert!(matches!(p.decide(1), RetryDecision::RetryAfter(_)));
        assert!(matches!(p.decide(3), RetryDecision::RetryAfter(_)));
        assert_eq!(p.decide(4), RetryDecision::Dead);
        assert_eq!(policy(0, 2.0).decide(1), RetryDecision::Dead);
    }

    #[test]
    fn fractional_and_unit_bases() {
        assert_eq!(policy(5, 1.5).delay_after(2), Duration::from_secs_f64(2.25));
        assert_eq!(policy(5, 1.0).delay_after(7), Duration::from_secs(1));
    }

    #[test]
    fn delay_is_capped() {
        let p = RetryPolicy {
            max_retries: 100,
            backoff_base: 10.0,
            backoff_max_seconds: 60,
        };
        assert_eq!(p.delay_after(5), Duration::from_secs(60));
        assert_eq!(p.delay_after(90), Duration::from_secs(60));
    }
}
