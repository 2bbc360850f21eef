//! A smoke test of the PostgreSQL store through the `Store` trait, until the shared conformance
//! suite runs against it: enqueue, claim order, finish under the lease, counts, reaping, the
//! DLQ, spool identities, migrations, change notification and a lost connection.
//!
//! Each test makes its own schema in the server named by `QUEUECTL_TEST_PG` (default
//! `postgres://postgres@127.0.0.1/test`) and drops it afterwards. Without a reachable server
//! each test prints one line and returns, unless `QUEUECTL_TEST_PG` is set: then it fails.
#![cfg(feature = "postgres")]

use queuectl::job::State;
use queuectl::store::{
    self, AttemptOutcome, DbLocation, FinishedAttempt, NewJob, SpoolFileJobs, SpoolFileResult, StoreErrorKind,
    WorkerRecord,
};
use queuectl::time::now_ms;
use queuectl::{Error, Job};
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1/test";

/// A schema of its own, dropped when the test ends (whatever its outcome).
struct Scratch {
    url: String,
    schema: String,
}

impl Scratch {
    /// A fresh schema name, or `None` (after one line) when no server is reachable and none
    /// was asked for.
    fn new(tag: &str) -> Option<Scratch> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let asked = std::env::var("QUEUECTL_TEST_PG").ok().filter(|u| !u.is_empty());
        let url = asked.clone().unwrap_or_else(|| DEFAULT_URL.to_string());
        if let Err(e) = postgres::Client::connect(&url, postgres::NoTls) {
            if asked.is_some() {
                panic!("QUEUECTL_TEST_PG={url} is set but the server is unreachable: {e}");
            }
            println!("skipped: no PostgreSQL at {url} ({e}); set QUEUECTL_TEST_PG=URL to require one");
            return None;
        }
        let schema = format!(
            "smoke_{tag}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        Some(Scratch { url, schema })
    }

    fn location(&self) -> DbLocation {
        DbLocation::parse(&format!("{}?schema={}", self.url, self.schema)).expect("location")
    }

    /// The same queue, its sessions named `name` (to find them in `pg_stat_activity`).
    fn location_named(&self, name: &str) -> DbLocation {
        DbLocation::parse(&format!("{}?application_name={name}&schema={}", self.url, self.schema)).expect("location")
    }

    fn admin(&self) -> postgres::Client {
        postgres::Client::connect(&self.url, postgres::NoTls).expect("admin connection")
    }

    fn store(&self) -> Box<dyn store::Store> {
        let (store, _) = store::create(&self.location()).expect("create");
        store.migrate().expect("migrate");
        store
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Ok(mut client) = postgres::Client::connect(&self.url, postgres::NoTls) {
            let _ = client.batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema));
        }
    }
}

fn job(id: &str, priority: i64, run_at: i64) -> NewJob {
    NewJob {
        id: id.into(),
        kind: "shell".into(),
        command: format!("echo {id}"),
        payload: None,
        max_retries: None,
        priority,
        run_at,
        created_at: run_at,
        timeout_seconds: None,
        cwd: None,
        env: None,
        source: "api".into(),
        location: None,
    }
}

fn finished(job: &Job, outcome: AttemptOutcome, new_state: State, run_at: Option<i64>) -> FinishedAttempt {
    FinishedAttempt {
        job_seq: job.seq,
        lease: job.lease,
        attempts: job.attempts + u32::from(outcome.counts()),
        outcome,
        new_state,
        run_at,
        started_at: job.started_at,
        finished_at: now_ms(),
        exit_code: Some(if outcome == AttemptOutcome::Completed { 0 } else { 1 }),
        error: (outcome != AttemptOutcome::Completed).then(|| "exit 1".to_string()),
        stdout: Some("out".into()),
        stderr: None,
    }
}

fn worker(id: &str) -> WorkerRecord {
    WorkerRecord {
        id: id.into(),
        pid: 1,
        host: "elsewhere".into(),
        proc_start: None,
        started_at: now_ms(),
        heartbeat_at: now_ms(),
        threads: 1,
        kinds: vec!["shell".into()],
        slots: serde_json::json!([]),
        stopping: false,
        version: "test".into(),
    }
}

/// The per-state counts must equal the rows in each state.
#[track_caller]
fn assert_counts_match_rows(store: &dyn store::Store) {
    let counts = store.counts().expect("counts");
    for state in State::ALL {
        let rows = store.list_jobs(Some(state), None).expect("list").len() as u64;
        assert_eq!(counts.get(state), rows, "{state}: {counts:?}");
    }
}

