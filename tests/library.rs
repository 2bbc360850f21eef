//! The public API used exactly as an outside crate would: only `pub` items of `queuectl`. Every
//! pool runs on a thread of its own and is joined with a deadline, so a broken shutdown fails
//! its test instead of hanging.

mod common;

use common::pool::{run_pool, PoolThread};
use common::TestHome;
use queuectl::{Error, ExecContext, Home, Job, JobSpec, Outcome, PoolBuilder, Queue, Shutdown, State, WorkerEvent};
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The most any pool run in these tests may take.
const POOL_DEADLINE: Duration = Duration::from_secs(60);

/// A new queue in a test home (its database where the tests' backend puts it); the home is
/// returned first so that it outlives the queue.
fn new_queue() -> (TestHome, Home, Queue) {
    let dir = TestHome::empty();
    let home = dir.lib_home();
    let (queue, report) = Queue::init(&home).expect("init");
    assert!(!report.already_initialised);
    // Retries one second apart keep these tests short.
    queue.config_set("backoff-base", "1").expect("config set");
    (dir, home, queue)
}

#[test]
fn custom_executor_runs_to_completion_retry_and_dead() {
    let (_dir, home, queue) = new_queue();
    queue
        .enqueue(JobSpec::kind("math", json!({"n": 3})).with_id("ok"))
        .unwrap();
    queue
        .enqueue(
            JobSpec::kind("math", json!({"n": -1}))
                .with_id("bad")
                .with_max_retries(1),
        )
        .unwrap();
    let calls = Arc::new(Mutex::new(Vec::new()));
    let seen = calls.clone();
    let pool = PoolBuilder::new(&home)
        .without_shell()
        .threads(2)
        .executor("math", move |job: &Job, context: &ExecContext| {
            seen.lock().unwrap().push((job.id.clone(), context.attempt));
            let n = job.payload.as_ref().and_then(|p| p["n"].as_i64()).unwrap_or(0);
            if n >= 0 {
                Outcome::success().with_output(format!("{}", n * 2), "")
            } else {
                Outcome::failure("negative input").with_exit_code(9)
            }
        })
        .until_empty(true)
        .shell_hooks(false);
    let ran = run_pool(pool, POOL_DEADLINE).unwrap();
    assert_eq!(ran, 3, "ok once, bad twice (max_retries 1)");
    let ok = queue.get("ok").unwrap();
    assert_eq!(
        (ok.state, ok.attempts, ok.stdout.as_deref()),
        (State::Completed, 1, Some("6"))
    );
    let bad = queue.get("bad").unwrap();
    assert_eq!((bad.state, bad.attempts, bad.exit_code), (State::Dead, 2, Some(9)));
    assert_eq!(bad.last_error.as_deref(), Some("negative input"));
    let history = queue.history(&bad.id).unwrap();
    assert_eq!(
        history
            .iter()
            .map(|a| (a.attempt, a.outcome.as_str()))
            .collect::<Vec<_>>(),
        [(1, "failed"), (2, "failed")]
    );
    let mut attempts: Vec<(String, u32)> = calls.lock().unwrap().clone();
    attempts.sort();
    assert_eq!(
        attempts,
        [("bad".to_string(), 1), ("bad".to_string(), 2), ("ok".to_string(), 1)]
    );

    // The DLQ through the API: back to pending with attempts reset, history kept.
    assert!(matches!(
        queue.dlq_retry(&["ok".to_string()]),
        Err(Error::WrongState { .. })
    ));
    assert!(matches!(
        queue.dlq_retry(&["nope".to_string()]),
        Err(Error::NotFound(_))
    ));
    assert_eq!(queue.dlq_retry(&["bad".to_string()]).unwrap(), 1);
    let bad = queue.get("bad").unwrap();
    assert_eq!((bad.state, bad.attempts), (State::Pending, 0));
    assert_eq!(queue.history(&bad.id).unwrap().len(), 2);
}

