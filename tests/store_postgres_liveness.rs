//! The PostgreSQL store when other sessions hold locks or a session goes silent: a reap never
//! waits for a row another session holds (it recovers the rest and leaves that job for a later
//! pass), a live worker's heartbeat never waits for a reap, a transaction left idle past the
//! unresponsive timeout is ended by the server (its locks with it), and changing that timeout
//! keeps the change signal working. Also: a URL requiring TLS in a build without it is refused.
//!
//! Each test makes its own schema in the server named by `QUEUECTL_TEST_PG` (default
//! `postgres://postgres@127.0.0.1/test`) and drops it afterwards. Without a reachable server
//! each test prints one line and returns, unless `QUEUECTL_TEST_PG` is set: then it fails.
#![cfg(feature = "postgres")]

mod store_postgres_support;

use queuectl::job::State;
use queuectl::store::{self, AttemptOutcome, StoreErrorKind, WorkerRecord};
use queuectl::time::now_ms;
use queuectl::{Error, Job};
use std::sync::mpsc;
use std::time::Duration;
use store_postgres_support::*;

fn ids(jobs: &[(Job, queuectl::store::FinishedAttempt)]) -> Vec<&str> {
    let mut ids: Vec<&str> = jobs.iter().map(|(job, _)| job.id.as_str()).collect();
    ids.sort();
    ids
}

/// Another session holds the row of one lost job (as a host that died mid-transaction leaves
/// it) and the row of one dead worker (as its heartbeat in flight would): the reap waits for
/// neither. It recovers the other lost job, leaves the held job and the held worker's job
/// `processing`, and keeps both dead workers' rows; once the session is gone, the next reap
/// recovers the rest and removes the rows. The store's lock timeout is short, so a reap that
/// waited would fail instead of passing slowly.
#[test]
fn a_reap_leaves_rows_another_session_holds_for_a_later_pass_and_recovers_the_rest() {
    let Some(scratch) = Scratch::new("held_rows") else {
        return;
    };
    let mut store = scratch.store();
    store
        .set_lock_timeout(Duration::from_millis(500))
        .expect("lock timeout");
    let now = now_ms();
    let jobs: Vec<_> = ["held", "free", "other"].iter().map(|id| job(id, 0, now)).collect();
    store.insert_jobs(&jobs, true).expect("insert");
    store.register_worker(&worker("dead")).expect("register");
    store.register_worker(&worker("busy-dead")).expect("register");
    let (_, claimed) = store.finish_and_claim("dead", &[], 2, &[], now).expect("claim");
    assert_eq!(
        claimed.iter().map(|j| j.id.as_str()).collect::<Vec<_>>(),
        ["held", "free"]
    );
    store.finish_and_claim("busy-dead", &[], 1, &[], now).expect("claim");

    let mut admin = scratch.admin();
    let mut session = admin.transaction().expect("begin");
    let schema = &scratch.schema;
    session
        .execute(
            &format!("SELECT 1 FROM {schema}.jobs WHERE id = 'held' FOR UPDATE"),
            &[],
        )
        .expect("lock the job");
    session
        .execute(
            &format!("SELECT 1 FROM {schema}.workers WHERE id = 'busy-dead' FOR UPDATE"),
            &[],
        )
        .expect("lock the worker");

    let lost = |j: &Job| Some(finished(j, AttemptOutcome::Lost, State::Failed, Some(now)));
    let outcome = store.reap_workers(&|_: &WorkerRecord| false, &lost).expect("reap");
    assert_eq!(ids(&outcome.recovered), ["free"], "only the job whose row is free");
    assert!(outcome.removed.is_empty(), "{:?}", outcome.removed);
    for (id, holder) in [("held", "dead"), ("other", "busy-dead")] {
        let job = store.get_job(id).expect("get").expect("exists");
        assert_eq!(
            (job.state, job.worker.as_deref()),
            (State::Processing, Some(holder)),
            "{id}"
        );
    }
    let mut workers: Vec<String> = store.workers().expect("workers").into_iter().map(|w| w.id).collect();
    workers.sort();
    assert_eq!(workers, ["busy-dead", "dead"], "rows of workers whose jobs were left");
    assert_counts_match_rows(store.as_ref());

    session.rollback().expect("rollback");
    let outcome = store
        .reap_workers(&|_: &WorkerRecord| false, &lost)
        .expect("reap again");
    assert_eq!(ids(&outcome.recovered), ["held", "other"]);
    let mut removed: Vec<&str> = outcome.removed.iter().map(|w| w.id.as_str()).collect();
    removed.sort();
    assert_eq!(removed, ["busy-dead", "dead"]);
    for id in ["held", "free", "other"] {
        let job = store.get_job(id).expect("get").expect("exists");
        assert_eq!((job.state, job.attempts), (State::Failed, 1), "{id}");
        let history = store.attempts(job.seq).expect("attempts");
        assert_eq!(
            history.iter().map(|h| h.outcome.as_str()).collect::<Vec<_>>(),
            ["lost"],
            "{id}"
        );
    }
    assert_counts_match_rows(store.as_ref());
}

