//! The store conformance suite: the behaviour every [`Store`] backend must have, written once
//! and run against each backend (the model is River's `riverdrivertest`).
//!
//! A backend's test file names a [`Factory`] (fresh, migrated, empty databases of that
//! backend) and expands [`store_conformance!`](crate::store_conformance) with it, which makes one
//! `#[test]` per case of this module:
//!
//! ```text
//! // tests/store_sqlite.rs
//! queuectl::store_conformance!(SqliteFactory);
//! ```
//!
//! Each case is also a public function taking the factory (`case(&factory)`), so a backend
//! under construction can run one case on its own. The cases are deterministic: they pass
//! explicit times (`now`, `run_at`, `finished_at`) far in the future ([`T0`]) instead of reading
//! a clock, never sleep, and poll with a deadline where another connection must see a change.
//!
//! What the cases hold a backend to: batches are all or nothing and a duplicate id names its
//! place; spool files are ingested exactly once; claims follow priority, due time and enqueue
//! order, take only the kinds asked for, and concurrent claimers never share a job; each
//! outcome writes its state, attempts and history, and a result under a stale lease is
//! discarded; reaping recovers a lost worker's jobs as `lost` attempts; the per-state counts
//! equal the rows after every transition; listing, ids, the DLQ, config values, the worker
//! registry, schema versions and the change signal behave alike everywhere.

mod claims;
mod dlq;
mod enqueue;
mod finish;
mod reads;
mod reap;
mod registry;
mod schema;

pub use claims::*;
pub use dlq::*;
pub use enqueue::*;
pub use finish::*;
pub use reads::*;
pub use reap::*;
pub use registry::*;
pub use schema::*;

use super::{AttemptOutcome, DbLocation, FinishedAttempt, NewJob, Store, WorkerRecord};
use crate::job::{Job, State};
use crate::time::Millis;
use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Duration;

/// Makes the databases the cases run on: one per case, of one backend.
pub trait Factory {
    /// Whether this backend can run here. A backend whose server is not reachable says why
    /// (once per test binary) and answers false; every case then returns at once.
    fn available(&self) -> bool {
        true
    }

    /// A fresh database of this backend: created, migrated to the current schema, empty, and
    /// shared with no other case. It is removed when the returned fixture drops, also when
    /// the case panics.
    fn fresh(&self) -> Box<dyn Fixture>;
}

/// One fresh database made by a [`Factory`], removed when dropped.
pub trait Fixture {
    /// Where the database is.
    fn location(&self) -> &DbLocation;

    /// Opens another connection to this database (each call a new one, so cases can play
    /// several workers or processes).
    fn connect(&self) -> Box<dyn Store> {
        crate::store::open(self.location())
            .unwrap_or_else(|e| panic!("opening a connection to {}: {e}", self.location()))
    }

    /// Writes `version` as the database's stored schema version, with the backend's own SQL
    /// and bypassing [`Store`] (no build of queuectl writes a version it does not know): the
    /// hook for "a newer schema is refused".
    fn set_schema_version(&self, version: i64);

    /// Removes the database out from under its connections, as an operator's mistake would
    /// (the SQLite file deleted, the PostgreSQL schema dropped): the hook for "a database
    /// removed while in use is noticed".
    fn remove(&self);
}

/// The longest one case may take. A backend that hangs (a lock never released, a loop that
/// never ends) stops the test binary with a line naming the case, instead of hanging the run.
pub const CASE_DEADLINE: Duration = Duration::from_secs(120);

