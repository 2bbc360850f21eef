//! `queuectl health`: one exit code a monitor can act on.
//!
//! Exit 0 when every check holds, 1 with one line per failed check otherwise, 2 only for bad
//! flags. A missing or uninitialised home, or a database that does not answer, is "unhealthy"
//! (1), not a usage error: the monitor asked the right question and the answer is bad.

use super::output::print_json;
use super::Verdict;
use anyhow::Result;
use clap::Args;
use queuectl::error::Error;
use queuectl::time::{format_duration, now_ms, parse_duration};
use queuectl::{Home, Queue};
use serde_json::json;
use std::time::Duration;

/// Arguments of `queuectl health`.
#[derive(Debug, Args)]
pub struct HealthArgs {
    /// Unhealthy when the oldest due job (pending, or failed with its retry due) has waited
    /// longer than this since it fell due, e.g. 10m
    #[arg(long, value_name = "DURATION")]
    pub max_pending_age: Option<String>,

    /// Unhealthy when fewer worker threads than this are live (counted as `status` counts them)
    #[arg(long, value_name = "N")]
    pub min_workers: Option<u64>,

    /// Print JSON: {"ok": bool, "checks": [{"name", "ok", "detail", ...}]}
    #[arg(long)]
    pub json: bool,
}

/// The result of one check.
struct Check {
    name: &'static str,
    ok: bool,
    detail: String,
    /// Extra fields for `--json` (the measured value and the limit).
    extra: serde_json::Map<String, serde_json::Value>,
}

impl Check {
    fn new(name: &'static str, ok: bool, detail: String) -> Check {
        Check {
            name,
            ok,
            detail,
            extra: serde_json::Map::new(),
        }
    }

    fn with(mut self, key: &str, value: serde_json::Value) -> Check {
        self.extra.insert(key.to_string(), value);
        self
    }
}

/// Runs `queuectl health`.
pub fn run(home: &Home, args: &HealthArgs) -> Result<()> {
    // Flags first: a bad one is the caller's mistake (exit 2), whatever state the queue is in.
    let max_age = match &args.max_pending_age {
        Some(text) => {
            Some(parse_duration(text).map_err(|e| Error::InvalidArgument(format!("--max-pending-age: {e}")))?)
        }
        None => None,
    };
    let checks = run_checks(home, max_age, args.min_workers);
    report(&checks, args.json)
}

fn run_checks(home: &Home, max_age: Option<Duration>, min_workers: Option<u64>) -> Vec<Check> {
    let mut checks = Vec::new();
    let mut queue = match Queue::open(home).and_then(|queue| {
        let counts = queue.store().counts();
        counts.map(|counts| (queue, counts))
    }) {
        Ok((queue, counts)) => {
            checks.push(
                Check::new(
                    "database",
                    true,
                    format!("{} answers ({})", home.db(), super::jobs(counts.total())),
                )
                .with("jobs", counts.total().into()),
            );
            queue
        }
        Err(e) => {
            // Nothing else can be checked without the database.
            checks.push(Check::new("database", false, e.to_string()));
            return checks;
        }
    };
    // A broken config file keeps new workers from starting and running ones on old settings:
    // unhealthy. The other checks still run, with the file left out as read-only commands do.
    match queue.settings() {
        Ok(_) => checks.push(Check::new("config", true, "settings are valid".into())),
        Err(e) => {
            checks.push(Check::new("config", false, e.to_string()));
            let _ = queue.tolerate_broken_config_file();
        }
    }
    if let Some(limit) = max_age {
        checks.push(pending_age_check(&queue, limit));
    }
    if let Some(minimum) = min_workers {
        checks.push(workers_check(&mut queue, minimum));
    }
    checks
}

/// The oldest due job's wait, from the `jobs_due` index (the earliest `run_at` among waiting
/// jobs), so the check costs the same on a queue of millions.
fn pending_age_check(queue: &Queue, limit: Duration) -> Check {
    let limit_text = format_duration(limit);
    let now = now_ms();
    match queue.store().next_run_at(&[]) {
        Err(e) => Check::new("pending_age", false, format!("could not read the queue: {e}")),
        Ok(Some(run_at)) if run_at <= now => {
            let age = Duration::from_millis((now - run_at) as u64);
            let ok = age <= limit;
            let detail = if ok {
                format!(
                    "the oldest due job has waited {} (limit {limit_text})",
                    format_duration(age)
                )
            } else {
                format!(
                    "the oldest due job has waited {}, longer than --max-pending-age {limit_text}",
                    format_duration(age)
                )
            };
            Check::new("pending_age", ok, detail)
                .with("age_seconds", json!(age.as_secs_f64()))
                .with("limit_seconds", json!(limit.as_secs_f64()))
        }
        Ok(_) => Check::new("pending_age", true, "no job is due".into())
            .with("age_seconds", serde_json::Value::Null)
            .with("limit_seconds", json!(limit.as_secs_f64())),
    }
}

fn workers_check(queue: &mut Queue, minimum: u64) -> Check {
    match queue.status() {
        Err(e) => Check::new("workers", false, format!("could not count the workers: {e}")),
        Ok(status) => {
            let threads: u64 = status.workers.iter().map(|w| u64::from(w.threads)).sum();
            let processes = status.workers.len();
            let counted = format!(
                "{threads} worker thread{} live in {processes} process{}",
                if threads == 1 { "" } else { "s" },
                if processes == 1 { "" } else { "es" }
            );
            let ok = threads >= minimum;
            let detail = if ok {
                format!("{counted} (minimum {minimum})")
            } else {
                format!("{counted}, fewer than --min-workers {minimum}")
            };
            Check::new("workers", ok, detail)
                .with("worker_threads", threads.into())
                .with("worker_processes", processes.into())
                .with("minimum", minimum.into())
        }
    }
}

fn report(checks: &[Check], as_json: bool) -> Result<()> {
    let ok = checks.iter().all(|c| c.ok);
    if as_json {
        let items: Vec<serde_json::Value> = checks
            .iter()
            .map(|c| {
                let mut item = serde_json::Map::new();
                item.insert("name".into(), c.name.into());
                item.insert("ok".into(), c.ok.into());
                item.insert("detail".into(), c.detail.clone().into());
                item.extend(c.extra.clone());
                serde_json::Value::Object(item)
            })
            .collect();
        print_json(&json!({"ok": ok, "checks": items}));
    } else {
        for check in checks {
            println!(
                "{} {}: {}",
                if check.ok { "ok  " } else { "FAIL" },
                check.name,
                check.detail
            );
        }
    }
    if ok {
        return Ok(());
    }
    let failed: Vec<&str> = checks.iter().filter(|c| !c.ok).map(|c| c.name).collect();
    Err(Verdict {
        code: 1,
        message: format!("unhealthy: {}", failed.join(", ")),
    }
    .into())
}
