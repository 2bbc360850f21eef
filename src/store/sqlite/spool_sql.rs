//! The SQL of the spool ingester beyond [`Store::ingest_spool_files`].

use super::SqliteStore;
use crate::error::Result;
use crate::time::Millis;
use rusqlite::OptionalExtension;

/// The source (`cli`, `api`, `spool:NAME`) of the job with this id, if it exists. Says
/// where a clashing id came from when a spool file is refused for it.
pub(super) fn job_source(store: &SqliteStore, id: &str) -> Result<Option<String>> {
    Ok(store
        .conn
        .query_row("SELECT source FROM queuectl_jobs WHERE id = ?1", [id], |r| r.get(0))
        .optional()?)
}

/// Forgets the identities of spool files committed before `cutoff`; returns how many.
///
/// An identity only matters while its file may still be in `incoming/` (a crash between
/// the commit and the unlink), so old rows are dead weight.
pub(super) fn forget_spool_files_before(store: &SqliteStore, cutoff: Millis) -> Result<usize> {
    Ok(store
        .conn
        .execute("DELETE FROM queuectl_spool_files WHERE ingested_at < ?1", [cutoff])?)
}
