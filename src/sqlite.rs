//! Transactional enqueue for applications that keep their own tables in the queue's SQLite file:
//! a job is enqueued if and only if the application's transaction commits.
//!
//! Open the queue's database (`HOME/queue.db`, made by [`Queue::init`](crate::Queue::init) or
//! `queuectl init`) with [`rusqlite`] (re-exported here, so the versions match), keep your own
//! tables in it (queuectl's are all named `queuectl_*`), and call [`enqueue_tx`] or
//! [`enqueue_batch_tx`] inside your transaction:
//!
//! - **Rollback** (or dropping the transaction) leaves no job behind, and nothing a worker
//!   could have seen: workers read committed data only.
//! - **Commit** wakes idle workers as any enqueue does: each polls SQLite's `data_version`,
//!   which changes on every commit by another connection, yours included.
//! - **Durability is your commit's**: with `PRAGMA synchronous = FULL` (SQLite's default for a
//!   new connection) the jobs and your rows are on disk when `commit` returns; with `NORMAL` a
//!   power cut may lose the last commits, the jobs always together with your rows.
//! - **Errors** are [`crate::Error`]s and leave your transaction usable: a refused batch (an
//!   invalid spec, an id that exists, [`Error::DuplicateId`](crate::Error::DuplicateId) naming
//!   the id and its index in the batch) adds no job of the batch and keeps your own writes; you
//!   decide whether to commit them or roll back.
//! - **Locking**: SQLite has one writer at a time, and workers take the write lock briefly to
//!   claim and finish jobs. Begin write transactions with
//!   [`TransactionBehavior::Immediate`](rusqlite::TransactionBehavior::Immediate) (a deferred
//!   transaction that read first cannot wait for the lock: it fails with "database is locked")
//!   and keep the connection's `busy_timeout` (rusqlite: 5 s) at least as long as your
//!   transactions, which hold up workers' claims while they are open.
//!
//! **Sharing the file**: queuectl owns the file's `PRAGMA user_version` (its schema version) and
//! keeps it in WAL mode; the application's tables may have any name not starting with
//! `queuectl_`. `queuectl init` (or [`Queue::init`](crate::Queue::init)) also adds the queue to
//! an existing application file, whatever its tables are called.
//!
//! The database must be at this build's schema version ([`SCHEMA_VERSION`]): a file without the
//! queue's schema is refused with [`Error::NotInitialised`](crate::Error::NotInitialised), an
//! older one with [`Error::SchemaTooOld`](crate::Error::SchemaTooOld) (`queuectl migrate`
//! upgrades it), a newer one with [`Error::SchemaTooNew`](crate::Error::SchemaTooNew); nothing
//! is written then.
//!
//! ```
//! use queuectl::sqlite::{enqueue_tx, rusqlite};
//! use queuectl::{Home, JobSpec, PoolBuilder, Queue, Shutdown, State};
//!
//! let dir = tempfile::tempdir()?;
//! let home = Home::new(dir.path());
//! let (queue, _) = Queue::init(&home)?;
//!
//! let mut conn = rusqlite::Connection::open(dir.path().join("queue.db"))?;
//! conn.execute_batch("CREATE TABLE IF NOT EXISTS orders (id INTEGER PRIMARY KEY, item TEXT NOT NULL)")?;
//! let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
//! tx.execute("INSERT INTO orders (item) VALUES (?1)", ["book"])?;
//! let order = tx.last_insert_rowid();
//! let id = enqueue_tx(&tx, JobSpec::shell(format!("echo shipping order {order}")))?;
//! tx.commit()?; // the order and its job, or neither
//!
//! PoolBuilder::new(&home).until_empty(true).shell_hooks(false).run(&Shutdown::new())?;
//! assert_eq!(queue.get(&id)?.state, State::Completed);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub use crate::store::sqlite::schema::SCHEMA_VERSION;
pub use rusqlite;

use crate::error::Result;
use crate::job::{JobSpec, Source};
use crate::store::sqlite::caller_tx::insert_in_caller_tx;
use crate::time::now_ms;

/// Enqueues one job inside the caller's transaction `tx` on the queue's database; returns its
/// id (the spec's, or a new UUID). The job exists for workers once `tx` commits, and never if it
/// rolls back. Validation is the same as [`Queue::enqueue`](crate::Queue::enqueue)'s; see the
/// [module docs](self) for errors, locking and durability.
pub fn enqueue_tx(tx: &rusqlite::Transaction<'_>, spec: JobSpec) -> Result<String> {
    let mut ids = enqueue_specs(tx, vec![(None, spec)])?;
    Ok(ids.remove(0))
}

/// Enqueues a batch inside the caller's transaction `tx`, all or nothing within it: on any
/// error no job of the batch is added and the caller's own writes stay. Returns the ids in
/// order. Errors name the job's place as `index N` (from 0); an empty batch is refused.
pub fn enqueue_batch_tx(
    tx: &rusqlite::Transaction<'_>,
    specs: impl IntoIterator<Item = JobSpec>,
) -> Result<Vec<String>> {
    let specs = specs
        .into_iter()
        .enumerate()
        .map(|(i, spec)| (Some(format!("index {i}")), spec))
        .collect();
    enqueue_specs(tx, specs)
}

fn enqueue_specs(tx: &rusqlite::Transaction<'_>, specs: Vec<(Option<String>, JobSpec)>) -> Result<Vec<String>> {
    let jobs = crate::intake::prepare_jobs(specs, &Source::Api, now_ms())?;
    insert_in_caller_tx(tx, &jobs)?;
    Ok(jobs.into_iter().map(|job| job.id).collect())
}