#[test]
fn enqueue_claim_finish_and_counts_follow_the_store_contract() {
    let Some(scratch) = Scratch::new("flow") else { return };
    let mut store = scratch.store();
    let now = now_ms();
    store
        .insert_jobs(
            &[
                job("low", 0, now - 10),
                job("high", 5, now),
                job("later", 9, now + 60_000),
            ],
            true,
        )
        .expect("insert");
    assert_counts_match_rows(store.as_ref());

    // A batch with a clashing id is refused whole, naming the clashing job's place.
    let mut clash = job("high", 0, now);
    clash.location = Some("line 2".into());
    let error = store.insert_jobs(&[job("fresh", 0, now), clash], false).unwrap_err();
    assert!(
        matches!(&error, Error::DuplicateId { id, location } if id == "high" && location.as_deref() == Some("line 2")),
        "{error:?}"
    );
    assert!(store.get_job("fresh").expect("get").is_none());
    let mut twice = job("twice", 0, now);
    twice.location = Some("index 1".into());
    let error = store.insert_jobs(&[job("twice", 0, now), twice], false).unwrap_err();
    assert!(matches!(&error, Error::DuplicateId { location, .. } if location.as_deref() == Some("index 1")));

    // Claim order: priority, then run_at; a job not yet due is left.
    let (_, claimed) = store.finish_and_claim("w1", &[], 5, &[], now).expect("claim");
    let ids: Vec<&str> = claimed.iter().map(|j| j.id.as_str()).collect();
    assert_eq!(ids, ["high", "low"]);
    assert!(claimed.iter().all(|j| j.state == State::Processing && j.lease == 1));
    assert_counts_match_rows(store.as_ref());

    // One completes, one fails into a retry; a finish under a stale lease is discarded.
    let mut stale = finished(&claimed[1], AttemptOutcome::Completed, State::Completed, None);
    stale.lease += 7;
    let done = [
        finished(&claimed[0], AttemptOutcome::Completed, State::Completed, None),
        finished(&claimed[1], AttemptOutcome::Failed, State::Failed, Some(now - 1)),
        stale,
    ];
    let (applied, reclaimed) = store.finish_and_claim("w1", &done, 1, &[], now).expect("finish");
    assert_eq!(applied, [true, true, false]);
    assert_eq!(reclaimed.len(), 1, "the failed job is due again");
    assert_eq!((reclaimed[0].id.as_str(), reclaimed[0].lease), ("low", 2));
    let high = store.get_job("high").expect("get").expect("exists");
    assert_eq!((high.state, high.stdout.as_deref()), (State::Completed, Some("out")));
    let history = store.attempts(claimed[1].seq).expect("attempts");
    assert_eq!(history.len(), 1, "the stale finish wrote no history: {history:?}");
    assert_eq!(
        (history[0].outcome.as_str(), history[0].worker.as_deref()),
        ("failed", Some("w1"))
    );
    assert_counts_match_rows(store.as_ref());

    assert_eq!(store.count_scheduled(now).expect("scheduled"), 1);
    assert_eq!(store.next_run_at(&[]).expect("next"), Some(now + 60_000));
    assert_eq!(store.next_run_at(&["other".into()]).expect("next"), None);
    assert!(store.has_unfinished(&[]).expect("unfinished"));
    assert_eq!(store.waiting_by_kind().expect("by kind").get("shell"), Some(&1));
    assert_eq!(store.ids_with_prefix("hi", 10).expect("prefix"), ["high"]);
    assert_eq!(
        store.id_neighbours("hz").expect("neighbours"),
        (Some("high".to_string()), Some("later".to_string()))
    );
}