/// Runs the case `name` against `factory`, or nothing when the backend is not available here.
/// Past [`CASE_DEADLINE`] the whole test binary exits (code 101) naming the case: a case
/// cannot be abandoned on its own, and a hung CI run is worse than a failed one.
pub fn run(factory: &dyn Factory, name: &str, case: fn(&dyn Factory)) {
    if !factory.available() {
        return;
    }
    let finished = Arc::new((Mutex::new(false), Condvar::new()));
    let watched = Arc::clone(&finished);
    let name = name.to_string();
    std::thread::spawn(move || {
        let (lock, ended) = &*watched;
        let done = lock.lock().unwrap_or_else(PoisonError::into_inner);
        let (done, _) = ended
            .wait_timeout_while(done, CASE_DEADLINE, |done| !*done)
            .unwrap_or_else(PoisonError::into_inner);
        if !*done {
            // Straight to the process's stderr: libtest captures the print macros.
            let _ = writeln!(
                std::io::stderr(),
                "conformance case `{name}` still running after {CASE_DEADLINE:?}: stopping the test binary"
            );
            std::process::exit(101);
        }
    });
    /// Tells the watchdog the case ended, also when it panicked.
    struct Ended(Arc<(Mutex<bool>, Condvar)>);
    impl Drop for Ended {
        fn drop(&mut self) {
            let (lock, ended) = &*self.0;
            *lock.lock().unwrap_or_else(PoisonError::into_inner) = true;
            ended.notify_all();
        }
    }
    let _ended = Ended(finished);
    case(factory);
}

/// Expands to one `#[test]` per conformance case, each running that case against the factory
/// expression given (evaluated once per test). Use it once per backend, in an integration test
/// file:
///
/// ```text
/// queuectl::store_conformance!(SqliteFactory);
/// ```
#[macro_export]
macro_rules! store_conformance {
    ($factory:expr) => {
        $crate::store_conformance!(@cases $factory;
            // enqueue
            batch_is_all_or_nothing,
            duplicate_id_in_one_batch_names_its_place,
            duplicate_id_across_batches_names_its_place,
            inserted_jobs_read_back_field_for_field,
            spool_file_committed_once_is_already_ingested,
            spool_file_with_a_taken_id_is_refused_and_the_others_commit,
            forgotten_spool_identities_can_be_ingested_again,
            // claims
            claim_order_is_priority_then_run_at_then_enqueue_order,
            jobs_not_yet_due_are_not_claimed,
            claims_take_only_the_kinds_asked_for,
            claims_take_at_most_the_limit_and_bump_the_lease,
            finish_and_claim_do_both_in_one_call,
            concurrent_claimers_never_share_a_job,
            // finishing
            completed_attempt_records_state_output_and_history,
            failed_attempt_with_a_retry_waits_until_its_run_at,
            failed_attempt_without_a_retry_goes_to_the_dlq,
            interrupted_attempt_does_not_count,
            history_keeps_the_tail_of_long_output,
            finish_under_a_stale_lease_is_discarded,
            finish_of_a_job_already_finished_is_discarded,
            a_job_due_again_at_once_is_claimed_by_the_same_step,
            finish_after_reap_and_reclaim_is_discarded,
            // reaping
            reap_recovers_dead_workers_jobs_as_lost_attempts,
            reap_leaves_a_job_the_lost_closure_declines,
            // reads
            counts_equal_rows_after_every_transition,
            count_scheduled_counts_waiting_jobs_not_yet_due,
            next_run_at_is_the_earliest_waiting_job_of_the_kinds,
            has_unfinished_sees_waiting_and_processing_jobs,
            waiting_by_kind_counts_pending_and_failed,
            list_filtered_by_state_search_limit_and_order,
            list_search_is_a_literal_case_sensitive_substring,
            ids_with_prefix_in_code_point_order,
            id_neighbours_are_the_ids_just_before_and_after,
            job_states_leave_out_missing_ids,
            // the DLQ
            dlq_retry_resets_attempts_and_keeps_history,
            dlq_retry_refuses_unknown_or_live_ids_changing_nothing,
            dlq_retry_all_counts_the_jobs_it_retried,
            // config values and the worker registry
            config_values_set_replace_and_unset,
            workers_register_heartbeat_and_remove,
            // schema and change signal
            migrate_is_idempotent,
            newer_schema_is_refused,
            older_schema_is_refused_until_migrated,
            a_database_removed_while_in_use_fails_the_health_check,
            change_token_moves_when_another_connection_inserts,
        );
    };
    (@cases $factory:expr; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                $crate::store::conformance::run(
                    &$factory,
                    stringify!($case),
                    $crate::store::conformance::$case,
                );
            }
        )*
    };
}

