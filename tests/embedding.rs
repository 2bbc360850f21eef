//! queuectl as a Rust program embeds it, through the public API only (no `pub(crate)`, no
//! helpers shared with the black-box tests): typed jobs, per-kind policies and settings in
//! code, richer outcomes, cancellation, timeouts of Rust executors, the testing kit, pools on
//! their own thread, waiting, and a `Queue` shared between threads.
//!
//! Every pool runs with `spawn` and is joined with a deadline, so a broken shutdown fails its
//! test instead of hanging it.

use queuectl::testing::{self, Harness, TempQueue};
use queuectl::{
    AttemptOutcome, CancelReason, CancelToken, Error, ExecContext, Job, JobArgs, JobSpec, KindPolicy, Outcome,
    PoolBuilder, PoolHandle, PoolReport, Queue, Settings, Source, State, WorkerEvent,
};
use serde::{Deserialize, Serialize};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The most any pool in these tests may take to finish.
const DEADLINE: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Resize {
    path: String,
    width: u32,
}

impl JobArgs for Resize {
    const KIND: &'static str = "resize";
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Flaky {
    n: u32,
}

impl JobArgs for Flaky {
    const KIND: &'static str = "flaky";
}

/// Joins a spawned pool, failing the test (after a forced stop) if it takes past `DEADLINE`.
#[track_caller]
fn join(handle: PoolHandle) -> PoolReport {
    let shutdown = handle.shutdown().clone();
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = sender.send(handle.join());
    });
    match receiver.recv_timeout(DEADLINE) {
        Ok(result) => result.expect("the pool ran without an error"),
        Err(_) => {
            shutdown.force();
            panic!("the pool was still running after {DEADLINE:?}");
        }
    }
}

/// Runs `pool` until no job of its kinds is left, on its own thread, with a deadline.
#[track_caller]
fn drain(pool: PoolBuilder) -> PoolReport {
    join(pool.until_empty(true).spawn().expect("the pool starts"))
}

/// A handler that fails every time with an immediate retry: the attempt counts, so the number of
/// runs is exactly `max_retries + 1` in effect, with no backoff to wait for.
fn always_retry(_: Flaky, _: &ExecContext) -> Outcome {
    Outcome::retry_after(Duration::ZERO, "again")
}

fn runs(queue: &Queue, id: &str) -> (State, u32) {
    let job = queue.get(id).unwrap();
    (job.state, job.attempts)
}

#[test]
fn typed_arguments_round_trip_through_the_queue_and_a_pool() {
    let queue = TempQueue::new().unwrap();
    let args = Resize {
        path: "cat.png".into(),
        width: 64,
    };
    queue.enqueue(JobSpec::typed(&args).unwrap().with_id("r1")).unwrap();
    let stored = queue.get("r1").unwrap();
    assert_eq!(stored.kind, "resize");
    assert_eq!(stored.args::<Resize>().unwrap(), args);
    assert_eq!(stored.source, Source::Api);

    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    let report = drain(queue.pool().without_shell().job(move |args: Resize, _: &ExecContext| {
        record.lock().unwrap().push(args.clone());
        Outcome::success().with_output(format!("{}@{}", args.path, args.width), "")
    }));
    assert_eq!(
        report,
        PoolReport {
            attempts: 1,
            completed: 1,
            ..PoolReport::default()
        }
    );
    assert_eq!(*seen.lock().unwrap(), [args]);
    assert_eq!(queue.get("r1").unwrap().stdout.as_deref(), Some("cat.png@64"));
}

#[test]
fn a_payload_that_does_not_fit_the_arguments_fails_the_attempt_naming_the_field() {
    let queue = TempQueue::new().unwrap();
    queue
        .enqueue(
            JobSpec::kind("resize", serde_json::json!({"path": "a.png", "width": "wide"}))
                .with_id("bad")
                .with_max_retries(0),
        )
        .unwrap();
    let report = drain(
        queue
            .pool()
            .without_shell()
            .job(|_: Resize, _: &ExecContext| Outcome::success()),
    );
    assert_eq!((report.attempts, report.dead), (1, 1));
    let job = queue.get("bad").unwrap();
    assert_eq!(job.state, State::Dead);
    let error = job.last_error.unwrap();
    assert!(error.contains("field `payload.width`"), "{error}");
    assert!(error.contains("invalid type: string \"wide\""), "{error}");
}

