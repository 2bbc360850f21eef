//! `worker start --single-instance`: at most one such worker per queue home, for cron.
//!
//! A crontab line that starts a worker every minute must not pile up workers while a long job
//! runs. The guard is an exclusive `flock(2)` on `HOME/run/worker.lock`, held for
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
    use std::os::unix::io::AsRawFd;
    loop {
        // SAFETY: flock(2) on a descriptor this function owns; no memory is involved.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
            return Ok(Instance::Held(file));
        }
        let e = std::io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EWOULDBLOCK) => return Ok(Instance::Busy(path)),
            Some(libc::EINTR) => continue,
            _ => return Err(Error::io(&path, e).into()),
        }
    }
}

/// The line a second instance prints before it exits 0.
pub fn busy_message(path: &std::path::Path) -> String {
    format!("another worker holds {}; nothing to do", path.display())
}
