//! Black-box tests of the workers: the built binary, real processes, real signals. Nothing
//! sleeps to wait for something: every wait polls a condition with a deadline, and every process
//! a test starts has a kill guard. Liveness and recovery across hosts are in `liveness.rs`.

mod common;

use common::process::{process_gone, read_pid, worker_pids, KillListedOnDrop, KillOnDrop, Worker, LONG, SHORT};
use common::{millis, now_millis, wait_until, TestHome};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// Runs `worker start --until-empty` (with a deadline) and returns its output.
#[track_caller]
fn drain(home: &TestHome, count: usize) -> String {
    let count = count.to_string();
    let mut worker = Worker::spawn(home, &["--until-empty", "--count", &count]);
    // 0, or 3 when a job died during the run; the tests check the jobs' states themselves.
    let status = worker.wait_exit(LONG);
    assert!(
        matches!(status.code(), Some(0 | 3)),
        "worker exit status {status}; output:\n{}",
        worker.output()
    );
    worker.output()
}

/// Enqueues one job (or an array of jobs) given as JSON.
#[track_caller]
fn enqueue(home: &TestHome, job: Value) {
    home.run(&["enqueue", &job.to_string()]).ok();
}

/// `queuectl wait IDS --timeout 30s`, asserting it succeeds.
#[track_caller]
fn wait_jobs(home: &TestHome, ids: &[&str]) {
    let mut args = vec!["wait"];
    args.extend_from_slice(ids);
    args.extend_from_slice(&["--timeout", "30s"]);
    // 0 all completed, 3 all finished but some dead; the tests check the states themselves.
    let run = home.run(&args);
    assert!(matches!(run.code, 0 | 3), "`queuectl {}`: {run:#?}", args.join(" "));
}

fn state(home: &TestHome, id: &str) -> String {
    home.job(id)["state"].as_str().unwrap_or("?").to_string()
}

fn job_count(home: &TestHome, state: &str) -> u64 {
    home.status()["jobs"][state].as_u64().expect("count")
}

fn history(job: &Value) -> Vec<Value> {
    job["history"].as_array().expect("history").clone()
}

fn outcomes(job: &Value) -> Vec<String> {
    history(job)
        .iter()
        .map(|a| a["outcome"].as_str().unwrap().to_string())
        .collect()
}

fn read(path: impl AsRef<Path>) -> String {
    std::fs::read_to_string(path.as_ref()).unwrap_or_default()
}

fn sorted_lines(path: impl AsRef<Path>) -> Vec<String> {
    let mut lines: Vec<String> = read(path).lines().map(str::to_string).collect();
    lines.sort();
    lines
}

/// The home directory as the jobs see it (`pwd` prints the resolved path).
fn real_home(home: &TestHome) -> String {
    std::fs::canonicalize(home.path()).unwrap().display().to_string()
}

fn write_config(home: &TestHome, text: &str) {
    std::fs::write(home.path().join("config/queuectl.toml"), text).expect("write config");
}

// ---------------------------------------------------------------------------------------------
// 1. Execution: success, each failure kind, environment, working directory
// ---------------------------------------------------------------------------------------------

#[test]
fn success_and_each_failure_kind_are_recorded() {
    let home = TestHome::new();
    home.run(&["config", "set", "backoff-base", "1"]).ok();
    std::fs::create_dir(home.path().join("sub")).unwrap();
    let jobs = [
        json!({"id": "ok", "command": "echo $QUEUECTL_JOB_ID $QUEUECTL_ATTEMPT $(pwd); echo to-stderr >&2"}),
        json!({"id": "exit3", "command": "exit 3", "max_retries": 0}),
        json!({"id": "notfound", "command": "queuectl_no_such_command_xyz", "max_retries": 0}),
        json!({"id": "killed", "command": "kill -9 $$", "max_retries": 0}),
        json!({"id": "badcwd", "command": "true", "cwd": "/nonexistent/queuectl-test-dir", "max_retries": 0}),
        json!({"id": "envcwd", "command": "echo $GREETING $(pwd)", "cwd": "sub", "env": {"GREETING": "hello world"}}),
        // Fails on its first attempt, succeeds on the retry: QUEUECTL_ATTEMPT counts runs.
        json!({"id": "second", "command": "echo attempt $QUEUECTL_ATTEMPT; [ $QUEUECTL_ATTEMPT -ge 2 ]", "max_retries": 1}),
    ];
    home.run(&["enqueue", &Value::Array(jobs.to_vec()).to_string()]).ok();
    let output = drain(&home, 2);
    let real = real_home(&home);

    let ok = home.job("ok");
    assert_eq!(ok["state"], "completed", "{ok:#}");
    assert_eq!(ok["exit_code"], 0);
    assert_eq!(ok["attempts"], 1);
    assert_eq!(outcomes(&ok), ["completed"]);
    let logs = home.run(&["logs", "ok"]).ok();
    assert_eq!(logs.stdout, format!("ok 1 {real}\n"));
    assert_eq!(logs.stderr, "to-stderr\n");
    assert!(output.contains("Executing job ok: echo"), "{output}");
    assert!(output.contains("Job ok completed ("), "{output}");

    let expect_dead = |id: &str, error_prefix: &str, exit_code: Value| {
        let job = home.job(id);
        assert_eq!(job["state"], "dead", "{job:#}");
        assert_eq!(job["attempts"], 1, "{job:#}");
        let error = job["last_error"].as_str().unwrap_or("");
        assert!(
            error.starts_with(error_prefix),
            "{id}: error {error:?}, expected {error_prefix:?}"
        );
        assert_eq!(job["exit_code"], exit_code, "{id}");
        let attempts = history(&job);
        assert_eq!(attempts.len(), 1, "{job:#}");
        assert_eq!(attempts[0]["outcome"], "failed");
        assert_eq!(attempts[0]["error"], job["last_error"]);
        assert_eq!(attempts[0]["exit_code"], exit_code);
        assert!(
            output.contains(&format!("Job {id} moved to DLQ after 1 attempt: {error_prefix}")),
            "{output}"
        );
    };
    expect_dead("exit3", "exit 3", json!(3));
    expect_dead("notfound", "command not found (exit 127)", json!(127));
    expect_dead("killed", "killed by SIGKILL", Value::Null);
    expect_dead(
        "badcwd",
        "failed to start: working directory /nonexistent/queuectl-test-dir does not exist",
        Value::Null,
    );

    let envcwd = home.job("envcwd");
    assert_eq!(envcwd["state"], "completed", "{envcwd:#}");
    assert_eq!(
        home.run(&["logs", "envcwd"]).ok().stdout,
        format!("hello world {real}/sub\n")
    );

    let second = home.job("second");
    assert_eq!(second["state"], "completed", "{second:#}");
    assert_eq!(second["attempts"], 2);
    assert_eq!(outcomes(&second), ["failed", "completed"]);
    let attempts = history(&second);
    assert_eq!(attempts[0]["stdout_tail"], "attempt 1\n");
    assert_eq!(attempts[0]["error"], "exit 1");
    assert_eq!(attempts[1]["stdout_tail"], "attempt 2\n");
    assert_eq!(home.run(&["logs", "second"]).ok().stdout, "attempt 2\n");
    assert!(
        output.contains("Job second failed (attempt 1 of 2, exit 1), retrying in 1s"),
        "{output}"
    );
    assert!(output.contains("Executing job second (attempt 2)"), "{output}");
}

