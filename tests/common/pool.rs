//! Worker pools run through the library API, always on a thread of their own and joined with a
//! deadline: a pool whose shutdown is broken fails its test instead of hanging CI.

use queuectl::{PoolBuilder, Shutdown};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A pool running on its own thread. Dropped while still running (a test failed first), it is
/// stopped with a forced shutdown, so no job it runs outlives the test.
pub struct PoolThread {
    handle: Option<JoinHandle<queuectl::Result<u64>>>,
    shutdown: Shutdown,
}

impl PoolThread {
    /// Starts `builder.run(shutdown)` on a new thread.
    pub fn spawn(builder: PoolBuilder, shutdown: &Shutdown) -> PoolThread {
        let stop = shutdown.clone();
        let handle = std::thread::Builder::new()
            .name("test-pool".into())
            .spawn(move || builder.run(&stop).map(|report| report.attempts))
            .expect("spawn the pool thread");
        PoolThread {
            handle: Some(handle),
            shutdown: shutdown.clone(),
        }
    }

    /// True once the pool's `run` has returned.
    pub fn is_finished(&self) -> bool {
        self.handle.as_ref().map(|h| h.is_finished()).unwrap_or(true)
    }

    /// Waits for the pool to return, at most `timeout`; past that, forces its shutdown and
    /// panics.
    #[track_caller]
    pub fn join(mut self, timeout: Duration) -> queuectl::Result<u64> {
        let handle = self.handle.take().expect("joined once");
        let deadline = Instant::now() + timeout;
        while !handle.is_finished() {
            if Instant::now() >= deadline {
                self.shutdown.force();
                panic!("the pool was still running after {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        match handle.join() {
            Ok(result) => result,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }
}

impl Drop for PoolThread {
    fn drop(&mut self) {
        if let Some(handle) = self.handle.take() {
            self.shutdown.force();
            // Give it a moment to kill what it runs; never block a failing test for long.
            let deadline = Instant::now() + Duration::from_secs(10);
            while !handle.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }
}

/// Runs a pool to its end (e.g. with `until_empty`) with a deadline.
#[track_caller]
pub fn run_pool(builder: PoolBuilder, timeout: Duration) -> queuectl::Result<u64> {
    PoolThread::spawn(builder, &Shutdown::new()).join(timeout)
}
