//! Black-box tests of a running worker's signals and of stopping one worker: SIGHUP reloads
//! the config file and `config set` values, says what changed and keeps running (a broken file
//! keeps the old settings); SIGINT/SIGTERM stay graceful and a second one forces;
//! `worker stop --pid` stops that worker only; without a signal, a worker busy with a stream of
//! jobs still re-reads its settings every heartbeat. Real processes, real signals; every wait
//! polls with a deadline.

mod common;

use common::process::{process_gone, worker_pids, KillListedOnDrop, Worker, SHORT};
use common::{wait_until, TestHome};

/// A home whose workers re-read the file only every 60 s on their own, so within a test only
/// SIGHUP (or a failure, which the tests avoid before the signal) makes them reload.
fn home_with_slow_heartbeat() -> TestHome {
    let home = TestHome::new();
    append_config(&home, "heartbeat_seconds = 60\nlease_seconds = 180");
    home
}

fn config_path(home: &TestHome) -> std::path::PathBuf {
    home.path().join("config/queuectl.toml")
}

fn append_config(home: &TestHome, lines: &str) {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(config_path(home))
        .expect("open config");
    writeln!(file, "{lines}").expect("append to config");
}

fn replace_in_config(home: &TestHome, from: &str, to: &str) {
    let text = std::fs::read_to_string(config_path(home)).expect("read config");
    assert!(text.contains(from), "config has no {from:?}:\n{text}");
    std::fs::write(config_path(home), text.replace(from, to)).expect("write config");
}

/// How many times the worker printed `needle`.
fn count(worker: &Worker, needle: &str) -> usize {
    worker.output().matches(needle).count()
}

#[test]
fn sighup_reloads_the_file_and_config_set_says_what_changed_and_keeps_running() {
    let home = home_with_slow_heartbeat();
    let mut worker = Worker::start(&home, &[]);

    worker.signal(libc::SIGHUP);
    worker.wait_for_output("reloaded config: no changes", SHORT);
    assert!(
        worker.is_running(),
        "SIGHUP must not stop the worker:\n{}",
        worker.output()
    );

    replace_in_config(&home, "\nmax_retries = 3\n", "\nmax_retries = 5\n");
    home.run(&["config", "set", "backoff_base", "1"]).ok();
    worker.signal(libc::SIGHUP);
    worker.wait_for_output("reloaded config: max_retries 3 -> 5, backoff_base 2 -> 1", SHORT);
    assert!(worker.is_running(), "{}", worker.output());

    // The running worker now uses them: the failure says 6 runs (5 retries), 1 s apart.
    home.run(&["enqueue", "--command", "exit 1", "--id", "fails"]).ok();
    worker.wait_for_output("Job fails failed (attempt 1 of 6, exit 1), retrying in 1s", SHORT);
    assert!(worker_pids(&home).contains(&worker.pid));

    worker.signal(libc::SIGTERM);
    worker.wait_success(SHORT);
}

#[test]
fn sighup_with_a_broken_file_keeps_the_old_settings_and_says_so() {
    let home = home_with_slow_heartbeat();
    let _jobs = KillListedOnDrop(home.path().join("pids"));
    // A job that fails once, when the gate opens: enqueued now, as `enqueue` refuses to take
    // jobs while the file is broken.
    let once = "echo $$ >> pids; while [ ! -e go ]; do sleep 0.02; done; \
                if [ -e failed-once ]; then exit 0; fi; touch failed-once; exit 1";
    home.run(&["enqueue", "--command", once, "--id", "once"]).ok();
    let mut worker = Worker::start(&home, &[]);
    worker.wait_for_output("Executing job once", SHORT);

    append_config(&home, "max_retry = 5");
    worker.signal(libc::SIGHUP);
    worker.wait_for_output("reload failed, keeping the previous settings: ", SHORT);
    let said = worker.output();
    let line = said.lines().find(|l| l.contains("reload failed")).expect("the line");
    assert!(
        line.contains("config/queuectl.toml: unknown key `max_retry` at line"),
        "names the file and the problem: {line}"
    );
    // Asked again, it answers again (a requested reload is never deduplicated away).
    worker.signal(libc::SIGHUP);
    wait_until("a second answer", SHORT, || count(&worker, "reload failed") == 2);
    assert!(worker.is_running(), "{}", worker.output());

    // The old settings are in force: 3 retries, so 4 runs.
    std::fs::write(home.path().join("go"), "").expect("open the gate");
    worker.wait_for_output("Job once failed (attempt 1 of 4, exit 1)", SHORT);
    worker.wait_for_output("Job once completed", SHORT);

    // Mended, the next SIGHUP applies the file again.
    replace_in_config(&home, "max_retry = 5", "max_retries = 0");
    replace_in_config(&home, "\nmax_retries = 3\n", "\n");
    worker.signal(libc::SIGHUP);
    worker.wait_for_output("reloaded config: max_retries 3 -> 0", SHORT);
    worker.signal(libc::SIGINT);
    worker.wait_success(SHORT);
}