// ---------------------------------------------------------------------------------------------
// 2. Timeout: the whole process group dies, grandchildren included
// ---------------------------------------------------------------------------------------------

#[test]
fn timeout_kills_the_job_and_its_grandchildren() {
    let home = TestHome::new();
    enqueue(
        &home,
        json!({
            "id": "slow",
            "command": "sh -c 'sleep 30 & echo $! > child.pid; wait'",
            "timeout_seconds": 1,
            "max_retries": 0,
        }),
    );
    let started = Instant::now();
    let output = drain(&home, 1);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the timeout did not end the job soon: {output}"
    );
    let job = home.job("slow");
    assert_eq!(job["state"], "dead", "{job:#}");
    assert_eq!(job["last_error"], "timed out after 1s", "{job:#}");
    let attempt = &history(&job)[0];
    let took = millis(&attempt["finished_at"]) - millis(&attempt["started_at"]);
    assert!((900..8000).contains(&took), "the attempt took {took} ms");
    assert!(
        output.contains("Job slow timed out: sent SIGTERM to its process group"),
        "{output}"
    );

    let grandchild = read_pid(home.path().join("child.pid"));
    let _cleanup = KillOnDrop(vec![grandchild]);
    wait_until("the grandchild `sleep 30` to be gone", SHORT, || {
        process_gone(grandchild)
    });
}

#[test]
fn timeout_ends_a_job_whose_descendant_left_the_group_holding_stdout() {
    // The descendant moves to a session of its own (out of reach of the group kill) and keeps
    // the job's stdout open: the attempt must end when the job's shell is killed, not when that
    // descendant exits.
    let home = TestHome::new();
    home.run(&["config", "set", "max-retries", "0"]).ok();
    enqueue(
        &home,
        json!({
            "id": "t",
            "command": "setsid sleep 120 & echo $! > escapee.pid; echo hi; sleep 120",
            "timeout_seconds": 1,
        }),
    );
    let mut worker = Worker::spawn(&home, &["--until-empty"]);
    let escapee = read_pid(home.path().join("escapee.pid"));
    let _cleanup = KillOnDrop(vec![escapee]);
    // Exit 3: the timed-out job moved to the DLQ during the run.
    worker.wait_code(LONG, 3);
    assert!(
        !process_gone(escapee),
        "the escaped descendant should still hold the pipe when the attempt has ended"
    );
    let job = home.job("t");
    assert_eq!(job["state"], "dead", "{job:#}");
    assert_eq!(job["last_error"], "timed out after 1s");
    assert_eq!(job["stdout"], "hi\n");
}

#[test]
fn config_job_timeout_applies_when_the_job_sets_none() {
    let home = TestHome::new();
    home.run(&["config", "set", "job-timeout-seconds", "1"]).ok();
    home.run(&["config", "set", "stop-grace-seconds", "1"]).ok();
    // Ignores SIGTERM: only the SIGKILL after the grace period ends it.
    enqueue(
        &home,
        json!({"id": "stubborn", "command": "trap '' TERM; echo $$ > stubborn.pid; sleep 30 & wait; wait", "max_retries": 0}),
    );
    let output = drain(&home, 1);
    let job = home.job("stubborn");
    assert_eq!(job["state"], "dead", "{job:#}");
    assert_eq!(job["last_error"], "timed out after 1s", "{job:#}");
    assert!(
        output.contains("Job stubborn timed out: sent SIGKILL to its process group"),
        "{output}"
    );
    let pid = read_pid(home.path().join("stubborn.pid"));
    wait_until("the job's shell to be gone", SHORT, || process_gone(pid));
}

// ---------------------------------------------------------------------------------------------
// 3. Output cap
// ---------------------------------------------------------------------------------------------

#[test]
fn output_is_capped_to_its_tail_with_a_marker() {
    let home = TestHome::new();
    home.run(&["config", "set", "output-limit-bytes", "1000"]).ok();
    enqueue(
        &home,
        json!({
            "id": "chatty",
            "command": "head -c 100000 /dev/zero | tr '\\000' x; printf '\\nEND\\n'; \
                        head -c 5000 /dev/zero | tr '\\000' e >&2; printf '\\nERR-END\\n' >&2",
        }),
    );
    drain(&home, 1);
    assert_eq!(state(&home, "chatty"), "completed");
    let logs = home.run(&["logs", "chatty"]).ok();

    // stdout: 100,005 bytes written, the last 1,000 kept.
    let marker = "[queuectl: output truncated, first 99005 of 100005 bytes dropped]\n";
    assert!(
        logs.stdout.starts_with(marker),
        "{:?}",
        &logs.stdout[..logs.stdout.len().min(200)]
    );
    assert!(logs.stdout.len() <= 1100, "stdout kept {} bytes", logs.stdout.len());
    let kept = &logs.stdout[marker.len()..];
    assert_eq!(kept.len(), 1000);
    assert!(kept.ends_with("x\nEND\n"), "{kept:?}");
    assert!(kept.trim_end_matches("\nEND\n").chars().all(|c| c == 'x'));
    assert!(!logs.stdout.contains("ERR-END"), "stderr leaked into stdout");

    // stderr: captured separately with its own cap.
    let marker = "[queuectl: output truncated, first 4009 of 5009 bytes dropped]\n";
    assert!(
        logs.stderr.starts_with(marker),
        "{:?}",
        &logs.stderr[..logs.stderr.len().min(200)]
    );
    assert_eq!(logs.stderr.len(), marker.len() + 1000);
    assert!(logs.stderr.ends_with("e\nERR-END\n"));
    let kept = &logs.stderr[marker.len()..];
    assert!(
        kept.trim_end_matches("\nERR-END\n").chars().all(|c| c == 'e'),
        "{kept:?}"
    );

    let job = home.job("chatty");
    assert_eq!(job["stdout"].as_str(), Some(logs.stdout.as_str()));
    assert_eq!(job["stderr"].as_str(), Some(logs.stderr.as_str()));
}

// ---------------------------------------------------------------------------------------------
// 4. Backoff schedule
// ---------------------------------------------------------------------------------------------

