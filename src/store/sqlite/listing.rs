//! The queries behind `list` and short ids: filtered listing in either order, and id-prefix
//! lookup. Both are written so SQLite answers them from an index walk that stops early.

use super::{row_to_job, SqliteStore, JOB_COLUMNS};
use crate::error::Result;
use crate::job::Job;
use crate::store::ids::prefix_successor;
use crate::store::ListFilter;
use rusqlite::params_from_iter;
use rusqlite::types::Value;

/// Jobs matching `filter`, newest first unless `filter.oldest_first`.
///
/// With a state this walks `queuectl_jobs_state_seq` (in either direction), without one the primary
/// key: `LIMIT` stops the walk, so the newest 50 dead jobs of a million-job table cost 50
/// index steps, not a sort.
pub(super) fn list_filtered(store: &SqliteStore, filter: &ListFilter) -> Result<Vec<Job>> {
    let mut conditions = Vec::new();
    let mut values: Vec<Value> = Vec::new();
    if let Some(state) = filter.state {
        values.push(Value::Text(state.as_str().to_string()));
        conditions.push(format!("state = ?{}", values.len()));
    }
    if let Some(text) = &filter.search {
        // instr() rather than LIKE: LIKE folds ASCII case and gives `%` and `_` meaning,
        // while the search is a literal, case-sensitive substring.
        values.push(Value::Text(text.clone()));
        conditions.push(format!("instr(command, ?{}) > 0", values.len()));
    }
    let limit = filter.limit.map(|l| l.min(i64::MAX as u64) as i64).unwrap_or(-1);
    values.push(Value::Integer(limit));
    let sql = format!(
        "SELECT {JOB_COLUMNS} FROM queuectl_jobs {} ORDER BY seq {} LIMIT ?{}",
        if conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conditions.join(" AND "))
        },
        if filter.oldest_first { "ASC" } else { "DESC" },
        values.len()
    );
    let mut statement = store.conn.prepare(&sql)?;
    let rows = statement.query_map(params_from_iter(values), row_to_job)?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// Ids that start with `prefix`, in id order, at most `limit`.
///
/// A range on the UNIQUE index of `id` (`id >= prefix AND id < successor`), so it is a
/// few index steps whatever the table size; `LIKE` could not use that index (and would
/// treat `%` and `_` in ids as wildcards).
pub(super) fn ids_with_prefix(store: &SqliteStore, prefix: &str, limit: u64) -> Result<Vec<String>> {
    let limit = limit.min(i64::MAX as u64) as i64;
    let ids = match prefix_successor(prefix) {
        Some(upper) => {
            let mut statement = store
                .conn
                .prepare_cached("SELECT id FROM queuectl_jobs WHERE id >= ?1 AND id < ?2 ORDER BY id LIMIT ?3")?;
            let rows = statement.query_map(rusqlite::params![prefix, upper, limit], |r| r.get(0))?;
            rows.collect::<rusqlite::Result<Vec<String>>>()?
        }
        None => {
            // No string sorts right after every extension of this prefix (it ends in the
            // last code point): scan forward from it and stop at the first non-match.
            let mut statement = store
                .conn
                .prepare_cached("SELECT id FROM queuectl_jobs WHERE id >= ?1 ORDER BY id")?;
            let mut rows = statement.query([prefix])?;
            let mut ids = Vec::new();
            while let Some(row) = rows.next()? {
                let id: String = row.get(0)?;
                if !id.starts_with(prefix) || ids.len() as i64 >= limit {
                    break;
                }
                ids.push(id);
            }
            ids
        }
    };
    Ok(ids)
}

/// The ids right before and right after `id` in id order (either may be absent): the only
/// ids that can share a longer prefix with it than any other, which is what the shortest
/// unambiguous form of an id depends on.
pub(super) fn id_neighbours(store: &SqliteStore, id: &str) -> Result<(Option<String>, Option<String>)> {
    let before = store
        .conn
        .prepare_cached("SELECT max(id) FROM queuectl_jobs WHERE id < ?1")?
        .query_row([id], |r| r.get(0))?;
    let after = store
        .conn
        .prepare_cached("SELECT min(id) FROM queuectl_jobs WHERE id > ?1")?
        .query_row([id], |r| r.get(0))?;
    Ok((before, after))
}

#[cfg(test)]
mod plan_tests {
    use super::*;
    use crate::store::Store;

    /// `EXPLAIN QUERY PLAN` of the statement `list_filtered` builds, as one string.
    fn plan(store: &SqliteStore, sql: &str) -> String {
        let mut statement = store
            .conn
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .expect("prepare");
        let rows = statement.query_map([], |r| r.get::<_, String>(3)).expect("query");
        rows.map(|r| r.expect("row")).collect::<Vec<_>>().join("; ")
    }

    #[test]
    fn newest_jobs_of_a_state_come_from_the_state_index_without_a_sort() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (store, _) = SqliteStore::create(&dir.path().join("queue.db")).expect("create");
        store.migrate().expect("migrate");
        for order in ["DESC", "ASC"] {
            let text = plan(
                &store,
                &format!("SELECT {JOB_COLUMNS} FROM queuectl_jobs WHERE state = 'dead' ORDER BY seq {order} LIMIT 50"),
            );
            assert!(text.contains("queuectl_jobs_state_seq"), "{order}: {text}");
            assert!(!text.contains("TEMP B-TREE"), "{order}: {text}");
        }
        let text = plan(
            &store,
            "SELECT id FROM queuectl_jobs WHERE id >= 'ab12' AND id < 'ab13' ORDER BY id LIMIT 11",
        );
        assert!(
            text.contains("sqlite_autoindex_queuectl_jobs_1") && text.contains("id>? AND id<?"),
            "{text}"
        );
    }
}
