//! The PostgreSQL backend: one schema of a PostgreSQL database holds one queue, shared by
//! workers on many hosts.
//!
//! A [`PgStore`] is one connection (`Send`, not `Sync`, like every store). Every state change
//! is one transaction. Claims take due jobs with `FOR UPDATE SKIP LOCKED` in one statement, so
//! concurrent workers never wait for one another nor share a job; finishing an attempt is
//! guarded by the claim's lease, so a stale holder's result is never applied; a worker's step
//! (finish and claim) is usually a single statement, one round trip (see the `claim` module).
//! Per-state counts are kept by statement triggers in slotted rows, and the same triggers send
//! a `NOTIFY` on the queue's channel when jobs are added or leave `processing` (see
//! [`schema`]); [`Store::change_token`] counts the notifications other sessions sent, received
//! by a listening thread (see the `listen` module).
//!
//! Every statement names tables without a schema: each session's `search_path` is the queue's
//! schema. Statements are prepared once per connection and kept.
//!
//! Times are the `now` of the calling host (milliseconds), as with SQLite, so both backends
//! behave the same: hosts sharing a queue need synchronised clocks (NTP). Drift well below
//! `lease_seconds` is harmless; a host whose clock runs ahead claims scheduled jobs early by
//! that much, and its heartbeats look fresher to others by that much.
//!
//! A lost connection fails the call in progress with a [`StoreErrorKind::Unavailable`] error
//! and the next call connects again (the worker pool retries its step, keeping its results);
//! what a transaction lost with its connection may have committed is settled then (see the
//! `holdings` module). Workers' commits do not wait for the WAL flush; accepting jobs does
//! (see `durable`).
//!
//! A call never waits long for a server it cannot reach: keepalives and `tcp_user_timeout`
//! end a silent connection (after about a minute, or what [`Store::set_unresponsive_timeout`]
//! says), and each session tells the server to end a transaction the client leaves idle, so the
//! locks of a host that vanished mid-transaction go with it (see the `connection` module).
//!
//! TLS comes with the `postgres-tls` feature, as the URL's `sslmode` asks (see the `tls`
//! module); without it, a URL requiring TLS is refused.

pub(crate) mod caller_tx;
mod claim;
mod connection;
mod errors;
mod holdings;
mod jobs;
mod listen;
mod reads;
pub mod schema;
mod tls;

pub use schema::SCHEMA_VERSION;

use connection::{durable, prepared, Conn, Target};

use super::{
    BackupReport, DbLocation, FinishedAttempt, ListFilter, NewJob, Overwrite, ReapOutcome, SpoolFileJobs,
    SpoolFileResult, StateCounts, Store, StoreErrorKind, WorkerRecord,
};
use crate::error::{Error, Result};
use crate::job::{Attempt, Job, State};
use crate::time::Millis;

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

/// How long a statement waits for a lock held by another session before failing as busy,
/// until [`Store::set_lock_timeout`] says otherwise (SQLite's busy timeout is the same).
const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(30);

/// One connection to a queue in a PostgreSQL schema.
pub struct PgStore {
    location: DbLocation,
    schema: String,
    /// How to connect (changed by [`Store::set_unresponsive_timeout`]).
    target: RefCell<Target>,
    /// The timeout [`Store::set_unresponsive_timeout`] set last, if any.
    unresponsive: Cell<Option<Duration>>,
    /// The connection; `None` after a connection failure, until the next call connects again.
    conn: RefCell<Option<Conn>>,
    /// The lock timeout to set on every connection.
    lock_timeout: Cell<Duration>,
    /// Change notification: see [`listen`].
    listener: listen::Listener,
    /// The jobs this store's workers hold, to settle transactions lost with a connection.
    holdings: RefCell<holdings::Holdings>,
    /// Whether a connection was ever made (a new one after that replaces a lost one).
    connected_before: Cell<bool>,
    /// Set when a lost connection was replaced, until `finish_and_claim` takes note.
    replaced: Cell<bool>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("location", &self.location.to_string())
            .finish()
    }
}

