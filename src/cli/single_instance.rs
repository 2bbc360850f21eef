//! `worker start --single-instance`: at most one such worker per queue home, for cron.
//!
//! A crontab line that starts a worker every minute must not pile up workers while a long job
//! runs. The guard is an exclusive `flock` (through `fs2`) on `HOME/run/worker.lock`, held for
//! the worker's whole life and released by the kernel when the process ends however it ends
//! (no stale PID file to clean up after a crash or SIGKILL). Workers started without the flag
//! neither take nor respect the lock: the queue is safe with many workers anyway, the lock only
//! spares cron a pile of idle processes.

use anyhow::Result;
use queuectl::error::Error;
use queuectl::Home;
use std::fs::File;
use std::path::PathBuf;

/// The lock file of `--single-instance` workers.
pub fn lock_path(home: &Home) -> PathBuf {
    home.root().join("run").join("worker.lock")
}

/// What trying the lock found.
pub enum Instance {
    /// This process holds the lock until the file is dropped.
    Held(#[allow(dead_code)] File),
    /// Another process holds it: nothing to do.
    Busy(PathBuf),
}

/// Takes the single-instance lock without waiting.
pub fn try_lock(home: &Home) -> Result<Instance> {
    let path = lock_path(home);
    let dir = path.parent().unwrap_or(home.root());
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| Error::io(&path, e))?;
    // std's inherent `File::try_lock` shadows fs2's method of the same name: call fs2 by path.
    match fs2::FileExt::try_lock_exclusive(&file) {
        Ok(()) => Ok(Instance::Held(file)),
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.raw_os_error() == Some(libc::EWOULDBLOCK) => {
            Ok(Instance::Busy(path))
        }
        Err(e) => Err(Error::io(&path, e).into()),
    }
}

/// The line a second instance prints before it exits 0.
pub fn busy_message(path: &std::path::Path) -> String {
    format!("another worker holds {}; nothing to do", path.display())
}