#[test]
fn backoff_schedule_follows_base_to_the_power_of_attempts() {
    let home = TestHome::new();
    home.run(&["config", "set", "backoff-base", "1.5"]).ok();
    home.run(&["config", "set", "max-retries", "3"]).ok();
    enqueue(&home, json!({"id": "flaky", "command": "exit 1"}));
    let output = drain(&home, 1);

    let job = home.job("flaky");
    assert_eq!(job["state"], "dead", "{job:#}");
    assert_eq!(job["attempts"], 4);
    let attempts = history(&job);
    assert_eq!(attempts.len(), 4, "{job:#}");
    for (n, attempt) in attempts.iter().enumerate() {
        assert_eq!(attempt["attempt"], n + 1, "{job:#}");
        assert_eq!(attempt["outcome"], "failed");
        assert_eq!(attempt["error"], "exit 1");
    }
    let starts: Vec<i64> = attempts.iter().map(|a| millis(&a["started_at"])).collect();
    for (n, expected) in [1.5f64, 2.25, 3.375].into_iter().enumerate() {
        // Generous above (a loaded machine starts a due job late); the exact delays are
        // checked below from single clock readings.
        let gap = (starts[n + 1] - starts[n]) as f64 / 1000.0;
        assert!(
            gap >= expected - 0.05 && gap <= expected + 3.0,
            "gap between attempts {} and {} is {gap}s, expected about {expected}s; starts {starts:?}",
            n + 1,
            n + 2
        );
        // The next run is scheduled base^n after the attempt ended, and not started before.
        let finished = millis(&attempts[n]["finished_at"]);
        let delay = (starts[n + 1] - finished) as f64 / 1000.0;
        assert!(
            delay >= expected - 0.002,
            "attempt {} started {delay}s after the previous ended",
            n + 2
        );
    }
    // The last retry was scheduled 1.5^3 = 3.375 s after the third attempt ended (one clock
    // reading), and the dead job keeps that `run_at`.
    assert_eq!(
        millis(&job["run_at"]) - millis(&attempts[2]["finished_at"]),
        3375,
        "{job:#}"
    );
    assert!(
        output.contains("Job flaky failed (attempt 1 of 4, exit 1), retrying in 1.5s"),
        "{output}"
    );
    assert!(
        output.contains("Job flaky failed (attempt 2 of 4, exit 1), retrying in 2.25s"),
        "{output}"
    );
    assert!(
        output.contains("Job flaky failed (attempt 3 of 4, exit 1), retrying in 3.3"),
        "{output}"
    );
    assert!(
        output.contains("Job flaky moved to DLQ after 4 attempts: exit 1"),
        "{output}"
    );
}

// ---------------------------------------------------------------------------------------------
// 5. DLQ after exactly max_retries + 1 runs; dlq retry runs it again
// ---------------------------------------------------------------------------------------------

#[test]
fn dlq_after_exactly_max_retries_plus_one_runs_and_dlq_retry_runs_it_again() {
    let home = TestHome::new();
    home.run(&["config", "set", "backoff-base", "1"]).ok();
    // The job's own max_retries (2) wins over config's (3).
    enqueue(
        &home,
        json!({"id": "dlq1", "command": "echo run >> runs.txt; [ -f flag ]", "max_retries": 2}),
    );
    let output = drain(&home, 1);
    let runs = home.path().join("runs.txt");
    assert_eq!(read(&runs).lines().count(), 3, "runs: {:?}", read(&runs));
    let job = home.job("dlq1");
    assert_eq!(job["state"], "dead", "{job:#}");
    assert_eq!(job["attempts"], 3);
    assert_eq!(outcomes(&job), ["failed", "failed", "failed"]);
    assert!(
        output.contains("Job dlq1 moved to DLQ after 3 attempts: exit 1"),
        "{output}"
    );
    let dlq = home.run(&["dlq", "list", "--json"]).ok().json();
    assert_eq!(dlq.as_array().unwrap().len(), 1);
    assert_eq!(dlq[0]["id"], "dlq1");

    // Fix the cause, retry from the DLQ: attempts reset, the history is kept.
    std::fs::write(home.path().join("flag"), "").unwrap();
    let retry = home.run(&["dlq", "retry", "dlq1"]).ok();
    assert_eq!(retry.stdout, "dlq1: moved from the DLQ back to pending\n", "{retry:?}");
    let job = home.job("dlq1");
    assert_eq!(job["state"], "pending");
    assert_eq!(job["attempts"], 0);
    assert_eq!(history(&job).len(), 3);

    drain(&home, 1);
    assert_eq!(read(&runs).lines().count(), 4);
    let job = home.job("dlq1");
    assert_eq!(job["state"], "completed", "{job:#}");
    assert_eq!(job["attempts"], 1);
    assert_eq!(outcomes(&job), ["failed", "failed", "failed", "completed"]);
    assert_eq!(history(&job)[3]["attempt"], 1);
    assert_eq!(home.run(&["dlq", "list", "--json"]).ok().json(), json!([]));
}

// ---------------------------------------------------------------------------------------------
// 6. Claim order and run_at
// ---------------------------------------------------------------------------------------------

#[test]
fn one_thread_runs_jobs_by_priority_then_enqueue_order() {
    let home = TestHome::new();
    let mut worker = Worker::start(&home, &["--count", "1"]);
    // One batch (one transaction) while the worker is idle: it sees all four at once.
    let batch = [("p0a", 0), ("p5", 5), ("pm1", -1), ("p0b", 0)]
        .iter()
        .map(|(id, priority)| {
            json!({"id": id, "command": format!("echo {id} >> order.txt"), "priority": priority}).to_string()
        })
        .collect::<Vec<_>>()
        .join("\n");
    home.run_with_stdin(&["enqueue", "-"], &batch).ok();
    wait_jobs(&home, &["p0a", "p5", "pm1", "p0b"]);
    let order: Vec<String> = read(home.path().join("order.txt"))
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(order, ["p5", "p0a", "p0b", "pm1"]);
    worker.signal(libc::SIGTERM);
    worker.wait_success(SHORT);
}

#[test]
fn a_delayed_job_starts_when_due_and_not_before() {
    let home = TestHome::new();
    let mut worker = Worker::start(&home, &["--count", "1"]);
    enqueue(&home, json!({"id": "later", "command": "true", "delay_seconds": 2}));
    enqueue(&home, json!({"id": "now", "command": "true"}));
    wait_jobs(&home, &["later", "now"]);
    let later = home.job("later");
    let run_at = millis(&later["run_at"]);
    let created = millis(&later["created_at"]);
    // `run_at` is the enqueue's clock reading plus 2 s, `created_at` a reading taken a moment
    // later when the row is written: so at most 2 s apart, and not much less.
    assert!(
        (1000..=2000).contains(&(run_at - created)),
        "run_at {run_at} created_at {created}"
    );
    // The claim requires `run_at <= now`, and the attempt's `started_at` is that claim's `now`.
    let started = millis(&history(&later)[0]["started_at"]);
    assert!(started >= run_at, "started {} ms before its run_at", run_at - started);
    // Generous: an idle worker sleeps until the next due job, it does not poll once a minute.
    assert!(
        started - run_at < 5000,
        "started {} ms after its run_at",
        started - run_at
    );
    // The job enqueued after it, due at once, did not wait for it.
    let now_started = millis(&history(&home.job("now"))[0]["started_at"]);
    assert!(now_started < run_at, "the due job waited for the delayed one");
    worker.signal(libc::SIGTERM);
    worker.wait_success(SHORT);
}

