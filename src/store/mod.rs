//! Storage: the [`Store`] trait, in queue terms, and its two backends.
//!
//! Everything queuectl keeps (jobs, their attempt history, the per-state counts, `config set`
//! values, the worker registry, spool bookkeeping) goes through [`Store`]. The rest of the
//! crate holds a `Box<dyn Store>` and never names a database crate; each backend owns its SQL:
//!
//! - [`sqlite`]: one SQLite file (`HOME/queue.db`), the default. Claims take the write lock
//!   (`BEGIN IMMEDIATE`), and another process's commits show in `PRAGMA data_version`.
//! - `postgres` (feature `postgres`): one schema of a PostgreSQL database, for workers on many
//!   hosts. Claims use `FOR UPDATE SKIP LOCKED`; commits are announced with `NOTIFY`.
//!
//! What an outcome *means* (retry when, or dead) is decided outside the store
//! ([`crate::lifecycle`]); a backend applies it atomically, guarded by the claim's lease, so a
//! stale holder's result is never applied. The conformance suite ([`conformance`]) holds both
//! backends to the same behaviour.

pub mod conformance;
mod ids;
mod location;
pub mod sqlite;
mod types;

pub use crate::error::{StoreError, StoreErrorKind};
pub use location::{check_schema_name, redact, DbLocation, DEFAULT_PG_SCHEMA};
pub use types::*;

use crate::error::Result;
use crate::job::{Attempt, Job, State};
use crate::time::Millis;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

/// One connection to a queue database, in queue terms. `Send` but not `Sync`: each thread that
/// needs the database opens its own. Every method that changes state is one transaction.
pub trait Store: Send + std::fmt::Debug {
    /// Where this store's data lives.
    fn location(&self) -> &DbLocation;

    // ---- schema -------------------------------------------------------------------------

    /// The schema version of the database (0: none yet).
    fn schema_version(&self) -> Result<i64>;

    /// The schema version this build of the backend writes and understands.
    fn supported_schema_version(&self) -> i64;

    /// The queuectl that last migrated this database (`queuectl 0.1.0`): every migration records
    /// it; `None` only for a schema with no place for it (SQLite before version 2).
    fn last_migrated_by(&self) -> Result<Option<String>>;

    /// Brings the schema up to this build's version, one migration per transaction; does
    /// nothing on a current database and refuses a newer one ([`crate::Error::SchemaTooNew`]).
    /// Safe to run from several processes at once.
    fn migrate(&self) -> Result<()>;

    /// Takes the backup a migration from `version` needs first, if this backend needs one
    /// (SQLite copies the file; PostgreSQL migrates inside one transaction and needs none).
    fn backup_before_migration(&self, version: i64) -> Result<Option<BackupReport>>;

    /// Writes a consistent copy of the queue to `dest`; a backend that cannot (PostgreSQL:
    /// use `pg_dump`) refuses with the reason.
    fn backup_to(&self, dest: &Path, overwrite: Overwrite) -> Result<BackupReport>;

    // ---- health and change notification ---------------------------------------------------

    /// Fails if the database went away under this connection in a way that going on would hide
    /// (a SQLite file deleted or replaced while open).
    fn check_health(&self) -> Result<()>;

    /// Frees what space it can after a write failed on a full disk (SQLite: truncate the WAL).
    fn relieve_full(&self) -> Result<()> {
        Ok(())
    }

    /// How long one statement waits for another writer's lock before failing as busy.
    fn set_lock_timeout(&self, timeout: Duration) -> Result<()>;

    /// A call that gets no answer from the database for this long fails as
    /// [`StoreErrorKind::Unavailable`] instead of waiting for it (a server on another host
    /// behind a cut link); connecting gives up after it too, and a server that can tell ends
    /// a transaction this store leaves idle that long. A worker whose database is out of
    /// reach learns it in time to stop its jobs before other hosts run them again. Backends on
    /// local files (SQLite) have nothing to bound: the default does nothing.
    fn set_unresponsive_timeout(&self, timeout: Duration) -> Result<()> {
        let _ = timeout;
        Ok(())
    }

