//! Inserting jobs inside a transaction the caller owns, on the caller's own connection: the SQL
//! behind [`crate::postgres::enqueue_tx`]. The caller's session has its own `search_path`, so
//! every name is qualified with the queue's schema (the count triggers already are).

use super::jobs::insert_jobs_into;
use super::schema::{self, META_SCHEMA_VERSION, SCHEMA_VERSION};
use crate::error::{Error, Result};
use crate::store::{check_schema_name, NewJob};
use std::collections::HashMap;

/// Inserts `jobs` into the queue in `schema` inside the caller's transaction `tx`, and queues
/// the queue's `NOTIFY`, which PostgreSQL delivers to idle workers only if `tx` commits. All of
/// it runs in a savepoint: on any error (an id that exists, a schema that is missing or at
/// another version, the server's own) it is rolled back, adding no job and leaving the caller's
/// transaction usable with its own writes (an error outside a savepoint would abort it).
pub(crate) fn insert_in_caller_tx(tx: &mut postgres::Transaction<'_>, schema: &str, jobs: &[NewJob]) -> Result<()> {
    check_schema_name(schema)?;
    let mut savepoint = tx.savepoint("queuectl_enqueue")?;
    let result = check_version(&mut savepoint, schema)
        .and_then(|()| insert_jobs_into(&mut savepoint, &mut HashMap::new(), &format!("{schema}.jobs"), jobs))
        .and_then(|()| {
            savepoint.execute("SELECT pg_notify($1, '')", &[&schema::channel_name(schema)])?;
            Ok(())
        });
    match result {
        Ok(()) => {
            savepoint.commit()?;
            Ok(())
        }
        Err(error) => {
            let _ = savepoint.rollback();
            Err(error)
        }
    }
}

/// Refuses a schema without the queue's tables ([`Error::NotInitialised`]) or at another
/// version than this build's ([`Error::SchemaTooOld`]: `queuectl migrate` upgrades it;
/// [`Error::SchemaTooNew`]).
fn check_version(client: &mut impl postgres::GenericClient, schema: &str) -> Result<()> {
    let place = std::path::PathBuf::from(format!("PostgreSQL schema {schema}"));
    let meta = format!("{schema}.meta");
    let exists: bool = client
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&meta])?
        .try_get(0)?;
    let version: i64 = if exists {
        client
            .query_opt(
                &format!("SELECT value FROM {meta} WHERE key = $1"),
                &[&META_SCHEMA_VERSION],
            )?
            .map(|row| row.try_get::<_, String>(0))
            .transpose()?
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    } else {
        0
    };
    if version == 0 {
        return Err(Error::NotInitialised(place));
    }
    if version < SCHEMA_VERSION {
        return Err(Error::SchemaTooOld {
            path: place,
            found: version,
            needed: SCHEMA_VERSION,
        });
    }
    if version > SCHEMA_VERSION {
        return Err(Error::SchemaTooNew {
            path: place,
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    Ok(())
}