// ---- helpers shared by the cases ------------------------------------------------------------

/// The time the cases start at: 2100-01-01T00:00:00Z. Far ahead of any real clock, so jobs a
/// backend stamps with the real time (DLQ retries) are due at once, and spool identities
/// committed now are older than it.
pub const T0: Millis = 4_102_444_800_000;

/// A `shell` job with this id (command `echo ID`), due at [`T0`], from the API.
pub fn job(id: &str) -> NewJob {
    NewJob {
        id: id.to_string(),
        kind: "shell".to_string(),
        command: format!("echo {id}"),
        payload: None,
        max_retries: None,
        priority: 0,
        run_at: T0,
        created_at: T0,
        timeout_seconds: None,
        cwd: None,
        env: None,
        source: "api".to_string(),
        location: None,
    }
}

/// Jobs with these ids, as [`job`] makes them.
pub fn jobs(ids: &[&str]) -> Vec<NewJob> {
    ids.iter().map(|id| job(id)).collect()
}

/// Inserts a batch that must be accepted.
#[track_caller]
pub fn insert(store: &mut dyn Store, jobs: &[NewJob]) {
    store.insert_jobs(jobs, false).expect("insert_jobs");
}

/// Claims up to `limit` jobs of any kind for `worker` at `now`, finishing nothing.
#[track_caller]
pub fn claim(store: &mut dyn Store, worker: &str, limit: usize, now: Millis) -> Vec<Job> {
    let (applied, claimed) = store
        .finish_and_claim(worker, &[], limit, &[], now)
        .expect("finish_and_claim (claim only)");
    assert!(applied.is_empty(), "nothing was finished, yet {applied:?}");
    claimed
}

/// Claims exactly the job `id` for `worker` at [`T0`] (it must be the only due job).
#[track_caller]
pub fn claim_one(store: &mut dyn Store, worker: &str, id: &str) -> Job {
    let claimed = claim(store, worker, 1, T0);
    assert_eq!(ids(&claimed), [id], "claiming {id} for {worker}");
    claimed.into_iter().next().expect("one job")
}

/// Records finished attempts, claiming nothing; returns which applied.
#[track_caller]
pub fn finish(store: &mut dyn Store, worker: &str, finished: &[FinishedAttempt]) -> Vec<bool> {
    let (applied, claimed) = store
        .finish_and_claim(worker, finished, 0, &[], T0)
        .expect("finish_and_claim (finish only)");
    assert!(claimed.is_empty(), "limit 0 claimed {:?}", ids(&claimed));
    assert_eq!(applied.len(), finished.len(), "one answer per finished attempt");
    applied
}

/// The ids of these jobs, in order.
pub fn ids(jobs: &[Job]) -> Vec<&str> {
    jobs.iter().map(|j| j.id.as_str()).collect()
}

/// A successful attempt of a claimed job, ended at `at`, with this output.
pub fn completed(job: &Job, at: Millis) -> FinishedAttempt {
    FinishedAttempt {
        job_seq: job.seq,
        lease: job.lease,
        attempts: job.attempts + 1,
        outcome: AttemptOutcome::Completed,
        new_state: State::Completed,
        run_at: None,
        started_at: job.started_at,
        finished_at: at,
        exit_code: Some(0),
        error: None,
        stdout: Some(format!("out {}", job.id)),
        stderr: Some(format!("err {}", job.id)),
    }
}