/// While a reap is in the middle of its transaction (inside its `lost` closure, after it
/// locked what it recovers), a live worker's heartbeat from another connection completes: the
/// closure waits for it, so a heartbeat that waited for the reap's locks would never come.
/// With a lock timeout set, a call that meets a lock another session keeps fails as `Busy`
/// after that timeout instead of waiting for the session (a worker then retries or reports).
#[test]
fn a_call_blocked_by_another_sessions_lock_fails_as_busy_after_the_lock_timeout() {
    let Some(scratch) = Scratch::new("lock_timeout") else {
        return;
    };
    let mut store = scratch.store();
    store
        .set_lock_timeout(Duration::from_millis(300))
        .expect("lock timeout");
    let mut admin = scratch.admin_in_schema();
    let mut holder = admin.transaction().expect("begin");
    holder
        .batch_execute("LOCK TABLE jobs IN ACCESS EXCLUSIVE MODE")
        .expect("lock the jobs table");
    let (sender, receiver) = mpsc::channel();
    let call = std::thread::spawn(move || {
        let _ = sender.send(store.insert_jobs(&[job("a", 0, now_ms())], true).map(|_| ()));
    });
    let result = receiver
        .recv_timeout(Duration::from_secs(20))
        .expect("the call still waited for the lock after 20 s");
    holder.rollback().expect("release the lock");
    call.join().expect("the calling thread");
    match result {
        Err(Error::Storage(e)) => assert_eq!(e.kind, StoreErrorKind::Busy, "{e}"),
        other => panic!("expected a Busy storage error, got {other:?}"),
    }
}

#[test]
fn a_live_workers_heartbeat_never_waits_for_a_reap_in_progress() {
    let Some(scratch) = Scratch::new("hb_reap") else { return };
    let mut store = scratch.store();
    let now = now_ms();
    store.insert_jobs(&[job("lost", 0, now)], true).expect("insert");
    store.register_worker(&worker("dead")).expect("register");
    store.register_worker(&worker("live")).expect("register");
    store.finish_and_claim("dead", &[], 1, &[], now).expect("claim");

    let (start, started) = mpsc::channel::<()>();
    let (done, finished_beat) = mpsc::channel::<Result<bool, String>>();
    let location = scratch.location();
    let beater = std::thread::spawn(move || {
        let other = store::open(&location).expect("open");
        if started.recv_timeout(Duration::from_secs(30)).is_ok() {
            let beat = other
                .heartbeat("live", now_ms(), &serde_json::json!([]), false)
                .map_err(|e| e.to_string());
            let _ = done.send(beat);
        }
    });
    let beat = std::cell::RefCell::new(None);
    let lost = |j: &Job| {
        start.send(()).expect("the heartbeat thread waits");
        *beat.borrow_mut() = Some(finished_beat.recv_timeout(Duration::from_secs(10)));
        Some(finished(j, AttemptOutcome::Lost, State::Failed, Some(now)))
    };
    let outcome = store
        .reap_workers(&|w: &WorkerRecord| w.id == "live", &lost)
        .expect("reap");
    beater.join().expect("heartbeat thread");
    match beat.into_inner() {
        Some(Ok(Ok(true))) => {}
        other => panic!("the live worker's heartbeat during the reap: {other:?}"),
    }
    assert_eq!(ids(&outcome.recovered), ["lost"]);
    assert_eq!(
        outcome.removed.iter().map(|w| w.id.as_str()).collect::<Vec<_>>(),
        ["dead"]
    );
}

