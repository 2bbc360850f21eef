//! Transactional enqueue on the PostgreSQL backend: an application enqueues inside its own
//! transaction on its own connection, so a job exists if and only if that transaction commits.
//!
//! The queue lives in a schema of its own (`queuectl` unless its URL says `?schema=NAME`), so it
//! never clashes with the application's tables. Connect with [`postgres`] (re-exported here,
//! so the versions match), open a transaction, and call [`enqueue_tx`] (the default schema) or
//! [`enqueue_tx_in`] (a named one) beside your own writes:
//!
//! - **Rollback** (or dropping the transaction) leaves no job; workers read committed rows only.
//! - **Commit** wakes idle workers on every host as any enqueue does: the enqueue queues the
//!   queue's `NOTIFY`, which PostgreSQL delivers at commit (and never after a rollback).
//! - **Durability is your commit's** (`synchronous_commit`, on by default).
//! - **Errors** are [`crate::Error`]s, and the enqueue runs in a savepoint, so a refused batch
//!   (an invalid spec, an id that exists, [`Error::DuplicateId`](crate::Error::DuplicateId)
//!   naming the id and its index) adds no job and does not abort your transaction: your own
//!   writes stay, to commit or roll back.
//! - **Locking**: the job insert's count trigger takes a transaction-level advisory lock on one
//!   of the queue's count slots until your transaction ends; other writers use other slots, so
//!   keep transactions short but nothing waits on them in the common case.
//!
//! The schema must exist at this build's version ([`SCHEMA_VERSION`]: `queuectl init` or
//! `queuectl migrate` with `--db postgres://...`); otherwise [`Error::NotInitialised`],
//! [`Error::SchemaTooOld`] or [`Error::SchemaTooNew`] (all from [`crate::Error`]), and nothing
//! is written.
//!
//! ```no_run
//! use queuectl::postgres::{enqueue_tx, postgres};
//! use queuectl::JobSpec;
//!
//! let mut client = postgres::Client::connect("postgres://app@db.internal/shop", postgres::NoTls)?;
//! let mut tx = client.transaction()?;
//! tx.execute("INSERT INTO orders (item) VALUES ($1)", &[&"book"])?;
//! enqueue_tx(&mut tx, JobSpec::shell("echo ship the book"))?;
//! tx.commit()?; // the order and its job, or neither
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! [`Error::NotInitialised`]: crate::Error::NotInitialised
//! [`Error::SchemaTooOld`]: crate::Error::SchemaTooOld
//! [`Error::SchemaTooNew`]: crate::Error::SchemaTooNew

pub use crate::store::postgres::SCHEMA_VERSION;
pub use crate::store::DEFAULT_PG_SCHEMA;
pub use postgres;

use crate::error::Result;
use crate::job::{JobSpec, Source};
use crate::store::postgres::caller_tx::insert_in_caller_tx;
use crate::time::now_ms;

/// Enqueues one job inside the caller's transaction `tx`, into the queue in the default schema
/// ([`DEFAULT_PG_SCHEMA`]); returns its id. The job exists for workers once `tx` commits, and
/// never if it rolls back. See the [module docs](self).
pub fn enqueue_tx(tx: &mut postgres::Transaction<'_>, spec: JobSpec) -> Result<String> {
    enqueue_tx_in(tx, DEFAULT_PG_SCHEMA, spec)
}

/// [`enqueue_tx`] into the queue in `schema` (the `schema=NAME` of its URL).
pub fn enqueue_tx_in(tx: &mut postgres::Transaction<'_>, schema: &str, spec: JobSpec) -> Result<String> {
    let mut ids = enqueue_specs(tx, schema, vec![(None, spec)])?;
    Ok(ids.remove(0))
}

/// Enqueues a batch inside the caller's transaction `tx`, into the queue in the default
/// schema, all or nothing within it: on any error no job of the batch is added, and the
/// caller's transaction and writes are intact. Returns the ids in order; errors name a job's
/// place as `index N` (from 0).
pub fn enqueue_batch_tx(
    tx: &mut postgres::Transaction<'_>,
    specs: impl IntoIterator<Item = JobSpec>,
) -> Result<Vec<String>> {
    enqueue_batch_tx_in(tx, DEFAULT_PG_SCHEMA, specs)
}

/// [`enqueue_batch_tx`] into the queue in `schema`.
pub fn enqueue_batch_tx_in(
    tx: &mut postgres::Transaction<'_>,
    schema: &str,
    specs: impl IntoIterator<Item = JobSpec>,
) -> Result<Vec<String>> {
    let specs = specs
        .into_iter()
        .enumerate()
        .map(|(i, spec)| (Some(format!("index {i}")), spec))
        .collect();
    enqueue_specs(tx, schema, specs)
}

fn enqueue_specs(
    tx: &mut postgres::Transaction<'_>,
    schema: &str,
    specs: Vec<(Option<String>, JobSpec)>,
) -> Result<Vec<String>> {
    let jobs = crate::intake::prepare_jobs(specs, &Source::Api, now_ms())?;
    insert_in_caller_tx(tx, schema, &jobs)?;
    Ok(jobs.into_iter().map(|job| job.id).collect())
}
