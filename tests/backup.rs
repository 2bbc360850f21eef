//! `queuectl backup FILE`: a consistent, complete copy of a live queue (workers running,
//! enqueues going on), written under a temporary name and renamed, mode 0600, readable with
//! `--db`; and every refusal (exit 2, nothing written, nothing changed).

mod common;

use common::process::{Worker, LONG, SHORT};
use common::{dump_database, is_postgres, skipped_under_postgres, wait_until, TestHome};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Opens a copy directly, read-only.
fn open_copy(path: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()))
}

fn job_ids(conn: &rusqlite::Connection) -> BTreeSet<String> {
    let mut statement = conn.prepare("SELECT id FROM queuectl_jobs").expect("select ids");
    let ids = statement
        .query_map([], |r| r.get::<_, String>(0))
        .expect("select ids")
        .collect::<rusqlite::Result<_>>()
        .expect("read ids");
    ids
}

/// The names in a directory, sorted: a refused or finished backup leaves no temporary file.
fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("dir entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn text(path: &Path) -> &str {
    path.to_str().expect("UTF-8 path")
}

/// A directory for copies, outside the home so its listing is only what backup wrote.
fn backup_dir() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

#[test]
fn a_backup_taken_during_a_busy_run_is_intact_and_holds_every_acknowledged_job() {
    if skipped_under_postgres("backups copy the SQLite file (a PostgreSQL queue is backed up with pg_dump)") {
        return;
    }
    const TOTAL: usize = 1000;
    const BATCH: usize = 10;
    let home = Arc::new(TestHome::new());
    let dir = backup_dir();
    let copy = dir.path().join("copy.db");
    let mut worker = Worker::start(&home, &["--count", "2"]);

    // Enqueues go on in the background in small batches; an id counts as acknowledged once
    // its `enqueue` exited 0.
    let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));
    let enqueuer = {
        let home = home.clone();
        let acknowledged = acknowledged.clone();
        std::thread::spawn(move || {
            for batch in 0..TOTAL / BATCH {
                let ids: Vec<String> = (0..BATCH).map(|i| format!("job-{}", batch * BATCH + i)).collect();
                let input: String = ids
                    .iter()
                    .map(|id| format!("{{\"id\":\"{id}\",\"command\":\"true\"}}\n"))
                    .collect();
                let run = home.run_with_stdin(&["enqueue", "-"], &input);
                assert_eq!(run.code, 0, "enqueue batch {batch}: {run:#?}");
                acknowledged.lock().unwrap().extend(ids);
            }
        })
    };

    // Start the backup in the middle of the run: some jobs in, more coming, workers busy.
    wait_until("a third of the jobs to be enqueued", LONG, || {
        acknowledged.lock().unwrap().len() >= TOTAL / 3
    });
    let before_backup: Vec<String> = acknowledged.lock().unwrap().clone();
    let run = home.run(&["backup", text(&copy), "--json"]).ok();
    assert!(
        before_backup.len() < TOTAL,
        "the enqueues must still be going on when the backup starts"
    );
    assert!(worker.is_running(), "the worker died: {}", worker.output());
    enqueuer.join().expect("the enqueuer panicked");

    let conn = open_copy(&copy);
    let integrity: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity_check");
    assert_eq!(integrity, "ok");
    let in_copy = job_ids(&conn);
    let missing: Vec<&String> = before_backup.iter().filter(|id| !in_copy.contains(*id)).collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged jobs missing from the copy, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    // What backup printed are the copy's own counts.
    let report = run.json();
    assert_eq!(report["total"], in_copy.len() as u64, "{report}");
    assert_eq!(report["path"], text(&copy));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&copy).expect("copy metadata").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the copy's mode");
    drop(conn);

    // The copy is a queue database: `--db` reads it.
    let status = home.run(&["--db", text(&copy), "status", "--json"]).ok().json();
    assert_eq!(status["total"], in_copy.len() as u64, "{status}");

    home.run(&["worker", "stop", "--timeout", "30s"]).ok();
    worker.wait_success(SHORT);
    assert_eq!(names(dir.path()), vec!["copy.db".to_string()], "left a temporary file");
}

#[test]
fn a_backup_prints_the_counts_of_the_copy() {
    if skipped_under_postgres("backups copy the SQLite file (a PostgreSQL queue is backed up with pg_dump)") {
        return;
    }
    let home = TestHome::new();
    home.run(&["enqueue", "--id", "a", "--command", "true"]).ok();
    home.run(&["enqueue", "--id", "b", "--command", "true"]).ok();
    let dir = backup_dir();
    let copy = dir.path().join("q.db");
    let run = home.run(&["backup", text(&copy)]).ok();
    assert!(run.stdout.contains(text(&copy)), "{run:#?}");
    assert!(
        run.stdout.contains("2 pending") && run.stdout.contains("(2 total)"),
        "{run:#?}"
    );
    assert_eq!(dump_database(&open_copy(&copy)), dump_database(&home.db()));
}

/// Runs a backup that must be refused: exit 2, one line naming the problem, the queue unchanged
/// and the destination directory exactly as before.
#[track_caller]
fn refused(home: &TestHome, args: &[&str], dir: &Path, says: &str) {
    let before = home.db_snapshot();
    let listing = names(dir);
    let run = home.run(args).code(2);
    assert_eq!(run.stderr.trim_end().lines().count(), 1, "{run:#?}");
    assert!(run.stderr.contains(says), "expected {says:?}: {run:#?}");
    assert_eq!(run.stdout, "", "{run:#?}");
    assert_eq!(home.db_snapshot(), before, "a refused backup changed the queue");
    assert_eq!(names(dir), listing, "a refused backup left something behind");
}