// ---------------------------------------------------------------------------------------------
// 7. Graceful stop, and a second signal
// ---------------------------------------------------------------------------------------------

#[test]
fn sigterm_lets_the_running_job_finish_and_exits_zero() {
    let home = TestHome::new();
    let mut worker = Worker::start(&home, &["--count", "2"]);
    // The job runs until the test releases it, so the signal surely lands while it runs.
    enqueue(
        &home,
        json!({"id": "mid", "command": "echo $$ > mid.pid; while [ ! -f release ]; do sleep 0.05; done; echo done > f.txt"}),
    );
    let pid = read_pid(home.path().join("mid.pid"));
    let _cleanup = KillOnDrop(vec![pid]);
    worker.signal(libc::SIGTERM);
    wait_until("the worker to record that it is stopping", SHORT, || {
        home.status()["workers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w["stopping"] == true)
    });
    // A job enqueued after the stop request is not claimed.
    enqueue(&home, json!({"id": "after-stop", "command": "true"}));
    assert!(
        worker.is_running(),
        "the worker exited with a job running: {}",
        worker.output()
    );
    assert!(!process_gone(pid), "SIGTERM must not kill the running job");
    assert_eq!(state(&home, "mid"), "processing");
    std::fs::write(home.path().join("release"), "").unwrap();
    worker.wait_success(SHORT);
    let output = worker.output();
    assert!(
        output.contains("Stopping: waiting for 1 running job to finish"),
        "{output}"
    );
    assert!(output.contains("Job mid completed"), "{output}");
    assert_eq!(state(&home, "mid"), "completed");
    assert_eq!(read(home.path().join("f.txt")), "done\n");
    assert_eq!(state(&home, "after-stop"), "pending");
    let status = home.status();
    assert_eq!(status["jobs"]["processing"], 0, "{status:#}");
    assert_eq!(status["workers"], json!([]), "{status:#}");
}

#[test]
fn a_second_signal_kills_the_job_and_puts_it_back_to_pending() {
    let home = TestHome::new();
    let mut worker = Worker::start(&home, &["--count", "1"]);
    enqueue(
        &home,
        json!({"id": "long", "command": "echo $$ > long.pid; exec sleep 30"}),
    );
    let pid = read_pid(home.path().join("long.pid"));
    let _cleanup = KillOnDrop(vec![pid]);
    // SIGINT (Ctrl-C) first, SIGTERM second: both count.
    worker.signal(libc::SIGINT);
    wait_until("the worker to record that it is stopping", SHORT, || {
        home.status()["workers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w["stopping"] == true)
    });
    assert!(
        worker.is_running(),
        "the first signal must not end a worker with a running job"
    );
    assert!(!process_gone(pid), "the first signal must not kill the job");
    worker.signal(libc::SIGTERM);
    let started = Instant::now();
    worker.wait_success(SHORT);
    assert!(started.elapsed() < Duration::from_secs(5));
    let output = worker.output();
    assert!(output.contains("Forced stop: killing 1 running job"), "{output}");
    assert!(
        output.contains("Job long killed by forced shutdown, back to pending"),
        "{output}"
    );

    let job = home.job("long");
    assert_eq!(job["state"], "pending", "{job:#}");
    assert_eq!(job["attempts"], 0, "{job:#}");
    assert_eq!(outcomes(&job), ["interrupted"]);
    assert_eq!(job["worker"], Value::Null);
    wait_until("the job's sleep to be gone", SHORT, || process_gone(pid));
    let status = home.status();
    assert_eq!(status["jobs"]["processing"], 0, "{status:#}");
    assert_eq!(status["jobs"]["pending"], 1, "{status:#}");
    assert_eq!(status["workers"], json!([]), "{status:#}");
}

// ---------------------------------------------------------------------------------------------
// 8. worker stop with a detached worker
// ---------------------------------------------------------------------------------------------

#[test]
fn worker_stop_stops_a_detached_worker_after_its_job_finishes() {
    let home = TestHome::new();
    let started = home
        .run(&["worker", "start", "--detach", "--count", "1", "--no-spool"])
        .ok();
    let pid: u32 = started
        .stdout
        .split("(PID ")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no PID in {started:?}"));
    let _cleanup = KillOnDrop(vec![pid]);
    assert!(
        started.stdout.starts_with("Started 1 worker in the background"),
        "{started:?}"
    );
    let log = started
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("log: "))
        .unwrap_or_else(|| panic!("no log path in {started:?}"))
        .to_string();
    assert!(Path::new(&log).is_file(), "log {log} does not exist");
    assert!(worker_pids(&home).contains(&pid));

    // The job runs until the test releases it, so `worker stop` surely finds it running.
    enqueue(
        &home,
        json!({"id": "bg", "command": "echo $$ > bg.pid; while [ ! -f release ]; do sleep 0.05; done; echo done > stopped.txt"}),
    );
    let job_pid = read_pid(home.path().join("bg.pid"));
    let _cleanup_job = KillOnDrop(vec![job_pid]);
    let mut stop = Worker::command(&home, &["worker", "stop", "--timeout", "60s"]);
    wait_until("the worker to record that it is stopping", SHORT, || {
        home.status()["workers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w["stopping"] == true)
    });
    assert!(
        stop.is_running(),
        "`worker stop` returned with a job running: {}",
        stop.output()
    );
    assert!(!process_gone(pid), "the worker exited with a job running");
    assert_eq!(state(&home, "bg"), "processing");
    std::fs::write(home.path().join("release"), "").unwrap();
    stop.wait_success(SHORT);
    let stop = stop.output();
    assert!(stop.contains(&format!("Stopping worker PID {pid}")), "{stop}");
    assert!(stop.contains(&format!("Worker PID {pid} exited")), "{stop}");
    assert_eq!(state(&home, "bg"), "completed");
    assert_eq!(read(home.path().join("stopped.txt")), "done\n");
    assert!(process_gone(pid));
    let status = home.status();
    assert_eq!(status["workers"], json!([]), "{status:#}");
    assert_eq!(status["jobs"]["processing"], 0);
    let log_text = read(&log);
    assert!(
        log_text.contains(&format!("Started 1 worker (PID {pid})")),
        "{log_text}"
    );
    assert!(log_text.contains("Job bg completed"), "{log_text}");

    let again = home.run(&["worker", "stop"]).ok();
    assert!(again.stdout.contains("no workers running"), "{again:?}");
}

#[test]
fn worker_stop_timeout_forces_running_jobs_back_to_pending() {
    let home = TestHome::new();
    let mut worker = Worker::start(&home, &["--count", "1"]);
    enqueue(
        &home,
        json!({"id": "stuck", "command": "echo $$ > stuck.pid; exec sleep 30"}),
    );
    let pid = read_pid(home.path().join("stuck.pid"));
    let _cleanup = KillOnDrop(vec![pid]);
    let stop = home.run(&["worker", "stop", "--timeout", "500ms"]).ok();
    assert!(
        stop.stdout
            .contains(&format!("Worker PID {} still running after", worker.pid)),
        "{stop:?}"
    );
    assert!(
        stop.stdout.contains(&format!("Worker PID {} exited", worker.pid)),
        "{stop:?}"
    );
    worker.wait_success(SHORT);
    let job = home.job("stuck");
    assert_eq!(job["state"], "pending", "{job:#}");
    assert_eq!(job["attempts"], 0);
    assert_eq!(outcomes(&job), ["interrupted"]);
    wait_until("the job's sleep to be gone", SHORT, || process_gone(pid));
}

// ---------------------------------------------------------------------------------------------
// 9. Exactly once; at least once across a crash
// ---------------------------------------------------------------------------------------------

fn append_jobs(home: &TestHome, count: usize) -> Vec<String> {
    let ids: Vec<String> = (0..count).map(|i| format!("j{i:04}")).collect();
    let batch: String = ids
        .iter()
        .map(|id| json!({"id": id, "command": format!("echo {id} >> out.txt")}).to_string() + "\n")
        .collect();
    let run = home.run_with_stdin(&["enqueue", "-"], &batch).ok();
    assert_eq!(run.stdout.lines().count(), count);
    ids
}

fn appended_counts(home: &TestHome) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for line in read(home.path().join("out.txt")).lines() {
        *counts.entry(line.to_string()).or_insert(0) += 1;
    }
    counts
}

#[test]
fn three_processes_of_four_threads_run_each_of_2000_jobs_exactly_once() {
    let home = TestHome::new();
    let ids = append_jobs(&home, 2000);
    let mut workers: Vec<Worker> = (0..3)
        .map(|_| Worker::spawn(&home, &["--count", "4", "--until-empty", "--quiet"]))
        .collect();
    for worker in &mut workers {
        worker.wait_success(LONG);
    }
    let counts = appended_counts(&home);
    let twice: Vec<_> = counts.iter().filter(|(_, &n)| n != 1).collect();
    assert!(twice.is_empty(), "ids not appended exactly once: {twice:?}");
    assert_eq!(counts.keys().cloned().collect::<Vec<_>>(), ids);
    let status = home.status();
    assert_eq!(status["jobs"]["completed"], 2000, "{status:#}");
    assert_eq!(status["total"], 2000);
    assert_eq!(status["workers"], json!([]));
}

#[test]
fn a_worker_killed_mid_run_loses_no_job_and_repeats_only_the_jobs_it_held() {
    let home = TestHome::new();
    home.run(&["config", "set", "backoff-base", "1"]).ok();
    let ids = append_jobs(&home, 2000);
    let mut victim = Worker::spawn(&home, &["--count", "4", "--until-empty", "--quiet"]);
    let mut survivor = Worker::spawn(&home, &["--count", "4", "--until-empty", "--quiet"]);
    wait_until("some jobs to complete", LONG, || job_count(&home, "completed") >= 200);
    victim.signal(libc::SIGKILL);
    let status = victim.wait_exit(SHORT);
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(libc::SIGKILL),
        "the victim should have died of SIGKILL: {status}"
    );
    home.run(&["recover"]).ok();
    drain(&home, 4);
    survivor.wait_success(LONG);

    let status = home.status();
    assert_eq!(status["jobs"]["completed"], 2000, "{status:#}");
    for state in ["pending", "processing", "failed", "dead"] {
        assert_eq!(status["jobs"][state], 0, "{state}: {status:#}");
    }
    // Jobs the victim held when it died got a "lost" attempt (so attempts > 1 now).
    let jobs = home.run(&["list", "--json"]).ok().json();
    let mut lost = BTreeSet::new();
    for job in jobs
        .as_array()
        .unwrap()
        .iter()
        .filter(|j| j["attempts"].as_u64().unwrap() > 1)
    {
        let id = job["id"].as_str().unwrap();
        let shown = home.job(id);
        let attempts = history(&shown);
        if let Some(attempt) = attempts.iter().find(|a| a["outcome"] == "lost") {
            assert!(
                attempt["error"].as_str().unwrap().starts_with("worker lost"),
                "{shown:#}"
            );
            lost.insert(id.to_string());
        }
    }
    assert!(
        !lost.is_empty(),
        "the killed worker held no job: the test did not exercise a crash"
    );
    assert!(lost.len() <= 4, "more lost jobs than the victim's threads: {lost:?}");

    let counts = appended_counts(&home);
    let missing: Vec<&String> = ids.iter().filter(|id| !counts.contains_key(*id)).collect();
    assert!(missing.is_empty(), "jobs never ran: {missing:?}");
    for (id, n) in &counts {
        assert!(
            *n == 1 || (*n == 2 && lost.contains(id)),
            "{id} ran {n} times (lost jobs: {lost:?})"
        );
    }
}