/// A failed attempt of a claimed job (exit code 3), ended at `at`: retried at `retry_at`
/// (state `failed`), or dead when `None`.
pub fn failed(job: &Job, at: Millis, retry_at: Option<Millis>) -> FinishedAttempt {
    FinishedAttempt {
        job_seq: job.seq,
        lease: job.lease,
        attempts: job.attempts + 1,
        outcome: AttemptOutcome::Failed,
        new_state: if retry_at.is_some() { State::Failed } else { State::Dead },
        run_at: retry_at,
        started_at: job.started_at,
        finished_at: at,
        exit_code: Some(3),
        error: Some(format!("exit code 3 ({})", job.id)),
        stdout: None,
        stderr: Some("boom".to_string()),
    }
}

/// An attempt of a claimed job stopped by a shutdown at `at`: back to `pending` due at `at`,
/// its attempt not counted.
pub fn interrupted(job: &Job, at: Millis) -> FinishedAttempt {
    FinishedAttempt {
        job_seq: job.seq,
        lease: job.lease,
        attempts: job.attempts,
        outcome: AttemptOutcome::Interrupted,
        new_state: State::Pending,
        run_at: Some(at),
        started_at: job.started_at,
        finished_at: at,
        exit_code: None,
        error: Some("interrupted".to_string()),
        stdout: None,
        stderr: None,
    }
}

/// The attempt recorded for a job whose worker was lost, found at `at`: retried at
/// `retry_at`, or dead when `None`.
pub fn lost(job: &Job, at: Millis, retry_at: Option<Millis>) -> FinishedAttempt {
    FinishedAttempt {
        outcome: AttemptOutcome::Lost,
        exit_code: None,
        error: Some("worker lost".to_string()),
        stderr: None,
        ..failed(job, at, retry_at)
    }
}

/// A worker row with this id, started at `started_at`.
pub fn worker(id: &str, started_at: Millis) -> WorkerRecord {
    WorkerRecord {
        id: id.to_string(),
        pid: 4242,
        host: "host-a".to_string(),
        proc_start: Some(987_654),
        started_at,
        heartbeat_at: started_at,
        threads: 2,
        kinds: vec!["shell".to_string()],
        slots: serde_json::json!([]),
        stopping: false,
        version: "queuectl-test".to_string(),
    }
}

/// The job with this id, which must exist.
#[track_caller]
pub fn get(store: &dyn Store, id: &str) -> Job {
    store
        .get_job(id)
        .expect("get_job")
        .unwrap_or_else(|| panic!("job {id} does not exist"))
}

/// Asserts that the per-state counts equal the rows of each state (`list_jobs`) and that no
/// row is in two states: the O(1) counts never drift from the table.
#[track_caller]
pub fn assert_counts_match_rows(store: &dyn Store, when: &str) {
    let counts = store.counts().expect("counts");
    let mut total = 0;
    for state in State::ALL {
        let rows = store.list_jobs(Some(state), None).expect("list_jobs");
        assert!(
            rows.iter().all(|j| j.state == state),
            "{when}: list_jobs({state}) returned other states"
        );
        assert_eq!(
            counts.get(state),
            rows.len() as u64,
            "{when}: counts say {} {state}, the table holds {}",
            counts.get(state),
            rows.len()
        );
        total += rows.len() as u64;
    }
    let all = store.list_jobs(None, None).expect("list_jobs");
    assert_eq!(
        all.len() as u64,
        total,
        "{when}: rows of all states vs the sum per state"
    );
    assert_eq!(counts.total(), total, "{when}: counts total");
}

/// Asserts that `result` failed with [`crate::Error::DuplicateId`] for `id` at `location`.
#[track_caller]
pub fn assert_duplicate<T: std::fmt::Debug>(result: crate::Result<T>, id: &str, location: Option<&str>) {
    match result {
        Err(crate::Error::DuplicateId {
            id: found,
            location: found_location,
        }) => {
            assert_eq!(found, id, "the duplicate id named");
            assert_eq!(found_location.as_deref(), location, "the duplicate's place");
        }
        other => panic!("expected DuplicateId {{ id: {id}, location: {location:?} }}, got {other:?}"),
    }
}