#[test]
fn two_pools_with_different_kinds_share_one_queue() {
    let (_dir, home, queue) = new_queue();
    let mut batch = Vec::new();
    for i in 0..20 {
        batch.push(JobSpec::kind("alpha", json!({ "i": i })).with_id(format!("a{i}")));
        batch.push(JobSpec::kind("beta", json!({ "i": i })).with_id(format!("b{i}")));
    }
    queue.enqueue_batch(batch).unwrap();
    let status = queue.status().unwrap();
    assert_eq!(status.waiting_by_kind.get("alpha"), Some(&20));
    assert_eq!(status.waiting_by_kind.get("beta"), Some(&20));

    let pool_for = |kind: &'static str| {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        let pool = PoolBuilder::new(&home)
            .without_shell()
            .threads(2)
            .executor(kind, move |job: &Job, _: &ExecContext| {
                record.lock().unwrap().push(job.kind.clone());
                Outcome::success()
            })
            .until_empty(true)
            .shell_hooks(false);
        (PoolThread::spawn(pool, &Shutdown::new()), seen)
    };
    let (alpha_pool, alpha) = pool_for("alpha");
    let (beta_pool, beta) = pool_for("beta");
    alpha_pool.join(POOL_DEADLINE).unwrap();
    beta_pool.join(POOL_DEADLINE).unwrap();
    let alpha = alpha.lock().unwrap().clone();
    let beta = beta.lock().unwrap().clone();
    assert_eq!(alpha.len(), 20);
    assert!(alpha.iter().all(|k| k == "alpha"), "{alpha:?}");
    assert_eq!(beta.len(), 20);
    assert!(beta.iter().all(|k| k == "beta"), "{beta:?}");
    assert_eq!(queue.status().unwrap().counts.completed, 40);
}

#[test]
fn observers_see_each_event_once_with_the_right_data() {
    let (_dir, home, queue) = new_queue();
    queue.enqueue(JobSpec::shell("echo hi").with_id("good")).unwrap();
    queue
        .enqueue(JobSpec::shell("exit 4").with_id("flaky").with_max_retries(1))
        .unwrap();
    let events = Arc::new(Mutex::new(Vec::new()));
    let record = events.clone();
    let pool = PoolBuilder::new(&home)
        .threads(1)
        .observer(move |event: &WorkerEvent| {
            let line = match event {
                WorkerEvent::JobStarted { job, attempt, .. } => format!("started {} {attempt}", job.id),
                WorkerEvent::JobCompleted { job, outcome, .. } => {
                    format!("completed {} {:?}", job.id, outcome.stdout.as_deref())
                }
                WorkerEvent::JobRetrying {
                    job,
                    attempt,
                    max_runs,
                    delay,
                    outcome,
                    ..
                } => format!(
                    "failed {} {attempt}/{max_runs} {:?} {:?}",
                    job.id,
                    outcome.exit_code,
                    delay.as_secs()
                ),
                WorkerEvent::JobDead {
                    job, attempts, outcome, ..
                } => {
                    format!("dead {} {attempts} {:?}", job.id, outcome.error.as_deref())
                }
                _ => return,
            };
            record.lock().unwrap().push(line);
        })
        .until_empty(true);
    run_pool(pool, POOL_DEADLINE).unwrap();
    let events = events.lock().unwrap().clone();
    assert_eq!(
        events,
        [
            "started good 1",
            "completed good Some(\"hi\\n\")",
            "started flaky 1",
            "failed flaky 1/2 Some(4) 1",
            "started flaky 2",
            "dead flaky 2 Some(\"exit 4\")",
        ]
    );
}

#[test]
fn a_panicking_executor_or_observer_fails_the_job_not_the_pool() {
    let (_dir, home, queue) = new_queue();
    queue
        .enqueue(JobSpec::kind("boom", json!(null)).with_id("p").with_max_retries(0))
        .unwrap();
    queue.enqueue(JobSpec::shell("true").with_id("fine")).unwrap();
    let pool = PoolBuilder::new(&home)
        .executor("boom", |_: &Job, _: &ExecContext| -> Outcome { panic!("kaboom") })
        .observer(|_: &WorkerEvent| panic!("observer bug"))
        .until_empty(true)
        .shell_hooks(false);
    run_pool(pool, POOL_DEADLINE).unwrap();
    let p = queue.get("p").unwrap();
    assert_eq!(p.state, State::Dead);
    assert_eq!(p.last_error.as_deref(), Some("executor panicked: kaboom"));
    assert_eq!(queue.get("fine").unwrap().state, State::Completed);
}

#[test]
fn a_caller_controlled_shutdown_stops_the_pool_gracefully() {
    let (_dir, home, queue) = new_queue();
    queue
        .enqueue(
            JobSpec::shell("sleep 0.3; echo finished")
                .with_id("slow")
                .with_priority(1),
        )
        .unwrap();
    queue.enqueue(JobSpec::shell("true").with_id("not-started")).unwrap();
    let shutdown = Shutdown::new();
    let trigger = shutdown.clone();
    let pool = PoolBuilder::new(&home).observer(move |event: &WorkerEvent| {
        // Ask to stop as soon as the job starts: it must still finish and be recorded.
        if matches!(event, WorkerEvent::JobStarted { .. }) {
            trigger.request_stop();
        }
    });
    PoolThread::spawn(pool, &shutdown).join(POOL_DEADLINE).unwrap();
    let job = queue.get("slow").unwrap();
    assert_eq!(job.state, State::Completed);
    assert_eq!(job.stdout.as_deref(), Some("finished\n"));
    // Nothing is claimed after the stop request.
    assert_eq!(queue.get("not-started").unwrap().state, State::Pending);
    assert!(queue.status().unwrap().workers.is_empty());
}

