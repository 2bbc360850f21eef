//! Black-box tests of `queuectl health`: exit 0 healthy, 1 unhealthy with one line per failed
//! check (a missing home and an unreadable database included), 2 for bad flags; `--json`.

mod common;

use common::process::{Worker, SHORT};
use common::{wait_until, TestHome};
use serde_json::Value;

fn check<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .expect("checks is an array")
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no {name} check in {report}"))
}

fn failed_lines(stdout: &str) -> Vec<&str> {
    stdout.lines().filter(|l| l.starts_with("FAIL ")).collect()
}

#[test]
fn a_fresh_queue_is_healthy() {
    let home = TestHome::new();
    let run = home.run(&["health"]).ok();
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{}", run.stdout);
    assert!(lines[0].starts_with("ok   database: ") && lines[0].ends_with("answers (0 jobs)"));
    assert_eq!(lines[1], "ok   config: settings are valid");
    let report = home.run(&["health", "--json"]).ok().json();
    assert_eq!(report["ok"], true);
    assert_eq!(check(&report, "database")["ok"], true);
}

#[test]
fn an_uninitialised_home_is_unhealthy_not_a_usage_error() {
    let home = TestHome::empty();
    let run = home.run(&["health", "--min-workers", "1"]).code(1);
    assert_eq!(failed_lines(&run.stdout).len(), 1, "{}", run.stdout);
    assert!(
        run.stdout.starts_with("FAIL database: ") && run.stdout.contains("run `queuectl init` first"),
        "{}",
        run.stdout
    );
    assert_eq!(run.stderr.trim(), "queuectl: unhealthy: database");
    let report = home.run(&["health", "--json"]).code(1).json();
    assert_eq!(report["ok"], false);
    assert_eq!(report["checks"].as_array().map(Vec::len), Some(1));
    assert!(!home.database_exists(), "health created nothing");
}

#[test]
fn an_unreadable_database_is_unhealthy() {
    let home = TestHome::new();
    let garbage = home.path().join("garbage.db");
    std::fs::write(
        &garbage,
        "this is not a database, just text long enough to have a header",
    )
    .unwrap();
    let run = home.run(&["--db", garbage.to_str().unwrap(), "health"]).code(1);
    assert!(run.stdout.starts_with("FAIL database: "), "{}", run.stdout);
    assert!(run.stdout.contains("not a database"), "{}", run.stdout);
}

#[test]
fn a_due_job_waiting_longer_than_the_limit_is_unhealthy() {
    let home = TestHome::new();
    // Due an hour ago and never run (no worker).
    let past = chrono::Utc::now() - chrono::Duration::hours(1);
    let job = serde_json::json!({"id": "stale", "command": "true", "run_at": past.to_rfc3339()});
    home.run(&["enqueue", &job.to_string()]).ok();
    // A job scheduled for later is not waiting yet and does not count.
    home.run(&["enqueue", "--command", "true", "--id", "later", "--delay", "2h"])
        .ok();

    let run = home.run(&["health", "--max-pending-age", "10m"]).code(1);
    let failed = failed_lines(&run.stdout);
    assert_eq!(failed.len(), 1, "{}", run.stdout);
    assert!(
        failed[0].starts_with("FAIL pending_age: the oldest due job has waited 1h00m")
            && failed[0].ends_with("longer than --max-pending-age 10m00s"),
        "{}",
        failed[0]
    );
    assert_eq!(run.stderr.trim(), "queuectl: unhealthy: pending_age");

    let report = home.run(&["health", "--max-pending-age", "2h", "--json"]).ok().json();
    let age = check(&report, "pending_age");
    assert_eq!(age["ok"], true);
    let waited = age["age_seconds"].as_f64().expect("age_seconds");
    assert!((3600.0..7200.0).contains(&waited), "{age}");
    assert_eq!(age["limit_seconds"], 7200.0);

    // Once it has run, nothing is due: healthy whatever the limit.
    let mut worker = Worker::spawn(&home, &["--until-idle"]);
    worker.wait_success(SHORT);
    let run = home.run(&["health", "--max-pending-age", "0s"]).ok();
    assert!(run.stdout.contains("ok   pending_age: no job is due"), "{}", run.stdout);
}

#[test]
fn fewer_live_worker_threads_than_the_minimum_is_unhealthy() {
    let home = TestHome::new();
    let run = home.run(&["health", "--min-workers", "1"]).code(1);
    assert_eq!(
        failed_lines(&run.stdout),
        ["FAIL workers: 0 worker threads live in 0 processes, fewer than --min-workers 1"]
    );

    let mut worker = Worker::start(&home, &["--count", "2"]);
    home.run(&["health", "--min-workers", "2"]).ok();
    let report = home.run(&["health", "--min-workers", "3", "--json"]).code(1).json();
    assert_eq!(report["ok"], false);
    let workers = check(&report, "workers");
    assert_eq!(workers["ok"], false);
    assert_eq!(workers["worker_threads"], 2);
    assert_eq!(workers["worker_processes"], 1);
    assert_eq!(workers["minimum"], 3);
    assert_eq!(check(&report, "database")["ok"], true);

    // A worker that stopped no longer counts.
    worker.signal(libc::SIGTERM);
    worker.wait_success(SHORT);
    wait_until("the stopped worker to leave the registry", SHORT, || {
        home.run(&["health", "--min-workers", "1"]).code == 1
    });
}

#[test]
fn a_broken_config_file_is_unhealthy_and_the_other_checks_still_run() {
    let home = TestHome::new();
    let path = home.path().join("config/queuectl.toml");
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str("max_retry = 5\n");
    std::fs::write(&path, text).unwrap();
    let run = home
        .run(&["health", "--min-workers", "0", "--max-pending-age", "1m"])
        .code(1);
    let failed = failed_lines(&run.stdout);
    assert_eq!(failed.len(), 1, "{}", run.stdout);
    assert!(failed[0].starts_with("FAIL config: ") && failed[0].contains("unknown key `max_retry`"));
    assert!(run.stdout.contains("ok   workers: 0 worker threads"), "{}", run.stdout);
    assert!(run.stdout.contains("ok   pending_age: no job is due"), "{}", run.stdout);
}

#[test]
fn bad_flag_values_are_refused_with_exit_2_and_change_nothing() {
    let home = TestHome::new();
    let before = home.db_snapshot();
    for (args, names) in [
        (&["health", "--max-pending-age", "soon"][..], "--max-pending-age"),
        (&["health", "--max-pending-age=-5m"][..], "--max-pending-age"),
        (&["health", "--min-workers", "many"][..], "--min-workers"),
        (&["health", "--min-workers=-1"][..], "--min-workers"),
    ] {
        let run = home.run(args).code(2);
        assert!(run.stderr.contains(names), "`{}`: {}", args.join(" "), run.stderr);
        assert!(run.stdout.is_empty(), "{}", run.stdout);
    }
    // Even on an uninitialised home, a bad flag is the caller's mistake.
    let empty = TestHome::empty();
    let run = empty.run(&["health", "--max-pending-age", "soon"]).code(2);
    assert_eq!(
        run.stderr.trim(),
        "queuectl: error: --max-pending-age: `soon` is not a duration (expected number at 0); accepted: 90s, 1.5s, 500ms, 15m, 1h30m, 2d, 1w or seconds"
    );
    assert_eq!(home.db_snapshot(), before);
}