#[test]
fn recover_and_a_new_worker_handle_the_jobs_of_a_killed_worker() {
    let home = TestHome::new();
    home.run(&["config", "set", "backoff-base", "1"]).ok();
    let mut worker = Worker::start(&home, &["--count", "2"]);
    enqueue(
        &home,
        json!({"id": "r1", "command": "echo $$ > r1.pid; exec sleep 30", "max_retries": 0}),
    );
    // Hangs on its first attempt only.
    enqueue(
        &home,
        json!({"id": "r2", "command": "[ $QUEUECTL_ATTEMPT -gt 1 ] && exit 0; echo $$ > r2.pid; exec sleep 30"}),
    );
    let pids = vec![
        read_pid(home.path().join("r1.pid")),
        read_pid(home.path().join("r2.pid")),
    ];
    let _cleanup = KillOnDrop(pids.clone());
    worker.signal(libc::SIGKILL);
    worker.wait_exit(SHORT);
    assert_eq!(job_count(&home, "processing"), 2);

    let recover = home.run(&["recover"]).ok();
    assert!(recover.stdout.contains("r1: worker lost, now dead"), "{recover:?}");
    assert!(recover.stdout.contains("r2: worker lost, now failed"), "{recover:?}");
    assert!(recover.stdout.contains("recovered 2 jobs"), "{recover:?}");
    let r1 = home.job("r1");
    assert_eq!(r1["state"], "dead", "{r1:#}");
    assert_eq!(r1["attempts"], 1);
    assert!(r1["last_error"].as_str().unwrap().starts_with("worker lost"), "{r1:#}");
    assert_eq!(outcomes(&r1), ["lost"]);
    let r2 = home.job("r2");
    assert_eq!(r2["state"], "failed", "{r2:#}");
    assert_eq!(r2["attempts"], 1);
    assert_eq!(home.status()["workers"], json!([]));
    // Recovery stopped what the lost runs left running (their shells died with the worker).
    for pid in pids {
        wait_until("a lost run's process to be gone", SHORT, || !process_running(pid));
    }

    // Another worker started later finds a killed worker's jobs by itself.
    let mut worker = Worker::start(&home, &["--count", "1"]);
    enqueue(
        &home,
        json!({"id": "r3", "command": "echo $$ > r3.pid; exec sleep 30", "max_retries": 0}),
    );
    let r3_pid = read_pid(home.path().join("r3.pid"));
    let _cleanup3 = KillOnDrop(vec![r3_pid]);
    worker.signal(libc::SIGKILL);
    worker.wait_exit(SHORT);
    let output = drain(&home, 1);
    assert!(!process_running(r3_pid), "the lost run outlived its recovery");
    assert!(
        output.contains("Recovered 1 job of a lost worker: r3 -> dead"),
        "{output}"
    );
    let r3 = home.job("r3");
    assert_eq!(r3["state"], "dead", "{r3:#}");
    assert!(r3["last_error"].as_str().unwrap().starts_with("worker lost"), "{r3:#}");
    let r2 = home.job("r2");
    assert_eq!(r2["state"], "completed", "{r2:#}");
    assert_eq!(outcomes(&r2), ["lost", "completed"]);
}

