//! Transactional enqueue on PostgreSQL (`queuectl::postgres::enqueue_tx`): the job exists if
//! and only if the application's transaction commits, the commit wakes idle workers through the
//! queue's `NOTIFY` (a rollback sends none), and a refused enqueue leaves the application's
//! transaction usable.
//!
//! Each test makes a queue schema and an application schema of its own in the server named by
//! `QUEUECTL_TEST_PG` (default `postgres://postgres@127.0.0.1/test`) and drops them afterwards.
//! Without a reachable server each test prints one line and passes, unless
//! `QUEUECTL_REQUIRE_PG=1` or `QUEUECTL_TEST_PG` is set: then it fails.
#![cfg(feature = "postgres")]

mod common;

use common::pool::{run_pool, PoolThread};
use common::wait_until;
use queuectl::postgres::postgres::fallible_iterator::FallibleIterator;
use queuectl::postgres::postgres::{Client, NoTls};
use queuectl::postgres::{enqueue_batch_tx_in, enqueue_tx_in, SCHEMA_VERSION};
use queuectl::store::DbLocation;
use queuectl::{Error, Home, JobSpec, PoolBuilder, Queue, Shutdown, State, WorkerEvent};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1/test";
const DEADLINE: Duration = Duration::from_secs(60);

/// A queue in a schema of its own and an application schema with an `orders` table, both
/// dropped when the test ends (whatever its outcome).
struct PgQueue {
    url: String,
    /// The queue's schema.
    schema: String,
    /// The application's schema.
    app: String,
    home: Home,
    _dir: tempfile::TempDir,
}

impl PgQueue {
    /// A new initialised queue, or `None` (after one line) when no server is reachable and
    /// none is required.
    fn new(tag: &str) -> Option<PgQueue> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let given = std::env::var("QUEUECTL_TEST_PG").ok().filter(|u| !u.is_empty());
        let required = given.is_some() || std::env::var("QUEUECTL_REQUIRE_PG").is_ok_and(|v| v == "1");
        let url = given.unwrap_or_else(|| DEFAULT_URL.to_string());
        if let Err(e) = Client::connect(&url, NoTls) {
            if required {
                panic!("PostgreSQL at {url} is required (QUEUECTL_REQUIRE_PG / QUEUECTL_TEST_PG) but unreachable: {e}");
            }
            println!("skipped: no PostgreSQL at {url} ({e}); set QUEUECTL_REQUIRE_PG=1 to require one");
            return None;
        }
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let schema = format!("libb_tx_{tag}_{}_{n}", std::process::id());
        let app = format!("{schema}_app");
        let dir = tempfile::tempdir().expect("temp dir");
        let location = DbLocation::parse(&format!("{url}?schema={schema}")).expect("a PostgreSQL location");
        let home = Home::new(dir.path()).with_db(location);
        let queue = PgQueue {
            url,
            schema,
            app,
            home,
            _dir: dir,
        };
        Queue::init(&queue.home).expect("init the queue's schema");
        queue
            .client()
            .batch_execute(&format!(
                "CREATE SCHEMA {app}; CREATE TABLE {app}.orders (id BIGSERIAL PRIMARY KEY, item TEXT NOT NULL)",
                app = queue.app
            ))
            .expect("the application's schema");
        Some(queue)
    }

    /// The application's connection.
    fn client(&self) -> Client {
        Client::connect(&self.url, NoTls).expect("connect")
    }

    fn queue(&self) -> Queue {
        Queue::open(&self.home).expect("open the queue")
    }

    fn has_job(&self, id: &str) -> bool {
        match self.queue().get(id) {
            Ok(_) => true,
            Err(Error::NotFound(_)) => false,
            Err(e) => panic!("reading job {id}: {e}"),
        }
    }

    fn orders(&self, client: &mut Client) -> Vec<String> {
        client
            .query(&format!("SELECT item FROM {}.orders ORDER BY id", self.app), &[])
            .expect("select")
            .iter()
            .map(|r| r.get(0))
            .collect()
    }

    fn pool(&self) -> PoolBuilder {
        PoolBuilder::new(&self.home).threads(2).shell_hooks(false)
    }
}