    /// A number that changes whenever another connection commits a change that may matter to
    /// a waiting worker (new jobs, retries, DLQ retries). Cheap enough to poll every few
    /// milliseconds: SQLite's `data_version`, PostgreSQL's count of `NOTIFY`s received.
    fn change_token(&self) -> Result<i64>;

    // ---- enqueue ------------------------------------------------------------------------

    /// Inserts a batch of jobs in one transaction, all or nothing; a duplicate id fails the
    /// whole batch with [`crate::Error::DuplicateId`] naming the job's place. With `durable`,
    /// the commit is on disk before this returns.
    fn insert_jobs(&mut self, jobs: &[NewJob], durable: bool) -> Result<()>;

    /// Ingests spool files: each file's jobs and its identity in one transaction per file
    /// (all files in one transaction when none is refused). A file whose identity was committed
    /// before is [`SpoolFileResult::AlreadyIngested`] and adds nothing.
    fn ingest_spool_files(&mut self, files: &[SpoolFileJobs]) -> Result<Vec<SpoolFileResult>>;

    /// The source (`cli`, `api`, `spool:NAME`) of the job with this id, if it exists.
    fn job_source(&self, id: &str) -> Result<Option<String>>;

    /// Forgets the identities of spool files committed before `cutoff`; returns how many.
    fn forget_spool_files_before(&self, cutoff: Millis) -> Result<usize>;

    // ---- reads --------------------------------------------------------------------------

    /// One job with its output.
    fn get_job(&self, id: &str) -> Result<Option<Job>>;

    /// The states of these jobs (missing ids are left out).
    fn job_states(&self, ids: &[String]) -> Result<BTreeMap<String, State>>;

    /// Jobs in enqueue order, optionally of one state, at most `limit`.
    fn list_jobs(&self, state: Option<State>, limit: Option<u64>) -> Result<Vec<Job>>;

    /// Jobs matching `filter`, newest first unless `filter.oldest_first`.
    fn list_filtered(&self, filter: &ListFilter) -> Result<Vec<Job>>;

    /// Ids starting with `prefix`, in id order, at most `limit`.
    fn ids_with_prefix(&self, prefix: &str, limit: u64) -> Result<Vec<String>>;

    /// The ids sorting just before and just after `id` (for "did you mean").
    fn id_neighbours(&self, id: &str) -> Result<(Option<String>, Option<String>)>;

    /// A job's attempt history, oldest first.
    fn attempts(&self, job_seq: i64) -> Result<Vec<Attempt>>;

    /// Jobs per state, in O(1) whatever the table size.
    fn counts(&self) -> Result<StateCounts>;

    /// Waiting jobs (`pending`/`failed`) not due before `now`.
    fn count_scheduled(&self, now: Millis) -> Result<u64>;

    /// Waiting jobs per kind (kinds with none left out).
    fn waiting_by_kind(&self) -> Result<BTreeMap<String, u64>>;

    /// The earliest `run_at` of a waiting job of these kinds (all kinds when empty).
    fn next_run_at(&self, kinds: &[String]) -> Result<Option<Millis>>;

    /// Whether any job of these kinds (all when empty) is waiting or processing.
    fn has_unfinished(&self, kinds: &[String]) -> Result<bool>;

    // ---- the worker's transaction -------------------------------------------------------

    /// Records finished attempts and claims up to `limit` due jobs of `kinds` (all when
    /// empty) for `worker`, in one transaction. Each attempt applies only while its job is
    /// still `processing` under the same lease (the first vector says which applied). Claims
    /// follow priority (higher first), then `run_at`, then enqueue order, set the job
    /// `processing`, bump its lease, and are returned in that order. Concurrent callers never
    /// claim the same job.
    fn finish_and_claim(
        &mut self,
        worker: &str,
        finished: &[FinishedAttempt],
        limit: usize,
        kinds: &[String],
        now: Millis,
    ) -> Result<(Vec<bool>, Vec<Job>)>;

    /// In one transaction: reads the workers, judges each with `alive`, recovers every
    /// `processing` job not held by a live worker with the attempt `lost` builds for it (`None`
    /// leaves it `processing` for now, and keeps its worker's row), and removes the rows of dead
    /// workers that hold nothing any more. Never waits for what another session holds: a job
    /// (or a dead worker's row) that a backend with row locks finds locked by another session
    /// is left as it is for a later pass, with its worker's row, and the rest is recovered now.
    fn reap_workers(
        &mut self,
        alive: &dyn Fn(&WorkerRecord) -> bool,
        lost: &dyn Fn(&Job) -> Option<FinishedAttempt>,
    ) -> Result<ReapOutcome>;

