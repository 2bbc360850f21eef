//! The worker registry: which worker processes are alive, and what happens to the jobs of those
//! that are not.
//!
//! A worker is alive while its heartbeat is fresher than `lease_seconds` and, when it runs on
//! this host, its PID exists with the same start time as recorded (PIDs get reused). The jobs of
//! a worker that is not alive are "lost": each is handled as a failed attempt with the error
//! `worker lost`, so a job that keeps crashing its worker ends in the DLQ instead of looping.

use crate::backoff::RetryDecision;
use crate::config::Settings;
use crate::error::Result;
use crate::job::{Job, State};
use crate::store::{FinishedAttempt, Store, WorkerRecord};
use crate::time::{now_ms, Millis};

/// This machine's host name.
pub fn host_name() -> String {
    let mut buffer = [0u8; 256];
    // SAFETY: the buffer is valid for its length and gethostname NUL-terminates within it.
    let rc = unsafe { libc::gethostname(buffer.as_mut_ptr().cast(), buffer.len()) };
    if rc != 0 {
        return "localhost".to_string();
    }
    let end = buffer.iter().position(|&b| b == 0).unwrap_or(buffer.len());
    String::from_utf8_lossy(&buffer[..end]).into_owned()
}

/// The start time of a process (field 22 of `/proc/PID/stat`, in clock ticks since boot), or
/// `None` if there is no such process.
pub fn process_start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: split after its last ')'.
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(19)?.parse().ok()
}

/// True if a process with this PID exists (and, when given, started at `start_time`).
pub fn process_alive(pid: u32, start_time: Option<u64>) -> bool {
    if pid == 0 || pid > i32::MAX as u32 {
        return false;
    }
    match process_start_time(pid) {
        Some(actual) => {
            // A zombie has exited: it holds no jobs, only its parent has not reaped it yet.
            let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| s.rfind(')').map(|i| s[i + 1..].trim_start().starts_with('Z')))
                .unwrap_or(false);
            !zombie && start_time.map(|expected| expected == actual).unwrap_or(true)
        }
        None => {
            // No /proc entry we can read (no /proc, or hidepid hides other users' processes):
            // ask the kernel. EPERM means the process exists but is not ours to signal.
            // SAFETY: signal 0 only checks for the process's existence.
            let rc = unsafe { libc::kill(pid as libc::pid_t, 0) };
            rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
        }
    }
}

/// Whether a recorded worker is alive at `now`.
///
/// On this host the process table decides: a worker whose PID exists with the recorded start
/// time is alive however old its heartbeat (a worker paused with SIGSTOP, or waiting long for a
/// lock, still owns processes that run its jobs: recovering them would run a job twice at
/// once), and one whose PID is gone is dead at once. On another host only the heartbeat can
/// tell: the worker is presumed dead after twice `lease_seconds` of silence, a margin for clock
/// skew and slow disks.
pub fn worker_alive(worker: &WorkerRecord, now: Millis, lease_seconds: u64, this_host: &str) -> bool {
    if worker.host == this_host {
        return process_alive(worker.pid, worker.proc_start);
    }
    now - worker.heartbeat_at <= (lease_seconds as i64) * 2000
}

/// What [`reap`] found and did.
#[derive(Debug, Clone, Default)]
pub struct ReapReport {
    /// Worker rows removed because their process is gone.
    pub removed_workers: Vec<WorkerRecord>,
    /// Jobs recovered, with the state each was moved to.
    pub recovered: Vec<(String, State)>,
}

/// Removes the rows of dead workers and recovers every `processing` job whose worker is not
/// alive: each counts as a failed attempt with the error `worker lost`. One transaction.
pub fn reap(
    store: &mut Store,
    settings: &Settings,
    keep_alive: Option<&str>,
) -> Result<(Vec<WorkerRecord>, ReapReport)> {
    let now = now_ms();
    let host = host_name();
    let alive = |worker: &WorkerRecord| {
        keep_alive == Some(worker.id.as_str()) || worker_alive(worker, now, settings.lease_seconds, &host)
    };
    let lost = |job: &Job| lost_attempt(job, settings, now);
    let (removed, live, recovered) = store.reap_workers(&alive, &lost)?;
    let report = ReapReport {
        removed_workers: removed,
        recovered: recovered.into_iter().map(|(job, f)| (job.id, f.new_state)).collect(),
    };
    Ok((live, report))
}

fn lost_attempt(job: &Job, settings: &Settings, now: Millis) -> FinishedAttempt {
    let attempts = job.attempts + 1;
    let (new_state, run_at) = match settings.retry_policy(job.max_retries).decide(attempts) {
        RetryDecision::RetryAfter(delay) => (State::Failed, Some(now + delay.as_millis() as i64)),
        RetryDecision::Dead => (State::Dead, None),
    };
    FinishedAttempt {
        job_seq: job.seq,
        lease: job.lease,
        attempts,
        outcome: "lost",
        new_state,
        run_at,
        started_at: job.started_at,
        finished_at: now,
        exit_code: None,
        error: Some(format!(
            "worker lost{}",
            job.worker.as_ref().map(|w| format!(" ({w})")).unwrap_or_default()
        )),
        stdout: None,
        stderr: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_wrong_start_time_is_not() {
        let pid = std::process::id();
        let start = process_start_time(pid).expect("start time of self");
        assert!(process_alive(pid, Some(start)));
        assert!(!process_alive(pid, Some(start + 1)));
        assert!(!process_alive(0, None));
    }
}