#[test]
fn a_kind_policy_beats_the_config_and_loses_to_the_jobs_own_field() {
    let queue = TempQueue::builder().config_file(true).build().unwrap();
    // The file's kind tables, appended after the default file's top-level keys.
    let path = queue.home().config_path();
    let mut file = std::fs::read_to_string(&path).unwrap();
    file.push_str("\n[kinds.flaky]\nmax_retries = 2\n\n[kinds.coded]\nmax_retries = 1\nbackoff_base = 5\n");
    std::fs::write(&path, file).unwrap();
    // The global value, from the strongest global layer: `config set`.
    queue.config_set("max_retries", "0").unwrap();
    assert_eq!(
        queue.settings().unwrap().kinds["flaky"],
        KindPolicy::new().max_retries(2)
    );

    let other = JobSpec::kind("other", serde_json::json!({"n": 0}));
    queue
        .enqueue(JobSpec::typed(&Flaky { n: 1 }).unwrap().with_id("kind"))
        .unwrap();
    queue
        .enqueue(
            JobSpec::typed(&Flaky { n: 2 })
                .unwrap()
                .with_id("own")
                .with_max_retries(1),
        )
        .unwrap();
    queue.enqueue(other.clone().with_id("global")).unwrap();
    queue
        .enqueue(JobSpec::kind("coded", serde_json::json!({"n": 3})).with_id("code"))
        .unwrap();
    let retry = |_: &Job, _: &ExecContext| Outcome::retry_after(Duration::ZERO, "again");
    let report = drain(
        queue
            .pool()
            .without_shell()
            .job(always_retry)
            .executor("other", retry)
            .executor("coded", retry)
            .kind_policy("coded", KindPolicy::new().max_retries(3)),
    );
    // kind table 2 > config set 0: 3 runs; the job's own 1 > kind table 2: 2 runs; no kind
    // policy: config set 0, 1 run; code 3 > file 1: 4 runs.
    assert_eq!(runs(&queue, "kind"), (State::Dead, 3));
    assert_eq!(runs(&queue, "own"), (State::Dead, 2));
    assert_eq!(runs(&queue, "global"), (State::Dead, 1));
    assert_eq!(runs(&queue, "code"), (State::Dead, 4));
    assert_eq!((report.attempts, report.retried, report.dead), (10, 6, 4));
}

#[test]
fn settings_in_code_apply_to_the_pool_and_are_written_nowhere() {
    let queue = TempQueue::new().unwrap();
    queue
        .enqueue(JobSpec::typed(&Flaky { n: 1 }).unwrap().with_id("a"))
        .unwrap();
    let mut settings = Settings::defaults(queue.path());
    settings.max_retries = 4;
    settings.worker_count = 2;
    settings.kinds.insert("other".into(), KindPolicy::new().max_retries(9));
    let report = drain(queue.pool().without_shell().settings(settings).job(always_retry));
    assert_eq!(report.attempts, 5);
    assert_eq!(runs(&queue, "a"), (State::Dead, 5));
    assert!(
        queue
            .config_entries()
            .unwrap()
            .iter()
            .all(|e| e.source != queuectl::config::ValueSource::Set),
        "nothing stored in the database"
    );
    assert_eq!(
        queue.settings().unwrap().max_retries,
        3,
        "the queue's own settings are untouched"
    );

    // Settings in code pass the same checks as the file's, before the pool touches anything.
    let mut bad = Settings::defaults(queue.path());
    bad.max_retries = 1001;
    let e = queue.pool().settings(bad.clone()).spawn().unwrap_err().to_string();
    assert_eq!(
        e,
        "invalid value `1001` for `max_retries`: must be an integer from 0 to 1000"
    );
    bad.max_retries = 3;
    (bad.heartbeat_seconds, bad.lease_seconds) = (10, 20);
    let e = queue.pool().settings(bad).spawn().unwrap_err().to_string();
    assert!(
        e.contains("`lease_seconds` (20) must be at least 3 times `heartbeat_seconds` (10)"),
        "{e}"
    );
    let e = queue
        .pool()
        .kind_policy("flaky", KindPolicy::new().max_retries(5000))
        .spawn()
        .unwrap_err()
        .to_string();
    assert!(e.contains("`kinds.flaky.max_retries`"), "{e}");
}

