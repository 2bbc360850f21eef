//! Cases: retrying jobs from the dead-letter queue.

use super::{assert_counts_match_rows, claim, claim_one, completed, failed, finish, get, insert, jobs, Factory, T0};
use crate::job::State;
use crate::store::Store;

/// Kills each of these jobs (claimed and failed without a retry, in one pass).
fn kill(store: &mut dyn Store, ids: &[&str]) {
    let claimed = claim(store, "w", ids.len(), T0);
    assert_eq!(super::ids(&claimed), ids, "killing");
    let finished: Vec<_> = claimed.iter().map(|j| failed(j, T0 + 1, None)).collect();
    assert!(finish(store, "w", &finished).iter().all(|a| *a));
}

/// A DLQ retry puts a dead job back to `pending`, due now, with its attempts reset; its
/// history stays, and the next attempts add to it counting from one again.
pub fn dlq_retry_resets_attempts_and_keeps_history(factory: &dyn Factory) {
    let db = factory.fresh();
    let mut store = db.connect();
    insert(&mut *store, &jobs(&["a"]));
    let first = claim_one(&mut *store, "w", "a");
    assert_eq!(
        finish(&mut *store, "w", &[failed(&first, T0 + 1, Some(T0 + 2))]),
        [true]
    );
    let second = claim(&mut *store, "w", 1, T0 + 2);
    assert_eq!(finish(&mut *store, "w", &[failed(&second[0], T0 + 3, None)]), [true]);
    let dead = get(&*store, "a");
    assert_eq!((dead.state, dead.attempts), (State::Dead, 2));
    let history = store.attempts(dead.seq).expect("attempts");
    assert_eq!(history.len(), 2);

    assert_eq!(store.dlq_retry(&["a".to_string()]).expect("dlq_retry"), 1);
    let retried = get(&*store, "a");
    assert_eq!((retried.state, retried.attempts), (State::Pending, 0));
    assert!(
        retried.run_at <= T0,
        "due at once (retried with the real clock, before T0)"
    );
    assert_eq!(store.attempts(dead.seq).expect("attempts"), history, "history kept");
    assert_counts_match_rows(&*store, "after the DLQ retry");

    let third = claim(&mut *store, "w2", 1, T0 + 4);
    assert_eq!(super::ids(&third), ["a"]);
    assert!(third[0].lease > second[0].lease);
    assert_eq!(finish(&mut *store, "w2", &[completed(&third[0], T0 + 5)]), [true]);
    let done = get(&*store, "a");
    assert_eq!((done.state, done.attempts), (State::Completed, 1));
    let summary: Vec<_> = store
        .attempts(dead.seq)
        .expect("attempts")
        .into_iter()
        .map(|a| (a.attempt, a.outcome))
        .collect();
    assert_eq!(
        summary,
        [
            (1, "failed".to_string()),
            (2, "failed".to_string()),
            (1, "completed".to_string())
        ]
    );
}

/// A DLQ retry naming an id that does not exist ([`crate::Error::NotFound`]) or a job that is
/// not dead ([`crate::Error::WrongState`]) retries nothing, not even the dead jobs it names.
pub fn dlq_retry_refuses_unknown_or_live_ids_changing_nothing(factory: &dyn Factory) {
    let db = factory.fresh();
    let mut store = db.connect();
    insert(&mut *store, &jobs(&["d1", "d2", "done", "waiting"]));
    kill(&mut *store, &["d1", "d2"]);
    let c = claim_one(&mut *store, "w", "done");
    assert_eq!(finish(&mut *store, "w", &[completed(&c, T0 + 1)]), [true]);
    let snapshot = |store: &dyn Store| -> Vec<_> { ["d1", "d2", "done", "waiting"].map(|id| get(store, id)).to_vec() };
    let before = snapshot(&*store);
    let names = |ids: &[&str]| -> Vec<String> { ids.iter().map(|s| s.to_string()).collect() };

    for ids in [&["d1", "nope"][..], &["nope", "d2"], &["d1", "d2", "nope"]] {
        match store.dlq_retry(&names(ids)) {
            Err(crate::Error::NotFound(id)) => assert_eq!(id, "nope", "{ids:?}"),
            other => panic!("{ids:?}: expected NotFound(nope), got {other:?}"),
        }
        assert_eq!(snapshot(&*store), before, "{ids:?} changed something");
    }
    for (ids, live, state) in [
        (&["d1", "waiting"][..], "waiting", "pending"),
        (&["done", "d1"], "done", "completed"),
        (&["d1", "d2", "done"], "done", "completed"),
    ] {
        match store.dlq_retry(&names(ids)) {
            Err(crate::Error::WrongState { id, actual, .. }) => {
                assert_eq!((id.as_str(), actual.as_str()), (live, state), "{ids:?}");
            }
            other => panic!("{ids:?}: expected WrongState for {live}, got {other:?}"),
        }
        assert_eq!(snapshot(&*store), before, "{ids:?} changed something");
    }
    assert_eq!(store.dlq_retry(&names(&["d1", "d2"])).expect("dlq_retry"), 2);
    assert_eq!(get(&*store, "d1").state, State::Pending);
    assert!(
        matches!(store.dlq_retry(&names(&["d1"])), Err(crate::Error::WrongState { .. })),
        "a job retried once is no longer dead"
    );
    assert_counts_match_rows(&*store, "after the refusals and the retry");
}

/// `dlq_retry_all` retries every dead job (and only those) and says how many.
pub fn dlq_retry_all_counts_the_jobs_it_retried(factory: &dyn Factory) {
    let db = factory.fresh();
    let mut store = db.connect();
    assert_eq!(store.dlq_retry_all().expect("dlq_retry_all"), 0);
    insert(&mut *store, &jobs(&["d1", "d2", "d3", "done", "waiting"]));
    kill(&mut *store, &["d1", "d2", "d3"]);
    let c = claim_one(&mut *store, "w", "done");
    assert_eq!(finish(&mut *store, "w", &[completed(&c, T0 + 1)]), [true]);
    assert_eq!(store.dlq_retry_all().expect("dlq_retry_all"), 3);
    for id in ["d1", "d2", "d3"] {
        let job = get(&*store, id);
        assert_eq!((job.state, job.attempts), (State::Pending, 0), "{id}");
        assert_eq!(
            store.attempts(job.seq).expect("attempts").len(),
            1,
            "{id}: history kept"
        );
    }
    assert_eq!(get(&*store, "done").state, State::Completed);
    assert_eq!(store.dlq_retry_all().expect("dlq_retry_all again"), 0);
    assert_eq!(store.counts().expect("counts").pending, 4);
    assert_counts_match_rows(&*store, "after retrying all");
}
