//! Connections: the client configuration a URL gives (with queuectl's defaults), a session
//! set up for the queue's schema, and the statements prepared on it.

use super::{errors, tls};
use crate::error::{Error, Result};
use crate::store::DbLocation;
use postgres::{Client, GenericClient, Statement};
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

/// How long a transaction this client leaves idle may stay open on the server
/// (`idle_in_transaction_session_timeout`) until [`Target::with_unresponsive_timeout`] says
/// otherwise: the server then ends the session and rolls it back, so the locks of a client
/// that vanished mid-transaction (a host cut off, killed, frozen) do not outlive it for hours.
/// queuectl never leaves a transaction idle on purpose: between two statements it only computes.
const DEFAULT_IDLE_IN_TRANSACTION: Duration = Duration::from_secs(60);

/// How to reach the queue's server: the client configuration, the TLS the URL asks for, and
/// the session settings queuectl adds.
#[derive(Clone)]
pub(super) struct Target {
    /// The client configuration.
    pub(super) config: postgres::Config,
    /// How connections are made (see [`tls`]).
    tls: tls::Tls,
    /// `idle_in_transaction_session_timeout` for queuectl's sessions.
    idle_in_transaction: Duration,
}

impl Target {
    /// The target `url` names: what the URL says, with what libpq would take from the
    /// environment (`PGUSER` or `USER`, `PGPASSWORD`) and queuectl's defaults where it is silent.
    pub(super) fn new(location: &DbLocation, url: &str) -> Result<Target> {
        let (url, request) = tls::split_url(location, url)?;
        let mut config: postgres::Config = url
            .parse()
            .map_err(|e: postgres::Error| Error::InvalidArgument(format!("{location}: {}", errors::message(&e))))?;
        let (tls, ssl_mode) = tls::Tls::new(location, &request)?;
        config.ssl_mode(ssl_mode);
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
        Ok(Target {
            config,
            tls,
            idle_in_transaction: DEFAULT_IDLE_IN_TRANSACTION,
        })
    }

    /// This target with every wait for the server bounded by about `timeout` (at least 1 s),
    /// whatever the URL says: a call whose connection gets no answer for that long fails with
    /// the connection (`tcp_user_timeout` while sent data goes unacknowledged, keepalives while
    /// a statement's answer is awaited), connecting gives up after it (`connect_timeout`, when
    /// the URL's is longer), and the server ends a transaction this client leaves idle for it
    /// and drops the connection of a client it cannot reach (the same settings on its side).
    pub(super) fn with_unresponsive_timeout(&self, timeout: Duration) -> Target {
        let timeout = timeout.max(Duration::from_secs(1));
        let (idle, interval, retries) = keepalives_for(timeout);
        let mut target = self.clone();
        let config = &mut target.config;
        config.keepalives(true);
        config.keepalives_idle(idle);
        config.keepalives_interval(interval);
        config.keepalives_retries(retries);
        config.tcp_user_timeout(timeout);
        if config.get_connect_timeout().is_none_or(|t| *t > timeout) {
            config.connect_timeout(timeout);
        }
        target.idle_in_transaction = timeout;
        target
    }

    /// A new connection (not set up yet: see [`open`]).
    pub(super) fn connect(&self, location: &DbLocation) -> Result<Client> {
        self.tls
            .connect(&self.config)
            .map_err(|e| errors::connect_error(location, &e))
    }

    /// The statement that makes the server watch this client as the client watches the server:
    /// keepalives and `tcp_user_timeout` on its side of a TCP connection (ignored on a Unix
    /// socket), and `client_connection_check_interval`, so a statement of a client that vanished
    /// (one waiting for a lock, say) ends and releases what its transaction holds. Each is set
    /// only where the server has it (`tcp_user_timeout` came with PostgreSQL 12,
    /// `client_connection_check_interval` with 14), so an older server is not refused for it.
    pub(super) fn server_keepalives(&self) -> String {
        let config = &self.config;
        if !config.get_keepalives() {
            return String::new();
        }
        let mut settings = vec![
            (
                "tcp_keepalives_idle",
                config.get_keepalives_idle().as_secs().max(1) as u128,
            ),
            (
                "tcp_keepalives_interval",
                config.get_keepalives_interval().map_or(10, |i| i.as_secs().max(1)) as u128,
            ),
            (
                "tcp_keepalives_count",
                u128::from(config.get_keepalives_retries().unwrap_or(3)),
            ),
        ];
        if let Some(timeout) = config.get_tcp_user_timeout() {
            settings.push(("tcp_user_timeout", timeout.as_millis()));
            // While a statement runs (or waits for a lock), check the client is still there.
            settings.push(("client_connection_check_interval", timeout.as_millis()));
        }
        let values: Vec<String> = settings
            .iter()
            .map(|(name, value)| format!("('{name}', '{value}')"))
            .collect();
        format!(
            "SELECT set_config(name, v.setting, false) FROM (VALUES {}) AS v (name, setting) \
             JOIN pg_settings USING (name)",
            values.join(", ")
        )
    }
}

