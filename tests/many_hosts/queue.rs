//! Looking at the shared queue and the hosts' runs: waiting for completion, `list --json`,
//! `health`, the server's connections, the host of a worker id, sleeping jobs and where they
//! started.

use super::cluster::Cluster;
use super::host::{shown, Host};
use super::{run_output, runs, wait_until};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Duration;

/// Polling interval for the queue's state (each poll runs `queuectl status`).
pub const POLL: Duration = Duration::from_millis(200);

/// Enqueues jobs tagged `tags` that sleep `seconds`, from inside `host`.
pub fn enqueue_sleepers(cluster: &Cluster, host: &Host, tags: &[String], seconds: u32) {
    let jobs: String = tags
        .iter()
        .map(|tag| {
            let command = runs::command(&cluster.runs, tag, Some(seconds));
            format!("{}\n", json!({ "id": tag, "command": command }))
        })
        .collect();
    let file = cluster.scratch.join(format!("{}.ndjson", tags[0]));
    std::fs::write(&file, jobs).expect("write the jobs");
    let enqueue = run_output(&mut host.inside(["enqueue", "--file", &file.display().to_string()]))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        enqueue.status.success(),
        "enqueue from {}: {}",
        host.name,
        shown(&enqueue)
    );
}

/// The tags among `tags` whose job has a run that started on `host`.
pub fn started_on(cluster: &Cluster, tags: &[String], host: &str) -> Vec<String> {
    tags.iter()
        .filter(|tag| {
            runs::records(&cluster.runs, tag)
                .iter()
                .any(|r| r.host == host && r.event == "start")
        })
        .cloned()
        .collect()
}

/// Polls `status --json` until `total` jobs are completed; fails at once if a job dies.
pub fn wait_all_completed(cluster: &Cluster, observer: &Host, total: usize, timeout: Duration) {
    wait_until(
        &format!("all {total} jobs completed"),
        timeout,
        POLL,
        || cluster.logs(),
        || {
            let status = observer.status();
            assert_eq!(status["jobs"]["dead"], 0, "a job died: {status:#}\n{}", cluster.logs());
            match status["jobs"]["completed"] == total {
                true => Ok(()),
                false => Err(format!("jobs {}", status["jobs"])),
            }
        },
    );
}

/// `queuectl health --min-workers N` inside `host`: healthy or not, as expected.
#[track_caller]
pub fn assert_health(host: &Host, min_threads: usize, healthy: bool) {
    let output = run_output(&mut host.inside(["health", "--min-workers", &min_threads.to_string()]))
        .unwrap_or_else(|e| panic!("{e}"));
    let expected = if healthy { 0 } else { 1 };
    assert_eq!(
        output.status.code(),
        Some(expected),
        "health --min-workers {min_threads} on {}: {}",
        host.name,
        shown(&output)
    );
    if !healthy {
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            stdout.contains("FAIL workers"),
            "the workers check failed: {}",
            shown(&output)
        );
    }
}

/// The server's client connections to the queue's database, counted by client address.
pub fn connections(cluster: &Cluster) -> BTreeMap<String, usize> {
    let rows = cluster
        .postgres
        .query("SELECT client_addr, count(*) FROM pg_stat_activity WHERE datname = 'postgres' AND client_addr IS NOT NULL GROUP BY 1")
        .unwrap_or_else(|e| panic!("{e}"));
    rows.lines()
        .filter_map(|line| {
            let (address, count) = line.split_once('|')?;
            Some((address.to_string(), count.trim().parse().ok()?))
        })
        .collect()
}

/// Every job (`list --json`) by id.
pub fn jobs_by_id(host: &Host) -> BTreeMap<String, Value> {
    let text = host.query(&["list", "--json"]);
    let jobs: Vec<Value> = serde_json::from_str(&text).unwrap_or_else(|e| panic!("list --json: {e}"));
    jobs.into_iter()
        .map(|job| (job["id"].as_str().expect("an id").to_string(), job))
        .collect()
}

/// The host part of a worker id (`HOST:PID:STARTED_MS`).
pub fn host_of(worker: &str) -> &str {
    worker.rsplitn(3, ':').nth(2).unwrap_or("")
}

/// The host of the worker that last ran a job.
pub fn worker_host(job: &Value) -> &str {
    host_of(job["worker"].as_str().unwrap_or(""))
}

/// The host of the worker of one attempt in a job's history.
pub fn attempt_host(attempt: &Value) -> &str {
    host_of(attempt["worker"].as_str().unwrap_or(""))
}

/// The hosts of the live workers `status --json` lists, sorted.
pub fn worker_hosts(status: &Value) -> Vec<String> {
    let mut hosts: Vec<String> = status["workers"]
        .as_array()
        .map(|workers| {
            workers
                .iter()
                .map(|w| w["host"].as_str().unwrap_or("?").to_string())
                .collect()
        })
        .unwrap_or_default();
    hosts.sort();
    hosts
}
