//! Inserting jobs on a connection the caller owns, inside the caller's open transaction: the
//! SQL behind [`crate::sqlite::enqueue_tx`].

use super::{insert_jobs_in, schema};
use crate::error::{Error, Result};
use crate::store::NewJob;
use rusqlite::{Connection, OptionalExtension};
use std::path::PathBuf;

/// Inserts `jobs` on `conn` (inside the caller's transaction, which decides whether they are
/// ever committed), all or nothing: a savepoint undoes this batch's rows on failure and leaves
/// the caller's own writes and its transaction as they were. Refuses a database without the
/// queue's schema at this build's version, writing nothing.
pub(crate) fn insert_in_caller_tx(conn: &Connection, jobs: &[NewJob]) -> Result<()> {
    check_schema(conn)?;
    conn.execute_batch("SAVEPOINT queuectl_enqueue")?;
    match insert_jobs_in(conn, jobs) {
        Ok(()) => {
            conn.execute_batch("RELEASE queuectl_enqueue")?;
            Ok(())
        }
        Err(error) => {
            // Undoes the rows of this batch only: the caller's writes before the savepoint stay.
            let _ = conn.execute_batch("ROLLBACK TO queuectl_enqueue; RELEASE queuectl_enqueue");
            Err(error)
        }
    }
}

/// Refuses a database that has no queue schema ([`Error::NotInitialised`]) or has it at
/// another version than this build's ([`Error::SchemaTooOld`]: `queuectl migrate` upgrades it;
/// [`Error::SchemaTooNew`]).
fn check_schema(conn: &Connection) -> Result<()> {
    let path = match conn.path() {
        Some(path) if !path.is_empty() => PathBuf::from(path),
        _ => PathBuf::from(":memory:"),
    };
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version > schema::SCHEMA_VERSION {
        return Err(Error::SchemaTooNew {
            path,
            found: version,
            supported: schema::SCHEMA_VERSION,
        });
    }
    if version > 0 && version < schema::SCHEMA_VERSION {
        return Err(Error::SchemaTooOld {
            path,
            found: version,
            needed: schema::SCHEMA_VERSION,
        });
    }
    // Version 0 is a file queuectl never initialised; a file whose own user of `user_version`
    // happens to write this version is no queue either.
    let jobs_table = schema::table("jobs", schema::SCHEMA_VERSION);
    let has_jobs: Option<i64> = conn
        .query_row(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1",
            [&jobs_table],
            |r| r.get(0),
        )
        .optional()?;
    if version == 0 || has_jobs.is_none() {
        return Err(Error::NotInitialised(path));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::SqliteStore;
    use crate::store::Store;
    use crate::JobSpec;

    /// Idle workers notice new jobs through the store's change token (SQLite's `data_version`):
    /// a commit on the application's connection must move it, a rollback must not.
    #[test]
    fn a_commit_on_the_callers_connection_moves_the_workers_change_token_and_a_rollback_does_not() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("queue.db");
        let (store, _) = SqliteStore::create(&path).expect("create");
        store.migrate().expect("migrate");
        let mut app = rusqlite::Connection::open(&path).expect("the application's connection");

        let before = store.change_token().expect("token");
        let tx = app.transaction().expect("begin");
        crate::sqlite::enqueue_tx(&tx, JobSpec::shell("true")).expect("enqueue");
        tx.rollback().expect("rollback");
        assert_eq!(
            store.change_token().expect("token"),
            before,
            "a rollback looked like new work"
        );

        let tx = app.transaction().expect("begin");
        crate::sqlite::enqueue_tx(&tx, JobSpec::shell("true")).expect("enqueue");
        assert_eq!(
            store.change_token().expect("token"),
            before,
            "an open transaction looked like new work"
        );
        tx.commit().expect("commit");
        assert_ne!(store.change_token().expect("token"), before, "a commit went unnoticed");
        assert_eq!(store.counts().expect("counts").pending, 1);
    }
}
