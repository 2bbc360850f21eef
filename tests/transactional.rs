//! Transactional enqueue on SQLite (`queuectl::sqlite::enqueue_tx`): an application that keeps
//! its own tables in the queue's file enqueues inside its own transaction, so the job exists if
//! and only if that transaction commits; and the `queuectl_` table prefix (schema version 3)
//! that keeps the queue's tables out of the application's way, with the migration that
//! brings an older database to it keeping every job and its history.
//!
//! Public API only: `queuectl::sqlite`, `Queue`, `PoolBuilder` and the built binary.

mod common;

use common::old_schema::rewrite_at_version;
use common::pool::{run_pool, PoolThread};
use common::{dump_database, skipped_under_postgres, wait_until, TestHome};
use queuectl::sqlite::rusqlite::{self, Connection, TransactionBehavior};
use queuectl::sqlite::{enqueue_batch_tx, enqueue_tx, SCHEMA_VERSION};
use queuectl::{Error, Home, JobSpec, PoolBuilder, Queue, Schedule, Shutdown, State, WorkerEvent};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

const DEADLINE: Duration = Duration::from_secs(60);

fn db_path(home: &TestHome) -> PathBuf {
    home.path().join("queue.db")
}

/// The application's connection to the queue's file, with a table of its own in it.
fn app_connection(home: &TestHome) -> Connection {
    let conn = Connection::open(db_path(home)).expect("open the queue's file");
    conn.busy_timeout(Duration::from_secs(30)).expect("busy timeout");
    conn.execute_batch("CREATE TABLE IF NOT EXISTS orders (id INTEGER PRIMARY KEY, item TEXT NOT NULL)")
        .expect("the application's table");
    conn
}

fn orders(conn: &Connection) -> Vec<String> {
    let mut statement = conn.prepare("SELECT item FROM orders ORDER BY id").expect("select");
    let items = statement
        .query_map([], |r| r.get(0))
        .expect("select")
        .collect::<rusqlite::Result<Vec<String>>>()
        .expect("read orders");
    items
}

fn queue(home: &TestHome) -> Queue {
    Queue::open(&Home::new(home.path())).expect("open the queue")
}

/// Whether the queue has a job with this id (read through the library, as a worker would).
fn has_job(home: &TestHome, id: &str) -> bool {
    match queue(home).get(id) {
        Ok(_) => true,
        Err(Error::NotFound(_)) => false,
        Err(e) => panic!("reading job {id}: {e}"),
    }
}

fn pool(home: &TestHome) -> PoolBuilder {
    PoolBuilder::new(&Home::new(home.path())).threads(2).shell_hooks(false)
}

#[test]
fn a_rolled_back_transaction_leaves_neither_the_job_nor_the_applications_rows() {
    if skipped_under_postgres(
        "transactional enqueue into the SQLite file (tests/transactional_postgres.rs covers PostgreSQL)",
    ) {
        return;
    }
    let home = TestHome::new();
    let mut conn = app_connection(&home);
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).unwrap();
    tx.execute("INSERT INTO orders (item) VALUES ('book')", []).unwrap();
    let id = enqueue_tx(&tx, JobSpec::shell("echo shipped").with_id("ship-1")).expect("enqueue");
    assert_eq!(id, "ship-1");
    let batch = enqueue_batch_tx(&tx, [JobSpec::shell("true"), JobSpec::shell("true")]).expect("batch");
    assert_eq!(batch.len(), 2);
    tx.rollback().unwrap();

    assert!(orders(&conn).is_empty());
    for id in std::iter::once(&id).chain(&batch) {
        assert!(!has_job(&home, id), "job {id} survived the rollback");
    }
    let status = home.status();
    assert_eq!(status["total"], 0, "{status}");
    assert_eq!(run_pool(pool(&home).until_empty(true), DEADLINE).unwrap(), 0);
}

#[test]
fn dropping_the_transaction_without_commit_leaves_no_job() {
    if skipped_under_postgres(
        "transactional enqueue into the SQLite file (tests/transactional_postgres.rs covers PostgreSQL)",
    ) {
        return;
    }
    let home = TestHome::new();
    let mut conn = app_connection(&home);
    {
        let tx = conn.transaction().unwrap();
        enqueue_tx(&tx, JobSpec::shell("true").with_id("dropped")).expect("enqueue");
    }
    assert!(!has_job(&home, "dropped"));
}