impl PgStore {
    /// Opens an existing queue at the current schema version, changing nothing:
    /// [`Error::NotInitialised`] for a schema that does not exist (or was never migrated),
    /// [`Error::SchemaTooOld`] for an older one, [`Error::SchemaTooNew`] for a newer one.
    pub fn open(location: &DbLocation) -> Result<Box<dyn Store>> {
        let (store, version) = PgStore::connect_checked(location)?;
        if version < SCHEMA_VERSION {
            return Err(Error::SchemaTooOld {
                path: location.to_string().into(),
                found: version,
                needed: SCHEMA_VERSION,
            });
        }
        Ok(Box::new(store))
    }

    /// Opens an existing queue at the current or an older schema version, without migrating
    /// it; returns the store and the version found.
    pub fn open_existing(location: &DbLocation) -> Result<(Box<dyn Store>, i64)> {
        let (store, version) = PgStore::connect_checked(location)?;
        Ok((Box::new(store), version))
    }

    /// Connects without creating anything yet; returns the store and the schema version found
    /// (0 when the schema does not exist). The caller runs [`Store::migrate`], which creates it.
    pub fn create(location: &DbLocation) -> Result<(Box<dyn Store>, i64)> {
        let store = PgStore::new(location)?;
        let version = store.schema_version()?;
        schema::too_new(location, version)?;
        Ok((Box::new(store), version))
    }

    fn connect_checked(location: &DbLocation) -> Result<(PgStore, i64)> {
        let store = PgStore::new(location)?;
        let version = store.schema_version()?;
        if version == 0 {
            return Err(Error::NotInitialised(location.to_string().into()));
        }
        schema::too_new(location, version)?;
        Ok((store, version))
    }

    /// A store for `location`, connected.
    fn new(location: &DbLocation) -> Result<PgStore> {
        let DbLocation::Postgres { url, schema } = location else {
            return Err(Error::InvalidArgument(format!(
                "{location} is not a PostgreSQL location"
            )));
        };
        super::check_schema_name(schema)?;
        let target = Target::new(location, url)?;
        let store = PgStore {
            location: location.clone(),
            schema: schema.clone(),
            listener: listen::Listener::new(schema::channel_name(schema), target.clone(), location.clone()),
            target: RefCell::new(target),
            unresponsive: Cell::new(None),
            conn: RefCell::new(None),
            lock_timeout: Cell::new(DEFAULT_LOCK_TIMEOUT),
            holdings: RefCell::new(holdings::Holdings::default()),
            connected_before: Cell::new(false),
            replaced: Cell::new(false),
        };
        store.with_conn(|_| Ok(()))?;
        Ok(store)
    }

    /// A new connection with the session set up (see [`connection::open`]).
    fn connect(&self) -> Result<Conn> {
        let target = self.target.borrow();
        let (conn, pid) = connection::open(&target, &self.location, &self.schema, self.lock_timeout.get())?;
        self.listener.set_own_pid(pid);
        Ok(conn)
    }

    /// Runs `f` on the connection, connecting first if there is none (or it was closed). A
    /// failure that means the connection is gone drops it, so the next call connects again.
    fn with_conn<T>(&self, f: impl FnOnce(&mut Conn) -> Result<T>) -> Result<T> {
        let mut slot = self.conn.borrow_mut();
        if slot.as_ref().is_some_and(|conn| conn.client.is_closed()) {
            *slot = None;
        }
        if slot.is_none() {
            *slot = Some(self.connect()?);
            if self.connected_before.replace(true) {
                self.replaced.set(true);
            }
        }
        let conn = slot.as_mut().expect("connected above");
        let result = f(conn);
        if let Err(Error::Storage(error)) = &result {
            if error.kind == StoreErrorKind::Unavailable || conn.client.is_closed() {
                *slot = None;
            }
        }
        result
    }
}

impl Store for PgStore {
    fn location(&self) -> &DbLocation {
        &self.location
    }

    fn schema_version(&self) -> Result<i64> {
        self.with_conn(|conn| schema::version(conn, &self.schema))
    }

    fn supported_schema_version(&self) -> i64 {
        SCHEMA_VERSION
    }

    fn last_migrated_by(&self) -> Result<Option<String>> {
        self.with_conn(|conn| schema::last_migrated_by(conn, &self.schema))
    }

    /// Creates the schema or brings it up to date, one migration per transaction under an
    /// advisory lock: safe from several hosts at once.
    fn migrate(&self) -> Result<()> {
        self.with_conn(|conn| {
            let result = schema::migrate(conn, &self.location, &self.schema);
            // Tables may have been created or replaced: statements prepared before refer to
            // what was there then.
            conn.statements.clear();
            result
        })
    }

