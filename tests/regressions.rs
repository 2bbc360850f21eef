//! Regression tests for the findings of the first code review (each named after the finding).
//! Black-box: the built binary, real processes, real signals; conditions are polled with a
//! deadline, never slept on.

mod common;

use common::{signal, wait_until, TestHome};
use std::time::{Duration, Instant};

const DEADLINE: Duration = Duration::from_secs(30);

fn job_state(home: &TestHome, id: &str) -> String {
    home.job(id)["state"].as_str().unwrap_or_default().to_string()
}

/// Review finding 1: a worker paused with SIGSTOP past its lease still owns its running job (on
/// this host the PID decides), so `recover` must not hand that job to another worker.
#[test]
fn review_1_a_paused_worker_keeps_its_job() {
    let home = TestHome::new();
    home.run(&["config", "set", "heartbeat-seconds", "1"]).ok();
    home.run(&["config", "set", "lease-seconds", "3"]).ok();
    home.run(&[
        "enqueue",
        "--command",
        "echo start >> runs.txt; sleep 5; echo end >> runs.txt",
        "--id",
        "j1",
    ])
    .ok();
    let mut worker = home.spawn(&["worker", "start", "--no-spool"]);
    wait_until("j1 to start", DEADLINE, || home.path().join("runs.txt").exists());
    signal(worker.id(), libc::SIGSTOP);
    // Well past the lease: the heartbeat is stale, but the process is alive.
    let stopped_at = Instant::now();
    wait_until("the lease to pass", DEADLINE, || {
        let status = home.status();
        stopped_at.elapsed() > Duration::from_secs(4) && status["jobs"]["processing"] == 1
    });
    let recover = home.run(&["recover"]).ok();
    assert!(recover.stdout.contains("recovered 0 jobs"), "{recover:#?}");
    assert_eq!(job_state(&home, "j1"), "processing");
    signal(worker.id(), libc::SIGCONT);
    wait_until("j1 to complete", DEADLINE, || job_state(&home, "j1") == "completed");
    let runs = std::fs::read_to_string(home.path().join("runs.txt")).unwrap();
    assert_eq!(runs, "start\nend\n", "the job ran exactly once");
    signal(worker.id(), libc::SIGTERM);
    assert!(worker.wait().unwrap().success());
}

/// Review finding 4: a timed-out job whose descendant left the process group (setsid) while
/// holding stdout must still end when its shell is killed, not when the descendant exits.
#[test]
fn review_4_timeout_ends_a_job_whose_descendant_holds_the_pipe() {
    let home = TestHome::new();
    home.run(&[
        "enqueue",
        "--command",
        "setsid sleep 20 & echo hi; sleep 20",
        "--id",
        "t",
        "--timeout",
        "1s",
    ])
    .ok();
    home.run(&["config", "set", "max-retries", "0"]).ok();
    let started = Instant::now();
    // Exit code 3: the job died (timed out with no retries left) during the run.
    let run = home.run(&["worker", "start", "--until-empty", "--no-spool"]).code(3);
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "took {:?}: {run:#?}",
        started.elapsed()
    );
    let job = home.job("t");
    assert_eq!(job["state"], "dead");
    assert_eq!(job["last_error"], "timed out after 1s");
    assert_eq!(job["stdout"], "hi\n");
}

/// Review finding 8: absurd durations are refused with a message, not a panic.
#[test]
fn review_8_huge_durations_are_refused_not_panics() {
    let home = TestHome::new();
    for args in [
        vec!["wait", "--timeout", "1e300"],
        vec!["wait", "--timeout", "1e19"],
        vec!["worker", "stop", "--timeout", "1e300"],
        vec!["enqueue", "--command", "true", "--delay", "1e300"],
        vec!["enqueue", "--command", "true", "--timeout", "99999999999h"],
    ] {
        let run = home.run(&args).code(2);
        assert!(run.stderr.contains("100 years"), "{args:?}: {run:#?}");
        assert_eq!(run.stderr.lines().count(), 1, "{run:#?}");
    }
    assert_eq!(home.status()["total"], 0);
}

/// Review finding 9: a lease shorter than three heartbeats is refused, by `config set` and in
/// the file, because it would make live workers look dead.
#[test]
fn review_9_lease_must_cover_three_heartbeats() {
    let home = TestHome::new();
    let run = home.run(&["config", "set", "heartbeat-seconds", "30"]).code(2);
    assert!(
        run.stderr
            .contains("`lease_seconds` (15) must be at least 3 times `heartbeat_seconds` (30)"),
        "{run:#?}"
    );
    assert_eq!(
        home.run(&["config", "get", "heartbeat_seconds"]).ok().stdout.trim(),
        "1"
    );
    std::fs::write(
        home.path().join("config/queuectl.toml"),
        "heartbeat_seconds = 10\nlease_seconds = 20\n",
    )
    .unwrap();
    let run = home.run(&["status"]).code(2);
    assert!(run.stderr.contains("must be at least 3 times"), "{run:#?}");
}

/// Review finding 3: a write lock held longer than the worker's busy timeout is not fatal: the
/// worker reports it, keeps the finished result, and records it once the lock is released.
#[test]
fn review_3_a_long_write_lock_does_not_kill_the_worker_or_lose_results() {
    let home = TestHome::new();
    home.run(&["enqueue", "--command", "sleep 0.5; echo done", "--id", "locked"])
        .ok();
    let mut worker = home.spawn(&["worker", "start", "--no-spool"]);
    wait_until("the job to start", DEADLINE, || {
        job_state(&home, "locked") == "processing"
    });
    {
        let conn = rusqlite::Connection::open(home.path().join("queue.db")).unwrap();
        conn.execute_batch("BEGIN IMMEDIATE").unwrap();
        // Hold the lock past the worker's 5 s busy timeout (the job ends meanwhile).
        let held = Instant::now();
        while held.elapsed() < Duration::from_secs(7) {
            std::thread::sleep(Duration::from_millis(100));
            assert!(
                worker.try_wait().unwrap().is_none(),
                "the worker exited while the lock was held"
            );
        }
        conn.execute_batch("COMMIT").unwrap();
    }
    wait_until("the job to be recorded", DEADLINE, || {
        job_state(&home, "locked") == "completed"
    });
    assert_eq!(home.job("locked")["stdout"], "done\n");
    signal(worker.id(), libc::SIGTERM);
    let output = worker.wait_with_output().unwrap();
    assert!(output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("warning: database error, retrying"), "{stdout}");
}
