//! Black-box tests of the workers (issue 3): the built binary, real processes, real signals.
//! Nothing sleeps to wait for something: every wait polls a condition with a deadline.

mod common;

use common::{signal, wait_until, TestHome};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::Path;
use std::process::{Child, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The deadline for anything that should take a second or two.
const SHORT: Duration = Duration::from_secs(10);
/// The deadline for bulk work (thousands of jobs).
const LONG: Duration = Duration::from_secs(90);

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// A `queuectl worker start` process whose output is drained (so it never blocks on a full
/// pipe) and kept for assertions. Killed with SIGKILL if a test ends while it still runs.
struct Worker {
    child: Child,
    pid: u32,
    output: Arc<Mutex<String>>,
    readers: Vec<JoinHandle<()>>,
    status: Option<ExitStatus>,
}

impl Worker {
    /// Starts `queuectl worker start --no-spool ARGS` in `home`.
    fn spawn(home: &TestHome, args: &[&str]) -> Worker {
        let mut all = vec!["worker", "start", "--no-spool"];
        all.extend_from_slice(args);
        let mut child = home
            .command(&all)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn queuectl worker");
        let output = Arc::new(Mutex::new(String::new()));
        let mut readers = Vec::new();
        let streams: Vec<Box<dyn Read + Send>> = vec![
            Box::new(child.stdout.take().expect("stdout")),
            Box::new(child.stderr.take().expect("stderr")),
        ];
        for mut stream in streams {
            let output = output.clone();
            readers.push(std::thread::spawn(move || {
                let mut buffer = [0u8; 8192];
                loop {
                    match stream.read(&mut buffer) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => output.lock().unwrap().push_str(&String::from_utf8_lossy(&buffer[..n])),
                    }
                }
            }));
        }
        let pid = child.id();
        Worker {
            child,
            pid,
            output,
            readers,
            status: None,
        }
    }

    /// Starts a worker and waits until `status` lists it.
    fn start(home: &TestHome, args: &[&str]) -> Worker {
        let mut worker = Worker::spawn(home, args);
        let pid = worker.pid;
        wait_until("the worker to register", SHORT, || {
            assert!(worker.is_running(), "worker exited early: {}", worker.output());
            worker_pids(home).contains(&pid)
        });
        worker
    }

    /// Everything the worker printed so far (stdout and stderr).
    fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    fn is_running(&mut self) -> bool {
        if self.status.is_none() {
            self.status = self.child.try_wait().expect("try_wait");
        }
        self.status.is_none()
    }

    /// Waits for the worker to exit and returns its status; its output is complete afterwards.
    #[track_caller]
    fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        while self.is_running() {
            if Instant::now() >= deadline {
                panic!(
                    "worker PID {} still running after {timeout:?}; output:\n{}",
                    self.pid,
                    self.output()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let readers = std::mem::take(&mut self.readers);
        let deadline = Instant::now() + Duration::from_secs(5);
        while readers.iter().any(|r| !r.is_finished()) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        self.status.expect("exit status")
    }

    /// Waits for the worker to exit and asserts it exited with code 0.
    #[track_caller]
    fn wait_success(&mut self, timeout: Duration) {
        let status = self.wait_exit(timeout);
        assert_eq!(
            status.code(),
            Some(0),
            "worker exit status {status}; output:\n{}",
            self.output()
        );
    }

    fn signal(&self, sig: libc::c_int) {
        signal(self.pid, sig);
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if self.is_running() {
            signal(self.pid, libc::SIGKILL);
            let _ = self.child.wait();
        }
    }
}

/// Kills a process we did not start ourselves (a detached worker, an orphaned job) when a test
/// ends, if it still runs.
struct KillOnDrop(Vec<u32>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        for &pid in &self.0 {
            if !process_gone(pid) {
                signal(pid, libc::SIGKILL);
            }
        }
    }
}

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

fn worker_pids(home: &TestHome) -> Vec<u32> {
    home.status()["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["pid"].as_u64().unwrap() as u32)
        .collect()
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

/// Milliseconds since the epoch of an RFC 3339 time as `show --json` prints it.
fn millis(value: &Value) -> i64 {
    let text = value.as_str().unwrap_or_else(|| panic!("not a time: {value}"));
    chrono::DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("bad time {text}: {e}"))
        .timestamp_millis()
}

fn read(path: impl AsRef<Path>) -> String {
    std::fs::read_to_string(path.as_ref()).unwrap_or_default()
}

fn sorted_lines(path: impl AsRef<Path>) -> Vec<String> {
    let mut lines: Vec<String> = read(path).lines().map(str::to_string).collect();
    lines.sort();
    lines
}

/// Waits for a file a job writes its PID into, and returns the PID.
#[track_caller]
fn read_pid(path: impl AsRef<Path>) -> u32 {
    let path = path.as_ref();
    let mut pid = 0;
    wait_until(&format!("a pid in {}", path.display()), SHORT, || {
        let text = read(path);
        match text.trim().parse::<u32>() {
            Ok(p) if text.ends_with('\n') => {
                pid = p;
                true
            }
            _ => false,
        }
    });
    pid
}

/// True if no process with this PID exists (a zombie counts as gone: it has exited, and the
/// init process of a container may never reap it).
fn process_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rfind(')')
            .map(|i| stat[i + 1..].trim_start().starts_with('Z'))
            .unwrap_or(false),
    }
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
        let gap = (starts[n + 1] - starts[n]) as f64 / 1000.0;
        assert!(
            gap >= expected - 0.05 && gap <= expected + 1.0,
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
    assert!(retry.stdout.contains("dlq1"), "{retry:?}");
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
    enqueue(
        &home,
        json!({"id": "later", "command": "date +%s%3N > started.txt", "delay_seconds": 1}),
    );
    enqueue(&home, json!({"id": "now", "command": "date +%s%3N > now.txt"}));
    wait_jobs(&home, &["later", "now"]);
    let job = home.job("later");
    let run_at = millis(&job["run_at"]);
    let created = millis(&job["created_at"]);
    assert!(
        (990..=1010).contains(&(run_at - created)),
        "run_at {run_at} created {created}"
    );
    let started: i64 = read(home.path().join("started.txt"))
        .trim()
        .parse()
        .expect("start time");
    assert!(started >= run_at, "started {} ms before its run_at", run_at - started);
    assert!(
        started - run_at < 700,
        "started {} ms after its run_at",
        started - run_at
    );
    // The job enqueued after it, due at once, did not wait for it.
    let now_started: i64 = read(home.path().join("now.txt")).trim().parse().expect("start time");
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
    enqueue(&home, json!({"id": "mid", "command": "sleep 1; echo done > f.txt"}));
    wait_until("the job to be processing", SHORT, || {
        job_count(&home, "processing") == 1
    });
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

    enqueue(
        &home,
        json!({"id": "bg", "command": "sleep 1; echo done > stopped.txt"}),
    );
    wait_until("the job to be processing", SHORT, || state(&home, "bg") == "processing");
    let stop = home.run(&["worker", "stop", "--timeout", "20s"]).ok();
    assert!(stop.stdout.contains(&format!("Stopping worker PID {pid}")), "{stop:?}");
    assert!(stop.stdout.contains(&format!("Worker PID {pid} exited")), "{stop:?}");
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
    assert_eq!(status.code(), None, "the victim should have died of SIGKILL");
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
    for pid in pids {
        signal(pid, libc::SIGKILL);
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
    signal(r3_pid, libc::SIGKILL);
    let output = drain(&home, 1);
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
    let starts: Vec<i64> = history(&c2).iter().map(|a| millis(&a["started_at"])).collect();
    assert!(
        starts[1] - starts[0] < 1900,
        "backoff_base 1 from the file was not applied: {starts:?}"
    );

    assert!(worker.is_running(), "the worker restarted or died: {}", worker.output());
    assert_eq!(worker_pids(&home), [worker.pid]);
    worker.signal(libc::SIGTERM);
    worker.wait_success(SHORT);
}

// ---------------------------------------------------------------------------------------------
// 11. wait
// ---------------------------------------------------------------------------------------------

#[test]
fn wait_exit_codes() {
    let home = TestHome::new();
    let unknown = home.run(&["wait", "nope", "--timeout", "5s"]).code(2);
    assert!(unknown.stderr.contains("nope"), "{unknown:?}");
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
        out.contains("hook on_failed for job bad: failed") && out.contains('7'),
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
    assert!(
        running["started_at"].as_i64().is_some() || running["started_at"].is_string(),
        "{status:#}"
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
fn a_worker_claims_only_as_many_jobs_as_it_has_idle_threads() {
    let home = TestHome::new();
    let mut first = Worker::start(&home, &["--count", "2"]);
    let batch: String = (1..=4)
        .map(|i| {
            json!({"id": format!("b{i}"), "command": "while [ ! -f release ]; do sleep 0.05; done"}).to_string() + "\n"
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
