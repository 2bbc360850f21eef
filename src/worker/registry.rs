//! The worker registry: which worker processes are alive, and what happens to the jobs of those
//! that are not.
//!
//! A worker is alive while its heartbeat is fresher than `lease_seconds` and, when it runs on
//! this host, its PID exists with the same start time as recorded (PIDs get reused). The jobs of
//! a worker that is not alive are "lost": each is handled as a failed attempt with the error
//! `worker lost`, so a job that keeps crashing its worker ends in the DLQ instead of looping.

use super::orphans::{self, OrphanKiller, Verdict};
use crate::config::Settings;
use crate::error::Result;
use crate::job::{Job, State};
use crate::lifecycle::{settle, AttemptEnd};
use crate::store::{AttemptOutcome, FinishedAttempt, Store, WorkerRecord};
use crate::time::{now_ms, Millis};
use std::collections::BTreeSet;

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

pub use crate::process::{process_alive, process_start_time};

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
    /// Lost jobs on this host whose run still has processes: being stopped (SIGTERM, then
    /// SIGKILL after `stop_grace_seconds`), or held (something left cannot be signalled), with
    /// the reason. They stay `processing` until nothing of the run is left.
    pub held: Vec<(String, String)>,
    /// How many of `held` are being stopped now (reap again soon to recover them).
    pub stopping: usize,
}

/// The host part of a worker id (`HOST:PID:STARTED_MS`).
pub fn worker_id_host(worker_id: &str) -> Option<&str> {
    let mut parts = worker_id.rsplitn(3, ':');
    let (_, _, host) = (parts.next()?, parts.next()?, parts.next()?);
    Some(host)
}

/// Recovers the jobs of workers that are not alive, and removes those workers' rows.
///
/// A lost job on this host is recovered only once nothing of its run is left: `killer` stops
/// the run's leftover processes first (see `worker/orphans.rs`), over as many calls as
/// that takes. A lost job on another host is recovered at once: its host is presumed dead, but
/// if it is not (a partition), its run may still be going there, so across hosts delivery is
/// at-least-once. The recovery itself is one transaction.
pub fn reap(
    store: &mut dyn Store,
    settings: &Settings,
    keep_alive: Option<&str>,
    killer: &mut OrphanKiller,
) -> Result<ReapReport> {
    let now = now_ms();
    let host = host_name();
    let alive = |worker: &WorkerRecord| {
        keep_alive == Some(worker.id.as_str()) || worker_alive(worker, now, settings.lease_seconds, &host)
    };
    let workers = store.workers()?;
    let (live, dead): (Vec<&WorkerRecord>, Vec<&WorkerRecord>) = workers.iter().partition(|w| alive(w));
    let orphans: Vec<Job> = store
        .list_jobs(Some(State::Processing), None)?
        .into_iter()
        .filter(|job| {
            !job.worker
                .as_ref()
                .map(|w| live.iter().any(|l| &l.id == w))
                .unwrap_or(false)
        })
        .collect();
    let mut report = ReapReport::default();
    if orphans.is_empty() && dead.is_empty() {
        return Ok(report);
    }
    let grace = std::time::Duration::from_secs(settings.stop_grace_seconds);
    let mut procs: Option<Vec<orphans::ProcEntry>> = None;
    let mut recoverable = BTreeSet::new();
    let mut waiting = BTreeSet::new();
    for job in &orphans {
        let worker_id = job.worker.as_deref().unwrap_or("");
        let row = dead.iter().find(|w| w.id == worker_id);
        let job_host = row.map(|w| w.host.as_str()).or_else(|| worker_id_host(worker_id));
        if job_host != Some(host.as_str()) {
            recoverable.insert((job.seq, job.lease));
            continue;
        }
        let procs = procs.get_or_insert_with(|| orphans::scan(&store.location().identity()));
        let leader = row.and_then(|w| orphans::recorded_leaders(&w.slots).get(&job.id).copied());
        match killer.step(procs, &job.id, job.lease, leader, grace) {
            Verdict::Gone => {
                recoverable.insert((job.seq, job.lease));
            }
            Verdict::Stopping => {
                report.stopping += 1;
                waiting.insert((job.id.clone(), job.lease));
                let left = orphans::find(procs, &job.id, job.lease, leader);
                report.held.push((job.id.clone(), orphans::held_reason(&left)));
            }
            Verdict::Held(reason) => {
                waiting.insert((job.id.clone(), job.lease));
                report.held.push((job.id.clone(), reason));
            }
        }
    }
    killer.retain(&waiting);
    let lost = |job: &Job| {
        recoverable
            .contains(&(job.seq, job.lease))
            .then(|| lost_attempt(job, settings, now))
    };
    let reaped = store.reap_workers(&alive, &lost)?;
    report.removed_workers = reaped.removed;
    report.recovered = reaped
        .recovered
        .into_iter()
        .map(|(job, f)| (job.id, f.new_state))
        .collect();
    Ok(report)
}

/// Why each `processing` job whose worker is gone has not been recovered yet, read-only (for
/// `status`): job id and reason.
pub fn lost_jobs(store: &dyn Store, settings: &Settings) -> Result<Vec<(String, String)>> {
    let now = now_ms();
    let host = host_name();
    let workers = store.workers()?;
    let alive: Vec<&WorkerRecord> = workers
        .iter()
        .filter(|w| worker_alive(w, now, settings.lease_seconds, &host))
        .collect();
    let mut procs: Option<Vec<orphans::ProcEntry>> = None;
    let mut lost = Vec::new();
    for job in store.list_jobs(Some(State::Processing), None)? {
        let worker_id = job.worker.clone().unwrap_or_default();
        if alive.iter().any(|w| w.id == worker_id) {
            continue;
        }
        let row = workers.iter().find(|w| w.id == worker_id);
        let job_host = row.map(|w| w.host.as_str()).or_else(|| worker_id_host(&worker_id));
        let reason = if job_host == Some(host.as_str()) {
            let procs = procs.get_or_insert_with(|| orphans::scan(&store.location().identity()));
            let leader = row.and_then(|w| orphans::recorded_leaders(&w.slots).get(&job.id).copied());
            let left = orphans::find(procs, &job.id, job.lease, leader);
            if left.is_empty() {
                "worker lost; recovered at the next reap (or run `queuectl recover`)".to_string()
            } else {
                format!("worker lost; {}", orphans::held_reason(&left))
            }
        } else {
            "worker on another host presumed dead; recovered at the next reap".to_string()
        };
        lost.push((job.id, reason));
    }
    Ok(lost)
}

fn lost_attempt(job: &Job, settings: &Settings, now: Millis) -> FinishedAttempt {
    let end = AttemptEnd {
        outcome: AttemptOutcome::Lost,
        started_at: job.started_at,
        finished_at: now,
        exit_code: None,
        error: Some(format!(
            "worker lost{}",
            job.worker.as_ref().map(|w| format!(" ({w})")).unwrap_or_default()
        )),
        stdout: None,
        stderr: None,
    };
    settle(job, end, &settings.retry_policy(job.max_retries)).0
}
