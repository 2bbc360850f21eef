//! Black-box tests of what scripts and cron rely on: exit codes, flags that apply to JSON input,
//! refusals (exit 2, one line, nothing changed) and the worker/status reporting.
//! Workers run as real processes with a kill guard; every wait polls with a deadline.

mod common;

use common::{signal, wait_until, Run, TestHome};
use serde_json::Value;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// The deadline for anything that should take a second or two.
const SHORT: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// A spawned `queuectl` process, SIGKILLed (and reaped) if the test ends while it still runs.
struct Spawned {
    child: Child,
    out: tempfile::NamedTempFile,
    err: tempfile::NamedTempFile,
}

impl Spawned {
    /// Starts `queuectl ARGS` with stdout and stderr going to files (a pipe nobody reads could
    /// fill up and block it).
    fn start(home: &TestHome, args: &[&str]) -> Spawned {
        let out = tempfile::NamedTempFile::new().expect("stdout file");
        let err = tempfile::NamedTempFile::new().expect("stderr file");
        let child = home
            .command(args)
            .stdout(Stdio::from(out.reopen().expect("reopen")))
            .stderr(Stdio::from(err.reopen().expect("reopen")))
            .spawn()
            .expect("spawn queuectl");
        Spawned { child, out, err }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn output(&self) -> (String, String) {
        (
            std::fs::read_to_string(self.out.path()).unwrap_or_default(),
            std::fs::read_to_string(self.err.path()).unwrap_or_default(),
        )
    }

    /// Waits for the process to exit on its own within `timeout`; panics (and kills it) if not.
    #[track_caller]
    fn finish(mut self, timeout: Duration) -> Run {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                let (stdout, stderr) = self.output();
                return Run {
                    code: status.code().unwrap_or(-1),
                    stdout,
                    stderr,
                };
            }
            if Instant::now() >= deadline {
                let (stdout, stderr) = self.output();
                panic!("queuectl did not exit within {timeout:?}\nstdout: {stdout}\nstderr: {stderr}");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// SIGKILLs processes that are not ours to reap (a detached worker) when the test ends.
struct KillOnDrop(Vec<u32>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        for pid in &self.0 {
            if !process_gone(*pid) {
                signal(*pid, libc::SIGKILL);
            }
        }
    }
}

/// True once the process has exited (gone, or a zombie nobody reaped yet).
fn process_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rfind(')')
            .map(|i| stat[i + 1..].trim_start().starts_with('Z'))
            .unwrap_or(false),
    }
}

/// Runs a foreground worker (`worker start --no-spool ARGS`) that must end on its own.
#[track_caller]
fn run_worker(home: &TestHome, args: &[&str]) -> Run {
    let mut all = vec!["worker", "start", "--no-spool"];
    all.extend_from_slice(args);
    Spawned::start(home, &all).finish(SHORT)
}

/// Asserts a refusal: exit code 2, nothing on stdout, one line on stderr containing every
/// needle, and the queue (jobs and config) unchanged.
#[track_caller]
fn assert_refused(home: &TestHome, args: &[&str], stdin: Option<&[u8]>, needles: &[&str]) -> Run {
    common::refused_unchanged(home, &args.join(" "), needles, || match stdin {
        Some(input) => run_with_bytes(home, args, input),
        None => home.run(args),
    })
}

