//! Cases: what a claim takes, in which order, and that concurrent claimers never share a job.

use super::{assert_counts_match_rows, claim, completed, get, ids, insert, job, jobs, Factory, T0};
use crate::job::{Job, State};
use crate::store::{NewJob, Store};
use std::collections::BTreeMap;

fn prioritised(id: &str, priority: i64, run_at: i64) -> NewJob {
    NewJob {
        priority,
        run_at,
        ..job(id)
    }
}

/// The jobs of [`claim_order_is_priority_then_run_at_then_enqueue_order`], in enqueue order,
/// and the order they must be claimed in.
fn ordered_batch() -> (Vec<NewJob>, Vec<&'static str>) {
    let batch = vec![
        prioritised("low_early", 0, T0 - 100),
        prioritised("high_late", 9, T0 - 1),
        prioritised("mid_a", 5, T0 - 20),
        prioritised("high_early", 9, T0 - 50),
        prioritised("mid_b", 5, T0 - 20),
        prioritised("negative", -1, T0 - 1_000),
        prioritised("low_late", 0, T0 - 10),
        prioritised("mid_c", 5, T0 - 30),
        prioritised("mid_d", 5, T0 - 20),
    ];
    let order = vec![
        "high_early",
        "high_late",
        "mid_c",
        "mid_a",
        "mid_b",
        "mid_d",
        "low_early",
        "low_late",
        "negative",
    ];
    (batch, order)
}

/// Claims take higher priority first, then the earlier `run_at`, then enqueue order, whether
/// taken all at once (and returned in that order) or one at a time.
pub fn claim_order_is_priority_then_run_at_then_enqueue_order(factory: &dyn Factory) {
    let (batch, order) = ordered_batch();
    let db = factory.fresh();
    let mut store = db.connect();
    insert(&mut *store, &batch);
    let claimed = claim(&mut *store, "w1", 100, T0);
    assert_eq!(ids(&claimed), order, "claimed all at once");

    let db = factory.fresh();
    let mut store = db.connect();
    // Enqueued one job per batch: enqueue order across batches counts the same.
    for job in &batch {
        insert(&mut *store, std::slice::from_ref(job));
    }
    let mut one_by_one = Vec::new();
    for i in 0..batch.len() {
        let claimed = claim(&mut *store, &format!("w{}", i % 2), 1, T0);
        assert_eq!(claimed.len(), 1, "claim {i} of {}", batch.len());
        one_by_one.push(claimed[0].id.clone());
    }
    assert_eq!(one_by_one, order, "claimed one at a time");
    assert!(claim(&mut *store, "w0", 1, T0).is_empty());
}

/// A job is due once `run_at <= now`: not a millisecond before.
pub fn jobs_not_yet_due_are_not_claimed(factory: &dyn Factory) {
    let db = factory.fresh();
    let mut store = db.connect();
    insert(
        &mut *store,
        &[
            NewJob {
                run_at: T0 + 20,
                ..job("later")
            },
            NewJob {
                run_at: T0 + 10,
                ..job("soon")
            },
        ],
    );
    assert!(claim(&mut *store, "w", 10, T0).is_empty(), "nothing is due at T0");
    assert!(
        claim(&mut *store, "w", 10, T0 + 9).is_empty(),
        "soon is due at T0+10, not T0+9"
    );
    assert_eq!(ids(&claim(&mut *store, "w", 10, T0 + 10)), ["soon"]);
    assert!(claim(&mut *store, "w", 10, T0 + 19).is_empty());
    assert_eq!(ids(&claim(&mut *store, "w", 10, T0 + 20)), ["later"]);
}

/// With kinds, a claim takes only jobs of those kinds (in claim order); with none, any kind.
pub fn claims_take_only_the_kinds_asked_for(factory: &dyn Factory) {
    let db = factory.fresh();
    let mut store = db.connect();
    let kinded = |id: &str, kind: &str| NewJob {
        kind: kind.into(),
        ..job(id)
    };
    insert(
        &mut *store,
        &[
            kinded("s1", "shell"),
            kinded("e1", "email"),
            kinded("m1", "sms"),
            kinded("e2", "email"),
            kinded("s2", "shell"),
        ],
    );
    let take = |store: &mut dyn Store, kinds: &[&str], limit: usize| -> Vec<Job> {
        let kinds: Vec<String> = kinds.iter().map(|k| k.to_string()).collect();
        let (_, claimed) = store
            .finish_and_claim("w", &[], limit, &kinds, T0)
            .expect("finish_and_claim");
        claimed
    };
    assert_eq!(ids(&take(&mut *store, &["email"], 10)), ["e1", "e2"]);
    assert!(take(&mut *store, &["nothing"], 10).is_empty());
    assert_eq!(ids(&take(&mut *store, &["sms", "shell"], 1)), ["s1"]);
    assert_eq!(ids(&take(&mut *store, &[], 10)), ["m1", "s2"]);
    assert!(take(&mut *store, &[], 10).is_empty());
}