// ---------------------------------------------------------------------------------------------
// 10. Config changes reach a running worker
// ---------------------------------------------------------------------------------------------

#[test]
fn a_running_worker_picks_up_config_changes() {
    let home = TestHome::new();
    let mut worker = Worker::start(&home, &["--count", "1"]);
    // Default max_retries is 3; `config set` lowers it while the worker runs.
    home.run(&["config", "set", "max-retries", "0"]).ok();
    enqueue(&home, json!({"id": "c1", "command": "exit 1"}));
    wait_jobs(&home, &["c1"]);
    let c1 = home.job("c1");
    assert_eq!(c1["state"], "dead", "{c1:#}");
    assert_eq!(c1["attempts"], 1);

    // The config file is re-read too (once `config set` no longer overrides it).
    home.run(&["config", "unset", "max-retries"]).ok();
    write_config(&home, "max_retries = 1\nbackoff_base = 1\n");
    enqueue(&home, json!({"id": "c2", "command": "exit 1"}));
    wait_jobs(&home, &["c2"]);
    let c2 = home.job("c2");
    assert_eq!(c2["state"], "dead", "{c2:#}");
    assert_eq!(c2["attempts"], 2);
    // The retry was scheduled at the first attempt's end plus backoff_base ^ 1 seconds, from
    // one clock reading: exactly 1000 ms with the file's base 1 (2000 ms with the default 2).
    // The dead job keeps that `run_at`.
    let first_end = millis(&history(&c2)[0]["finished_at"]);
    assert_eq!(
        millis(&c2["run_at"]) - first_end,
        1000,
        "backoff_base 1 from the file was not applied: {c2:#}"
    );

    assert!(worker.is_running(), "the worker restarted or died: {}", worker.output());
    assert_eq!(worker_pids(&home), [worker.pid]);
    worker.signal(libc::SIGTERM);
    worker.wait_success(SHORT);
}

/// A job and its history read through the library, which needs no config file: while the file
/// is broken the CLI's inspection commands may refuse to run.
fn job_through_library(home: &TestHome, id: &str) -> (queuectl::Job, Vec<queuectl::Attempt>) {
    let queue = queuectl::Queue::open(&home.lib_home()).expect("open the queue");
    let job = queue.get(id).expect("get the job");
    let history = queue.history(&job.id).expect("the job's history");
    (job, history)
}

#[test]
fn a_running_worker_keeps_its_last_good_settings_when_the_config_file_breaks() {
    let home = TestHome::new();
    write_config(&home, "max_retries = 1\nbackoff_base = 1\n");
    let mut worker = Worker::start(&home, &["--count", "1"]);
    let _cleanup = KillListedOnDrop(home.path().join("k.pids"));
    enqueue(
        &home,
        json!({"id": "k", "command": "echo $$ >> k.pids; while [ ! -f release ]; do sleep 0.05; done; exit 1"}),
    );
    read_pid(home.path().join("k.pids"));
    // Broken while the job runs: the failure below is recorded after a reload that fails.
    write_config(&home, "max_retries = = 5\n");
    std::fs::write(home.path().join("release"), "").unwrap();
    let mut job = None;
    wait_until("the job to use up its retries", SHORT, || {
        let (current, history) = job_through_library(&home, "k");
        let done = current.state == queuectl::State::Dead;
        job = Some((current, history));
        done
    });
    let (job, history) = job.expect("the job");
    // The old settings still apply: one retry (the defaults would allow three), one second
    // after the first failure (the default base 2 would make it two), as one clock reading.
    assert_eq!(job.attempts, 2, "{job:#?}");
    assert_eq!(history.len(), 2, "{history:#?}");
    assert_eq!(job.run_at - history[0].finished_at, 1000, "{job:#?} {history:#?}");
    assert!(
        worker.is_running(),
        "the worker died of a broken config file: {}",
        worker.output()
    );

    write_config(&home, "max_retries = 1\nbackoff_base = 1\n");
    assert_eq!(worker_pids(&home), [worker.pid]);
    worker.signal(libc::SIGTERM);
    worker.wait_success(SHORT);
}

// ---------------------------------------------------------------------------------------------
// 11. wait
// ---------------------------------------------------------------------------------------------

#[test]
fn wait_exits_0_when_done_1_on_timeout_and_2_for_an_unknown_id() {
    let home = TestHome::new();
    let before = home.db_snapshot();
    let unknown = home.run(&["wait", "nope", "--timeout", "5s"]).code(2);
    assert!(unknown.stderr.contains("nope"), "{unknown:?}");
    assert_eq!(unknown.stderr.trim_end().lines().count(), 1, "{unknown:?}");
    assert_eq!(home.db_snapshot(), before);
    enqueue(&home, json!({"id": "w1", "command": "true"}));
    let started = Instant::now();
    let timed_out = home.run(&["wait", "w1", "--timeout", "300ms"]).code(1);
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert!(timed_out.stderr.contains("w1 (pending)"), "{timed_out:?}");
    home.run(&["wait", "--timeout", "200ms"]).code(1);
    drain(&home, 1);
    let done = home.run(&["wait", "w1", "--timeout", "5s"]).ok();
    assert_eq!(done.stdout, "w1 completed\n");
    let all = home.run(&["wait", "--timeout", "5s"]).ok();
    assert!(all.stdout.contains("1 completed, 0 dead"), "{all:?}");
}