#[test]
fn a_committed_transaction_holds_the_applications_rows_and_the_jobs_which_a_pool_runs() {
    if skipped_under_postgres(
        "transactional enqueue into the SQLite file (tests/transactional_postgres.rs covers PostgreSQL)",
    ) {
        return;
    }
    let home = TestHome::new();
    let mut conn = app_connection(&home);
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).unwrap();
    tx.execute("INSERT INTO orders (item) VALUES ('book')", []).unwrap();
    let order = tx.last_insert_rowid();
    enqueue_tx(
        &tx,
        JobSpec::shell(format!("echo shipping order {order}")).with_id("ship"),
    )
    .unwrap();
    let ids = enqueue_batch_tx(
        &tx,
        [
            JobSpec::shell("echo invoice").with_id("invoice"),
            JobSpec::shell("echo mail").with_id("mail"),
        ],
    )
    .unwrap();
    assert_eq!(ids, ["invoice", "mail"]);
    // Until the commit, nobody else sees them.
    assert!(!has_job(&home, "ship"));
    tx.commit().unwrap();

    assert_eq!(orders(&conn), ["book"]);
    let job = queue(&home).get("ship").unwrap();
    assert_eq!(job.state, State::Pending);
    assert_eq!(job.source.to_stored(), "api");
    assert_eq!(run_pool(pool(&home).until_empty(true), DEADLINE).unwrap(), 3);
    let queue = queue(&home);
    for id in ["ship", "invoice", "mail"] {
        assert_eq!(queue.get(id).unwrap().state, State::Completed, "{id}");
    }
    assert_eq!(queue.get("ship").unwrap().stdout.as_deref(), Some("shipping order 1\n"));
}

#[test]
fn a_commit_wakes_an_idle_running_pool() {
    if skipped_under_postgres(
        "transactional enqueue into the SQLite file (tests/transactional_postgres.rs covers PostgreSQL)",
    ) {
        return;
    }
    let home = TestHome::new();
    let started = Arc::new(AtomicBool::new(false));
    let seen = started.clone();
    let shutdown = Shutdown::new();
    let running = PoolThread::spawn(
        pool(&home).observer(move |event: &WorkerEvent| {
            if matches!(event, WorkerEvent::Started { .. }) {
                seen.store(true, Ordering::SeqCst);
            }
        }),
        &shutdown,
    );
    wait_until("the pool to start", DEADLINE, || started.load(Ordering::SeqCst));

    let mut conn = app_connection(&home);
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).unwrap();
    tx.execute("INSERT INTO orders (item) VALUES ('lamp')", []).unwrap();
    enqueue_tx(&tx, JobSpec::shell("echo woke").with_id("wake")).unwrap();
    tx.commit().unwrap();

    wait_until("the running pool to finish the committed job", DEADLINE, || {
        queue(&home)
            .get("wake")
            .map(|j| j.state == State::Completed)
            .unwrap_or(false)
    });
    shutdown.request_stop();
    assert_eq!(running.join(DEADLINE).unwrap(), 1);
}

#[test]
fn a_duplicate_id_refuses_the_whole_batch_and_leaves_the_transaction_usable() {
    if skipped_under_postgres(
        "transactional enqueue into the SQLite file (tests/transactional_postgres.rs covers PostgreSQL)",
    ) {
        return;
    }
    let home = TestHome::new();
    queue(&home)
        .enqueue(JobSpec::shell("echo original").with_id("taken"))
        .unwrap();
    let mut conn = app_connection(&home);
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).unwrap();
    tx.execute("INSERT INTO orders (item) VALUES ('chair')", []).unwrap();
    let error = enqueue_batch_tx(
        &tx,
        [
            JobSpec::shell("true").with_id("fresh"),
            JobSpec::shell("echo impostor").with_id("taken"),
        ],
    )
    .unwrap_err();
    match &error {
        Error::DuplicateId { id, location } => {
            assert_eq!(id, "taken");
            assert_eq!(location.as_deref(), Some("index 1"));
        }
        other => panic!("expected DuplicateId, got {other:?}"),
    }
    assert_eq!(error.to_string(), "job id `taken` already exists (at index 1)");
    let single = enqueue_tx(&tx, JobSpec::shell("true").with_id("taken")).unwrap_err();
    assert_eq!(single.to_string(), "job id `taken` already exists");

    // The transaction goes on: the application's row and a later job commit; nothing of the
    // refused batch does.
    enqueue_tx(&tx, JobSpec::shell("true").with_id("later")).unwrap();
    tx.commit().unwrap();
    assert_eq!(orders(&conn), ["chair"]);
    assert!(!has_job(&home, "fresh"), "the refused batch left a job");
    assert!(has_job(&home, "later"));
    assert_eq!(queue(&home).get("taken").unwrap().command, "echo original");
}