/// A claim takes at most `limit` jobs; each becomes `processing`, held by the claimer since
/// `now`, with its lease bumped (a lease counts claims); limit 0 takes none.
pub fn claims_take_at_most_the_limit_and_bump_the_lease(factory: &dyn Factory) {
    let db = factory.fresh();
    let mut store = db.connect();
    insert(&mut *store, &jobs(&["a", "b", "c", "d", "e"]));
    assert!(claim(&mut *store, "w1", 0, T0).is_empty(), "limit 0");
    let claimed = claim(&mut *store, "w1", 2, T0 + 7);
    assert_eq!(ids(&claimed), ["a", "b"]);
    for job in &claimed {
        let stored = get(&*store, &job.id);
        for (what, j) in [("returned", job), ("stored", &stored)] {
            assert_eq!(j.state, State::Processing, "{what} {}", j.id);
            assert_eq!(j.worker.as_deref(), Some("w1"), "{what} {}", j.id);
            assert_eq!(j.started_at, Some(T0 + 7), "{what} {}", j.id);
            assert_eq!(j.lease, 1, "{what} {}: first claim", j.id);
            assert_eq!(j.attempts, 0, "{what} {}: a claim is not an attempt", j.id);
        }
    }
    assert_eq!(ids(&claim(&mut *store, "w2", 2, T0 + 7)), ["c", "d"]);
    assert_eq!(ids(&claim(&mut *store, "w2", 2, T0 + 7)), ["e"]);
    assert!(claim(&mut *store, "w2", 2, T0 + 7).is_empty());
    assert_eq!(store.counts().expect("counts").processing, 5);
    assert_counts_match_rows(&*store, "after the claims");
}

/// One call records finished attempts and claims the next jobs; the result vector answers
/// for each attempt in order.
pub fn finish_and_claim_do_both_in_one_call(factory: &dyn Factory) {
    let db = factory.fresh();
    let mut store = db.connect();
    insert(&mut *store, &jobs(&["a", "b", "c"]));
    let first = claim(&mut *store, "w", 2, T0);
    let finished = [completed(&first[0], T0 + 1), completed(&first[1], T0 + 2)];
    let (applied, claimed) = store
        .finish_and_claim("w", &finished, 5, &[], T0 + 3)
        .expect("finish_and_claim");
    assert_eq!(applied, [true, true]);
    assert_eq!(ids(&claimed), ["c"]);
    assert_eq!(get(&*store, "a").state, State::Completed);
    assert_eq!(get(&*store, "b").state, State::Completed);
    assert_eq!(get(&*store, "c").state, State::Processing);
    assert_counts_match_rows(&*store, "after finishing and claiming");
}

/// Four threads, each with its own connection, claim and complete 400 jobs in small batches at
/// the same time: every job is claimed exactly once, by the worker its history names.
pub fn concurrent_claimers_never_share_a_job(factory: &dyn Factory) {
    const JOBS: usize = 400;
    const THREADS: usize = 4;
    let db = factory.fresh();
    let mut store = db.connect();
    let all: Vec<String> = (0..JOBS).map(|i| format!("job{i:04}")).collect();
    let refs: Vec<&str> = all.iter().map(String::as_str).collect();
    insert(&mut *store, &jobs(&refs));
    let connections: Vec<Box<dyn Store>> = (0..THREADS).map(|_| db.connect()).collect();
    let barrier = std::sync::Barrier::new(THREADS);
    let claims: Vec<(String, Vec<String>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = connections
            .into_iter()
            .enumerate()
            .map(|(t, mut connection)| {
                let barrier = &barrier;
                scope.spawn(move || {
                    let worker = format!("worker{t}");
                    let mut mine = Vec::new();
                    let mut finished = Vec::new();
                    barrier.wait();
                    loop {
                        let (applied, claimed) = connection
                            .finish_and_claim(&worker, &finished, 3, &[], T0)
                            .unwrap_or_else(|e| panic!("{worker}: finish_and_claim: {e}"));
                        assert!(
                            applied.iter().all(|a| *a),
                            "{worker}: its own results were discarded ({applied:?}): did another claimer take its jobs meanwhile?"
                        );
                        if claimed.is_empty() {
                            break;
                        }
                        for job in &claimed {
                            assert_eq!(job.worker.as_deref(), Some(worker.as_str()));
                        }
                        finished = claimed.iter().map(|j| completed(j, T0 + 1)).collect();
                        mine.extend(claimed.into_iter().map(|j| j.id));
                    }
                    (worker, mine)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    let mut claimed_by: BTreeMap<String, String> = BTreeMap::new();
    for (worker, mine) in &claims {
        for id in mine {
            if let Some(other) = claimed_by.insert(id.clone(), worker.clone()) {
                panic!("{id} was claimed by both {other} and {worker}");
            }
        }
    }
    assert_eq!(claimed_by.len(), JOBS, "every job claimed once");
    let counts = store.counts().expect("counts");
    assert_eq!((counts.completed, counts.total()), (JOBS as u64, JOBS as u64));
    for (id, worker) in &claimed_by {
        let job = get(&*store, id);
        assert_eq!((job.state, job.attempts, job.lease), (State::Completed, 1, 1), "{id}");
        let history = store.attempts(job.seq).expect("attempts");
        assert_eq!(history.len(), 1, "{id}: {history:?}");
        assert_eq!(history[0].worker.as_deref(), Some(worker.as_str()), "{id}");
    }
    assert_counts_match_rows(&*store, "after the concurrent run");
}