/// The periodic pass (database health, settings, heartbeat) keeps its own clock: a worker that
/// never idles, refreshing its row for `status` every 250 ms as each new job starts, still
/// re-reads its settings every `heartbeat_seconds` and says what changed.
#[test]
fn a_worker_busy_with_a_stream_of_short_jobs_still_notices_a_config_change() {
    let home = TestHome::new();
    append_config(&home, "heartbeat_seconds = 1\nlease_seconds = 30");
    // A minute of 100 ms jobs: the worker is busy for the whole test.
    let jobs: String = (0..600)
        .map(|i| format!("{{\"id\":\"short-{i}\",\"command\":\"sleep 0.1\"}}\n"))
        .collect();
    let file = home.path().join("jobs.ndjson");
    std::fs::write(&file, jobs).expect("write the jobs");
    home.run(&["enqueue", "--file", file.to_str().unwrap()]).ok();
    let mut worker = Worker::start(&home, &["--count", "1"]);
    worker.wait_for_output("Job short-1 completed", SHORT);

    home.run(&["config", "set", "max_retries", "7"]).ok();
    worker.wait_for_output("config changed: max_retries 3 -> 7", SHORT);
    let pending = home.status()["jobs"]["pending"].as_u64().expect("a pending count");
    assert!(
        pending > 0,
        "noticed while still busy, with jobs waiting: {}",
        worker.output()
    );

    worker.signal(libc::SIGTERM);
    worker.wait_success(SHORT);
}

/// A job that writes its shell's PID, then waits for the file `go` in the home.
fn gated_job(home: &TestHome, id: &str) {
    let command = format!("echo $$ >> pids; while [ ! -e go ]; do sleep 0.02; done; echo {id} done");
    home.run(&["enqueue", "--command", &command, "--id", id]).ok();
}

#[test]
fn sigterm_stops_gracefully_letting_the_running_job_finish() {
    let home = TestHome::new();
    let _jobs = KillListedOnDrop(home.path().join("pids"));
    gated_job(&home, "gated");
    let mut worker = Worker::start(&home, &[]);
    worker.wait_for_output("Executing job gated", SHORT);

    worker.signal(libc::SIGTERM);
    worker.wait_for_output("Stopping: waiting for 1 running job to finish", SHORT);
    assert!(worker.is_running(), "the first SIGTERM waits for the job");
    std::fs::write(home.path().join("go"), "").expect("open the gate");
    worker.wait_success(SHORT);
    let job = home.job("gated");
    assert_eq!(job["state"], "completed", "{job}");
    assert_eq!(job["stdout"], "gated done\n");
}

#[test]
fn a_second_sigint_forces_the_stop_and_releases_the_job() {
    let home = TestHome::new();
    let _jobs = KillListedOnDrop(home.path().join("pids"));
    gated_job(&home, "gated");
    let mut worker = Worker::start(&home, &[]);
    worker.wait_for_output("Executing job gated", SHORT);

    worker.signal(libc::SIGINT);
    worker.wait_for_output("Stopping: waiting for 1 running job", SHORT);
    worker.signal(libc::SIGINT);
    worker.wait_success(SHORT);
    assert!(
        worker
            .output()
            .contains("Job gated killed by forced shutdown, back to pending"),
        "{}",
        worker.output()
    );
    let job = home.job("gated");
    assert_eq!(
        (job["state"].as_str(), job["attempts"].as_u64()),
        (Some("pending"), Some(0))
    );
}

#[test]
fn worker_stop_with_a_pid_stops_that_worker_and_leaves_the_other_running() {
    let home = TestHome::new();
    let mut first = Worker::start(&home, &[]);
    let mut second = Worker::start(&home, &[]);

    let run = home.run(&["worker", "stop", "--pid", &first.pid.to_string()]).ok();
    assert!(
        run.stdout.contains(&format!("Stopping worker PID {}", first.pid)),
        "{}",
        run.stdout
    );
    assert!(!run.stdout.contains(&second.pid.to_string()), "{}", run.stdout);
    first.wait_success(SHORT);
    assert!(
        second.is_running(),
        "the other worker was stopped:\n{}",
        second.output()
    );
    assert_eq!(worker_pids(&home), [second.pid]);

    // It still runs jobs.
    home.run(&["enqueue", "--command", "true", "--id", "after"]).ok();
    second.wait_for_output("Job after completed", SHORT);

    second.signal(libc::SIGTERM);
    second.wait_success(SHORT);

    // A PID that is no longer (or never was) a worker of this queue is refused, naming it.
    let before = home.db_snapshot();
    for pid in [first.pid, std::process::id()] {
        let run = home.run(&["worker", "stop", "--pid", &pid.to_string()]).code(2);
        assert_eq!(
            run.stderr.trim(),
            format!(
                "queuectl: error: no running worker with PID {pid} in this queue's registry (see `queuectl status`)"
            )
        );
    }
    for bad in ["-1", "abc", ""] {
        let run = home.run(&["worker", "stop", &format!("--pid={bad}")]).code(2);
        assert!(
            run.stderr.contains("invalid value") && run.stderr.contains("--pid"),
            "{}",
            run.stderr
        );
    }
    assert_eq!(home.db_snapshot(), before, "a refused stop changed nothing");
    assert!(process_gone(first.pid) && process_gone(second.pid));
}