impl Drop for PgQueue {
    fn drop(&mut self) {
        if let Ok(mut client) = Client::connect(&self.url, NoTls) {
            let _ = client.batch_execute(&format!(
                "DROP SCHEMA IF EXISTS {} CASCADE; DROP SCHEMA IF EXISTS {} CASCADE",
                self.schema, self.app
            ));
        }
    }
}

#[test]
fn a_rolled_back_transaction_leaves_neither_the_job_nor_the_applications_rows() {
    let Some(q) = PgQueue::new("rollback") else { return };
    let mut client = q.client();
    let mut tx = client.transaction().unwrap();
    tx.execute(&format!("INSERT INTO {}.orders (item) VALUES ('book')", q.app), &[])
        .unwrap();
    let id = enqueue_tx_in(&mut tx, &q.schema, JobSpec::shell("echo shipped").with_id("ship")).unwrap();
    assert_eq!(id, "ship");
    let batch = enqueue_batch_tx_in(&mut tx, &q.schema, [JobSpec::shell("true"), JobSpec::shell("true")]).unwrap();
    tx.rollback().unwrap();

    assert!(q.orders(&mut client).is_empty());
    for id in std::iter::once(&id).chain(&batch) {
        assert!(!q.has_job(id), "job {id} survived the rollback");
    }
    assert_eq!(q.queue().status().unwrap().counts.pending, 0);
    assert_eq!(run_pool(q.pool().until_empty(true), DEADLINE).unwrap(), 0);
}

#[test]
fn a_committed_transaction_holds_the_applications_rows_and_the_jobs_which_a_pool_runs() {
    let Some(q) = PgQueue::new("commit") else { return };
    let mut client = q.client();
    let mut tx = client.transaction().unwrap();
    tx.execute(&format!("INSERT INTO {}.orders (item) VALUES ('book')", q.app), &[])
        .unwrap();
    enqueue_tx_in(&mut tx, &q.schema, JobSpec::shell("echo shipping").with_id("ship")).unwrap();
    let ids = enqueue_batch_tx_in(
        &mut tx,
        &q.schema,
        [
            JobSpec::shell("echo invoice").with_id("invoice"),
            JobSpec::shell("echo mail").with_id("mail"),
        ],
    )
    .unwrap();
    assert_eq!(ids, ["invoice", "mail"]);
    assert!(!q.has_job("ship"), "visible before the commit");
    tx.commit().unwrap();

    assert_eq!(q.orders(&mut client), ["book"]);
    assert_eq!(q.queue().get("ship").unwrap().source, "api");
    assert_eq!(run_pool(q.pool().until_empty(true), DEADLINE).unwrap(), 3);
    let queue = q.queue();
    for id in ["ship", "invoice", "mail"] {
        assert_eq!(queue.get(id).unwrap().state, State::Completed, "{id}");
    }
    assert_eq!(queue.get("ship").unwrap().stdout.as_deref(), Some("shipping\n"));
}

#[test]
fn a_commit_notifies_the_queues_channel_and_a_rollback_does_not() {
    let Some(q) = PgQueue::new("notify") else { return };
    let mut listener = q.client();
    let channel = queuectl::store::postgres::schema::channel_name(&q.schema);
    listener.batch_execute(&format!("LISTEN {channel}")).unwrap();

    let mut client = q.client();
    let mut tx = client.transaction().unwrap();
    enqueue_tx_in(&mut tx, &q.schema, JobSpec::shell("true").with_id("undone")).unwrap();
    tx.rollback().unwrap();
    let mut tx = client.transaction().unwrap();
    enqueue_tx_in(&mut tx, &q.schema, JobSpec::shell("true").with_id("done")).unwrap();
    tx.commit().unwrap();

    let mut received = 0;
    let first = listener
        .notifications()
        .timeout_iter(DEADLINE)
        .next()
        .expect("read notifications");
    assert!(first.is_some(), "no notification within {DEADLINE:?} of the commit");
    received += 1;
    // Notifications arrive in commit order: one the rollback had sent would have come first.
    // A round trip collects whatever else the server sent by now.
    listener.batch_execute("SELECT 1").unwrap();
    received += listener.notifications().iter().count().unwrap();
    assert_eq!(received, 1, "the rolled-back enqueue notified too");
}