#[test]
fn a_backup_refuses_an_existing_file_without_force() {
    if skipped_under_postgres("backups copy the SQLite file (a PostgreSQL queue is backed up with pg_dump)") {
        return;
    }
    let home = TestHome::new();
    let dir = backup_dir();
    let copy = dir.path().join("copy.db");
    std::fs::write(&copy, "precious").unwrap();
    refused(&home, &["backup", text(&copy)], dir.path(), "already exists");
    assert_eq!(std::fs::read_to_string(&copy).unwrap(), "precious");
}

#[test]
fn a_forced_backup_replaces_an_existing_file() {
    if skipped_under_postgres("backups copy the SQLite file (a PostgreSQL queue is backed up with pg_dump)") {
        return;
    }
    let home = TestHome::new();
    home.run(&["enqueue", "--id", "a", "--command", "true"]).ok();
    let dir = backup_dir();
    let copy = dir.path().join("copy.db");
    std::fs::write(&copy, "old").unwrap();
    home.run(&["backup", "--force", text(&copy)]).ok();
    assert!(job_ids(&open_copy(&copy)).contains("a"));
    assert_eq!(names(dir.path()), vec!["copy.db".to_string()]);
}

#[test]
fn a_backup_refuses_a_directory_that_does_not_exist() {
    if skipped_under_postgres("backups copy the SQLite file (a PostgreSQL queue is backed up with pg_dump)") {
        return;
    }
    let home = TestHome::new();
    let dir = backup_dir();
    let copy: PathBuf = dir.path().join("missing").join("copy.db");
    refused(&home, &["backup", text(&copy)], dir.path(), "does not exist");
    assert!(!dir.path().join("missing").exists());
}

#[test]
fn a_backup_refuses_a_directory_as_its_file_even_with_force() {
    if skipped_under_postgres("backups copy the SQLite file (a PostgreSQL queue is backed up with pg_dump)") {
        return;
    }
    let home = TestHome::new();
    let dir = backup_dir();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    let target = dir.path().join("sub");
    refused(
        &home,
        &["backup", "--force", text(&target)],
        dir.path(),
        "is a directory",
    );
}

#[test]
fn a_backup_never_replaces_the_database_itself() {
    if skipped_under_postgres("backups copy the SQLite file (a PostgreSQL queue is backed up with pg_dump)") {
        return;
    }
    let home = TestHome::new();
    home.run(&["enqueue", "--id", "a", "--command", "true"]).ok();
    let db = home.path().join("queue.db");
    refused(
        &home,
        &["backup", "--force", text(&db)],
        home.path(),
        "the queue database itself",
    );
    // Nor through a symbolic link to it.
    let dir = backup_dir();
    let link = dir.path().join("link.db");
    std::os::unix::fs::symlink(&db, &link).unwrap();
    refused(
        &home,
        &["backup", "--force", text(&link)],
        dir.path(),
        "the queue database itself",
    );
    assert_eq!(home.job("a")["state"], "pending");
}

#[test]
fn a_backup_of_an_uninitialised_home_is_refused_and_writes_nothing() {
    if skipped_under_postgres("backups copy the SQLite file (a PostgreSQL queue is backed up with pg_dump)") {
        return;
    }
    let home = TestHome::empty();
    let dir = backup_dir();
    let copy = dir.path().join("copy.db");
    let run = home.run(&["backup", text(&copy)]).code(2);
    assert!(run.stderr.contains("queuectl init"), "{run:#?}");
    assert!(names(dir.path()).is_empty());
    assert!(!home.path().join("queue.db").exists());
}

#[test]
fn a_backup_of_an_older_schema_keeps_that_schema_and_changes_nothing() {
    if skipped_under_postgres("backups copy the SQLite file (a PostgreSQL queue is backed up with pg_dump)") {
        return;
    }
    let home = TestHome::new();
    home.run(&["enqueue", "--id", "a", "--command", "true"]).ok();
    common::old_schema::rewrite_at_version(&home.path().join("queue.db"), 1);
    let before = home.db_snapshot();
    let dir = backup_dir();
    let copy = dir.path().join("v1.db");
    home.run(&["backup", text(&copy)]).ok();
    assert_eq!(home.db_snapshot(), before, "backup changed the queue");
    assert_eq!(dump_database(&open_copy(&copy)), dump_database(&home.db()));
}

#[test]
fn a_backup_of_a_postgresql_queue_is_refused_and_names_pg_dump() {
    // A PostgreSQL queue only: under SQLite the tests above cover `backup`.
    if !is_postgres() {
        return;
    }
    let home = TestHome::new();
    home.run(&["enqueue", "--id", "j", "--command", "true"]).ok();
    let dir = backup_dir();
    let copy = dir.path().join("copy.db");
    let schema = home.pg_schema().expect("a schema").to_string();
    for args in [&["backup", text(&copy)][..], &["backup", "--force", text(&copy)]] {
        refused(&home, args, dir.path(), &format!("pg_dump -n {schema}"));
    }
    assert!(!copy.exists());
}
