//! Databases as an older queuectl left them: the schema of an older version, built from that
//! version's migrations, holding the rows a current queue made (enqueued, run, failed, set).
//! Schema changes so far never changed a column, only names, so the rows carry over as they are.

use queuectl::store::sqlite::schema::{MIGRATIONS, SCHEMA_VERSION};
use std::path::Path;

/// Every queuectl table, by its name without the `queuectl_` prefix, and the schema version that
/// created it.
const TABLES: &[(&str, i64)] = &[
    ("jobs", 1),
    ("job_counts", 1),
    ("attempts", 1),
    ("config", 1),
    ("workers", 1),
    ("spool_files", 1),
    ("meta", 2),
];

/// The name of a queuectl table at schema `version` (prefixed from version 3 on).
pub fn table_at(name: &str, version: i64) -> String {
    if version >= 3 {
        format!("queuectl_{name}")
    } else {
        name.to_string()
    }
}

/// Replaces the current-schema database at `path` (no connection open on it) with one at schema
/// `version` holding the same rows: what the queuectl of that version would have left. The
/// per-state counts are copied as they were (not recomputed), like every other row.
pub fn rewrite_at_version(path: &Path, version: i64) {
    assert!(
        (1..SCHEMA_VERSION).contains(&version),
        "no older schema version {version}"
    );
    let rebuilt = path.with_extension("rebuilt");
    let _ = std::fs::remove_file(&rebuilt);
    {
        let conn = rusqlite::Connection::open(&rebuilt).expect("create the old-schema file");
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .expect("WAL, as every queuectl wrote");
        assert_eq!(mode, "wal");
        for migration in &MIGRATIONS[..version as usize] {
            conn.execute_batch(migration).expect("an old migration");
        }
        conn.execute("ATTACH DATABASE ?1 AS current", [path.to_str().expect("UTF-8 path")])
            .expect("attach the current database");
        let tx = conn.unchecked_transaction().expect("begin");
        for (name, _) in TABLES.iter().filter(|(_, since)| *since <= version) {
            let old = table_at(name, version);
            let new = table_at(name, SCHEMA_VERSION);
            tx.execute_batch(&format!("INSERT INTO main.{old} SELECT * FROM current.{new};"))
                .unwrap_or_else(|e| panic!("copy {new} into {old}: {e}"));
            if *name == "jobs" {
                // The insert trigger counted the copied jobs; the counts are copied as they were.
                tx.execute_batch(&format!("DELETE FROM main.{};", table_at("job_counts", version)))
                    .expect("clear the trigger's counts");
            }
        }
        tx.execute_batch(&format!("PRAGMA main.user_version = {version};"))
            .expect("set the version");
        tx.commit().expect("commit");
        conn.execute_batch("DETACH DATABASE current").expect("detach");
    }
    for suffix in ["-wal", "-shm"] {
        let mut side = path.as_os_str().to_owned();
        side.push(suffix);
        let _ = std::fs::remove_file(std::path::PathBuf::from(side));
    }
    std::fs::rename(&rebuilt, path).expect("put the old-schema database in place");
}