/// A store with an unresponsive timeout of 1 s leaves its reap transaction idle (its `lost`
/// closure waits): the server ends the session within that time and rolls it back, so the
/// dead worker's row the reap had locked is free again; the reap fails as `Unavailable` and
/// the store's next call connects again and recovers the job.
#[test]
fn a_transaction_left_idle_past_the_unresponsive_timeout_is_ended_with_its_locks() {
    let Some(scratch) = Scratch::new("idle_tx") else { return };
    scratch.store();
    let name = scratch.schema.clone();
    let mut store = store::open(&scratch.location_named(&name)).expect("open");
    store.set_unresponsive_timeout(Duration::from_secs(1)).expect("timeout");
    let now = now_ms();
    store.insert_jobs(&[job("lost", 0, now)], true).expect("insert");
    store.register_worker(&worker("dead")).expect("register");
    store.finish_and_claim("dead", &[], 1, &[], now).expect("claim");

    let sessions = || -> i64 {
        scratch
            .admin()
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
                &[&name],
            )
            .expect("sessions")
            .get(0)
    };
    assert_eq!(sessions(), 1, "the store's session");
    let ended = std::cell::Cell::new(false);
    let lost = |j: &Job| {
        ended.set(poll(Duration::from_secs(15), || sessions() == 0));
        Some(finished(j, AttemptOutcome::Lost, State::Failed, Some(now)))
    };
    let result = store.reap_workers(&|_: &WorkerRecord| false, &lost);
    assert!(ended.get(), "the server ended the session left idle in its transaction");
    match result {
        Err(Error::Storage(e)) => assert_eq!(e.kind, StoreErrorKind::Unavailable, "{e}"),
        other => panic!("the reap whose session was ended: {other:?}"),
    }
    // Its locks went with it.
    let mut admin = scratch.admin();
    let row = admin
        .query(
            &format!("SELECT id FROM {name}.workers WHERE id = 'dead' FOR UPDATE NOWAIT"),
            &[],
        )
        .expect("the worker's row is free");
    assert_eq!(row.len(), 1);
    let again = store
        .reap_workers(&|_: &WorkerRecord| false, &|j: &Job| {
            Some(finished(j, AttemptOutcome::Lost, State::Failed, Some(now)))
        })
        .expect("the next call connects again");
    assert_eq!(ids(&again.recovered), ["lost"]);
}

/// Setting the unresponsive timeout replaces the store's connections, the listening one
/// included: once the new listening session is in place, a commit by another connection still
/// changes the token, and the store goes on working.
#[test]
fn changing_the_unresponsive_timeout_keeps_the_change_signal() {
    let Some(scratch) = Scratch::new("retarget") else {
        return;
    };
    scratch.store();
    let name = scratch.schema.clone();
    let store = store::open(&scratch.location_named(&name)).expect("open");
    let mut other = store::open(&scratch.location()).expect("open");
    store.change_token().expect("listening");
    let listeners = || -> Vec<i32> {
        scratch
            .admin()
            .query(
                "SELECT pid FROM pg_stat_activity WHERE application_name = $1 AND query LIKE 'LISTEN %'",
                &[&name],
            )
            .expect("sessions")
            .iter()
            .map(|row| row.get(0))
            .collect()
    };
    let mut before = Vec::new();
    assert!(poll(Duration::from_secs(10), || {
        before = listeners();
        before.len() == 1
    }));
    store.set_unresponsive_timeout(Duration::from_secs(2)).expect("timeout");
    store
        .set_unresponsive_timeout(Duration::from_secs(2))
        .expect("the same again");
    assert!(
        poll(Duration::from_secs(10), || {
            let now = listeners();
            now.len() == 1 && now != before
        }),
        "the listening connection was replaced"
    );
    // Reconnecting bumps the token (what was sent meanwhile is unknown): wait until it is
    // still for 10 polls, then one commit elsewhere must show.
    let mut last = store.change_token().expect("token");
    let mut still = 0;
    assert!(poll(Duration::from_secs(10), || {
        let now = store.change_token().expect("token");
        still = if now == last { still + 1 } else { 0 };
        last = now;
        still >= 10
    }));
    other.insert_jobs(&[job("new", 0, now_ms())], true).expect("insert");
    assert!(
        poll(Duration::from_secs(10), || store.change_token().expect("token") != last),
        "a commit by another connection changes the token"
    );
    assert_eq!(store.counts().expect("counts").pending, 1);
}

/// Without the `postgres-tls` feature, a URL that requires TLS is refused before connecting,
/// with one line naming the feature (the host here does not exist: nothing is tried).
#[cfg(not(feature = "postgres-tls"))]
#[test]
fn without_tls_built_in_a_url_requiring_it_is_refused_naming_the_feature() {
    let location = queuectl::store::DbLocation::parse("postgres://q@db.invalid/jobs?sslmode=require").expect("parse");
    let error = store::open(&location).expect_err("refused").to_string();
    assert!(
        error.contains("sslmode=require") && error.contains("--features postgres-tls"),
        "{error}"
    );
    assert_eq!(error.lines().count(), 1, "{error}");
}
