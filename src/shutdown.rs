//! [`Shutdown`]: a cloneable stop signal the caller controls.
//!
//! The library installs no signal handlers. The binary (or an embedding program) holds a
//! `Shutdown` and calls [`Shutdown::request_stop`] on the first SIGINT/SIGTERM (graceful: stop
//! claiming, let running jobs finish) and [`Shutdown::force`] on the second (kill running jobs
//! and put them back to pending). Long-running loops wait on it instead of sleeping, so they
//! react at once.

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Default)]
struct Inner {
    /// 0 = running, 1 = graceful stop requested, 2 = forced stop requested.
    level: Mutex<u8>,
    changed: Condvar,
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
    }

    fn level(&self) -> u8 {
        *self.inner.level.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Asks for a graceful stop: finish running jobs, claim no more.
    pub fn request_stop(&self) {
        self.raise(1);
    }

    /// Asks for a forced stop: kill running jobs and release them back to pending.
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
}
