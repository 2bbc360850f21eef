//! Cases: reaping workers that are gone, and recovering their jobs as `lost` attempts.

use super::{assert_counts_match_rows, claim, get, insert, jobs, lost, worker, Factory, T0};
use crate::job::{Job, State};
use crate::store::WorkerRecord;
use std::cell::RefCell;
use std::collections::BTreeSet;

/// A reap judges each worker row with `alive`. Every `processing` job not held by a live
/// worker (a dead one's, or one whose worker has no row) is recovered with the attempt the
/// `lost` closure builds: a `lost` history row that counts, and the state and `run_at` the
/// closure chose. Dead workers' rows go; live workers keep their rows and their jobs.
pub fn reap_recovers_dead_workers_jobs_as_lost_attempts(factory: &dyn Factory) {
    let db = factory.fresh();
    let mut store = db.connect();
    insert(&mut *store, &jobs(&["d1", "d2", "l1", "g1", "waiting"]));
    store.register_worker(&worker("dead", T0)).expect("register dead");
    store.register_worker(&worker("live", T0 + 1)).expect("register live");
    let d = claim(&mut *store, "dead", 2, T0);
    assert_eq!(super::ids(&d), ["d1", "d2"]);
    assert_eq!(super::ids(&claim(&mut *store, "live", 1, T0)), ["l1"]);
    assert_eq!(
        super::ids(&claim(&mut *store, "ghost", 1, T0)),
        ["g1"],
        "a worker without a row"
    );
    let before_live = get(&*store, "l1");

    let asked = RefCell::new(BTreeSet::new());
    let judged = RefCell::new(BTreeSet::new());
    let alive = |w: &WorkerRecord| {
        judged.borrow_mut().insert(w.id.clone());
        w.id == "live"
    };
    let lost_attempt = |job: &Job| {
        asked.borrow_mut().insert(job.id.clone());
        // The closure follows a retry policy: d2 has used its retries up.
        let retry = if job.id == "d2" { None } else { Some(T0 + 5_000) };
        Some(lost(job, T0 + 100, retry))
    };
    let outcome = store.reap_workers(&alive, &lost_attempt).expect("reap");
    assert_eq!(
        judged.into_inner(),
        BTreeSet::from(["dead".to_string(), "live".to_string()])
    );
    assert_eq!(
        asked.into_inner(),
        BTreeSet::from(["d1".to_string(), "d2".to_string(), "g1".to_string()]),
        "the closure is asked about the orphans only"
    );
    let removed: Vec<&str> = outcome.removed.iter().map(|w| w.id.as_str()).collect();
    let live: Vec<&str> = outcome.live.iter().map(|w| w.id.as_str()).collect();
    assert_eq!((removed, live), (vec!["dead"], vec!["live"]));
    let mut recovered: Vec<(&str, State)> = outcome
        .recovered
        .iter()
        .map(|(job, attempt)| {
            assert_eq!(job.state, State::Processing, "{}: the job as it was found", job.id);
            (job.id.as_str(), attempt.new_state)
        })
        .collect();
    recovered.sort();
    assert_eq!(
        recovered,
        [("d1", State::Failed), ("d2", State::Dead), ("g1", State::Failed)]
    );

    let d1 = get(&*store, "d1");
    assert_eq!((d1.state, d1.attempts, d1.run_at), (State::Failed, 1, T0 + 5_000));
    assert_eq!(d1.last_error.as_deref(), Some("worker lost"));
    assert_eq!(get(&*store, "d2").state, State::Dead);
    assert_eq!(get(&*store, "g1").state, State::Failed);
    for (id, holder) in [("d1", "dead"), ("d2", "dead"), ("g1", "ghost")] {
        let history = store.attempts(get(&*store, id).seq).expect("attempts");
        assert_eq!(history.len(), 1, "{id}: {history:?}");
        let row = &history[0];
        assert_eq!(
            (
                row.attempt,
                row.outcome.as_str(),
                row.worker.as_deref(),
                row.finished_at
            ),
            (1, "lost", Some(holder), T0 + 100),
            "{id}"
        );
        assert_eq!(row.started_at, Some(T0), "{id}: when the lost run started");
    }
    assert_eq!(get(&*store, "l1"), before_live, "a live worker's job was touched");
    assert_eq!(get(&*store, "waiting").state, State::Pending);
    let workers: Vec<String> = store.workers().expect("workers").into_iter().map(|w| w.id).collect();
    assert_eq!(workers, ["live"]);
    assert_counts_match_rows(&*store, "after the reap");

    // Nothing left to recover: a second reap changes nothing.
    let again = store
        .reap_workers(&|w| w.id == "live", &|job| Some(lost(job, T0 + 200, None)))
        .expect("reap again");
    assert!(again.recovered.is_empty() && again.removed.is_empty(), "{again:?}");
    assert_eq!(get(&*store, "l1"), before_live);
}

/// When the `lost` closure declines a job (`None`: its run still has processes to stop), the
/// job stays `processing` with its lease, and its dead worker's row stays while it holds the
/// job; a later reap that recovers it removes the row.
pub fn reap_leaves_a_job_the_lost_closure_declines(factory: &dyn Factory) {
    let db = factory.fresh();
    let mut store = db.connect();
    insert(&mut *store, &jobs(&["held", "freed"]));
    store.register_worker(&worker("dead", T0)).expect("register");
    store.register_worker(&worker("idle-dead", T0 + 1)).expect("register");
    assert_eq!(super::ids(&claim(&mut *store, "dead", 2, T0)), ["held", "freed"]);
    let held_before = get(&*store, "held");

    let outcome = store
        .reap_workers(&|_| false, &|job| {
            (job.id != "held").then(|| lost(job, T0 + 100, Some(T0 + 100)))
        })
        .expect("reap");
    let removed: Vec<&str> = outcome.removed.iter().map(|w| w.id.as_str()).collect();
    assert_eq!(
        removed,
        ["idle-dead"],
        "a dead worker holding nothing goes, one still holding a job stays"
    );
    let recovered: Vec<&str> = outcome.recovered.iter().map(|(j, _)| j.id.as_str()).collect();
    assert_eq!(recovered, ["freed"]);
    assert_eq!(get(&*store, "held"), held_before, "a declined job changed");
    assert!(store.attempts(held_before.seq).expect("attempts").is_empty());
    let workers: Vec<String> = store.workers().expect("workers").into_iter().map(|w| w.id).collect();
    assert_eq!(workers, ["dead"]);
    assert!(
        !store
            .heartbeat("idle-dead", T0 + 101, &serde_json::json!([]), false)
            .expect("heartbeat"),
        "a removed worker's heartbeat finds no row"
    );
    assert_counts_match_rows(&*store, "after the partial reap");

    let outcome = store
        .reap_workers(&|_| false, &|job| Some(lost(job, T0 + 200, None)))
        .expect("reap again");
    let recovered: Vec<&str> = outcome.recovered.iter().map(|(j, _)| j.id.as_str()).collect();
    assert_eq!(recovered, ["held"]);
    assert_eq!(get(&*store, "held").state, State::Dead);
    assert!(store.workers().expect("workers").is_empty());
    assert_counts_match_rows(&*store, "after the second reap");
}
