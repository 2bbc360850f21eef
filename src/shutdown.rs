//! [`Shutdown`]: a cloneable stop signal the caller controls.
//!
//! The library installs no signal handlers. The binary (or an embedding program) holds a
//! `Shutdown` and calls [`Shutdown::request_stop`] on the first SIGINT/SIGTERM (graceful: stop
//! claiming, let running jobs finish) and [`Shutdown::force`] on the second (kill running jobs
//! and put them back to pending). Long-running loops wait on it instead of sleeping, so they
//! react at once.

use crate::executor::{CancelReason, CancelToken, WeakCancelToken};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Default)]
struct Inner {
    /// 0 = running, 1 = graceful stop requested, 2 = forced stop requested.
    level: Mutex<u8>,
    changed: Condvar,
    /// The tokens of running attempts, fired by a forced stop from the thread that forces it.
    tokens: Mutex<Vec<WeakCancelToken>>,
}

/// A cloneable stop signal with two levels: graceful and forced.
#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    inner: Arc<Inner>,
}

impl Shutdown {
    /// A signal that has not fired.
    pub fn new() -> Shutdown {
        Shutdown::default()
    }

    fn raise(&self, level: u8) {
        let mut current = self.inner.level.lock().unwrap_or_else(|e| e.into_inner());
        if *current < level {
            *current = level;
        }
        self.inner.changed.notify_all();
        drop(current);
        if level >= 2 {
            let tokens = std::mem::take(&mut *self.inner.tokens.lock().unwrap_or_else(|e| e.into_inner()));
            for token in tokens.iter().filter_map(WeakCancelToken::upgrade) {
                token.cancel(CancelReason::Shutdown);
            }
        }
    }

    /// Fires `token` when a forced stop is requested (at once if one was). Holds it weakly:
    /// tokens of attempts that ended are dropped from the list as new ones arrive.
    pub(crate) fn cancel_on_force(&self, token: &CancelToken) {
        let mut tokens = self.inner.tokens.lock().unwrap_or_else(|e| e.into_inner());
        // Checked under the list's lock: a force that took the list before this push has
        // already raised the level, so the token is fired here instead of being missed.
        if self.is_forced() {
            drop(tokens);
            token.cancel(CancelReason::Shutdown);
            return;
        }
        tokens.retain(|t| t.upgrade().is_some_and(|t| !t.is_cancelled()));
        tokens.push(token.downgrade());
    }

    fn level(&self) -> u8 {
        *self.inner.level.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Asks for a graceful stop: finish running jobs, claim no more.
    pub fn request_stop(&self) {
        self.raise(1);
    }

    /// Asks for a forced stop: kill running jobs and release them back to pending. The
    /// [`CancelToken`]s of the attempts running in pools that use this signal fire at once, on
    /// this thread, so a Rust executor waiting on its token wakes without waiting for the
    /// pool's coordinator.
    pub fn force(&self) {
        self.raise(2);
    }

    /// Escalates one level: the first call is graceful, the next forced. Suits a signal handler.
    pub fn escalate(&self) {
        let next = (self.level() + 1).min(2);
        self.raise(next);
    }

    /// True once any stop was requested.
    pub fn is_stopping(&self) -> bool {
        self.level() >= 1
    }

    /// True once a forced stop was requested.
    pub fn is_forced(&self) -> bool {
        self.level() >= 2
    }

    /// Waits up to `timeout` for a stop request; returns true if one arrived.
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        // A timeout too large to add to the clock means "wait forever" in practice.
        let deadline = Instant::now()
            .checked_add(timeout)
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(1 << 40));
        let mut level = self.inner.level.lock().unwrap_or_else(|e| e.into_inner());
        while *level == 0 {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            level = self
                .inner
                .changed
                .wait_timeout(level, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escalates_from_graceful_to_forced() {
        let s = Shutdown::new();
        assert!(!s.wait_timeout(Duration::from_millis(1)));
        let clone = s.clone();
        clone.escalate();
        assert!(s.is_stopping() && !s.is_forced());
        assert!(s.wait_timeout(Duration::from_secs(1)));
        clone.escalate();
        assert!(s.is_forced());
    }

    #[test]
    fn a_forced_stop_fires_the_registered_tokens_and_later_ones_at_once() {
        let s = Shutdown::new();
        let (running, ended) = (CancelToken::new(), CancelToken::new());
        s.cancel_on_force(&running);
        s.cancel_on_force(&ended);
        drop(ended);
        s.request_stop();
        assert!(!running.is_cancelled(), "a graceful stop lets attempts finish");
        s.force();
        assert_eq!(running.reason(), Some(CancelReason::Shutdown));
        let late = CancelToken::new();
        s.cancel_on_force(&late);
        assert!(late.is_cancelled());
    }
}