#[test]
fn discard_is_dead_at_once_and_retry_after_schedules_the_next_run() {
    let queue = TempQueue::new().unwrap();
    queue
        .enqueue(
            JobSpec::kind("discard", serde_json::json!({}))
                .with_id("d")
                .with_max_retries(5),
        )
        .unwrap();
    queue
        .enqueue(
            JobSpec::kind("later", serde_json::json!({}))
                .with_id("l")
                .with_max_retries(5),
        )
        .unwrap();
    let report = join(
        queue
            .pool()
            .without_shell()
            .executor("discard", |_: &Job, _: &ExecContext| {
                Outcome::discard("bad input, never retry")
            })
            .executor("later", |_: &Job, _: &ExecContext| {
                Outcome::retry_after(Duration::from_secs(3600), "rate limited")
            })
            .until_idle(true)
            .spawn()
            .unwrap(),
    );
    assert_eq!((report.attempts, report.dead, report.retried), (2, 1, 1));

    let discarded = queue.get("d").unwrap();
    assert_eq!((discarded.state, discarded.attempts), (State::Dead, 1));
    assert_eq!(discarded.last_error.as_deref(), Some("bad input, never retry"));
    let history = queue.history("d").unwrap();
    assert_eq!(
        history.iter().map(|a| a.outcome).collect::<Vec<_>>(),
        [AttemptOutcome::Failed]
    );

    let later = queue.get("l").unwrap();
    assert_eq!((later.state, later.attempts), (State::Failed, 1));
    assert_eq!(
        later.run_at - later.finished_at.unwrap(),
        3_600_000,
        "an hour after it ended"
    );
    assert_eq!(later.last_error.as_deref(), Some("rate limited"));
}

#[test]
fn a_forced_stop_reaches_a_long_running_rust_handler_within_100ms() {
    let queue = TempQueue::new().unwrap();
    queue
        .enqueue(JobSpec::kind("long", serde_json::json!({})).with_id("long"))
        .unwrap();
    let (started_tx, started_rx) = mpsc::channel::<()>();
    let (woke_tx, woke_rx) = mpsc::channel::<(Instant, Option<CancelReason>)>();
    let started_tx = Mutex::new(started_tx);
    let woke_tx = Mutex::new(woke_tx);
    let handle = queue
        .pool()
        .without_shell()
        .executor("long", move |_: &Job, context: &ExecContext| {
            let _ = started_tx.lock().unwrap().send(());
            // A minute of "work" that checks for cancellation where it would sleep.
            let cancelled = context.wait_timeout(Duration::from_secs(60));
            let _ = woke_tx.lock().unwrap().send((Instant::now(), context.cancel_reason()));
            if cancelled {
                Outcome::failure("stopped early")
            } else {
                Outcome::success()
            }
        })
        .spawn()
        .unwrap();
    started_rx.recv_timeout(DEADLINE).expect("the handler started");
    let trigger = Instant::now();
    handle.force_stop();
    let (woke, reason) = woke_rx.recv_timeout(DEADLINE).expect("the handler returned");
    let report = join(handle);

    assert_eq!(reason, Some(CancelReason::Shutdown));
    let latency = woke.duration_since(trigger);
    assert!(
        latency < Duration::from_millis(100),
        "the handler saw the stop after {latency:?}"
    );
    // Interrupted, not failed: the attempt does not count and the job is pending again.
    assert_eq!((report.attempts, report.interrupted), (1, 1));
    assert_eq!(runs(&queue, "long"), (State::Pending, 0));
    assert_eq!(
        queue
            .history("long")
            .unwrap()
            .iter()
            .map(|a| a.outcome)
            .collect::<Vec<_>>(),
        [AttemptOutcome::Interrupted]
    );
}

