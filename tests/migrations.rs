//! Explicit schema upgrades: only `migrate`, `init` and `worker start` take an older database
//! up, each writing a backup beside it first; every other command refuses it with exit 2 and
//! changes nothing; a current database is left alone.

mod common;

use common::old_schema::rewrite_at_version;
use common::process::{Worker, SHORT};
use common::{dump_database, skipped_under_postgres, TestHome};
use queuectl::store::sqlite::schema::SCHEMA_VERSION;

/// A home whose database is as the first queuectl (schema version 1) left it, with a job
/// and a stored setting in it.
fn home_at_version_1() -> TestHome {
    let home = TestHome::new();
    home.run(&["enqueue", "--id", "j", "--command", "true"]).ok();
    home.run(&["config", "set", "max-retries", "5"]).ok();
    rewrite_at_version(&home.path().join("queue.db"), 1);
    home
}

/// The backups a migration left beside the database.
fn backups(home: &TestHome) -> Vec<std::path::PathBuf> {
    let mut found: Vec<_> = std::fs::read_dir(home.path())
        .expect("read the home")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("queue.db.bak-"))
        })
        .collect();
    found.sort();
    found
}

fn open_read_only(path: &std::path::Path) -> rusqlite::Connection {
    rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).expect("open a backup")
}

fn last_migrated_by(home: &TestHome) -> String {
    home.db()
        .query_row(
            "SELECT value FROM queuectl_meta WHERE key = 'last_migrated_by'",
            [],
            |r| r.get(0),
        )
        .expect("a last_migrated_by row")
}

#[test]
fn commands_other_than_the_upgrading_ones_refuse_an_older_schema_and_change_nothing() {
    if skipped_under_postgres(
        "upgrades of an older queue.db file (the PostgreSQL migrations are in tests/store_postgres.rs)",
    ) {
        return;
    }
    let home = home_at_version_1();
    let before = home.db_snapshot();
    let commands: &[&[&str]] = &[
        &["status"],
        &["status", "--json"],
        &["list"],
        &["show", "j"],
        &["logs", "j"],
        &["dlq", "list"],
        &["config", "get", "max_retries"],
        &["config", "list"],
        &["wait", "j", "--timeout", "1s"],
        &["worker", "stop"],
        &["enqueue", "--command", "true"],
        &["config", "set", "max_retries", "2"],
        &["dlq", "retry", "--all"],
        &["recover"],
        &["spool", "ingest"],
    ];
    for args in commands {
        let run = home.run(args);
        let shown = args.join(" ");
        assert_eq!(run.code, 2, "`queuectl {shown}`: {run:#?}");
        assert_eq!(run.stdout, "", "`queuectl {shown}`: {run:#?}");
        assert_eq!(run.stderr.trim_end().lines().count(), 1, "`queuectl {shown}`: {run:#?}");
        assert!(
            run.stderr
                .contains(&format!("at schema version 1, this queuectl needs {SCHEMA_VERSION}"))
                && run.stderr.contains("run `queuectl migrate` (it takes a backup first)"),
            "`queuectl {shown}`: {run:#?}"
        );
    }
    assert_eq!(home.db_snapshot(), before, "a refused command changed the database");
    assert!(backups(&home).is_empty(), "a refused command wrote a backup");
}

