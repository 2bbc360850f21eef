//! The database schema's versions (`PRAGMA user_version`): an older database is migrated to the
//! current schema by `migrate`, a migration that fails leaves the old version intact, and a
//! database written by a newer queuectl is refused by every command and left alone.

mod common;

use common::{dump_database, skipped_under_postgres, TestHome};
use queuectl::store::sqlite::schema::{MIGRATIONS, SCHEMA_VERSION};

/// Opens (creating) a database file directly, for setting up versions no command writes.
fn open(home: &TestHome) -> rusqlite::Connection {
    rusqlite::Connection::open(home.path().join("queue.db")).expect("open queue.db")
}

fn user_version(conn: &rusqlite::Connection) -> i64 {
    conn.query_row("PRAGMA user_version", [], |r| r.get(0))
        .expect("user_version")
}

/// The words of a message (split at everything but letters and digits).
fn words(text: &str) -> Vec<&str> {
    text.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect()
}

#[test]
fn an_older_database_is_migrated_to_the_current_schema() {
    if skipped_under_postgres(
        "the SQLite file's schema and user_version (the PostgreSQL migrations are in tests/store_postgres.rs)",
    ) {
        return;
    }
    let fresh = TestHome::new();
    let current = dump_database(&fresh.db());
    assert!(
        current.starts_with(&format!("user_version {SCHEMA_VERSION}\n")),
        "{current}"
    );
    for previous in 0..SCHEMA_VERSION {
        // A database as the queuectl of version `previous` left it: its migrations applied.
        let home = TestHome::empty();
        {
            let conn = open(&home);
            for migration in &MIGRATIONS[..previous as usize] {
                conn.execute_batch(migration).expect("an old migration");
            }
            conn.execute_batch(&format!("PRAGMA user_version = {previous}"))
                .unwrap();
        }
        // Version 0 is a file without a schema (an interrupted `init`): only `init` takes it
        // up; `migrate` takes up an older schema (the other commands refuse it: see
        // tests/migrations.rs).
        let command: &[&str] = if previous == 0 { &["init"] } else { &["migrate"] };
        home.run(command).ok();
        assert_eq!(
            dump_database(&home.db()),
            current,
            "a database at version {previous} after `queuectl {}`",
            command.join(" ")
        );
        home.run(&["enqueue", "--id", "after", "--command", "true"]).ok();
        assert_eq!(home.job("after")["state"], "pending");
    }
}

/// A version-0 file with a table of its own under a name the schema creates late: a migration
/// gets far before it fails on it.
fn home_with_a_conflicting_table() -> TestHome {
    let home = TestHome::empty();
    open(&home)
        .execute_batch(
            "CREATE TABLE queuectl_spool_files (mine TEXT); INSERT INTO queuectl_spool_files VALUES ('keep me');",
        )
        .unwrap();
    home
}

#[test]
fn a_migration_that_fails_midway_leaves_the_database_at_its_old_version() {
    if skipped_under_postgres(
        "the SQLite file's schema and user_version (the PostgreSQL migrations are in tests/store_postgres.rs)",
    ) {
        return;
    }
    let home = home_with_a_conflicting_table();
    let before = dump_database(&open(&home));
    let run = home.run(&["init"]);
    assert_eq!(run.code, 1, "{run:#?}");
    assert!(run.stderr.starts_with("queuectl: error: "), "{run:#?}");
    assert!(
        run.stderr.contains("queuectl_spool_files") && run.stderr.contains("already exists"),
        "{run:#?}"
    );
    // Everything the migration did before it failed is rolled back.
    let conn = open(&home);
    assert_eq!(user_version(&conn), 0);
    assert_eq!(
        dump_database(&conn),
        before,
        "a failed migration left part of the schema behind"
    );
}

#[test]
fn a_failed_migration_is_reported_in_one_line() {
    if skipped_under_postgres(
        "the SQLite file's schema and user_version (the PostgreSQL migrations are in tests/store_postgres.rs)",
    ) {
        return;
    }
    let home = home_with_a_conflicting_table();
    let run = home.run(&["init"]);
    assert_eq!(run.code, 1, "{run:#?}");
    assert_eq!(run.stderr.trim_end().lines().count(), 1, "{run:#?}");
}

#[test]
fn a_database_from_a_newer_queuectl_is_refused_by_every_command_and_left_alone() {
    if skipped_under_postgres(
        "the SQLite file's schema and user_version (the PostgreSQL migrations are in tests/store_postgres.rs)",
    ) {
        return;
    }
    let home = TestHome::new();
    home.run(&["enqueue", "--id", "j", "--command", "true"]).ok();
    home.run(&["config", "set", "max-retries", "5"]).ok();
    let newer = SCHEMA_VERSION + 41;
    open(&home)
        .execute_batch(&format!("PRAGMA user_version = {newer}"))
        .unwrap();
    let before = home.db_snapshot();
    let commands: &[&[&str]] = &[
        &["init"],
        &["status"],
        &["status", "--json"],
        &["list"],
        &["show", "j"],
        &["logs", "j"],
        &["enqueue", "--command", "true"],
        &["config", "list"],
        &["config", "get", "max_retries"],
        &["config", "set", "max_retries", "2"],
        &["config", "unset", "max_retries"],
        &["dlq", "list"],
        &["dlq", "retry", "--all"],
        &["recover"],
        &["wait", "j", "--timeout", "1s"],
        &["worker", "start", "--until-empty", "--no-spool"],
        &["worker", "stop"],
        &["spool", "ingest"],
        &["migrate"],
        &["backup", "copy.db"],
    ];
    for args in commands {
        let run = home.run(args);
        // Not the caller's mistake: an error of the environment, exit code 1.
        assert_eq!(run.code, 1, "`queuectl {}`: {run:#?}", args.join(" "));
        assert_eq!(run.stdout, "", "`queuectl {}`: {run:#?}", args.join(" "));
        assert_eq!(run.stderr.trim_end().lines().count(), 1, "{run:#?}");
        let said = words(&run.stderr);
        assert!(
            run.stderr.contains("schema version")
                && said.contains(&newer.to_string().as_str())
                && said.contains(&SCHEMA_VERSION.to_string().as_str()),
            "`queuectl {}` should name both versions ({newer} found, {SCHEMA_VERSION} supported): {run:#?}",
            args.join(" ")
        );
    }
    assert_eq!(home.db_snapshot(), before, "a refused command changed the database");
    assert!(!home.path().join("copy.db").exists(), "a refused backup wrote a copy");
}
