//! Connections: the client configuration a URL gives (with queuectl's defaults), a session
//! set up for the queue's schema, and the statements prepared on it.

use super::errors;
use crate::error::{Error, Result};
use crate::store::DbLocation;
use postgres::{Client, GenericClient, NoTls, Statement};
use std::collections::HashMap;
use std::time::Duration;

/// How long connecting may take when the URL does not say (`connect_timeout`).
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// One open connection and what is cached for it.
pub(super) struct Conn {
    /// The client.
    pub(super) client: Client,
    /// Statements prepared on this connection, by their text.
    pub(super) statements: HashMap<String, Statement>,
}

impl Conn {
    /// The prepared statement for `sql`, prepared on first use.
    pub(super) fn prepared(&mut self, sql: &str) -> Result<Statement> {
        prepared(&mut self.client, &mut self.statements, sql)
    }
}

/// The statement for `sql` from `cache`, prepared through `client` (a connection or one of its
/// transactions) the first time.
pub(super) fn prepared(
    client: &mut impl GenericClient,
    cache: &mut HashMap<String, Statement>,
    sql: &str,
) -> Result<Statement> {
    if let Some(statement) = cache.get(sql) {
        return Ok(statement.clone());
    }
    let statement = client.prepare(sql)?;
    cache.insert(sql.to_string(), statement.clone());
    Ok(statement)
}

/// Makes the transaction `tx` runs wait for its commit to be flushed to the server's disk.
///
/// Sessions commit without that wait by default (`synchronous_commit = off`, set on connect):
/// the counterpart of SQLite's `synchronous = NORMAL`, and what lets a worker record results
/// and claim jobs faster than the disk syncs. A server crash may lose the last commits (at most
/// three `wal_writer_delay`s, 600 ms by default) but never corrupts anything; what that means
/// for workers is settled by [`super::holdings`]. Accepting jobs (`insert_jobs` with `durable`, spool
/// files, whose source files are deleted next), DLQ retries, `config set` and migrations wait.
pub(super) fn durable(tx: &mut impl GenericClient) -> Result<()> {
    tx.batch_execute("SET LOCAL synchronous_commit = on")?;
    Ok(())
}

/// The client configuration for `url`: what the URL says, with what libpq would take from the
/// environment (`PGUSER` or `USER`, `PGPASSWORD`) and queuectl's defaults where it is silent.
pub(super) fn client_config(location: &DbLocation, url: &str) -> Result<postgres::Config> {
    let mut config: postgres::Config = url
        .parse()
        .map_err(|e: postgres::Error| Error::InvalidArgument(format!("{location}: {}", errors::message(&e))))?;
    // What libpq would take from the environment when the URL leaves it out.
    if config.get_user().is_none() {
        if let Some(user) = std::env::var("PGUSER").ok().or_else(|| std::env::var("USER").ok()) {
            config.user(&user);
        }
    }
    if config.get_password().is_none() {
        if let Ok(password) = std::env::var("PGPASSWORD") {
            config.password(password);
        }
    }
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(DEFAULT_CONNECT_TIMEOUT);
    }
    if config.get_application_name().is_none() {
        config.application_name("queuectl");
    }
    // Notice a server that vanished (a host cut off, a link down) within about a minute, not
    // hours: keepalives while idle, and a cap on how long sent data may go unacknowledged
    // while a statement runs. The URL's own settings win.
    if config.get_keepalives_idle() == Duration::from_secs(2 * 60 * 60) {
        config.keepalives_idle(Duration::from_secs(30));
    }
    if config.get_keepalives_interval().is_none() {
        config.keepalives_interval(Duration::from_secs(10));
    }
    if config.get_keepalives_retries().is_none() {
        config.keepalives_retries(3);
    }
    if config.get_tcp_user_timeout().is_none() {
        config.tcp_user_timeout(Duration::from_secs(60));
    }
    Ok(config)
}

/// A new session for the queue in `schema`: `search_path` to it, `lock_timeout`, and commits
/// that do not wait for the WAL flush (see [`durable`]) unless the URL's `options` set
/// `synchronous_commit` themselves. Returns it with its server process id.
pub(super) fn open(
    config: &postgres::Config,
    location: &DbLocation,
    schema: &str,
    lock_timeout: Duration,
) -> Result<(Conn, i32)> {
    let mut client = config.connect(NoTls).map_err(|e| errors::connect_error(location, &e))?;
    let asynchronous = if config
        .get_options()
        .is_some_and(|options| options.contains("synchronous_commit"))
    {
        ""
    } else {
        "; SET synchronous_commit = off"
    };
    client.batch_execute(&format!(
        "SET search_path TO {schema}; SET lock_timeout = {}{asynchronous}",
        lock_timeout.as_millis()
    ))?;
    let pid: i32 = client.query_one("SELECT pg_backend_pid()", &[])?.try_get(0)?;
    Ok((
        Conn {
            client,
            statements: HashMap::new(),
        },
        pid,
    ))
}