/// Runs `queuectl ARGS` with raw bytes on standard input.
fn run_with_bytes(home: &TestHome, args: &[&str], input: &[u8]) -> Run {
    use std::io::Write;
    let mut child = home
        .command(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn queuectl");
    // It may exit before reading everything; a broken pipe is not the test's failure.
    let _ = child.stdin.take().expect("stdin").write_all(input);
    let output = child.wait_with_output().expect("wait queuectl");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn millis(value: &Value) -> i64 {
    let text = value.as_str().unwrap_or_else(|| panic!("not a time: {value}"));
    chrono::DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("bad time {text}: {e}"))
        .timestamp_millis()
}

fn write(path: impl AsRef<Path>, bytes: &[u8]) {
    std::fs::write(path, bytes).expect("write file");
}

fn state(home: &TestHome, id: &str) -> String {
    home.job(id)["state"].as_str().unwrap_or("?").to_string()
}

// ---------------------------------------------------------------------------------------------
// Field flags with JSON input: applied to every job, or refused; never ignored
// ---------------------------------------------------------------------------------------------

#[test]
fn field_flags_apply_to_a_job_given_as_json() {
    let home = TestHome::new();
    let run = home
        .run(&[
            "enqueue",
            r#"{"command":"echo hi"}"#,
            "--id",
            "solo",
            "--delay",
            "1h",
            "--priority",
            "7",
            "--max-retries",
            "9",
            "--timeout",
            "90s",
        ])
        .ok();
    assert_eq!(run.stdout, "solo\n");
    let job = home.job("solo");
    assert_eq!(job["priority"], 7);
    assert_eq!(job["max_retries"], 9);
    assert_eq!(job["timeout_seconds"], 90);
    assert_eq!(
        millis(&job["run_at"]) - millis(&job["created_at"]),
        3_600_000,
        "{job:#}"
    );
    let status = home.status();
    assert_eq!(status["due_now"], 0, "{status:#}");
    assert_eq!(status["scheduled"], 1, "{status:#}");
}

#[test]
fn field_flags_apply_to_every_job_from_standard_input_and_a_file() {
    let home = TestHome::new();
    let run = home
        .run_with_stdin(
            &["enqueue", "-", "--priority", "-3", "--run-at", "2030-01-01T00:00:00Z"],
            r#"[{"id":"a","command":"true"},{"id":"b","command":"true","max_retries":1}]"#,
        )
        .ok();
    assert_eq!(run.stdout, "a\nb\n");
    for id in ["a", "b"] {
        let job = home.job(id);
        assert_eq!(job["priority"], -3, "{job:#}");
        assert_eq!(job["run_at"], "2030-01-01T00:00:00.000Z", "{job:#}");
    }
    assert_eq!(home.job("b")["max_retries"], 1);

    write(
        home.path().join("jobs.ndjson"),
        b"{\"id\":\"c\",\"command\":\"true\"}\n{\"id\":\"d\",\"command\":\"true\",\"priority\":5}\n",
    );
    home.run(&[
        "enqueue",
        "--file",
        "jobs.ndjson",
        "--max-retries",
        "0",
        "--timeout",
        "5s",
    ])
    .ok();
    for id in ["c", "d"] {
        let job = home.job(id);
        assert_eq!(job["max_retries"], 0, "{job:#}");
        assert_eq!(job["timeout_seconds"], 5, "{job:#}");
    }
    assert_eq!(home.job("d")["priority"], 5);
}

#[test]
fn field_flags_apply_to_jobs_written_to_the_spool() {
    let home = TestHome::new();
    home.run(&[
        "enqueue",
        "--spool",
        r#"[{"id":"s1","command":"true"},{"id":"s2","command":"true"}]"#,
        "--priority",
        "4",
        "--delay",
        "1h",
    ])
    .ok();
    home.run(&["spool", "ingest"]).ok();
    for id in ["s1", "s2"] {
        let job = home.job(id);
        assert_eq!(job["priority"], 4, "{job:#}");
        assert!(
            millis(&job["run_at"]) - millis(&job["created_at"]) > 3_000_000,
            "{job:#}"
        );
    }
}

#[test]
fn id_flag_names_a_single_json_job_and_is_refused_for_several() {
    let home = TestHome::new();
    home.run(&["enqueue", r#"[{"command":"true"}]"#, "--id", "one"]).ok();
    assert_eq!(state(&home, "one"), "pending");
    assert_refused(
        &home,
        &["enqueue", r#"[{"command":"a"},{"command":"b"}]"#, "--id", "two"],
        None,
        &["--id", "2 jobs"],
    );
    assert_refused(
        &home,
        &["enqueue", "-", "--id", "three"],
        Some(b"{\"command\":\"a\"}\n{\"command\":\"b\"}\n{\"command\":\"c\"}\n"),
        &["--id", "3 jobs"],
    );
}

#[test]
fn a_flag_and_the_same_field_in_a_job_are_refused_naming_both() {
    let home = TestHome::new();
    let cases: [(&[&str], &str, &[&str]); 6] = [
        (
            &["--priority", "3"],
            r#"[{"command":"a"},{"command":"b","priority":0}]"#,
            &["index 1", "--priority", "`priority`"],
        ),
        (&["--id", "x"], r#"{"id":"y","command":"a"}"#, &["--id", "`id`"]),
        (
            &["--max-retries", "2"],
            r#"{"command":"a","max_retries":5}"#,
            &["--max-retries", "`max_retries`"],
        ),
        (
            &["--delay", "5s"],
            "{\"command\":\"a\"}\n{\"command\":\"b\",\"run_at\":\"2030-01-01T00:00:00Z\"}",
            &["line 2", "--delay", "`run_at`"],
        ),
        (
            &["--run-at", "2030-01-01T00:00:00Z"],
            r#"{"command":"a","delay_seconds":1}"#,
            &["--run-at", "`delay_seconds`"],
        ),
        (
            &["--timeout", "1m"],
            r#"{"command":"a","timeout_seconds":5}"#,
            &["--timeout", "`timeout_seconds`"],
        ),
    ];
    for (flags, json, needles) in cases {
        let mut args = vec!["enqueue", json];
        args.extend_from_slice(flags);
        assert_refused(&home, &args, None, needles);
    }
}

#[test]
fn field_flags_without_any_job_are_refused() {
    let home = TestHome::new();
    assert_refused(&home, &["enqueue", "--priority", "3"], None, &["nothing to enqueue"]);
}

// ---------------------------------------------------------------------------------------------
// Refused input: duplicate keys, bytes that are not UTF-8
// ---------------------------------------------------------------------------------------------

#[test]
fn duplicate_keys_are_refused_naming_the_key_and_the_place() {
    let home = TestHome::new();
    assert_refused(
        &home,
        &["enqueue", r#"{"command":"a","command":"b"}"#],
        None,
        &["duplicate key `command`", "line 1"],
    );
    assert_refused(
        &home,
        &["enqueue", "-"],
        Some(br#"[{"command":"a"},{"command":"b","env":{"X":"1","X":"2"}}]"#),
        &["index 1", "duplicate key `X` in `env`"],
    );
    write(
        home.path().join("jobs.ndjson"),
        b"{\"command\":\"a\"}\n{\"id\":\"p\",\"id\":\"q\",\"command\":\"b\"}\n",
    );
    assert_refused(
        &home,
        &["enqueue", "--file", "jobs.ndjson"],
        None,
        &["line 2", "duplicate key `id`"],
    );
}

#[test]
fn input_that_is_not_utf8_is_refused_with_its_byte_offset() {
    let home = TestHome::new();
    assert_refused(
        &home,
        &["enqueue", "-"],
        Some(b"{\"command\":\"caf\xe9\"}"),
        &["standard input is not valid UTF-8", "0xe9", "byte offset 15"],
    );
    write(
        home.path().join("latin1.json"),
        b"[{\"command\":\"a\"},\n{\"command\":\"\xff\"}]",
    );
    assert_refused(
        &home,
        &["enqueue", "--file", "latin1.json"],
        None,
        &["latin1.json is not valid UTF-8", "0xff", "byte offset 30"],
    );
}

// ---------------------------------------------------------------------------------------------
// wait: 0 completed, 3 dead, 1 timeout
// ---------------------------------------------------------------------------------------------

#[test]
fn wait_exits_3_when_a_waited_for_job_is_dead_and_0_when_all_completed() {
    let home = TestHome::new();
    home.run(&["enqueue", "--id", "ok", "--command", "true"]).ok();
    home.run(&["enqueue", "--id", "bad", "--command", "exit 1", "--max-retries", "0"])
        .ok();
    let worker = run_worker(&home, &["--until-empty"]);
    assert_eq!(worker.code, 3, "{worker:#?}");

    let run = home.run(&["wait", "ok"]).ok();
    assert_eq!(run.stdout, "ok completed\n");
    let run = home.run(&["wait", "ok", "bad"]).code(3);
    assert_eq!(run.stdout, "ok completed\nbad dead\n");
    assert!(run.stderr.contains("1 job waited for is dead"), "{run:#?}");
    let run = home.run(&["wait"]).code(3);
    assert!(run.stdout.contains("1 completed, 1 dead"), "{run:#?}");
    home.run(&["wait", "--quiet", "bad"]).code(3);
}

#[test]
fn wait_exits_1_on_timeout_and_2_for_an_unknown_id() {
    let home = TestHome::new();
    home.run(&["enqueue", "--id", "later", "--command", "true", "--delay", "1h"])
        .ok();
    let run = home.run(&["wait", "later", "--timeout", "100ms"]).code(1);
    assert!(run.stderr.contains("still waiting for later (pending)"), "{run:#?}");
    assert_refused(&home, &["wait", "nosuch"], None, &["`nosuch`"]);
}

// ---------------------------------------------------------------------------------------------
// worker start --until-empty / --until-idle
// ---------------------------------------------------------------------------------------------

#[test]
fn until_idle_runs_what_is_due_and_leaves_jobs_scheduled_for_later() {
    let home = TestHome::new();
    home.run(&["enqueue", "--id", "now", "--command", "true"]).ok();
    home.run(&["enqueue", "--id", "later", "--command", "true", "--delay", "1h"])
        .ok();
    let run = run_worker(&home, &["--until-idle"]);
    assert_eq!(run.code, 0, "{run:#?}");
    assert!(run.stdout.contains("Job now completed"), "{run:#?}");
    assert_eq!(state(&home, "now"), "completed");
    assert_eq!(state(&home, "later"), "pending");
    assert_eq!(home.status()["workers"], serde_json::json!([]));
}

#[test]
fn until_idle_leaves_a_retry_in_its_backoff_and_its_json_says_when_it_runs() {
    let home = TestHome::new();
    // A long backoff: the retry is due in 100 s, long after the worker has exited.
    home.run(&["config", "set", "backoff-base", "100"]).ok();
    home.run(&["enqueue", "--id", "flaky", "--command", "exit 1", "--max-retries", "2"])
        .ok();
    home.run(&["enqueue", "--id", "fresh", "--command", "true", "--delay", "1h"])
        .ok();
    let run = run_worker(&home, &["--until-idle"]);
    assert_eq!(run.code, 0, "no job died: {run:#?}");
    assert!(run.stdout.contains("retrying in"), "{run:#?}");

    let job = home.job("flaky");
    assert_eq!(job["state"], "failed", "{job:#}");
    assert_eq!(job["next_retry_at"], job["run_at"], "{job:#}");
    assert!(millis(&job["next_retry_at"]) > millis(&job["finished_at"]), "{job:#}");
    let listed = home.run(&["list", "--json", "--state", "failed"]).ok().json();
    assert_eq!(listed[0]["next_retry_at"], job["run_at"], "{listed:#}");
    // Only a failed job has a retry coming: a pending job's is null.
    assert_eq!(home.job("fresh")["next_retry_at"], Value::Null);
}

#[test]
fn until_empty_and_until_idle_exit_3_when_a_job_died_during_the_run() {
    for flag in ["--until-empty", "--until-idle"] {
        let home = TestHome::new();
        home.run(&["enqueue", "--id", "ok", "--command", "true"]).ok();
        let run = run_worker(&home, &[flag]);
        assert_eq!(run.code, 0, "{flag}, nothing died: {run:#?}");

        home.run(&["enqueue", "--id", "doomed", "--command", "exit 7", "--max-retries", "0"])
            .ok();
        home.run(&["enqueue", "--id", "fine", "--command", "true"]).ok();
        let run = run_worker(&home, &[flag, "--count", "2"]);
        assert_eq!(run.code, 3, "{flag}: {run:#?}");
        assert!(
            run.stderr.contains("1 job moved to the DLQ during this run"),
            "{flag}: {run:#?}"
        );
        assert_eq!(state(&home, "doomed"), "dead");
        assert_eq!(state(&home, "fine"), "completed");

        // The next run sees no new death: the DLQ's old jobs do not count.
        let run = run_worker(&home, &[flag]);
        assert_eq!(run.code, 0, "{flag}, the dead job died in an earlier run: {run:#?}");
    }
}

#[test]
fn until_empty_and_until_idle_together_are_refused() {
    let home = TestHome::new();
    let run = home.run(&["worker", "start", "--until-empty", "--until-idle"]);
    assert_eq!(run.code, 2, "{run:#?}");
    assert!(run.stderr.contains("--until-idle"), "{run:#?}");
}

#[test]
fn detached_until_empty_worker_that_drains_at_once_is_a_success() {
    let home = TestHome::new();
    // One quick job: the worker is done within milliseconds, often before the starting process
    // sees it registered. Several rounds, so the race is actually run into.
    for round in 0..5 {
        let flag = if round % 2 == 0 {
            "--until-empty"
        } else {
            "--until-idle"
        };
        let id = format!("quick{round}");
        home.run(&["enqueue", "--id", &id, "--command", "true"]).ok();
        let run = home.run(&["worker", "start", "--detach", "--no-spool", flag]);
        let pid: u32 = run
            .stdout
            .split("(PID ")
            .nth(1)
            .and_then(|rest| rest.split(')').next())
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no PID in {run:#?}"));
        let _guard = KillOnDrop(vec![pid]);
        assert_eq!(run.code, 0, "round {round} ({flag}): {run:#?}");
        assert!(run.stdout.starts_with("Started 1 worker in the background"), "{run:#?}");
        wait_until("the detached worker to exit", SHORT, || process_gone(pid));
        assert_eq!(state(&home, &id), "completed");
    }
}

// ---------------------------------------------------------------------------------------------
// status: threads and processes
// ---------------------------------------------------------------------------------------------

#[test]
fn status_counts_threads_and_processes_so_they_agree_with_worker_start() {
    let home = TestHome::new();
    let first = Spawned::start(&home, &["worker", "start", "--no-spool", "--count", "3"]);
    let second = Spawned::start(&home, &["worker", "start", "--no-spool", "--count", "2"]);
    wait_until("both workers to register", SHORT, || {
        home.status()["workers"].as_array().map(|w| w.len()) == Some(2)
    });
    let (stdout, _) = first.output();
    assert!(stdout.contains("Started 3 workers"), "{stdout}");

    let status = home.status();
    assert_eq!(status["worker_threads"], 5, "{status:#}");
    assert_eq!(status["worker_processes"], 2, "{status:#}");
    assert_eq!(status["worker_threads_busy"], 0, "{status:#}");
    let text = home.run(&["status"]).ok().stdout;
    assert!(
        text.contains(&format!(
            "workers: 5 threads in 2 processes, 0 busy (PIDs: {}, {})",
            first.pid().min(second.pid()),
            first.pid().max(second.pid())
        )) || text.contains(&format!(
            "workers: 5 threads in 2 processes, 0 busy (PIDs: {}, {})",
            first.pid().max(second.pid()),
            first.pid().min(second.pid())
        )),
        "{text}"
    );

    signal(second.pid(), libc::SIGTERM);
    let run = second.finish(SHORT);
    assert_eq!(run.code, 0, "{run:#?}");
    let text = home.run(&["status"]).ok().stdout;
    assert!(
        text.contains(&format!(
            "workers: 3 threads in 1 process, 0 busy (PID: {})",
            first.pid()
        )),
        "{text}"
    );
    signal(first.pid(), libc::SIGTERM);
    assert_eq!(first.finish(SHORT).code, 0);
}