/// Keepalive settings that give up on a silent connection after about `timeout`: the first
/// probe after half of it, then up to 3 probes spread over the rest (whole seconds, at least
/// 1 each; `tcp_user_timeout`, set to `timeout` as well, ends the connection at `timeout` once
/// a probe went unanswered).
fn keepalives_for(timeout: Duration) -> (Duration, Duration, u32) {
    let seconds = timeout.as_secs().max(1);
    let idle = (seconds / 2).max(1);
    let interval = ((seconds - idle) / 3).max(1);
    (Duration::from_secs(idle), Duration::from_secs(interval), 3)
}

/// A new session for the queue in `schema`: `search_path` to it, `lock_timeout`,
/// `idle_in_transaction_session_timeout`, the server's keepalives (see
/// [`Target::server_keepalives`]), and commits that do not wait for the WAL flush (see
/// [`durable`]). The URL's `options` win for `synchronous_commit` and
/// `idle_in_transaction_session_timeout`. Returns it with its server process id.
pub(super) fn open(
    target: &Target,
    location: &DbLocation,
    schema: &str,
    lock_timeout: Duration,
) -> Result<(Conn, i32)> {
    let mut client = target.connect(location)?;
    let options = target.config.get_options().unwrap_or("");
    let mut sql = format!(
        "SET search_path TO {schema}; SET lock_timeout = {}",
        lock_timeout.as_millis()
    );
    if !options.contains("synchronous_commit") {
        sql.push_str("; SET synchronous_commit = off");
    }
    if !options.contains("idle_in_transaction_session_timeout") {
        sql.push_str(&format!(
            "; SET idle_in_transaction_session_timeout = {}",
            target.idle_in_transaction.as_millis()
        ));
    }
    let keepalives = target.server_keepalives();
    if !keepalives.is_empty() {
        sql.push_str("; ");
        sql.push_str(&keepalives);
    }
    client.batch_execute(&sql)?;
    let pid: i32 = client.query_one("SELECT pg_backend_pid()", &[])?.try_get(0)?;
    Ok((
        Conn {
            client,
            statements: HashMap::new(),
        },
        pid,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keepalives_give_up_within_the_unresponsive_timeout() {
        for seconds in [1u64, 2, 3, 5, 10, 20, 60, 600] {
            let (idle, interval, retries) = keepalives_for(Duration::from_secs(seconds));
            assert!(
                idle >= Duration::from_secs(1) && interval >= Duration::from_secs(1),
                "{seconds}"
            );
            let gives_up = idle + interval * retries;
            // tcp_user_timeout (= the timeout) ends it at the first probe past the timeout.
            assert!(
                gives_up <= Duration::from_secs(seconds.max(4)),
                "{seconds}: {idle:?} + {retries} x {interval:?}"
            );
        }
    }

    #[test]
    fn an_unresponsive_timeout_overrides_the_urls_waits_and_caps_connecting() {
        let location = DbLocation::parse("postgres://u@h/db?tcp_user_timeout=300&connect_timeout=2").unwrap();
        let DbLocation::Postgres { url, .. } = &location else {
            unreachable!()
        };
        let target = Target::new(&location, url).unwrap();
        assert_eq!(target.config.get_tcp_user_timeout(), Some(&Duration::from_secs(300)));
        let bounded = target.with_unresponsive_timeout(Duration::from_secs(5));
        assert_eq!(bounded.config.get_tcp_user_timeout(), Some(&Duration::from_secs(5)));
        assert_eq!(bounded.config.get_keepalives_idle(), Duration::from_secs(2));
        assert_eq!(
            bounded.config.get_connect_timeout(),
            Some(&Duration::from_secs(2)),
            "shorter: kept"
        );
        assert_eq!(bounded.idle_in_transaction, Duration::from_secs(5));
        let sql = bounded.server_keepalives();
        assert!(
            sql.contains("('tcp_keepalives_idle', '2')") && sql.contains("('tcp_user_timeout', '5000')"),
            "{sql}"
        );
        let patient = DbLocation::parse("postgres://u@h/db?connect_timeout=60").unwrap();
        let DbLocation::Postgres { url, .. } = &patient else {
            unreachable!()
        };
        let capped = Target::new(&patient, url)
            .unwrap()
            .with_unresponsive_timeout(Duration::from_secs(5));
        assert_eq!(
            capped.config.get_connect_timeout(),
            Some(&Duration::from_secs(5)),
            "longer: capped"
        );
        let longer = bounded.with_unresponsive_timeout(Duration::from_millis(100));
        assert_eq!(
            longer.config.get_tcp_user_timeout(),
            Some(&Duration::from_secs(1)),
            "at least 1 s"
        );
    }
}