#[test]
fn wait_quiet_prints_nothing_and_keeps_its_exit_codes() {
    let home = TestHome::new();
    enqueue(&home, json!({"id": "w1", "command": "true"}));
    let timed_out = home.run(&["wait", "w1", "--timeout", "200ms", "--quiet"]).code(1);
    assert_eq!(timed_out.stdout, "", "{timed_out:?}");
    assert!(
        timed_out.stderr.contains("w1 (pending)"),
        "a timeout is still reported: {timed_out:?}"
    );
    drain(&home, 1);
    for args in [
        &["wait", "w1", "--quiet", "--timeout", "5s"][..],
        &["wait", "w1", "-q", "--timeout", "5s"],
        &["wait", "--quiet", "--timeout", "5s"],
    ] {
        let run = home.run(args).ok();
        assert_eq!(
            (run.stdout.as_str(), run.stderr.as_str()),
            ("", ""),
            "{args:?}: {run:?}"
        );
    }
    // Without the flag the same waits speak.
    assert_eq!(
        home.run(&["wait", "w1", "--timeout", "5s"]).ok().stdout,
        "w1 completed\n"
    );
}

#[test]
fn worker_start_quiet_prints_only_failures_dlq_moves_and_warnings() {
    let home = TestHome::new();
    home.run(&["config", "set", "backoff-base", "1"]).ok();
    enqueue(
        &home,
        json!([
            {"id": "fine", "command": "true"},
            {"id": "flaky", "command": "exit 3", "max_retries": 1},
        ]),
    );
    let mut worker = Worker::spawn(&home, &["--until-empty", "--quiet"]);
    // Exit 3: `flaky` moved to the DLQ during the run.
    worker.wait_code(LONG, 3);
    let pid = worker.pid;
    let lines: Vec<String> = worker.output().lines().map(str::to_string).collect();
    let strip = |line: &str| -> String {
        // "[PID/THREAD] text" and "[PID] text" lose their prefix; the thread may be any.
        match line.strip_prefix('[').and_then(|rest| rest.split_once("] ")) {
            Some((_, text)) => text.to_string(),
            None => line.to_string(),
        }
    };
    let texts: Vec<String> = lines.iter().map(|l| strip(l)).collect();
    assert_eq!(
        texts,
        [
            format!("Started 1 worker (PID {pid})"),
            "Job flaky failed (attempt 1 of 2, exit 3), retrying in 1s".to_string(),
            "Job flaky moved to DLQ after 2 attempts: exit 3".to_string(),
            "Worker stopped after 3 jobs".to_string(),
            "queuectl: 1 job moved to the DLQ during this run".to_string(),
        ],
        "{lines:#?}"
    );
    assert_eq!(state(&home, "fine"), "completed");
    assert_eq!(state(&home, "flaky"), "dead");

    // `-q` is the same flag, and without it the starts and completions are printed.
    home.run(&["dlq", "retry", "flaky"]).ok();
    let mut worker = Worker::spawn(&home, &["--until-empty", "-q"]);
    worker.wait_code(LONG, 3);
    assert!(!worker.output().contains("Executing job"), "{}", worker.output());
    home.run(&["dlq", "retry", "flaky"]).ok();
    let output = drain(&home, 1);
    assert!(output.contains("Executing job flaky: exit 3"), "{output}");
}

// ---------------------------------------------------------------------------------------------
// 12. Hooks
// ---------------------------------------------------------------------------------------------

#[test]
fn hooks_fire_once_per_event_and_never_affect_jobs() {
    let home = TestHome::new();
    write_config(
        &home,
        r#"max_retries = 0
backoff_base = 1

[hooks]
# Hangs: killed after timeout_seconds.
on_started = "echo $QUEUECTL_JOB_ID $QUEUECTL_ATTEMPT >> started.txt; echo $$ >> hook.pids; sleep 30"
on_completed = "echo $QUEUECTL_JOB_ID $QUEUECTL_JOB_STATE $QUEUECTL_JOB_EXIT_CODE >> completed.txt"
# Fails.
on_failed = "echo $QUEUECTL_JOB_ID $QUEUECTL_JOB_ATTEMPTS $QUEUECTL_JOB_ERROR >> failed.txt; exit 7"
on_dead = "echo $QUEUECTL_JOB_ID $QUEUECTL_JOB_ERROR >> dead.txt"
timeout_seconds = 1
"#,
    );
    let mut worker = Worker::start(&home, &["--count", "2"]);
    // The hanging hooks are killed by their timeout; should the test fail first, by this guard.
    let _cleanup = KillListedOnDrop(home.path().join("hook.pids"));
    enqueue(&home, json!({"id": "good", "command": "true"}));
    enqueue(&home, json!({"id": "bad", "command": "exit 2", "max_retries": 1}));
    wait_jobs(&home, &["good", "bad"]);
    assert_eq!(state(&home, "good"), "completed");
    let bad = home.job("bad");
    assert_eq!(bad["state"], "dead", "{bad:#}");
    assert_eq!(bad["attempts"], 2);
    assert_eq!(bad["last_error"], "exit 2");

    let path = |name: &str| home.path().join(name);
    wait_until("every hook to have run", SHORT, || {
        sorted_lines(path("started.txt")).len() == 3
            && sorted_lines(path("completed.txt")).len() == 1
            && sorted_lines(path("failed.txt")).len() == 1
            && sorted_lines(path("dead.txt")).len() == 1
    });
    // The hanging hooks time out (3 of them) and the failing one is reported: warnings only.
    wait_until("the hook warnings", SHORT, || {
        let out = worker.output();
        out.matches("hook on_started for job").count() == 3
            && out.matches("timed out after 1s and was killed").count() == 3
            && out.contains("hook on_failed for job bad: failed")
    });
    let out = worker.output();
    assert!(
        out.contains("hook on_failed for job bad: failed (exit status: 7)"),
        "{out}"
    );
    // Still exactly once per event, after every hook has ended.
    assert_eq!(sorted_lines(path("started.txt")), ["bad 1", "bad 2", "good 1"]);
    assert_eq!(sorted_lines(path("completed.txt")), ["good completed 0"]);
    assert_eq!(sorted_lines(path("failed.txt")), ["bad 1 exit 2"]);
    assert_eq!(sorted_lines(path("dead.txt")), ["bad exit 2"]);
    for pid in sorted_lines(path("hook.pids")) {
        let pid: u32 = pid.parse().unwrap();
        wait_until("the hanging hook to be killed", SHORT, || process_gone(pid));
    }
    assert!(worker.is_running(), "{out}");
    worker.signal(libc::SIGTERM);
    worker.wait_success(SHORT);
}

// ---------------------------------------------------------------------------------------------
// 13. status while busy
// ---------------------------------------------------------------------------------------------