    /// None: a migration runs in one transaction and changes nothing if it fails.
    fn backup_before_migration(&self, _version: i64) -> Result<Option<BackupReport>> {
        Ok(None)
    }

    fn backup_to(&self, _dest: &Path, _overwrite: Overwrite) -> Result<BackupReport> {
        Err(Error::InvalidArgument(format!(
            "{}: backups of a PostgreSQL queue are made with pg_dump -n {}",
            self.location, self.schema
        )))
    }

    /// Fails if the queue's schema was dropped while in use (going on would only fail later,
    /// less clearly).
    fn check_health(&self) -> Result<()> {
        let jobs = format!("{}.jobs", self.schema);
        let exists: bool = self.with_conn(|conn| {
            let statement = conn.prepared("SELECT to_regclass($1) IS NOT NULL")?;
            Ok(conn.client.query_one(&statement, &[&jobs])?.try_get(0)?)
        })?;
        if !exists {
            return Err(Error::Other(format!(
                "the queue's schema in {} was dropped while in use: stopping (run `queuectl init`)",
                self.location
            )));
        }
        Ok(())
    }

    /// Sets `lock_timeout` on this connection and on any it opens later.
    fn set_lock_timeout(&self, timeout: Duration) -> Result<()> {
        self.lock_timeout.set(timeout);
        self.with_conn(|conn| {
            conn.client
                .batch_execute(&format!("SET lock_timeout = {}", timeout.as_millis()))?;
            Ok(())
        })
    }

    /// Bounds every wait for the server by about `timeout` (at least 1 s), overriding the URL's
    /// keepalive and `tcp_user_timeout` settings and capping its `connect_timeout`: keepalives
    /// give up on a silent connection and `tcp_user_timeout` on unacknowledged data after it,
    /// and the session asks the server for the same, plus `idle_in_transaction_session_timeout`.
    /// Applies to this store's connection, replaced by a new one now (no transaction is open
    /// between calls), and to its listening connection. If connecting fails, the error is
    /// returned and the next call connects with the new settings. It bounds silence on the
    /// network, not a server that answers the network but is slow to reply.
    fn set_unresponsive_timeout(&self, timeout: Duration) -> Result<()> {
        if self.unresponsive.get() == Some(timeout) {
            return Ok(());
        }
        let target = self.target.borrow().with_unresponsive_timeout(timeout);
        self.listener.set_target(target.clone());
        *self.target.borrow_mut() = target;
        self.unresponsive.set(Some(timeout));
        let mut slot = self.conn.borrow_mut();
        if slot.is_some() {
            // Dropped first: a failure to connect leaves none, and the next call tries again.
            *slot = None;
            *slot = Some(self.connect()?);
        }
        Ok(())
    }

    fn change_token(&self) -> Result<i64> {
        self.listener.token()
    }

    fn insert_jobs(&mut self, jobs: &[NewJob], durable: bool) -> Result<()> {
        self.with_conn(|conn| jobs::insert_jobs(conn, jobs, durable))
    }

    fn ingest_spool_files(&mut self, files: &[SpoolFileJobs]) -> Result<Vec<SpoolFileResult>> {
        self.with_conn(|conn| jobs::ingest_spool_files(conn, files))
    }

    fn job_source(&self, id: &str) -> Result<Option<String>> {
        self.with_conn(|conn| reads::job_source(conn, id))
    }

    fn forget_spool_files_before(&self, cutoff: Millis) -> Result<usize> {
        self.with_conn(|conn| {
            let statement = conn.prepared("DELETE FROM spool_files WHERE ingested_at < $1")?;
            Ok(conn.client.execute(&statement, &[&cutoff])? as usize)
        })
    }

    fn get_job(&self, id: &str) -> Result<Option<Job>> {
        self.with_conn(|conn| reads::get_job(conn, id))
    }

    fn job_states(&self, ids: &[String]) -> Result<BTreeMap<String, State>> {
        self.with_conn(|conn| reads::job_states(conn, ids))
    }

    fn list_jobs(&self, state: Option<State>, limit: Option<u64>) -> Result<Vec<Job>> {
        self.with_conn(|conn| reads::list_jobs(conn, state, limit))
    }

