//! `queuectl status`.

use super::output::print_json;
use anyhow::Result;
use clap::Args;
use queuectl::time::{format_duration, format_ms, now_ms};
use queuectl::{Queue, State};
use serde_json::json;
use std::time::Duration;

/// Arguments of `queuectl status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print JSON: {"jobs": {...}, "workers": [...], ...}
    #[arg(long)]
    pub json: bool,
}

/// Runs `queuectl status`.
pub fn run(queue: &mut Queue, args: &StatusArgs) -> Result<()> {
    let status = queue.status()?;
    let now = now_ms();
    // `worker start --count 3` says "Started 3 workers": those are threads of one process, so
    // the totals count threads and name the processes separately, and the numbers agree.
    let total_threads: u64 = status.workers.iter().map(|w| u64::from(w.threads)).sum();
    let total_busy: usize = status
        .workers
        .iter()
        .map(|w| w.slots.as_array().map(|s| s.len()).unwrap_or(0))
        .sum();
    if args.json {
        let mut jobs = serde_json::Map::new();
        for state in State::ALL {
            jobs.insert(state.as_str().into(), status.counts.get(state).into());
        }
        let workers: Vec<serde_json::Value> = status
            .workers
            .iter()
            .map(|w| {
                json!({
                    "id": w.id,
                    "pid": w.pid,
                    "host": w.host,
                    "threads": w.threads,
                    "busy": w.slots.as_array().map(|s| s.len()).unwrap_or(0),
                    "kinds": w.kinds,
                    "started_at": format_ms(w.started_at),
                    "heartbeat_at": format_ms(w.heartbeat_at),
                    "stopping": w.stopping,
                    "running": running_json(&w.slots),
                    "version": w.version,
                })
            })
            .collect();
        print_json(&json!({
            "jobs": jobs,
            "total": status.counts.total(),
            "due_now": status.due_now,
            "scheduled": status.scheduled,
            "waiting_by_kind": status.waiting_by_kind,
            "workers": workers,
            "worker_pids": status.workers.iter().map(|w| w.pid).collect::<Vec<_>>(),
            "lost_jobs": status
                .lost_jobs
                .iter()
                .map(|(id, reason)| json!({"id": id, "reason": reason}))
                .collect::<Vec<_>>(),
            "worker_processes": status.workers.len(),
            "worker_threads": total_threads,
            "worker_threads_busy": total_busy,
            "home": queue.home().root(),
        }));
        return Ok(());
    }
    let mut out = String::from("jobs:\n");
    for state in State::ALL {
        let extra = if state == State::Pending {
            format!(
                "   (waiting: {} due now, {} scheduled later)",
                status.due_now, status.scheduled
            )
        } else {
            String::new()
        };
        out.push_str(&format!(
            "  {:<11} {:>8}{}\n",
            state.as_str(),
            status.counts.get(state),
            extra
        ));
    }
    if status.waiting_by_kind.len() > 1 || status.waiting_by_kind.keys().any(|k| k != "shell") {
        let kinds: Vec<String> = status.waiting_by_kind.iter().map(|(k, n)| format!("{k} {n}")).collect();
        out.push_str(&format!("  waiting by kind: {}\n", kinds.join(", ")));
    }
    if status.workers.is_empty() {
        out.push_str("workers: none running\n");
    } else {
        let pids: Vec<String> = status.workers.iter().map(|w| w.pid.to_string()).collect();
        let processes = status.workers.len();
        out.push_str(&format!(
            "workers: {total_threads} thread{} in {processes} process{}, {total_busy} busy (PID{}: {})\n",
            if total_threads == 1 { "" } else { "s" },
            if processes == 1 { "" } else { "es" },
            if processes == 1 { "" } else { "s" },
            pids.join(", ")
        ));
        for w in &status.workers {
            let busy = w.slots.as_array().map(|s| s.len()).unwrap_or(0);
            let up = format_duration(Duration::from_millis((now - w.started_at).max(0) as u64));
            out.push_str(&format!(
                "  PID {}  threads {}  busy {}  up {}  host {}{}\n",
                w.pid,
                w.threads,
                busy,
                up,
                w.host,
                if w.stopping { "  (stopping)" } else { "" }
            ));
            for slot in w.slots.as_array().into_iter().flatten() {
                let since = slot["started_at"].as_i64().unwrap_or(now);
                out.push_str(&format!(
                    "    [{}/{}] job {} (pid {}, {}): {}\n",
                    w.pid,
                    slot["thread"],
                    slot["job"].as_str().unwrap_or("?"),
                    slot["pid"]
                        .as_u64()
                        .map(|p| p.to_string())
                        .unwrap_or_else(|| "-".into()),
                    format_duration(Duration::from_millis((now - since).max(0) as u64)),
                    super::output::cut(slot["command"].as_str().unwrap_or(""), 60),
                ));
            }
        }
    }
    if !status.lost_jobs.is_empty() {
        out.push_str(&format!(
            "lost jobs (processing, worker gone): {}\n",
            status.lost_jobs.len()
        ));
        for (id, reason) in &status.lost_jobs {
            out.push_str(&format!("  job {id}: {reason}\n"));
        }
    }
    print!("{out}");
    Ok(())
}

/// The worker row's running slots for `--json`, with times in RFC 3339 like every other time.
fn running_json(slots: &serde_json::Value) -> serde_json::Value {
    let mut slots = slots.clone();
    for slot in slots.as_array_mut().into_iter().flatten() {
        if let Some(started) = slot.get("started_at").and_then(|v| v.as_i64()) {
            slot["started_at"] = format_ms(started).into();
        }
    }
    slots
}
