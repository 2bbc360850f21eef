//! Cases: what each outcome writes (state, attempts, run_at, output, history), and that a
//! result under a lease that is no longer the job's is discarded.

use super::{
    assert_counts_match_rows, claim, claim_one, completed, failed, finish, get, insert, interrupted, jobs, lost,
    worker, Factory, T0,
};
use crate::job::{Attempt, State};
use crate::store::{AttemptOutcome, FinishedAttempt, HISTORY_TAIL_BYTES};

/// A completed attempt: state `completed`, one attempt, its exit code, output and end time on
/// the job, and one history row saying so.
pub fn completed_attempt_records_state_output_and_history(factory: &dyn Factory) {
    let db = factory.fresh();
    let mut store = db.connect();
    insert(&mut *store, &jobs(&["a"]));
    let claimed = claim_one(&mut *store, "w", "a");
    assert_eq!(finish(&mut *store, "w", &[completed(&claimed, T0 + 5)]), [true]);
    let job = get(&*store, "a");
    assert_eq!(job.state, State::Completed);
    assert_eq!(job.attempts, 1);
    assert_eq!(job.exit_code, Some(0));
    assert_eq!(job.started_at, Some(T0));
    assert_eq!(job.finished_at, Some(T0 + 5));
    assert_eq!(job.updated_at, T0 + 5);
    assert_eq!(job.worker.as_deref(), Some("w"), "the worker that last held it");
    assert_eq!(job.stdout.as_deref(), Some("out a"));
    assert_eq!(job.stderr.as_deref(), Some("err a"));
    assert_eq!(
        store.attempts(job.seq).expect("attempts"),
        [Attempt {
            attempt: 1,
            outcome: AttemptOutcome::Completed,
            worker: Some("w".into()),
            started_at: Some(T0),
            finished_at: T0 + 5,
            exit_code: Some(0),
            error: None,
            stdout_tail: Some("out a".into()),
            stderr_tail: Some("err a".into()),
        }]
    );
    assert!(
        claim(&mut *store, "w", 1, T0 + 1_000_000).is_empty(),
        "a completed job is never claimed"
    );
    assert_counts_match_rows(&*store, "after completing");
}

/// A failed attempt with a retry: state `failed` with the retry's `run_at`, the error and exit
/// code kept; claimed again only once that time comes, and its next attempt counts as the
/// second.
pub fn failed_attempt_with_a_retry_waits_until_its_run_at(factory: &dyn Factory) {
    let db = factory.fresh();
    let mut store = db.connect();
    insert(&mut *store, &jobs(&["a"]));
    let claimed = claim_one(&mut *store, "w", "a");
    assert_eq!(
        finish(&mut *store, "w", &[failed(&claimed, T0 + 5, Some(T0 + 2_000))]),
        [true]
    );
    let job = get(&*store, "a");
    assert_eq!((job.state, job.attempts, job.run_at), (State::Failed, 1, T0 + 2_000));
    assert_eq!(job.exit_code, Some(3));
    assert_eq!(job.last_error.as_deref(), Some("exit code 3 (a)"));
    assert_eq!(job.stderr.as_deref(), Some("boom"));
    assert_counts_match_rows(&*store, "after the failure");
    assert!(
        claim(&mut *store, "w", 1, T0 + 1_999).is_empty(),
        "claimed before its retry time"
    );
    let again = claim(&mut *store, "w2", 1, T0 + 2_000);
    assert_eq!(super::ids(&again), ["a"]);
    assert!(again[0].lease > claimed.lease, "a new claim, a new lease");
    assert_eq!(again[0].attempts, 1);
    assert_eq!(finish(&mut *store, "w2", &[completed(&again[0], T0 + 2_100)]), [true]);
    let history = store.attempts(job.seq).expect("attempts");
    let summary: Vec<_> = history
        .iter()
        .map(|a| (a.attempt, a.outcome.as_str(), a.worker.as_deref(), a.exit_code))
        .collect();
    assert_eq!(
        summary,
        [(1, "failed", Some("w"), Some(3)), (2, "completed", Some("w2"), Some(0))]
    );
    assert_eq!(history[0].error.as_deref(), Some("exit code 3 (a)"));
    assert_eq!(get(&*store, "a").attempts, 2);
}

/// A failed attempt without a retry moves the job to `dead` (the DLQ), where no claim takes it
/// and it no longer counts as unfinished.
pub fn failed_attempt_without_a_retry_goes_to_the_dlq(factory: &dyn Factory) {
    let db = factory.fresh();
    let mut store = db.connect();
    insert(&mut *store, &jobs(&["a"]));
    let claimed = claim_one(&mut *store, "w", "a");
    assert_eq!(finish(&mut *store, "w", &[failed(&claimed, T0 + 5, None)]), [true]);
    let job = get(&*store, "a");
    assert_eq!((job.state, job.attempts), (State::Dead, 1));
    assert_eq!(job.last_error.as_deref(), Some("exit code 3 (a)"));
    assert!(claim(&mut *store, "w", 1, T0 + 1_000_000_000).is_empty());
    assert!(!store.has_unfinished(&[]).expect("has_unfinished"));
    assert_eq!(store.next_run_at(&[]).expect("next_run_at"), None);
    let history = store.attempts(job.seq).expect("attempts");
    assert_eq!(history.len(), 1);
    assert_eq!((history[0].attempt, history[0].outcome.as_str()), (1, "failed"));
    assert_counts_match_rows(&*store, "after the job died");
}