#[test]
fn an_invalid_spec_is_refused_naming_its_place_and_adds_nothing() {
    if skipped_under_postgres(
        "transactional enqueue into the SQLite file (tests/transactional_postgres.rs covers PostgreSQL)",
    ) {
        return;
    }
    let home = TestHome::new();
    let mut conn = app_connection(&home);
    let tx = conn.transaction().unwrap();
    let error = enqueue_batch_tx(
        &tx,
        [
            JobSpec::shell("true").with_id("good"),
            JobSpec::shell("   ").with_id("blank"),
        ],
    )
    .unwrap_err();
    match &error {
        Error::InvalidJob(invalid) => {
            assert_eq!(invalid.location.as_deref(), Some("index 1"), "{error}");
            assert_eq!(invalid.field.as_deref(), Some("command"), "{error}");
        }
        other => panic!("expected InvalidJob, got {other:?}"),
    }
    let empty = enqueue_batch_tx(&tx, Vec::new()).unwrap_err();
    assert!(matches!(empty, Error::InvalidJob(_)), "{empty:?}");
    tx.commit().unwrap();
    assert!(!has_job(&home, "good"));
}

#[test]
fn a_file_without_the_queue_schema_or_at_another_version_is_refused_and_left_alone() {
    if skipped_under_postgres(
        "transactional enqueue into the SQLite file (tests/transactional_postgres.rs covers PostgreSQL)",
    ) {
        return;
    }
    // A file of the application's own, never initialised by queuectl.
    let plain = TestHome::empty();
    let mut conn = app_connection(&plain);
    let before = dump_database(&conn);
    let tx = conn.transaction().unwrap();
    let error = enqueue_tx(&tx, JobSpec::shell("true")).unwrap_err();
    assert!(matches!(error, Error::NotInitialised(_)), "{error:?}");
    assert!(error.to_string().contains("queuectl init"), "{error}");
    tx.commit().unwrap();
    assert_eq!(dump_database(&conn), before, "a refused enqueue changed the file");

    // The same version number as the queue's, but no queue tables.
    conn.execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION}"))
        .unwrap();
    let tx = conn.transaction().unwrap();
    let error = enqueue_tx(&tx, JobSpec::shell("true")).unwrap_err();
    assert!(matches!(error, Error::NotInitialised(_)), "{error:?}");
    drop(tx);

    // A queue at an older schema: `queuectl migrate` first.
    let old = TestHome::new();
    rewrite_at_version(&db_path(&old), SCHEMA_VERSION - 1);
    let mut conn = app_connection(&old);
    let before = dump_database(&conn);
    let tx = conn.transaction().unwrap();
    let error = enqueue_tx(&tx, JobSpec::shell("true")).unwrap_err();
    match &error {
        Error::SchemaTooOld { found, needed, .. } => {
            assert_eq!((*found, *needed), (SCHEMA_VERSION - 1, SCHEMA_VERSION));
        }
        other => panic!("expected SchemaTooOld, got {other:?}"),
    }
    assert!(error.to_string().contains("queuectl migrate"), "{error}");
    tx.commit().unwrap();
    assert_eq!(dump_database(&conn), before);

    // A queue from a newer queuectl.
    let newer = TestHome::new();
    let mut conn = app_connection(&newer);
    conn.execute_batch(&format!("PRAGMA user_version = {}", SCHEMA_VERSION + 1))
        .unwrap();
    let tx = conn.transaction().unwrap();
    let error = enqueue_tx(&tx, JobSpec::shell("true").with_id("n")).unwrap_err();
    assert!(matches!(error, Error::SchemaTooNew { .. }), "{error:?}");
    tx.commit().unwrap();
    let count: i64 = conn
        .query_row("SELECT count(*) FROM queuectl_jobs", [], |r| r.get(0))
        .unwrap();
    assert_eq!(count, 0);
}

#[test]
fn application_tables_named_like_the_queues_old_tables_do_not_clash() {
    if skipped_under_postgres(
        "transactional enqueue into the SQLite file (tests/transactional_postgres.rs covers PostgreSQL)",
    ) {
        return;
    }
    let home = TestHome::new();
    let conn = app_connection(&home);
    conn.execute_batch(
        "CREATE TABLE jobs (id TEXT PRIMARY KEY, owner TEXT);
         CREATE TABLE config (key TEXT PRIMARY KEY, value TEXT);
         CREATE TABLE workers (name TEXT);
         CREATE TABLE meta (k TEXT);
         CREATE INDEX jobs_due ON jobs (owner);
         INSERT INTO jobs VALUES ('j', 'the application');",
    )
    .expect("the application's tables");
    let ours = |conn: &Connection| -> String {
        conn.query_row("SELECT owner FROM jobs WHERE id = 'j'", [], |r| r.get(0))
            .unwrap()
    };

    home.run(&["enqueue", "--id", "j", "--command", "echo queued"]).ok();
    home.run(&["config", "set", "max-retries", "4"]).ok();
    home.run(&["worker", "start", "--until-empty"]).ok();
    assert_eq!(home.job("j")["state"], "completed");
    assert_eq!(ours(&conn), "the application");
    let config: i64 = conn.query_row("SELECT count(*) FROM config", [], |r| r.get(0)).unwrap();
    assert_eq!(config, 0, "queuectl wrote into the application's config table");
}