#[test]
fn reaping_recovers_the_jobs_of_dead_workers_once() {
    let Some(scratch) = Scratch::new("reap") else { return };
    let mut store = scratch.store();
    let mut other = store::open(&scratch.location()).expect("open");
    let now = now_ms();
    store
        .insert_jobs(&[job("a", 0, now), job("b", 0, now)], true)
        .expect("insert");
    store.register_worker(&worker("dead")).expect("register");
    store.register_worker(&worker("alive")).expect("register");
    store.finish_and_claim("dead", &[], 1, &[], now).expect("claim");
    store.finish_and_claim("alive", &[], 1, &[], now).expect("claim");

    let alive = |w: &WorkerRecord| w.id == "alive";
    let lost = |j: &Job| Some(finished(j, AttemptOutcome::Lost, State::Failed, Some(now)));
    let outcome = store.reap_workers(&alive, &lost).expect("reap");
    assert_eq!(outcome.recovered.len(), 1);
    assert_eq!(outcome.recovered[0].0.id, "a");
    assert_eq!(
        outcome.removed.iter().map(|w| w.id.as_str()).collect::<Vec<_>>(),
        ["dead"]
    );
    assert_eq!(
        outcome.live.iter().map(|w| w.id.as_str()).collect::<Vec<_>>(),
        ["alive"]
    );
    // A second reaper (another host) finds nothing left to do.
    let again = other.reap_workers(&alive, &lost).expect("reap again");
    assert!(again.recovered.is_empty() && again.removed.is_empty());
    let a = store.get_job("a").expect("get").expect("exists");
    assert_eq!((a.state, a.attempts), (State::Failed, 1));
    let history = store.attempts(a.seq).expect("attempts");
    assert_eq!(history.iter().map(|h| h.outcome.as_str()).collect::<Vec<_>>(), ["lost"]);
    assert_counts_match_rows(store.as_ref());

    assert!(store
        .heartbeat("alive", now + 1, &serde_json::json!([]), true)
        .expect("heartbeat"));
    assert!(!store
        .heartbeat("dead", now + 1, &serde_json::json!([]), false)
        .expect("heartbeat"));
    let workers = store.workers().expect("workers");
    assert_eq!((workers.len(), workers[0].stopping), (1, true));
}

#[test]
fn dlq_retry_is_all_or_nothing_and_keeps_history() {
    let Some(scratch) = Scratch::new("dlq") else { return };
    let mut store = scratch.store();
    let now = now_ms();
    store
        .insert_jobs(&[job("doomed", 0, now), job("fine", 0, now)], true)
        .expect("insert");
    let (_, claimed) = store.finish_and_claim("w", &[], 2, &[], now).expect("claim");
    let doomed = claimed.iter().find(|j| j.id == "doomed").expect("claimed");
    store
        .finish_and_claim(
            "w",
            &[finished(doomed, AttemptOutcome::Failed, State::Dead, None)],
            0,
            &[],
            now,
        )
        .expect("finish");
    let error = store.dlq_retry(&["doomed".into(), "fine".into()]).unwrap_err();
    assert!(
        matches!(&error, Error::WrongState { id, .. } if id == "fine"),
        "{error:?}"
    );
    let error = store.dlq_retry(&["nope".into()]).unwrap_err();
    assert!(matches!(&error, Error::NotFound(id) if id == "nope"), "{error:?}");
    assert_eq!(
        store.get_job("doomed").expect("get").expect("exists").state,
        State::Dead
    );

    assert_eq!(store.dlq_retry(&["doomed".into()]).expect("retry"), 1);
    let retried = store.get_job("doomed").expect("get").expect("exists");
    assert_eq!((retried.state, retried.attempts), (State::Pending, 0));
    assert_eq!(store.attempts(retried.seq).expect("history").len(), 1);
    assert_eq!(store.dlq_retry_all().expect("retry all"), 0);
    assert_counts_match_rows(store.as_ref());
}

#[test]
fn concurrent_claimers_never_share_a_job() {
    let Some(scratch) = Scratch::new("race") else { return };
    let mut store = scratch.store();
    let now = now_ms();
    let jobs: Vec<NewJob> = (0..400).map(|i| job(&format!("j{i:03}"), i % 3, now)).collect();
    store.insert_jobs(&jobs, false).expect("insert");
    let location = scratch.location();
    let handles: Vec<_> = (0..4)
        .map(|t| {
            let location = location.clone();
            std::thread::spawn(move || {
                let mut store = store::open(&location).expect("open");
                let name = format!("w{t}");
                let mut mine = Vec::new();
                let mut finishing = Vec::new();
                loop {
                    let (_, claimed) = store.finish_and_claim(&name, &finishing, 3, &[], now).expect("claim");
                    if claimed.is_empty() {
                        return mine;
                    }
                    finishing = claimed
                        .iter()
                        .map(|j| finished(j, AttemptOutcome::Completed, State::Completed, None))
                        .collect();
                    mine.extend(claimed.into_iter().map(|j| j.id));
                }
            })
        })
        .collect();
    let mut seen = HashSet::new();
    for handle in handles {
        for id in handle.join().expect("claimer") {
            assert!(seen.insert(id.clone()), "{id} claimed twice");
        }
    }
    assert_eq!(seen.len(), 400);
    let counts = store.counts().expect("counts");
    assert_eq!((counts.completed + counts.processing, counts.total()), (400, 400));
    assert_counts_match_rows(store.as_ref());
}