    // ---- the DLQ ------------------------------------------------------------------------

    /// Puts dead jobs back to `pending` with attempts reset (history kept), all or nothing:
    /// an id that does not exist or is not dead refuses the whole call.
    fn dlq_retry(&mut self, ids: &[String]) -> Result<usize>;

    /// Puts every dead job back to `pending`; returns how many.
    fn dlq_retry_all(&mut self) -> Result<usize>;

    // ---- config values --------------------------------------------------------------------

    /// Every value stored by `config set`.
    fn config_values(&self) -> Result<BTreeMap<String, String>>;

    /// Stores a `config set` value.
    fn config_set(&self, key: &str, value: &str) -> Result<()>;

    /// Drops a `config set` value; returns whether there was one.
    fn config_unset(&self, key: &str) -> Result<bool>;

    // ---- the worker registry ---------------------------------------------------------------

    /// Records a worker process (or replaces its row).
    fn register_worker(&self, worker: &WorkerRecord) -> Result<()>;

    /// Updates a worker's heartbeat and what its threads run; false if its row is gone
    /// (another process decided it was dead).
    fn heartbeat(&self, id: &str, now: Millis, slots: &serde_json::Value, stopping: bool) -> Result<bool>;

    /// Removes a worker's row.
    fn remove_worker(&self, id: &str) -> Result<()>;

    /// Every recorded worker, oldest first.
    fn workers(&self) -> Result<Vec<WorkerRecord>>;
}

/// Opens an existing queue database at the current schema version, changing nothing: refuses a
/// missing or uninitialised one ([`crate::Error::NotInitialised`]), an older schema
/// ([`crate::Error::SchemaTooOld`]) and a newer one ([`crate::Error::SchemaTooNew`]).
pub fn open(location: &DbLocation) -> Result<Box<dyn Store>> {
    match location {
        DbLocation::Sqlite(path) => Ok(Box::new(sqlite::SqliteStore::open(path)?)),
        DbLocation::Postgres { .. } => open_postgres(location, Mode::Current).map(|(store, _)| store),
    }
}

/// Opens an existing queue database at the current or an older schema version without
/// migrating it; returns the store and the version found (for `migrate` and `backup`).
pub fn open_existing(location: &DbLocation) -> Result<(Box<dyn Store>, i64)> {
    match location {
        DbLocation::Sqlite(path) => {
            let (store, version) = sqlite::SqliteStore::open_existing(path)?;
            Ok((Box::new(store), version))
        }
        DbLocation::Postgres { .. } => open_postgres(location, Mode::Existing),
    }
}

/// Creates the database (or opens it) without migrating it; returns the store and the schema
/// version found (0 for a new one). The caller runs [`Store::migrate`].
pub fn create(location: &DbLocation) -> Result<(Box<dyn Store>, i64)> {
    match location {
        DbLocation::Sqlite(path) => {
            let (store, version) = sqlite::SqliteStore::create(path)?;
            Ok((Box::new(store), version))
        }
        DbLocation::Postgres { .. } => open_postgres(location, Mode::Create),
    }
}

/// How a backend opens its database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(dead_code)]
enum Mode {
    Current,
    Existing,
    Create,
}

#[cfg(not(feature = "postgres"))]
fn open_postgres(location: &DbLocation, _mode: Mode) -> Result<(Box<dyn Store>, i64)> {
    Err(crate::Error::InvalidArgument(format!(
        "{location}: this queuectl was built without PostgreSQL support (feature `postgres`)"
    )))
}

#[cfg(feature = "postgres")]
fn open_postgres(location: &DbLocation, mode: Mode) -> Result<(Box<dyn Store>, i64)> {
    match mode {
        Mode::Current => postgres::PgStore::open(location).map(|s| (s, postgres::SCHEMA_VERSION)),
        Mode::Existing => postgres::PgStore::open_existing(location),
        Mode::Create => postgres::PgStore::create(location),
    }
}

#[cfg(feature = "postgres")]
pub mod postgres;