    fn list_filtered(&self, filter: &ListFilter) -> Result<Vec<Job>> {
        self.with_conn(|conn| reads::list_filtered(conn, filter))
    }

    fn ids_with_prefix(&self, prefix: &str, limit: u64) -> Result<Vec<String>> {
        self.with_conn(|conn| reads::ids_with_prefix(conn, prefix, limit))
    }

    fn id_neighbours(&self, id: &str) -> Result<(Option<String>, Option<String>)> {
        self.with_conn(|conn| reads::id_neighbours(conn, id))
    }

    fn attempts(&self, job_seq: i64) -> Result<Vec<Attempt>> {
        self.with_conn(|conn| reads::attempts(conn, job_seq))
    }

    fn counts(&self) -> Result<StateCounts> {
        self.with_conn(reads::counts)
    }

    fn count_scheduled(&self, now: Millis) -> Result<u64> {
        self.with_conn(|conn| reads::count_scheduled(conn, now))
    }

    fn waiting_by_kind(&self) -> Result<BTreeMap<String, u64>> {
        self.with_conn(reads::waiting_by_kind)
    }

    fn next_run_at(&self, kinds: &[String]) -> Result<Option<Millis>> {
        self.with_conn(|conn| reads::next_run_at(conn, kinds))
    }

    fn has_unfinished(&self, kinds: &[String]) -> Result<bool> {
        self.with_conn(|conn| reads::has_unfinished(conn, kinds))
    }

    fn finish_and_claim(
        &mut self,
        worker: &str,
        finished: &[FinishedAttempt],
        limit: usize,
        kinds: &[String],
        now: Millis,
    ) -> Result<(Vec<bool>, Vec<Job>)> {
        if finished.is_empty() && limit == 0 {
            return Ok((Vec::new(), Vec::new()));
        }
        let mut holdings = self.holdings.borrow_mut();
        let result = self.with_conn(|conn| {
            if self.replaced.replace(false) {
                holdings.connection_replaced();
            }
            claim::finish_and_claim(conn, &holdings, worker, finished, limit, kinds, now)
        });
        match &result {
            Ok((_, claimed)) => holdings.committed(worker, finished, claimed),
            Err(Error::Storage(e)) if e.kind == StoreErrorKind::Unavailable => holdings.lost(worker, finished),
            Err(_) => {}
        }
        result
    }

    fn reap_workers(
        &mut self,
        alive: &dyn Fn(&WorkerRecord) -> bool,
        lost: &dyn Fn(&Job) -> Option<FinishedAttempt>,
    ) -> Result<ReapOutcome> {
        self.with_conn(|conn| jobs::reap_workers(conn, alive, lost))
    }

    fn dlq_retry(&mut self, ids: &[String]) -> Result<usize> {
        self.with_conn(|conn| jobs::dlq_retry(conn, ids))
    }

    fn dlq_retry_all(&mut self) -> Result<usize> {
        self.with_conn(jobs::dlq_retry_all)
    }

    fn config_values(&self) -> Result<BTreeMap<String, String>> {
        self.with_conn(reads::config_values)
    }

    fn config_set(&self, key: &str, value: &str) -> Result<()> {
        self.with_conn(|conn| reads::config_set(conn, key, value))
    }

    fn config_unset(&self, key: &str) -> Result<bool> {
        self.with_conn(|conn| reads::config_unset(conn, key))
    }

    fn register_worker(&self, worker: &WorkerRecord) -> Result<()> {
        self.with_conn(|conn| reads::register_worker(conn, worker))
    }

    fn heartbeat(&self, id: &str, now: Millis, slots: &serde_json::Value, stopping: bool) -> Result<bool> {
        self.with_conn(|conn| {
            let statement =
                conn.prepared("UPDATE workers SET heartbeat_at = $2, slots = $3, stopping = $4 WHERE id = $1")?;
            let slots = slots.to_string();
            Ok(conn.client.execute(&statement, &[&id, &now, &slots, &stopping])? == 1)
        })
    }

    fn remove_worker(&self, id: &str) -> Result<()> {
        self.with_conn(|conn| {
            let statement = conn.prepared("DELETE FROM workers WHERE id = $1")?;
            conn.client.execute(&statement, &[&id])?;
            Ok(())
        })
    }

    fn workers(&self) -> Result<Vec<WorkerRecord>> {
        self.with_conn(reads::workers)
    }
}