#[test]
fn another_connections_commit_changes_the_token_and_its_own_does_not() {
    let Some(scratch) = Scratch::new("token") else { return };
    let mut waiter = scratch.store();
    let mut writer = store::open(&scratch.location()).expect("open");
    let before = waiter.change_token().expect("token");
    // Its own commits first: notifications arrive in commit order, so by the time the other
    // connection's two commits have been counted, its own would have been too.
    for i in 0..5 {
        waiter
            .insert_jobs(&[job(&format!("own{i}"), 0, now_ms())], true)
            .expect("insert");
    }
    writer
        .insert_jobs(&[job("theirs1", 0, now_ms())], true)
        .expect("insert");
    writer
        .insert_jobs(&[job("theirs2", 0, now_ms())], true)
        .expect("insert");
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut after = before;
    while after < before + 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(2));
        after = waiter.change_token().expect("token");
    }
    assert_eq!(after, before + 2, "two changes by another connection, none of its own");

    // The listening connection ends with the store.
    let listening = |admin: &mut postgres::Client| -> i64 {
        admin
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE query = 'LISTEN queuectl_' || $1",
                &[&scratch.schema],
            )
            .expect("activity")
            .get(0)
    };
    let mut admin = scratch.admin();
    assert_eq!(listening(&mut admin), 1);
    drop(waiter);
    let deadline = Instant::now() + Duration::from_secs(10);
    while listening(&mut admin) > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(
        listening(&mut admin),
        0,
        "the listening connection was closed with the store"
    );
    drop(writer);
}

#[test]
fn spool_files_are_ingested_exactly_once() {
    let Some(scratch) = Scratch::new("spool") else { return };
    let mut store = scratch.store();
    let now = now_ms();
    store.insert_jobs(&[job("taken", 0, now)], true).expect("insert");
    let file = |key: &str, ids: &[&str]| SpoolFileJobs {
        file_key: key.into(),
        name: format!("{key}.json"),
        jobs: ids.iter().map(|id| job(id, 0, now)).collect(),
    };
    let results = store
        .ingest_spool_files(&[
            file("f1", &["s1", "s2"]),
            file("f2", &["s3", "taken"]),
            file("f3", &["s4"]),
        ])
        .expect("ingest");
    assert!(matches!(results[0], SpoolFileResult::Inserted(2)), "{results:?}");
    assert!(
        matches!(&results[1], SpoolFileResult::Refused(Error::DuplicateId { id, .. }) if id == "taken"),
        "{results:?}"
    );
    assert!(matches!(results[2], SpoolFileResult::Inserted(1)), "{results:?}");
    assert!(
        store.get_job("s3").expect("get").is_none(),
        "a refused file adds nothing"
    );
    let again = store.ingest_spool_files(&[file("f1", &["s1", "s2"])]).expect("ingest");
    assert!(matches!(again[0], SpoolFileResult::AlreadyIngested), "{again:?}");
    assert_eq!(store.job_source("s1").expect("source").as_deref(), Some("api"));
    assert_eq!(store.forget_spool_files_before(now_ms() + 1).expect("forget"), 2);
    assert_counts_match_rows(store.as_ref());
}

#[test]
fn migrations_are_idempotent_and_a_newer_or_missing_schema_is_refused() {
    let Some(scratch) = Scratch::new("schema") else { return };
    let missing = store::open(&scratch.location()).unwrap_err();
    assert!(matches!(missing, Error::NotInitialised(_)), "{missing:?}");
    let store = scratch.store();
    store.migrate().expect("migrate again");
    let (_, version) = store::create(&scratch.location()).expect("create again");
    assert_eq!(version, store.supported_schema_version());
    assert!(store
        .last_migrated_by()
        .expect("by")
        .is_some_and(|by| by.starts_with("queuectl ")));
    store.config_set("max_retries", "7").expect("config set");
    assert_eq!(
        store
            .config_values()
            .expect("values")
            .get("max_retries")
            .map(String::as_str),
        Some("7")
    );
    assert!(store.config_unset("max_retries").expect("unset"));
    let error = store
        .backup_to(std::path::Path::new("/nonexistent"), store::Overwrite::Refuse)
        .unwrap_err();
    assert!(error.to_string().contains("pg_dump -n"), "{error}");

    let mut admin = scratch.admin();
    admin
        .execute(
            &format!(
                "UPDATE {}.meta SET value = '99' WHERE key = 'schema_version'",
                scratch.schema
            ),
            &[],
        )
        .expect("bump version");
    let newer = store::open(&scratch.location()).unwrap_err();
    assert!(matches!(newer, Error::SchemaTooNew { found: 99, .. }), "{newer:?}");
    assert!(matches!(store.migrate().unwrap_err(), Error::SchemaTooNew { .. }));
    assert!(!newer.to_string().contains('\n'));
}