#[test]
fn a_custom_executor_is_told_when_its_job_times_out_and_the_attempt_is_recorded_as_a_timeout() {
    let (_dir, home, queue) = new_queue();
    queue
        .enqueue(
            JobSpec::kind("slow", json!(null))
                .with_id("own")
                .with_timeout_seconds(1)
                .with_max_retries(0),
        )
        .unwrap();
    // Without a timeout of its own, a job gets config's job_timeout_seconds.
    queue.config_set("job-timeout-seconds", "1").unwrap();
    queue
        .enqueue(
            JobSpec::kind("slow", json!(null))
                .with_id("inherited")
                .with_max_retries(0),
        )
        .unwrap();
    queue
        .enqueue(
            JobSpec::kind("fast", json!(null))
                .with_id("fast")
                .with_timeout_seconds(30),
        )
        .unwrap();

    // What each executor saw: the timeout in its context, the flag at the start, and whether
    // the flag was raised before its own 30 s safety limit.
    let seen = Arc::new(Mutex::new(Vec::new()));
    let slow_seen = seen.clone();
    let fast_seen = seen.clone();
    let timeouts = Arc::new(Mutex::new(Vec::new()));
    let record_timeouts = timeouts.clone();
    let pool = PoolBuilder::new(&home)
        .without_shell()
        .threads(3)
        .shell_hooks(false)
        .until_empty(true)
        .executor("slow", move |job: &Job, context: &ExecContext| {
            let at_start = context.is_timed_out();
            let safety = std::time::Instant::now() + Duration::from_secs(30);
            while !context.is_timed_out() && std::time::Instant::now() < safety {
                std::thread::sleep(Duration::from_millis(10));
            }
            let told = context.is_timed_out();
            slow_seen
                .lock()
                .unwrap()
                .push((job.id.clone(), context.timeout, at_start, told));
            if told {
                Outcome::failure("gave up after the timeout")
            } else {
                Outcome::failure("never told about the timeout")
            }
        })
        .executor("fast", move |job: &Job, context: &ExecContext| {
            fast_seen
                .lock()
                .unwrap()
                .push((job.id.clone(), context.timeout, context.is_timed_out(), false));
            Outcome::success()
        })
        .observer(move |event: &WorkerEvent| {
            if let WorkerEvent::JobTimedOut { job_id, signal, .. } = event {
                record_timeouts.lock().unwrap().push((job_id.clone(), *signal));
            }
        });
    run_pool(pool, POOL_DEADLINE).unwrap();

    let mut seen = seen.lock().unwrap().clone();
    seen.sort();
    let one_second = Some(Duration::from_secs(1));
    assert_eq!(
        seen,
        [
            ("fast".to_string(), Some(Duration::from_secs(30)), false, false),
            ("inherited".to_string(), one_second, false, true),
            ("own".to_string(), one_second, false, true),
        ]
    );
    let mut timeouts = timeouts.lock().unwrap().clone();
    timeouts.sort();
    assert_eq!(
        timeouts,
        [
            ("inherited".to_string(), "none (custom executor)"),
            ("own".to_string(), "none (custom executor)"),
        ]
    );
    for id in ["own", "inherited"] {
        let job = queue.get(id).unwrap();
        assert_eq!((job.state, job.attempts), (State::Dead, 1), "{job:#?}");
        // Past its deadline the attempt is a timeout, whatever the executor says; its own
        // words are kept in the message.
        assert_eq!(
            job.last_error.as_deref(),
            Some("timed out after 1s (it then returned: gave up after the timeout)")
        );
    }
    assert_eq!(queue.get("fast").unwrap().state, State::Completed);
}

#[test]
fn invalid_jobs_are_refused_with_the_field_named() {
    let (_dir, _home, queue) = new_queue();
    match queue.enqueue(JobSpec::shell("  ")) {
        Err(Error::InvalidJob(invalid)) => assert_eq!(invalid.field.as_deref(), Some("command")),
        other => panic!("expected an invalid job, got {other:?}"),
    }
    let batch = [JobSpec::shell("true").with_id("x"), JobSpec::shell("true").with_id("x")];
    match queue.enqueue_batch(batch) {
        Err(Error::InvalidJob(invalid)) => {
            assert_eq!(invalid.location.as_deref(), Some("index 1"));
            assert!(invalid.reason.contains("more than once"));
        }
        other => panic!("expected a duplicate in the batch, got {other:?}"),
    }
    assert_eq!(queue.status().unwrap().counts.total(), 0);
}