#[test]
fn a_rust_handler_that_overruns_its_timeout_is_recorded_as_timed_out_whatever_it_returns() {
    let queue = TempQueue::new().unwrap();
    queue
        .enqueue(
            JobSpec::kind("slow", serde_json::json!({}))
                .with_id("slow")
                .with_timeout_seconds(1)
                .with_max_retries(0),
        )
        .unwrap();
    let reasons = Arc::new(Mutex::new(Vec::new()));
    let record = reasons.clone();
    let events = Arc::new(Mutex::new(Vec::new()));
    let seen = events.clone();
    let report = drain(
        queue
            .pool()
            .without_shell()
            .executor("slow", move |_: &Job, context: &ExecContext| {
                context.wait_timeout(Duration::from_secs(60));
                record.lock().unwrap().push(context.cancel_reason());
                // It claims success after its deadline: that must not count.
                Outcome::success()
            })
            .observer(move |event: &WorkerEvent| {
                if let WorkerEvent::JobTimedOut { signal, .. } = event {
                    seen.lock().unwrap().push(*signal);
                }
            }),
    );
    assert_eq!(*reasons.lock().unwrap(), [Some(CancelReason::TimedOut)]);
    assert_eq!(*events.lock().unwrap(), ["none (custom executor)"]);
    assert_eq!((report.completed, report.dead), (0, 1));
    let job = queue.get("slow").unwrap();
    assert_eq!(job.state, State::Dead);
    assert_eq!(
        job.last_error.as_deref(),
        Some("timed out after 1s (it then returned a success)")
    );
}

#[test]
fn a_kind_timeout_applies_to_jobs_without_their_own() {
    let queue = TempQueue::new().unwrap();
    queue
        .enqueue(
            JobSpec::typed(&Flaky { n: 0 })
                .unwrap()
                .with_id("t")
                .with_max_retries(0),
        )
        .unwrap();
    let report = drain(
        queue
            .pool()
            .without_shell()
            .kind_policy("flaky", KindPolicy::new().timeout_seconds(1))
            .job(|_: Flaky, context: &ExecContext| {
                if context.wait_timeout(Duration::from_secs(60)) {
                    Outcome::failure("gave up")
                } else {
                    Outcome::success()
                }
            }),
    );
    assert_eq!(report.dead, 1);
    assert_eq!(
        queue.get("t").unwrap().last_error.as_deref(),
        Some("timed out after 1s (it then returned: gave up)")
    );
}

#[test]
fn the_testing_kit_runs_handlers_and_executors_without_a_database() {
    fn resize(args: Resize, context: &ExecContext) -> Outcome {
        match args.width {
            0 => Outcome::discard("width 0"),
            w if w > 10_000 => Outcome::retry_after(Duration::from_secs(60), "too big for now"),
            w => Outcome::success().with_output(format!("{w} on attempt {}", context.attempt), ""),
        }
    }
    let args = |width| Resize {
        path: "x.png".into(),
        width,
    };
    let ok = testing::run_handler(resize, &args(10));
    assert_eq!((ok.success, ok.stdout.as_deref()), (true, Some("10 on attempt 1")));
    assert_eq!(testing::run_handler(resize, &args(0)), Outcome::discard("width 0"));
    assert_eq!(
        testing::run_handler(resize, &args(20_000)),
        Outcome::retry_after(Duration::from_secs(60), "too big for now")
    );
    let third = Harness::new().attempt(3).run_handler(resize, &args(5));
    assert_eq!(third.stdout.as_deref(), Some("5 on attempt 3"));
    let bad = testing::run_handler_on(resize, JobSpec::kind("resize", serde_json::json!({"path": "x"})));
    assert!(!bad.success);
    assert!(bad.error.unwrap().contains("missing field `width`"));

    // A raw executor, on a job built from a spec.
    let job = testing::job(JobSpec::kind("echo", serde_json::json!({"say": "hi"})).with_max_retries(2));
    assert_eq!((job.state, job.attempts, job.max_retries), (State::Pending, 0, Some(2)));
    let echo = |job: &Job, _: &ExecContext| {
        Outcome::success().with_output(job.payload.as_ref().unwrap()["say"].to_string(), "")
    };
    assert_eq!(
        testing::run(&echo, JobSpec::kind("echo", serde_json::json!({"say": "hi"})))
            .stdout
            .as_deref(),
        Some("\"hi\"")
    );

    // Cancellation from the test's side: fire the token from another thread.
    let token = CancelToken::new();
    let firing = token.clone();
    let canceller = std::thread::spawn(move || firing.cancel(CancelReason::Shutdown));
    let waits = |_: &Job, context: &ExecContext| {
        if context.wait_timeout(Duration::from_secs(60)) {
            Outcome::failure(format!("stopped: {}", context.cancel_reason().unwrap()))
        } else {
            Outcome::success()
        }
    };
    let outcome = Harness::new()
        .cancel_token(token)
        .run(&waits, JobSpec::kind("w", serde_json::json!({})));
    canceller.join().unwrap();
    assert_eq!(outcome.error.as_deref(), Some("stopped: forced shutdown"));
}