#[test]
fn a_lost_connection_fails_as_unavailable_and_the_next_call_reconnects() {
    let Some(scratch) = Scratch::new("lost") else { return };
    scratch.store();
    let name = scratch.schema.clone();
    let mut store = store::open(&scratch.location_named(&name)).expect("open");
    store.insert_jobs(&[job("before", 0, now_ms())], true).expect("insert");
    let mut admin = scratch.admin();
    let killed: i64 = admin
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1",
            &[&name],
        )
        .expect("terminate")
        .get(0);
    assert_eq!(killed, 1);
    // The first call may notice the loss (Unavailable) or find the connection already closed
    // and reconnect; within two calls the store works again, and no error is of another kind.
    let mut worked = false;
    for _ in 0..2 {
        match store.insert_jobs(&[job("after", 0, now_ms())], true) {
            Ok(()) => {
                worked = true;
                break;
            }
            Err(Error::Storage(e)) => assert_eq!(e.kind, StoreErrorKind::Unavailable, "{e}"),
            Err(other) => panic!("unexpected error: {other:?}"),
        }
    }
    assert!(worked, "the store reconnected");
    assert_eq!(store.counts().expect("counts").pending, 2);
}

#[test]
fn after_a_lost_connection_jobs_the_worker_never_received_go_back_to_pending() {
    let Some(scratch) = Scratch::new("held") else { return };
    scratch.store();
    let name = scratch.schema.clone();
    let mut store = store::open(&scratch.location_named(&name)).expect("open");
    let now = now_ms();
    store
        .insert_jobs(&[job("running", 0, now), job("phantom", 0, now + 1)], true)
        .expect("insert");
    let (_, claimed) = store.finish_and_claim("w", &[], 1, &[], now).expect("claim");
    assert_eq!(claimed[0].id, "running");
    // A claim that committed but whose answer never arrived (the connection dropped), as the
    // server sees it: `phantom` is processing under this worker, which does not run it.
    let mut admin = scratch.admin();
    admin
        .execute(
            &format!(
                "UPDATE {}.jobs SET state = 'processing', worker = 'w', lease = lease + 1 WHERE id = 'phantom'",
                scratch.schema
            ),
            &[],
        )
        .expect("phantom claim");
    admin
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
            &[&name],
        )
        .expect("terminate");
    let done = [finished(&claimed[0], AttemptOutcome::Completed, State::Completed, None)];
    let mut result = store.finish_and_claim("w", &done, 0, &[], now_ms());
    if let Err(Error::Storage(e)) = &result {
        assert_eq!(e.kind, StoreErrorKind::Unavailable, "{e}");
        result = store.finish_and_claim("w", &done, 0, &[], now_ms());
    }
    let (applied, _) = result.expect("finish after reconnecting");
    assert_eq!(applied, [true]);
    let phantom = store.get_job("phantom").expect("get").expect("exists");
    assert_eq!((phantom.state, phantom.worker), (State::Pending, None));
    assert_eq!(
        store.get_job("running").expect("get").expect("exists").state,
        State::Completed
    );
    assert_counts_match_rows(store.as_ref());
    // Without a lost connection nothing is released: a job this worker holds stays its own.
    let (_, again) = store.finish_and_claim("w", &[], 1, &[], now_ms() + 10).expect("claim");
    assert_eq!(again[0].id, "phantom");
    admin
        .execute(
            &format!(
                "UPDATE {}.jobs SET worker = 'w', state = 'processing' WHERE id = 'running'",
                scratch.schema
            ),
            &[],
        )
        .expect("second phantom");
    store
        .finish_and_claim("w", &[], 1, &[], now_ms())
        .expect("claim nothing");
    assert_eq!(
        store.get_job("running").expect("get").expect("exists").state,
        State::Processing
    );
}