#[test]
fn status_shows_the_busy_thread_and_its_job_pid() {
    let home = TestHome::new();
    let mut worker = Worker::start(&home, &["--count", "2"]);
    let command = "echo $$ > busy.pid; while [ ! -f release ]; do sleep 0.05; done";
    enqueue(&home, json!({"id": "busy", "command": command}));
    let job_pid = read_pid(home.path().join("busy.pid"));
    let _cleanup = KillOnDrop(vec![job_pid]);
    let mut status = Value::Null;
    wait_until("status to show the running job with its pid", SHORT, || {
        status = home.status();
        status["workers"][0]["running"][0]["pid"] == job_pid
    });
    let w = &status["workers"][0];
    assert_eq!(status["workers"].as_array().unwrap().len(), 1, "{status:#}");
    assert_eq!(w["pid"], worker.pid, "{status:#}");
    assert_eq!(w["threads"], 2);
    assert_eq!(w["busy"], 1);
    let running = &w["running"][0];
    assert_eq!(running["job"], "busy");
    assert_eq!(running["command"], command);
    assert!(running["thread"] == 1 || running["thread"] == 2, "{status:#}");
    // When the attempt started: after the job was enqueued, not after now. (Its format is
    // checked by `status_json_shows_when_a_running_job_started_as_an_rfc3339_time`.)
    let started_at = match &running["started_at"] {
        Value::String(_) => millis(&running["started_at"]),
        other => other.as_i64().unwrap_or_else(|| panic!("no started_at: {status:#}")),
    };
    let created = millis(&home.job("busy")["created_at"]);
    assert!(
        created <= started_at && started_at <= now_millis(),
        "started_at {started_at} is not between the enqueue ({created}) and now: {status:#}"
    );
    assert_eq!(status["jobs"]["processing"], 1);
    let text = home.run(&["status"]).ok().stdout;
    assert!(
        text.contains(&format!("PID {}  threads 2  busy 1", worker.pid)),
        "{text}"
    );
    assert!(text.contains(&format!("job busy (pid {job_pid},")), "{text}");

    std::fs::write(home.path().join("release"), "").unwrap();
    wait_jobs(&home, &["busy"]);
    assert_eq!(state(&home, "busy"), "completed");
    wait_until("status to show the worker idle", SHORT, || {
        home.status()["workers"][0]["busy"] == 0
    });
    worker.signal(libc::SIGTERM);
    worker.wait_success(SHORT);
}

#[test]
fn status_json_shows_when_a_running_job_started_as_an_rfc3339_time() {
    let home = TestHome::new();
    let mut worker = Worker::start(&home, &["--count", "1"]);
    enqueue(
        &home,
        json!({"id": "busy", "command": "echo $$ > busy.pid; while [ ! -f release ]; do sleep 0.05; done"}),
    );
    let job_pid = read_pid(home.path().join("busy.pid"));
    let _cleanup = KillOnDrop(vec![job_pid]);
    let mut status = Value::Null;
    wait_until("status to show the running job", SHORT, || {
        status = home.status();
        status["workers"][0]["running"][0]["job"] == "busy"
    });
    let started_at = &status["workers"][0]["running"][0]["started_at"];
    let text = started_at
        .as_str()
        .unwrap_or_else(|| panic!("started_at is not an RFC 3339 string: {status:#}"));
    let parsed = chrono::DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("started_at {text:?} is not RFC 3339: {e}"));
    assert!(text.ends_with('Z'), "not UTC: {text}");
    let created = millis(&home.job("busy")["created_at"]);
    let started = parsed.timestamp_millis();
    assert!(
        created <= started && started <= now_millis(),
        "started_at {text} is not between the enqueue and now"
    );
    std::fs::write(home.path().join("release"), "").unwrap();
    wait_jobs(&home, &["busy"]);
    worker.signal(libc::SIGTERM);
    worker.wait_success(SHORT);
}

#[test]
fn a_worker_claims_only_as_many_jobs_as_it_has_idle_threads() {
    let home = TestHome::new();
    let mut first = Worker::start(&home, &["--count", "2"]);
    let _cleanup = KillListedOnDrop(home.path().join("job.pids"));
    let batch: String = (1..=4)
        .map(|i| {
            json!({"id": format!("b{i}"), "command": "echo $$ >> job.pids; while [ ! -f release ]; do sleep 0.05; done"}).to_string() + "\n"
        })
        .collect();
    home.run_with_stdin(&["enqueue", "-"], &batch).ok();
    wait_until("two jobs to be processing", SHORT, || {
        job_count(&home, "processing") >= 2
    });
    let status = home.status();
    assert_eq!(status["jobs"]["processing"], 2, "{status:#}");
    assert_eq!(status["jobs"]["pending"], 2, "{status:#}");
    // The jobs the first worker could not run are left for another worker.
    let mut second = Worker::start(&home, &["--count", "1"]);
    wait_until("the second worker to take a job", SHORT, || {
        job_count(&home, "processing") == 3
    });
    assert_eq!(job_count(&home, "pending"), 1);
    // Neither the second worker's start nor `recover` takes jobs from a live worker.
    let recover = home.run(&["recover"]).ok();
    assert!(recover.stdout.contains("recovered 0 jobs"), "{recover:?}");
    assert_eq!(job_count(&home, "processing"), 3);
    std::fs::write(home.path().join("release"), "").unwrap();
    wait_jobs(&home, &["b1", "b2", "b3", "b4"]);
    let by_worker: BTreeSet<String> = (1..=4)
        .map(|i| home.job(&format!("b{i}"))["worker"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(by_worker.len(), 2, "both workers ran jobs: {by_worker:?}");
    for i in 1..=4 {
        assert_eq!(outcomes(&home.job(&format!("b{i}"))), ["completed"]);
    }
    for worker in [&mut first, &mut second] {
        worker.signal(libc::SIGTERM);
        worker.wait_success(SHORT);
    }
}

// ---------------------------------------------------------------------------------------------
// 14. Database errors do not kill a worker
// ---------------------------------------------------------------------------------------------

#[test]
fn a_write_lock_held_past_the_busy_timeout_does_not_kill_the_worker_or_lose_its_result() {
    let home = TestHome::new();
    let mut worker = Worker::start(&home, &["--count", "1"]);
    enqueue(
        &home,
        json!({"id": "locked", "command": "echo $$ > locked.pid; while [ ! -f release ]; do sleep 0.05; done; echo done"}),
    );
    let pid = read_pid(home.path().join("locked.pid"));
    let _cleanup = KillOnDrop(vec![pid]);
    let mut conn = home.sql();
    conn.take_write_lock();
    // The job ends while the lock is held: its result has to wait inside the worker.
    std::fs::write(home.path().join("release"), "").unwrap();
    wait_until("the job's shell to exit", SHORT, || process_gone(pid));
    // The worker's writes give up after its 5 s busy timeout and say so.
    worker.wait_for_output("warning: database error, retrying", Duration::from_secs(30));
    assert!(
        worker.is_running(),
        "the worker died of a held lock: {}",
        worker.output()
    );
    conn.release_write_lock();
    wait_until("the result to be recorded", SHORT, || {
        state(&home, "locked") == "completed"
    });
    assert_eq!(home.job("locked")["stdout"], "done\n");
    assert_eq!(outcomes(&home.job("locked")), ["completed"]);
    worker.signal(libc::SIGTERM);
    worker.wait_success(SHORT);
}

/// True while a process runs (a zombie, exited but not reaped, counts as gone).
fn process_running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| !s[s.rfind(')').unwrap_or(0) + 1..].trim_start().starts_with('Z'))
        .unwrap_or(false)
}