#[test]
fn a_spawned_pool_stops_on_request_and_reports_what_it_did() {
    let queue = TempQueue::new().unwrap();
    queue
        .enqueue(JobSpec::typed(&Flaky { n: 1 }).unwrap().with_id("ok"))
        .unwrap();
    queue
        .enqueue(
            JobSpec::typed(&Flaky { n: 0 })
                .unwrap()
                .with_id("dead")
                .with_max_retries(0),
        )
        .unwrap();
    let handle = queue
        .pool()
        .without_shell()
        .threads(2)
        .job(|args: Flaky, _: &ExecContext| {
            if args.n > 0 {
                Outcome::success()
            } else {
                Outcome::failure("zero")
            }
        })
        .spawn()
        .unwrap();
    let report = queue.wait(&["ok", "dead"], Some(DEADLINE)).unwrap();
    assert!(!report.timed_out);
    assert_eq!(
        report.jobs,
        [("ok".to_string(), State::Completed), ("dead".to_string(), State::Dead)]
    );
    assert_eq!((report.completed(), report.dead(), report.unfinished()), (1, 1, 0));
    assert!(
        !handle.is_finished(),
        "without until_empty the pool waits for more work"
    );
    handle.stop();
    assert_eq!(
        join(handle),
        PoolReport {
            attempts: 2,
            completed: 1,
            dead: 1,
            ..PoolReport::default()
        }
    );
}

#[test]
fn waiting_refuses_unknown_ids_and_times_out_without_an_error() {
    let queue = TempQueue::new().unwrap();
    queue.enqueue(JobSpec::shell("true").with_id("waits")).unwrap();
    match queue.wait(&["waits", "nope"], None) {
        Err(Error::NotFound(id)) => assert_eq!(id, "nope"),
        other => panic!("expected not found, got {other:?}"),
    }
    let report = queue.wait(&["waits"], Some(Duration::from_millis(20))).unwrap();
    assert!(report.timed_out);
    assert_eq!(report.jobs, [("waits".to_string(), State::Pending)]);
    let all = queue.wait(&[] as &[&str], Some(Duration::from_millis(20))).unwrap();
    assert!(all.timed_out);
    assert_eq!((all.unfinished(), all.counts.unwrap().pending), (1, 1));
}

#[test]
fn one_queue_is_shared_by_several_threads() {
    fn is_send_sync<T: Send + Sync>() {}
    is_send_sync::<Queue>();
    let queue = Arc::new(TempQueue::new().unwrap());
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let queue = queue.clone();
            std::thread::spawn(move || {
                for i in 0..10 {
                    queue
                        .enqueue(JobSpec::kind("n", serde_json::json!({})).with_id(format!("t{t}-{i}")))
                        .unwrap();
                    queue.status().unwrap();
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    assert_eq!(queue.status().unwrap().counts.pending, 40);
    let ids: Vec<String> = (0..4).flat_map(|t| (0..10).map(move |i| format!("t{t}-{i}"))).collect();
    let report = drain(
        queue
            .pool()
            .without_shell()
            .executor("n", |_: &Job, _: &ExecContext| Outcome::success()),
    );
    assert_eq!(report.completed, 40);
    assert_eq!(queue.wait(&ids, Some(DEADLINE)).unwrap().completed(), 40);
}

#[test]
fn batches_take_any_iterator_and_dlq_retry_takes_any_strings() {
    let queue = TempQueue::new().unwrap();
    let ids = queue
        .enqueue_batch((0..3).map(|i| {
            JobSpec::kind("x", serde_json::json!({}))
                .with_id(format!("b{i}"))
                .with_max_retries(0)
        }))
        .unwrap();
    assert_eq!(ids, ["b0", "b1", "b2"]);
    drain(
        queue
            .pool()
            .without_shell()
            .executor("x", |_: &Job, _: &ExecContext| Outcome::failure("no")),
    );
    assert_eq!(queue.dlq_retry(&["b0", "b1"]).unwrap(), 2);
    assert_eq!(queue.dlq_retry(&[String::from("b2")]).unwrap(), 1);
    assert_eq!(runs(&queue, "b2"), (State::Pending, 0));
}