/// An interrupted attempt (a forced shutdown) puts the job back to `pending` at the given time
/// without counting an attempt; its history row carries the number of the attempt that
/// replaces it.
pub fn interrupted_attempt_does_not_count(factory: &dyn Factory) {
    let db = factory.fresh();
    let mut store = db.connect();
    insert(&mut *store, &jobs(&["a"]));
    let claimed = claim_one(&mut *store, "w", "a");
    assert_eq!(finish(&mut *store, "w", &[interrupted(&claimed, T0 + 5)]), [true]);
    let job = get(&*store, "a");
    assert_eq!((job.state, job.attempts, job.run_at), (State::Pending, 0, T0 + 5));
    assert_counts_match_rows(&*store, "after the interruption");
    assert!(claim(&mut *store, "w", 1, T0 + 4).is_empty());
    let again = claim(&mut *store, "w", 1, T0 + 5);
    assert_eq!(super::ids(&again), ["a"]);
    assert_eq!(again[0].attempts, 0);
    assert!(again[0].lease > claimed.lease);
    assert_eq!(finish(&mut *store, "w", &[completed(&again[0], T0 + 9)]), [true]);
    assert_eq!(get(&*store, "a").attempts, 1);
    let summary: Vec<_> = store
        .attempts(job.seq)
        .expect("attempts")
        .iter()
        .map(|a| (a.attempt, a.outcome.to_string()))
        .collect();
    assert_eq!(summary, [(1, "interrupted".to_string()), (1, "completed".to_string())]);
}

/// The job keeps its (already capped) output whole; its history row keeps the last
/// [`HISTORY_TAIL_BYTES`] bytes at most, cut at a character boundary.
pub fn history_keeps_the_tail_of_long_output(factory: &dyn Factory) {
    let db = factory.fresh();
    let mut store = db.connect();
    insert(&mut *store, &jobs(&["a"]));
    let claimed = claim_one(&mut *store, "w", "a");
    // 3-byte characters: a cut at exactly HISTORY_TAIL_BYTES from the end falls inside one.
    let long: String = "€".repeat(HISTORY_TAIL_BYTES / 3 + 700);
    assert_ne!(long.len() % 3, HISTORY_TAIL_BYTES % 3);
    let attempt = FinishedAttempt {
        stdout: Some(long.clone()),
        stderr: Some("short".into()),
        ..completed(&claimed, T0 + 5)
    };
    assert_eq!(finish(&mut *store, "w", &[attempt]), [true]);
    let job = get(&*store, "a");
    assert_eq!(
        job.stdout.as_deref(),
        Some(long.as_str()),
        "the job keeps its output whole"
    );
    let history = store.attempts(job.seq).expect("attempts");
    let tail = history[0].stdout_tail.as_deref().expect("a stdout tail");
    assert!(long.ends_with(tail), "the tail is the end of the output");
    assert!(
        tail.len() <= HISTORY_TAIL_BYTES && tail.len() > HISTORY_TAIL_BYTES - 4,
        "tail of {} bytes",
        tail.len()
    );
    assert_eq!(history[0].stderr_tail.as_deref(), Some("short"));
}

/// A result under a lease that is not the job's current claim (older or newer) is discarded:
/// the answer is false and neither the job nor its history changes; the right lease applies.
pub fn finish_under_a_stale_lease_is_discarded(factory: &dyn Factory) {
    let db = factory.fresh();
    let mut store = db.connect();
    insert(&mut *store, &jobs(&["a", "b"]));
    let claimed = claim(&mut *store, "w", 2, T0);
    let (a, b) = (&claimed[0], &claimed[1]);
    let before = get(&*store, "a");
    for lease in [a.lease - 1, a.lease + 1] {
        let stale = FinishedAttempt {
            lease,
            ..completed(a, T0 + 5)
        };
        assert_eq!(finish(&mut *store, "w", &[stale]), [false], "lease {lease}");
        assert_eq!(get(&*store, "a"), before, "lease {lease} changed the job");
        assert!(
            store.attempts(a.seq).expect("attempts").is_empty(),
            "lease {lease} wrote history"
        );
    }
    let stale = FinishedAttempt {
        lease: a.lease - 1,
        ..failed(a, T0 + 5, None)
    };
    let applied = finish(&mut *store, "w", &[stale, completed(a, T0 + 6), completed(b, T0 + 6)]);
    assert_eq!(applied, [false, true, true]);
    let job = get(&*store, "a");
    assert_eq!(
        (job.state, job.attempts, job.finished_at),
        (State::Completed, 1, Some(T0 + 6))
    );
    assert_eq!(store.attempts(a.seq).expect("attempts").len(), 1);
    assert_counts_match_rows(&*store, "after the stale results");
}