#[test]
fn concurrent_migrations_from_several_hosts_all_succeed_once() {
    let Some(scratch) = Scratch::new("migrate") else { return };
    let location = scratch.location();
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let location = location.clone();
            std::thread::spawn(move || {
                let (store, _) = store::create(&location).expect("create");
                store.migrate().map(|_| store.schema_version().expect("version"))
            })
        })
        .collect();
    for handle in handles {
        assert_eq!(handle.join().expect("migrator").expect("migrate"), 1);
    }
}

#[test]
fn finishes_recorded_with_a_claim_apply_only_under_their_lease() {
    let Some(scratch) = Scratch::new("batch") else { return };
    let mut store = scratch.store();
    let now = now_ms();
    let jobs: Vec<NewJob> = ["a", "b", "c", "d"].iter().map(|id| job(id, 0, now)).collect();
    store.insert_jobs(&jobs, true).expect("insert");
    let (_, claimed) = store.finish_and_claim("w", &[], 3, &[], now).expect("claim");
    assert_eq!(
        claimed.iter().map(|j| j.id.as_str()).collect::<Vec<_>>(),
        ["a", "b", "c"]
    );
    let mut stale = finished(&claimed[2], AttemptOutcome::Completed, State::Completed, None);
    stale.lease -= 1;
    let done = [
        finished(&claimed[1], AttemptOutcome::Failed, State::Failed, Some(now + 60_000)),
        stale,
        finished(&claimed[0], AttemptOutcome::Completed, State::Completed, None),
    ];
    let (applied, next) = store
        .finish_and_claim("w", &done, 2, &[], now)
        .expect("finish and claim");
    assert_eq!(applied, [true, false, true]);
    assert_eq!(next.iter().map(|j| j.id.as_str()).collect::<Vec<_>>(), ["d"]);
    let states: Vec<State> = ["a", "b", "c", "d"]
        .iter()
        .map(|id| store.get_job(id).expect("get").expect("exists").state)
        .collect();
    assert_eq!(
        states,
        [State::Completed, State::Failed, State::Processing, State::Processing]
    );
    assert_eq!(store.attempts(claimed[2].seq).expect("history").len(), 0);
    let b = store.attempts(claimed[1].seq).expect("history");
    assert_eq!((b.len(), b[0].attempt, b[0].worker.as_deref()), (1, 1, Some("w")));
    assert_counts_match_rows(store.as_ref());
}

#[test]
fn a_claimed_job_reads_back_every_field_it_was_enqueued_with() {
    let Some(scratch) = Scratch::new("fields") else { return };
    let mut store = scratch.store();
    let now = now_ms();
    let mut full = job("full", 3, now - 5);
    full.kind = "custom".into();
    full.payload = Some(r#"{"a":[1,2]}"#.into());
    full.max_retries = Some(7);
    full.timeout_seconds = Some(42);
    full.cwd = Some("/tmp".into());
    full.env = Some(r#"{"X":"1"}"#.into());
    full.created_at = now - 9;
    full.source = "spool:f.json".into();
    store.insert_jobs(&[full], true).expect("insert");
    // Claimed alone (one statement) and through a transaction (a finish due at once).
    let (_, claimed) = store.finish_and_claim("w", &[], 1, &[], now).expect("claim");
    let stored = store.get_job("full").expect("get").expect("exists");
    assert_eq!(claimed.len(), 1);
    for job in [&claimed[0], &stored] {
        assert_eq!(
            (job.kind.as_str(), job.priority, job.max_retries, job.timeout_seconds),
            ("custom", 3, Some(7), Some(42))
        );
        assert_eq!(
            (job.run_at, job.created_at, job.source.as_str()),
            (now - 5, now - 9, "spool:f.json")
        );
        assert_eq!(
            (job.cwd.as_deref(), job.env.get("X").map(String::as_str)),
            (Some("/tmp"), Some("1"))
        );
        assert_eq!(job.payload, Some(serde_json::json!({"a": [1, 2]})));
    }
    let release = finished(&claimed[0], AttemptOutcome::Interrupted, State::Pending, None);
    let (applied, again) = store
        .finish_and_claim("w", &[release], 1, &[], now)
        .expect("release and claim");
    assert_eq!(applied, [true]);
    assert_eq!(again.len(), 1);
    assert_eq!(
        (
            again[0].max_retries,
            again[0].timeout_seconds,
            again[0].lease,
            again[0].attempts
        ),
        (Some(7), Some(42), 2, 0)
    );
    let history = store.attempts(again[0].seq).expect("history");
    assert_eq!((history[0].outcome.as_str(), history[0].attempt), ("interrupted", 1));
}
