//! The public API used exactly as an outside crate would: only `pub` items of `queuectl`.

use queuectl::{
    Error, ExecContext, Home, Job, JobSpec, Outcome, PoolBuilder, Queue, Shutdown, Source, State, WorkerEvent,
};
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn new_queue() -> (tempfile::TempDir, Home, Queue) {
    let dir = tempfile::tempdir().expect("temp dir");
    let home = Home::new(dir.path());
    let (queue, report) = Queue::init(&home).expect("init");
    assert!(!report.already_initialised);
    // Retries one second apart keep these tests short.
    queue.config_set("backoff-base", "1").expect("config set");
    (dir, home, queue)
}

#[test]
fn custom_executor_runs_to_completion_retry_and_dead() {
    let (_dir, home, mut queue) = new_queue();
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
    let ran = PoolBuilder::new(&home)
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
        .shell_hooks(false)
        .run(&Shutdown::new())
        .unwrap();
    assert_eq!(ran, 3, "ok once, bad twice (max_retries 1)");
    let ok = queue.get("ok").unwrap();
    assert_eq!(
        (ok.state, ok.attempts, ok.stdout.as_deref()),
        (State::Completed, 1, Some("6"))
    );
    let bad = queue.get("bad").unwrap();
    assert_eq!((bad.state, bad.attempts, bad.exit_code), (State::Dead, 2, Some(9)));
    assert_eq!(bad.last_error.as_deref(), Some("negative input"));
    let history = queue.history(&bad).unwrap();
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
    assert_eq!(queue.history(&bad).unwrap().len(), 2);
}

#[test]
fn two_pools_with_different_kinds_share_one_queue() {
    let (_dir, home, mut queue) = new_queue();
    let mut batch = Vec::new();
    for i in 0..20 {
        batch.push((None, JobSpec::kind("alpha", json!({ "i": i })).with_id(format!("a{i}"))));
        batch.push((None, JobSpec::kind("beta", json!({ "i": i })).with_id(format!("b{i}"))));
    }
    queue.enqueue_batch(batch, Source::Api).unwrap();
    let status = queue.status().unwrap();
    assert_eq!(status.waiting_by_kind.get("alpha"), Some(&20));
    assert_eq!(status.waiting_by_kind.get("beta"), Some(&20));

    let run_pool = |kind: &'static str| {
        let home = home.clone();
        std::thread::spawn(move || {
            let seen = Arc::new(Mutex::new(Vec::new()));
            let record = seen.clone();
            PoolBuilder::new(&home)
                .without_shell()
                .threads(2)
                .executor(kind, move |job: &Job, _: &ExecContext| {
                    record.lock().unwrap().push(job.kind.clone());
                    Outcome::success()
                })
                .until_empty(true)
                .shell_hooks(false)
                .run(&Shutdown::new())
                .unwrap();
            let kinds = seen.lock().unwrap().clone();
            kinds
        })
    };
    let alpha = run_pool("alpha");
    let beta = run_pool("beta");
    let alpha = alpha.join().unwrap();
    let beta = beta.join().unwrap();
    assert_eq!(alpha.len(), 20);
    assert!(alpha.iter().all(|k| k == "alpha"), "{alpha:?}");
    assert_eq!(beta.len(), 20);
    assert!(beta.iter().all(|k| k == "beta"), "{beta:?}");
    assert_eq!(queue.status().unwrap().counts.completed, 40);
}

#[test]
fn observers_see_each_event_once_with_the_right_data() {
    let (_dir, home, mut queue) = new_queue();
    queue.enqueue(JobSpec::shell("echo hi").with_id("good")).unwrap();
    queue
        .enqueue(JobSpec::shell("exit 4").with_id("flaky").with_max_retries(1))
        .unwrap();
    let events = Arc::new(Mutex::new(Vec::new()));
    let record = events.clone();
    PoolBuilder::new(&home)
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
        .until_empty(true)
        .run(&Shutdown::new())
        .unwrap();
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
    let (_dir, home, mut queue) = new_queue();
    queue
        .enqueue(JobSpec::kind("boom", json!(null)).with_id("p").with_max_retries(0))
        .unwrap();
    queue.enqueue(JobSpec::shell("true").with_id("fine")).unwrap();
    PoolBuilder::new(&home)
        .executor("boom", |_: &Job, _: &ExecContext| -> Outcome { panic!("kaboom") })
        .observer(|_: &WorkerEvent| panic!("observer bug"))
        .until_empty(true)
        .shell_hooks(false)
        .run(&Shutdown::new())
        .unwrap();
    let p = queue.get("p").unwrap();
    assert_eq!(p.state, State::Dead);
    assert_eq!(p.last_error.as_deref(), Some("executor panicked: kaboom"));
    assert_eq!(queue.get("fine").unwrap().state, State::Completed);
}

#[test]
fn a_caller_controlled_shutdown_stops_the_pool_gracefully() {
    let (_dir, home, mut queue) = new_queue();
    queue
        .enqueue(JobSpec::shell("sleep 0.3; echo finished").with_id("slow"))
        .unwrap();
    let shutdown = Shutdown::new();
    let trigger = shutdown.clone();
    let pool = PoolBuilder::new(&home).observer(move |event: &WorkerEvent| {
        // Ask to stop as soon as the job starts: it must still finish and be recorded.
        if matches!(event, WorkerEvent::JobStarted { .. }) {
            trigger.request_stop();
        }
    });
    let handle = std::thread::spawn(move || pool.run(&shutdown));
    handle.join().unwrap().unwrap();
    let job = queue.get("slow").unwrap();
    assert_eq!(job.state, State::Completed);
    assert_eq!(job.stdout.as_deref(), Some("finished\n"));
    assert!(queue.status().unwrap().workers.is_empty());
    let _ = Duration::ZERO;
}

#[test]
fn invalid_jobs_are_refused_with_the_field_named() {
    let (_dir, _home, mut queue) = new_queue();
    match queue.enqueue(JobSpec::shell("  ")) {
        Err(Error::InvalidJob(invalid)) => assert_eq!(invalid.field.as_deref(), Some("command")),
        other => panic!("expected an invalid job, got {other:?}"),
    }
    let batch = vec![
        (None, JobSpec::shell("true").with_id("x")),
        (Some("line 2".into()), JobSpec::shell("true").with_id("x")),
    ];
    match queue.enqueue_batch(batch, Source::Api) {
        Err(Error::InvalidJob(invalid)) => {
            assert_eq!(invalid.location.as_deref(), Some("line 2"));
            assert!(invalid.reason.contains("more than once"));
        }
        other => panic!("expected a duplicate in the batch, got {other:?}"),
    }
    assert_eq!(queue.status().unwrap().counts.total(), 0);
}