#[test]
fn init_adds_the_queue_to_an_applications_file_that_has_a_jobs_table_of_its_own() {
    if skipped_under_postgres(
        "transactional enqueue into the SQLite file (tests/transactional_postgres.rs covers PostgreSQL)",
    ) {
        return;
    }
    let home = TestHome::empty();
    let conn = app_connection(&home);
    conn.execute_batch(
        "CREATE TABLE jobs (id TEXT PRIMARY KEY, owner TEXT);
         INSERT INTO jobs VALUES ('j', 'the application');",
    )
    .unwrap();
    drop(conn);

    home.run(&["init"]).ok();
    let fresh = TestHome::new();
    let schema_of = |conn: &Connection| -> Vec<String> {
        let mut statement = conn
            .prepare("SELECT type || ' ' || name || ': ' || ifnull(sql, '-') FROM sqlite_master WHERE name LIKE 'queuectl%' ORDER BY 1")
            .unwrap();
        let rows = statement.query_map([], |r| r.get(0)).unwrap();
        rows.collect::<rusqlite::Result<_>>().unwrap()
    };
    assert_eq!(
        schema_of(&home.db()),
        schema_of(&fresh.db()),
        "the queue's schema differs"
    );
    home.run(&["enqueue", "--id", "j", "--command", "true"]).ok();
    home.run(&["worker", "start", "--until-empty"]).ok();
    assert_eq!(home.job("j")["state"], "completed");
    let owner: String = home
        .db()
        .query_row("SELECT owner FROM jobs WHERE id = 'j'", [], |r| r.get(0))
        .unwrap();
    assert_eq!(owner, "the application");
}

#[test]
fn migrating_a_version_2_queue_keeps_every_job_its_history_and_settings() {
    if skipped_under_postgres(
        "transactional enqueue into the SQLite file (tests/transactional_postgres.rs covers PostgreSQL)",
    ) {
        return;
    }
    assert_eq!(
        SCHEMA_VERSION, 3,
        "this test builds the database the previous version left"
    );
    // A queue with some history: completed, dead after retries, pending for later, a
    // stored setting; made by the current queuectl, then rewritten as version 2 kept it.
    let home = TestHome::new();
    {
        let queue = queue(&home);
        queue.enqueue(JobSpec::shell("echo done").with_id("ok")).unwrap();
        queue
            .enqueue(
                JobSpec::shell("echo failing >&2; exit 3")
                    .with_id("bad")
                    .with_max_retries(1),
            )
            .unwrap();
        queue.config_set("backoff_base", "1").unwrap();
    }
    assert_eq!(run_pool(pool(&home).until_empty(true), DEADLINE).unwrap(), 3);
    assert_eq!(home.job("bad")["state"], "dead");
    queue(&home)
        .enqueue(
            JobSpec::shell("true")
                .with_id("later")
                .with_schedule(Schedule::After(86_400.0)),
        )
        .unwrap();
    let current = dump_database(&home.db());

    rewrite_at_version(&db_path(&home), 2);
    let old = dump_database(&home.db());
    assert!(old.contains("table jobs on jobs"), "{old}");
    assert!(!old.contains("queuectl_jobs"), "{old}");

    let run = home.run(&["migrate"]).ok();
    assert!(run.stdout.contains("from schema version 2 to 3"), "{run:#?}");
    // Every row of every table, the schema (a new `init` runs the same migrations) and the
    // version are what the current queuectl had written.
    assert_eq!(dump_database(&home.db()), current);

    let history = home.job("bad");
    assert_eq!(history["state"], "dead");
    assert!(
        history["history"].as_array().is_some_and(|a| a.len() == 2),
        "the dead job's two attempts are kept: {history:#}"
    );
    let fk: (String, String) = home
        .db()
        .query_row(
            "SELECT \"table\", \"from\" FROM pragma_foreign_key_list('queuectl_attempts')",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(fk, ("queuectl_jobs".to_string(), "job_seq".to_string()));
}