#[test]
fn migrate_writes_a_backup_of_the_old_database_then_upgrades_it() {
    if skipped_under_postgres(
        "upgrades of an older queue.db file (the PostgreSQL migrations are in tests/store_postgres.rs)",
    ) {
        return;
    }
    let home = home_at_version_1();
    let old = dump_database(&home.db());
    let run = home.run(&["migrate"]).ok();

    let found = backups(&home);
    assert_eq!(found.len(), 1, "{found:?}");
    let backup = &found[0];
    let name = backup.file_name().unwrap().to_str().unwrap();
    assert!(name.starts_with("queue.db.bak-v1-"), "{name}");
    assert!(
        run.stdout.contains(backup.to_str().unwrap()),
        "the backup is reported: {run:#?}"
    );
    assert!(
        run.stdout
            .contains(&format!("from schema version 1 to {SCHEMA_VERSION}")),
        "{run:#?}"
    );
    // The backup is the database as it was, the old schema and every row.
    assert_eq!(dump_database(&open_read_only(backup)), old);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(backup).unwrap().permissions().mode() & 0o777, 0o600);

    // The database is now exactly what a new `init` makes, with its jobs and settings kept.
    let fresh = TestHome::new();
    let schema_of = |home: &TestHome| -> String {
        dump_database(&home.db())
            .lines()
            .take_while(|l| !l.starts_with("-- table"))
            .map(|l| format!("{l}\n"))
            .collect()
    };
    assert_eq!(schema_of(&home), schema_of(&fresh));
    assert_eq!(
        last_migrated_by(&home),
        format!("queuectl {}", env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(home.job("j")["state"], "pending");
    let setting = home.run(&["config", "get", "max_retries"]).ok();
    assert_eq!(setting.stdout, "5\n", "the stored setting is kept: {setting:#?}");
}

#[test]
fn migrate_on_a_current_database_changes_nothing_and_says_so() {
    if skipped_under_postgres(
        "upgrades of an older queue.db file (the PostgreSQL migrations are in tests/store_postgres.rs)",
    ) {
        return;
    }
    let home = TestHome::new();
    home.run(&["enqueue", "--id", "j", "--command", "true"]).ok();
    let before = home.db_snapshot();
    let run = home.run(&["migrate"]).ok();
    assert!(run.stdout.contains("nothing to migrate"), "{run:#?}");
    assert!(
        run.stdout.contains(&format!("queuectl {}", env!("CARGO_PKG_VERSION"))),
        "names the queuectl that last migrated it: {run:#?}"
    );
    assert_eq!(home.db_snapshot(), before);
    assert!(backups(&home).is_empty(), "a no-op migrate wrote a backup");
    let json = home.run(&["migrate", "--json"]).ok().json();
    assert_eq!(json["migrated"], false);
    assert_eq!(json["from"], SCHEMA_VERSION);
    assert_eq!(json["backup"], serde_json::Value::Null);
}

#[test]
fn migrate_in_an_uninitialised_home_is_refused_and_creates_nothing() {
    if skipped_under_postgres(
        "upgrades of an older queue.db file (the PostgreSQL migrations are in tests/store_postgres.rs)",
    ) {
        return;
    }
    let home = TestHome::empty();
    let run = home.run(&["migrate"]).code(2);
    assert!(run.stderr.contains("queuectl init"), "{run:#?}");
    assert_eq!(run.stderr.trim_end().lines().count(), 1, "{run:#?}");
    assert!(
        std::fs::read_dir(home.path()).unwrap().next().is_none(),
        "created something"
    );
}

#[test]
fn init_upgrades_an_older_database_after_a_backup() {
    if skipped_under_postgres(
        "upgrades of an older queue.db file (the PostgreSQL migrations are in tests/store_postgres.rs)",
    ) {
        return;
    }
    let home = home_at_version_1();
    let old = dump_database(&home.db());
    let run = home.run(&["init"]).ok();
    let found = backups(&home);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(run.stdout.contains(found[0].to_str().unwrap()), "{run:#?}");
    assert_eq!(dump_database(&open_read_only(&found[0])), old);
    home.status();
    assert_eq!(home.job("j")["state"], "pending");
}

#[test]
fn worker_start_upgrades_an_older_database_after_a_backup_and_runs_its_jobs() {
    if skipped_under_postgres(
        "upgrades of an older queue.db file (the PostgreSQL migrations are in tests/store_postgres.rs)",
    ) {
        return;
    }
    let home = home_at_version_1();
    let old = dump_database(&home.db());
    let mut worker = Worker::spawn(&home, &["--until-empty"]);
    worker.wait_success(SHORT);
    let found = backups(&home);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        worker.output().contains(found[0].to_str().unwrap()),
        "{}",
        worker.output()
    );
    assert_eq!(dump_database(&open_read_only(&found[0])), old);
    assert_eq!(home.job("j")["state"], "completed");
}

#[test]
fn a_second_migrate_after_an_upgrade_is_a_no_op() {
    if skipped_under_postgres(
        "upgrades of an older queue.db file (the PostgreSQL migrations are in tests/store_postgres.rs)",
    ) {
        return;
    }
    let home = home_at_version_1();
    home.run(&["migrate"]).ok();
    let after = home.db_snapshot();
    let run = home.run(&["migrate"]).ok();
    assert!(run.stdout.contains("nothing to migrate"), "{run:#?}");
    assert_eq!(home.db_snapshot(), after);
    assert_eq!(backups(&home).len(), 1, "only the first migrate takes a backup");
}