/// A second result for a claim that was already finished (same lease) is discarded.
pub fn finish_of_a_job_already_finished_is_discarded(factory: &dyn Factory) {
    let db = factory.fresh();
    let mut store = db.connect();
    insert(&mut *store, &jobs(&["a", "b"]));
    let claimed = claim(&mut *store, "w", 2, T0);
    let (a, b) = (&claimed[0], &claimed[1]);
    assert_eq!(
        finish(
            &mut *store,
            "w",
            &[completed(a, T0 + 5), failed(b, T0 + 5, Some(T0 + 50))]
        ),
        [true, true]
    );
    let before = (get(&*store, "a"), get(&*store, "b"));
    let again = [failed(a, T0 + 6, None), completed(b, T0 + 6), interrupted(b, T0 + 6)];
    assert_eq!(finish(&mut *store, "w", &again), [false, false, false]);
    assert_eq!((get(&*store, "a"), get(&*store, "b")), before);
    assert_eq!(store.attempts(a.seq).expect("attempts").len(), 1);
    assert_eq!(store.attempts(b.seq).expect("attempts").len(), 1);
    assert_counts_match_rows(&*store, "after the repeated results");
}

/// A worker presumed dead, its job recovered by a reap and claimed by another worker, comes
/// back with its result: discarded. The job stays with the new holder, whose result applies.
pub fn finish_after_reap_and_reclaim_is_discarded(factory: &dyn Factory) {
    let db = factory.fresh();
    let mut store = db.connect();
    insert(&mut *store, &jobs(&["a"]));
    store.register_worker(&worker("w1", T0)).expect("register");
    let first = claim_one(&mut *store, "w1", "a");
    let reaped = store
        .reap_workers(&|_| false, &|job| Some(lost(job, T0 + 10, Some(T0 + 10))))
        .expect("reap");
    assert_eq!(reaped.recovered.len(), 1);
    assert_eq!(get(&*store, "a").state, State::Failed);
    let mut other = db.connect();
    let second = claim(&mut *other, "w2", 1, T0 + 10);
    assert_eq!(super::ids(&second), ["a"]);
    let second = &second[0];
    assert!(second.lease > first.lease);
    let holder = get(&*store, "a");

    assert_eq!(finish(&mut *store, "w1", &[completed(&first, T0 + 20)]), [false]);
    assert_eq!(get(&*store, "a"), holder, "the stale worker's result changed the job");
    let outcomes: Vec<String> = store
        .attempts(first.seq)
        .expect("attempts")
        .into_iter()
        .map(|a| a.outcome.to_string())
        .collect();
    assert_eq!(outcomes, ["lost"]);

    assert_eq!(finish(&mut *other, "w2", &[completed(second, T0 + 30)]), [true]);
    let job = get(&*store, "a");
    assert_eq!(
        (job.state, job.attempts),
        (State::Completed, 2),
        "the lost attempt counted"
    );
    let summary: Vec<_> = store
        .attempts(first.seq)
        .expect("attempts")
        .into_iter()
        .map(|a| (a.attempt, a.outcome.to_string(), a.worker))
        .collect();
    assert_eq!(
        summary,
        [
            (1, "lost".to_string(), Some("w1".to_string())),
            (2, "completed".to_string(), Some("w2".to_string()))
        ]
    );
    assert_counts_match_rows(&*store, "after the reclaimed job completed");
}

/// A job finished as due again at once (a retry without delay, an interrupted attempt) is
/// claimed again by the same call when the worker asks for work, under a new lease: its next
/// result applies, the old lease's does not.
pub fn a_job_due_again_at_once_is_claimed_by_the_same_step(factory: &dyn Factory) {
    let db = factory.fresh();
    let mut store = db.connect();
    insert(&mut *store, &jobs(&["a", "b"]));
    let first = claim(&mut *store, "w", 2, T0);
    let (applied, again) = store
        .finish_and_claim(
            "w",
            &[failed(&first[0], T0 + 1, Some(T0 + 1)), interrupted(&first[1], T0 + 1)],
            2,
            &[],
            T0 + 2,
        )
        .expect("finish_and_claim");
    assert_eq!(applied, [true, true]);
    assert_eq!(
        super::ids(&again),
        ["a", "b"],
        "both are due again and claimed by this step"
    );
    assert_eq!((again[0].attempts, again[1].attempts), (1, 0));
    assert_ne!(again[0].lease, first[0].lease);
    assert_eq!(
        finish(&mut *store, "w", &[completed(&first[0], T0 + 3)]),
        [false],
        "the old lease"
    );
    assert_eq!(finish(&mut *store, "w", &[completed(&again[0], T0 + 3)]), [true]);
    assert_eq!(get(&*store, "a").state, State::Completed);
    assert_eq!(get(&*store, "b").state, State::Processing);
    assert_counts_match_rows(&*store, "after a step that finished and claimed the same jobs");
}
