//! `worker start --until-idle --single-instance` as cron runs it: every minute, at most one
//! worker per home, the others exit 0 at once.

mod common;

use common::process::{worker_pids, KillListedOnDrop, Worker, SHORT};
use common::{wait_until, TestHome};

/// A job that records its PID (for the kill guard) and runs until the test creates `release`.
/// Each test uses its own job id: recovery recognises a lost run's processes by job id and
/// lease, which would be the same in two homes of tests running at once.
fn gated_job(id: &str) -> String {
    format!(r#"{{"id":"{id}","command":"echo $$ >> job-pids; while [ ! -e release ]; do sleep 0.05; done"}}"#)
}

fn busy_line(home: &TestHome) -> String {
    format!(
        "another worker holds {}; nothing to do",
        home.path().join("run").join("worker.lock").display()
    )
}

#[test]
fn second_single_instance_worker_exits_at_once_while_the_first_runs_jobs() {
    let home = TestHome::new();
    let _jobs = KillListedOnDrop(home.path().join("job-pids"));
    home.run(&["enqueue", &gated_job("overlap-long")]).ok();
    // Back to back, as two cron runs that overlap.
    let mut first = Worker::spawn(&home, &["--until-idle", "--single-instance"]);
    let mut second = Worker::spawn(&home, &["--until-idle", "--single-instance"]);
    wait_until("one of the two workers to exit", SHORT, || {
        !first.is_running() || !second.is_running()
    });
    let (mut winner, mut loser) = if first.is_running() {
        (first, second)
    } else {
        (second, first)
    };
    loser.wait_success(SHORT);
    assert_eq!(loser.output(), format!("{}\n", busy_line(&home)));
    // The winner runs the job; the loser never registered as a worker.
    wait_until("the job to run", SHORT, || {
        home.job("overlap-long")["state"] == "processing"
    });
    assert!(winner.is_running(), "{}", winner.output());
    assert_eq!(worker_pids(&home), vec![winner.pid]);

    // More cron runs while it works: nothing to do, exit 0 (silent with --quiet), and
    // --detach starts nothing.
    let again = home.run(&["worker", "start", "--until-idle", "--single-instance"]).ok();
    assert_eq!(again.stdout, format!("{}\n", busy_line(&home)));
    let quiet = home
        .run(&["worker", "start", "--until-idle", "--single-instance", "--quiet"])
        .ok();
    assert_eq!(
        (quiet.stdout.as_str(), quiet.stderr.as_str()),
        ("", ""),
        "winner: {}",
        winner.output()
    );
    let detached = home
        .run(&["worker", "start", "--detach", "--until-idle", "--single-instance"])
        .ok();
    assert_eq!(detached.stdout, format!("{}\n", busy_line(&home)));
    assert!(!home.path().join("logs").exists() || std::fs::read_dir(home.path().join("logs")).unwrap().count() == 0);
    assert_eq!(worker_pids(&home), vec![winner.pid]);

    // Once the first is done, the next cron run works again.
    std::fs::write(home.path().join("release"), "").expect("release the job");
    winner.wait_success(SHORT);
    assert_eq!(
        home.job("overlap-long")["state"],
        "completed",
        "{:#?}\n{}",
        home.job("overlap-long"),
        winner.output()
    );
    home.run(&["enqueue", r#"{"id":"next","command":"true"}"#]).ok();
    let next = home
        .run(&["worker", "start", "--no-spool", "--until-idle", "--single-instance"])
        .ok();
    assert!(next.stdout.contains("Job next completed"), "{next:#?}");
    assert_eq!(home.job("next")["state"], "completed");
}

#[test]
fn killed_single_instance_worker_leaves_no_stale_lock() {
    let home = TestHome::new();
    let _jobs = KillListedOnDrop(home.path().join("job-pids"));
    home.run(&["enqueue", &gated_job("killed-long")]).ok();
    let mut holder = Worker::start(&home, &["--single-instance"]);
    wait_until("the job to run", SHORT, || {
        home.job("killed-long")["state"] == "processing"
    });
    holder.signal(libc::SIGKILL);
    holder.wait_exit(SHORT);
    // The kernel dropped the lock with the process: a new run proceeds.
    std::fs::write(home.path().join("release"), "").expect("release the job");
    let next = home
        .run(&["worker", "start", "--no-spool", "--until-idle", "--single-instance"])
        .ok();
    assert!(!next.stdout.contains("nothing to do"), "{next:#?}");
    assert!(next.stdout.starts_with("Started 1 worker"), "{next:#?}");
}

#[test]
fn workers_without_the_flag_ignore_the_lock() {
    let home = TestHome::new();
    let _jobs = KillListedOnDrop(home.path().join("job-pids"));
    home.run(&["enqueue", &gated_job("flagless-long")]).ok();
    let mut holder = Worker::start(&home, &["--single-instance"]);
    wait_until("the job to run", SHORT, || {
        home.job("flagless-long")["state"] == "processing"
    });
    home.run(&["enqueue", r#"{"id":"other","command":"true"}"#]).ok();
    let plain = home.run(&["worker", "start", "--no-spool", "--until-idle"]).ok();
    assert!(plain.stdout.contains("Job other completed"), "{plain:#?}");
    std::fs::write(home.path().join("release"), "").expect("release the job");
    holder.signal(libc::SIGTERM);
    holder.wait_success(SHORT);
}

#[test]
fn single_instance_in_an_uninitialised_home_is_refused_and_creates_nothing() {
    let home = TestHome::empty();
    let run = home
        .run(&["worker", "start", "--until-idle", "--single-instance"])
        .code(2);
    assert!(run.stderr.starts_with("queuectl: error: "), "{run:#?}");
    assert_eq!(run.stderr.lines().count(), 1, "{run:#?}");
    assert_eq!(std::fs::read_dir(home.path()).expect("read the home").count(), 0);
}

#[test]
fn crontab_line_prints_nothing_when_all_went_well() {
    let home = TestHome::new();
    home.run(&["enqueue", r#"{"id":"quiet-fine","command":"echo fine"}"#])
        .ok();
    // Dropped into the spool: ingesting it is routine, not worth a mail either.
    std::fs::write(
        home.path().join("spool/incoming/nightly.json"),
        r#"{"id":"quiet-spooled","command":"true"}"#,
    )
    .expect("write a spool file");
    // The documented crontab line, spool included.
    let run = home
        .run(&["worker", "start", "--until-idle", "--single-instance", "--quiet"])
        .ok();
    assert_eq!((run.stdout.as_str(), run.stderr.as_str()), ("", ""), "{run:#?}");
    assert_eq!(home.job("quiet-fine")["state"], "completed");
    assert_eq!(home.job("quiet-spooled")["state"], "completed");
    // A run where a job dies is reported, from its start line on (and exits 3).
    home.run(&["enqueue", r#"{"id":"quiet-bad","command":"exit 4","max_retries":0}"#])
        .ok();
    let run = home
        .run(&["worker", "start", "--until-idle", "--single-instance", "--quiet"])
        .code(3);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{run:#?}");
    assert!(lines[0].starts_with("Started 1 worker"), "{run:#?}");
    assert!(
        lines[1].ends_with("Job quiet-bad moved to DLQ after 1 attempt: exit 4"),
        "{run:#?}"
    );
    assert!(lines[2].ends_with("Worker stopped after 1 job"), "{run:#?}");
}
