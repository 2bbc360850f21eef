//! [`CancelToken`]: how a running attempt learns that it should stop.
//!
//! The pool gives every attempt a token of its own (in its [`ExecContext`](super::ExecContext)).
//! It fires on a forced stop of the pool ([`CancelReason::Shutdown`], delivered from the thread
//! that calls [`Shutdown::force`](crate::Shutdown::force), not at the coordinator's next pass)
//! and when the attempt overruns its timeout ([`CancelReason::TimedOut`]). Because the token
//! belongs to one attempt, firing it for a single job (a future "cancel this job" request) needs
//! nothing more than another reason.
//!
//! A long-running Rust executor either polls [`CancelToken::is_cancelled`] between units of
//! work, or sleeps on [`CancelToken::wait_timeout`] where it would otherwise sleep (it returns
//! at once when the token fires), then returns. What it returns after a timeout is recorded as
//! a timeout whatever it says; after a forced stop, a failure is recorded as an interrupted
//! attempt (not counted, the job runs again) and a success as a success.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Why a token fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CancelReason {
    /// The pool was stopped by force ([`Shutdown::force`](crate::Shutdown::force)).
    Shutdown,
    /// The attempt ran past its timeout.
    TimedOut,
}

impl CancelReason {
    fn bit(self) -> u8 {
        match self {
            CancelReason::Shutdown => 1,
            CancelReason::TimedOut => 2,
        }
    }

    const ALL: [CancelReason; 2] = [CancelReason::Shutdown, CancelReason::TimedOut];
}

impl std::fmt::Display for CancelReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CancelReason::Shutdown => "forced shutdown",
            CancelReason::TimedOut => "timed out",
        })
    }
}

#[derive(Debug, Default)]
struct Inner {
    /// One bit per reason that fired.
    reasons: AtomicU8,
    /// The reason that fired first (its bit), for [`CancelToken::reason`].
    first: AtomicU8,
    lock: Mutex<()>,
    fired: Condvar,
}

/// A one-way cancellation signal for one attempt: cheap to clone (clones share it), cheap to
/// poll, and waitable with a timeout.
///
/// The pool gives every attempt a token of its own (in its [`ExecContext`](super::ExecContext)).
/// It fires on a forced stop of the pool ([`CancelReason::Shutdown`], delivered from the thread
/// that calls [`Shutdown::force`](crate::Shutdown::force), not at the coordinator's next pass)
/// and when the attempt overruns its timeout ([`CancelReason::TimedOut`]). Because the token
/// belongs to one attempt, firing it for a single job needs nothing more than another reason.
///
/// A long-running Rust executor either polls [`is_cancelled`](Self::is_cancelled) between
/// units of work, or sleeps on [`wait_timeout`](Self::wait_timeout) where it would otherwise
/// sleep (it returns at once when the token fires), then returns. What it returns after a
/// timeout is recorded as a timeout whatever it says; after a forced stop, a failure is
/// recorded as an interrupted attempt (not counted, the job runs again) and a success as a
/// success.
#[derive(Debug, Clone, Default)]
pub struct CancelToken {
    inner: Arc<Inner>,
}

impl CancelToken {
    /// A token that has not fired.
    pub fn new() -> CancelToken {
        CancelToken::default()
    }

    /// Fires the token for `reason` and wakes every waiter. Firing again (for the same or
    /// another reason) adds the reason; the first one stays [`reason`](Self::reason).
    pub fn cancel(&self, reason: CancelReason) {
        let _guard = self.inner.lock.lock().unwrap_or_else(|e| e.into_inner());
        let _ = self
            .inner
            .first
            .compare_exchange(0, reason.bit(), Ordering::SeqCst, Ordering::SeqCst);
        self.inner.reasons.fetch_or(reason.bit(), Ordering::SeqCst);
        self.inner.fired.notify_all();
    }

    /// True once the token fired, for any reason.
    pub fn is_cancelled(&self) -> bool {
        self.inner.reasons.load(Ordering::SeqCst) != 0
    }

    /// The reason the token fired for first, if it fired.
    pub fn reason(&self) -> Option<CancelReason> {
        let first = self.inner.first.load(Ordering::SeqCst);
        CancelReason::ALL.into_iter().find(|r| r.bit() == first)
    }

    /// True if the token fired for `reason` (whether first or not).
    pub fn fired_for(&self, reason: CancelReason) -> bool {
        self.inner.reasons.load(Ordering::SeqCst) & reason.bit() != 0
    }

    /// Waits up to `timeout` for the token to fire; returns true if it did (at once if it had
    /// already). Use it where a handler would sleep.
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        let deadline = Instant::now().checked_add(timeout);
        let mut guard = self.inner.lock.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if self.is_cancelled() {
                return true;
            }
            let wait = match deadline {
                Some(deadline) => match deadline.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => left,
                    _ => return false,
                },
                // Too far to add to the clock: in practice for ever, a day at a time.
                None => Duration::from_secs(86_400),
            };
            guard = self
                .inner
                .fired
                .wait_timeout(guard, wait)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Waits until the token fires.
    pub fn wait(&self) {
        while !self.wait_timeout(Duration::from_secs(86_400)) {}
    }

    /// A weak reference, for a registry of tokens that must not keep them alive.
    pub(crate) fn downgrade(&self) -> WeakCancelToken {
        WeakCancelToken {
            inner: Arc::downgrade(&self.inner),
        }
    }
}

/// A token held without keeping it alive (see [`Shutdown`](crate::Shutdown), which fires the
/// tokens of the attempts running when it is forced).
#[derive(Debug, Clone)]
pub(crate) struct WeakCancelToken {
    inner: std::sync::Weak<Inner>,
}

impl WeakCancelToken {
    /// The token, if anyone still holds it.
    pub(crate) fn upgrade(&self) -> Option<CancelToken> {
        self.inner.upgrade().map(|inner| CancelToken { inner })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_token_has_not_fired_and_waiting_times_out() {
        let token = CancelToken::new();
        assert!(!token.is_cancelled());
        assert_eq!(token.reason(), None);
        assert!(!token.wait_timeout(Duration::from_millis(1)));
        assert!(!token.wait_timeout(Duration::ZERO));
    }

    #[test]
    fn the_first_reason_stays_and_later_ones_are_added() {
        let token = CancelToken::new();
        token.cancel(CancelReason::TimedOut);
        token.cancel(CancelReason::Shutdown);
        assert_eq!(token.reason(), Some(CancelReason::TimedOut));
        assert!(token.fired_for(CancelReason::Shutdown) && token.fired_for(CancelReason::TimedOut));
        assert!(token.wait_timeout(Duration::ZERO), "a fired token answers at once");
    }

    #[test]
    fn a_waiter_on_another_thread_wakes_when_a_clone_fires() {
        let token = CancelToken::new();
        let waiter = {
            let token = token.clone();
            std::thread::spawn(move || token.wait_timeout(Duration::from_secs(60)))
        };
        token.cancel(CancelReason::Shutdown);
        assert!(waiter.join().unwrap());
    }

    #[test]
    fn a_weak_token_upgrades_only_while_held() {
        let token = CancelToken::new();
        let weak = token.downgrade();
        weak.upgrade().unwrap().cancel(CancelReason::Shutdown);
        assert!(token.is_cancelled());
        drop(token);
        assert!(weak.upgrade().is_none());
    }
}