#[test]
fn a_commit_wakes_an_idle_running_pool() {
    let Some(q) = PgQueue::new("wake") else { return };
    let started = Arc::new(AtomicBool::new(false));
    let seen = started.clone();
    let shutdown = Shutdown::new();
    let running = PoolThread::spawn(
        q.pool().observer(move |event: &WorkerEvent| {
            if matches!(event, WorkerEvent::Started { .. }) {
                seen.store(true, Ordering::SeqCst);
            }
        }),
        &shutdown,
    );
    wait_until("the pool to start", DEADLINE, || started.load(Ordering::SeqCst));

    let mut client = q.client();
    let mut tx = client.transaction().unwrap();
    enqueue_tx_in(&mut tx, &q.schema, JobSpec::shell("echo woke").with_id("wake")).unwrap();
    tx.commit().unwrap();
    wait_until("the running pool to finish the committed job", DEADLINE, || {
        q.queue()
            .get("wake")
            .map(|j| j.state == State::Completed)
            .unwrap_or(false)
    });
    shutdown.request_stop();
    assert_eq!(running.join(DEADLINE).unwrap(), 1);
}

#[test]
fn a_duplicate_id_refuses_the_whole_batch_and_leaves_the_transaction_usable() {
    let Some(q) = PgQueue::new("dup") else { return };
    q.queue()
        .enqueue(JobSpec::shell("echo original").with_id("taken"))
        .unwrap();
    let mut client = q.client();
    let mut tx = client.transaction().unwrap();
    tx.execute(&format!("INSERT INTO {}.orders (item) VALUES ('chair')", q.app), &[])
        .unwrap();
    let error = enqueue_batch_tx_in(
        &mut tx,
        &q.schema,
        [
            JobSpec::shell("true").with_id("fresh"),
            JobSpec::shell("echo impostor").with_id("taken"),
        ],
    )
    .unwrap_err();
    assert_eq!(error.to_string(), "job id `taken` already exists (at index 1)");
    assert!(matches!(error, Error::DuplicateId { .. }), "{error:?}");

    // Not aborted: the application's transaction goes on and commits its row and a later job.
    enqueue_tx_in(&mut tx, &q.schema, JobSpec::shell("true").with_id("later")).unwrap();
    tx.commit().unwrap();
    assert_eq!(q.orders(&mut client), ["chair"]);
    assert!(!q.has_job("fresh"), "the refused batch left a job");
    assert!(q.has_job("later"));
    assert_eq!(q.queue().get("taken").unwrap().command, "echo original");
}

#[test]
fn a_schema_without_the_queue_or_at_another_version_is_refused_and_the_transaction_goes_on() {
    let Some(q) = PgQueue::new("refuse") else { return };
    let mut client = q.client();
    let mut tx = client.transaction().unwrap();
    tx.execute(&format!("INSERT INTO {}.orders (item) VALUES ('desk')", q.app), &[])
        .unwrap();
    // The application's schema holds no queue.
    let error = enqueue_tx_in(&mut tx, &q.app, JobSpec::shell("true")).unwrap_err();
    assert!(matches!(error, Error::NotInitialised(_)), "{error:?}");
    assert!(error.to_string().contains("queuectl init"), "{error}");
    let error = enqueue_tx_in(&mut tx, "Not A Schema", JobSpec::shell("true")).unwrap_err();
    assert!(matches!(error, Error::InvalidArgument(_)), "{error:?}");
    tx.commit().unwrap();
    assert_eq!(q.orders(&mut client), ["desk"]);

    // A queue from a newer queuectl.
    client
        .execute(
            &format!("UPDATE {}.meta SET value = $1 WHERE key = 'schema_version'", q.schema),
            &[&(SCHEMA_VERSION + 1).to_string()],
        )
        .unwrap();
    let mut tx = client.transaction().unwrap();
    let error = enqueue_tx_in(&mut tx, &q.schema, JobSpec::shell("true").with_id("n")).unwrap_err();
    assert!(matches!(error, Error::SchemaTooNew { .. }), "{error:?}");
    tx.commit().unwrap();
    let count: i64 = client
        .query_one(&format!("SELECT count(*) FROM {}.jobs", q.schema), &[])
        .unwrap()
        .get(0);
    assert_eq!(count, 0);
}
