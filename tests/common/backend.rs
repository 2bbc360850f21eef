//! Which database the black-box tests run against, chosen by the environment:
//!
//! - `QUEUECTL_TEST_BACKEND` unset or `sqlite`: every home keeps its jobs in `HOME/queue.db`
//!   (the default). One line says the PostgreSQL half was skipped and how to run it (not when
//!   `QUEUECTL_REQUIRE_PG=1`: then a CI script runs that half itself).
//! - `QUEUECTL_TEST_BACKEND=postgres`: every home gets a schema of its own in the server at
//!   `QUEUECTL_TEST_PG` (default [`DEFAULT_PG_URL`]), passed to every `queuectl` it runs as
//!   `QUEUECTL_DB=<url>?schema=<name>` and dropped (`DROP SCHEMA ... CASCADE`) when the home
//!   is dropped, after a panic too. An unreachable server fails the test: it never skips.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Once, OnceLock};
use std::time::Duration;

/// The server the PostgreSQL half uses unless `QUEUECTL_TEST_PG` names another.
pub const DEFAULT_PG_URL: &str = "postgres://postgres@127.0.0.1/test";

/// The line printed when the PostgreSQL half of the black-box tests does not run. (The store
/// conformance suite, tests/store_postgres.rs, runs its PostgreSQL half whenever the server
/// answers, and says so in a line of its own when it does not.)
pub const PG_SKIPPED_LINE: &str = "black-box tests: PostgreSQL half skipped: set QUEUECTL_TEST_BACKEND=postgres \
     (server at QUEUECTL_TEST_PG, default postgres://postgres@127.0.0.1/test) to run it";

/// The database the black-box tests use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// `HOME/queue.db` in each test's home.
    Sqlite,
    /// A schema per test home in this server (a URL without `schema=`).
    Postgres {
        /// The server and database, e.g. `postgres://postgres@127.0.0.1/test`.
        url: String,
    },
}

/// The backend chosen by `QUEUECTL_TEST_BACKEND` (read once per test binary); panics on a value
/// it does not know.
pub fn backend() -> &'static Backend {
    static BACKEND: OnceLock<Backend> = OnceLock::new();
    BACKEND.get_or_init(|| {
        let chosen = std::env::var("QUEUECTL_TEST_BACKEND").unwrap_or_default();
        match chosen.trim().to_ascii_lowercase().as_str() {
            "" | "sqlite" => Backend::Sqlite,
            "postgres" | "postgresql" | "pg" => Backend::Postgres { url: pg_url() },
            other => {
                panic!("QUEUECTL_TEST_BACKEND={other:?} is not a backend: use `sqlite` (the default) or `postgres`")
            }
        }
    })
}

/// True when the tests run against PostgreSQL.
pub fn is_postgres() -> bool {
    matches!(backend(), Backend::Postgres { .. })
}

/// `QUEUECTL_TEST_PG`, or [`DEFAULT_PG_URL`].
pub fn pg_url() -> String {
    match std::env::var("QUEUECTL_TEST_PG") {
        Ok(url) if !url.trim().is_empty() => url.trim().to_string(),
        _ => DEFAULT_PG_URL.to_string(),
    }
}

/// For a test about SQLite itself (its file, backups, migrations of the file, PRAGMAs, storage
/// faults): under PostgreSQL prints `skipped under PostgreSQL: REASON (TEST NAME)` and returns
/// true (the test then returns); under SQLite returns false.
pub fn skipped_under_postgres(reason: &str) -> bool {
    if is_postgres() {
        let thread = std::thread::current();
        let test = thread.name().unwrap_or("a test");
        print_uncaptured(&format!("skipped under PostgreSQL: {reason} ({test})"));
        true
    } else {
        false
    }
}

/// Writes one line to standard error past the test harness's capture (which only takes
/// `print!` and `eprint!`), so a passing test can still say what it did not do.
pub fn print_uncaptured(line: &str) {
    let mut stderr = std::io::stderr().lock();
    let _ = writeln!(stderr, "{line}");
}

/// Called for every new test home: under SQLite says once per `cargo test` run that the
/// PostgreSQL half was skipped; under PostgreSQL checks (once per test binary) that the server
/// answers, and panics with the reason if not.
pub fn announce() {
    match backend() {
        Backend::Sqlite => {
            static ONCE: Once = Once::new();
            ONCE.call_once(|| {
                if std::env::var("QUEUECTL_REQUIRE_PG").as_deref() != Ok("1") && first_in_this_run() {
                    print_uncaptured(PG_SKIPPED_LINE);
                }
            });
        }
        Backend::Postgres { url } => {
            static REACHABLE: OnceLock<Result<(), String>> = OnceLock::new();
            let reachable = REACHABLE.get_or_init(|| connect(url).map(drop));
            if let Err(error) = reachable {
                panic!(
                    "QUEUECTL_TEST_BACKEND=postgres, but the PostgreSQL server at {} does not answer: \
                     {error} (start one, or point QUEUECTL_TEST_PG at one)",
                    queuectl::store::redact(url)
                );
            }
        }
    }
}

/// True for the first test binary of one `cargo test` run to ask: a marker file named after
/// the parent process (cargo, the same for every test binary it runs) and its start time.
fn first_in_this_run() -> bool {
    let parent = std::os::unix::process::parent_id();
    let started = std::fs::read_to_string(format!("/proc/{parent}/stat"))
        .ok()
        .and_then(|stat| {
            let after_name = stat[stat.rfind(')')? + 1..].to_string();
            // Field 22 (starttime); the fields after the name start at field 3.
            after_name.split_whitespace().nth(19).map(str::to_string)
        })
        .unwrap_or_default();
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("pg-half-skipped");
    if std::fs::create_dir_all(&dir).is_err() {
        return true;
    }
    // Markers of runs whose parent is gone are of no use any more.
    if let Ok(entries) = std::fs::read_dir(&dir) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let pid = name.split('-').next().unwrap_or_default();
            if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(dir.join(format!("{parent}-{started}")))
        .is_ok()
}

/// Connects to the server with a short timeout; the error says why (the client's own text is
/// only "error connecting to server": its causes follow).
pub fn connect(url: &str) -> Result<postgres::Client, String> {
    let mut config: postgres::Config = url.parse().map_err(|e| format!("bad URL: {e}"))?;
    config.connect_timeout(Duration::from_secs(5));
    config.connect(postgres::NoTls).map_err(|e| {
        let mut text = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(cause) = source {
            text.push_str(&format!(": {cause}"));
            source = cause.source();
        }
        text
    })
}

/// A schema of one test home, dropped with everything in it when this is dropped.
#[derive(Debug)]
pub struct PgSchema {
    /// The server and database (without `schema=`).
    pub url: String,
    /// The schema's name.
    pub name: String,
}

impl PgSchema {
    /// A new, unique schema name in the server (not created: `queuectl init` creates it, and a
    /// home that never ran `init` has none, as an uninitialised SQLite home has no file).
    pub fn new(url: &str) -> PgSchema {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let count = COUNTER.fetch_add(1, Ordering::Relaxed);
        let random = &uuid::Uuid::new_v4().simple().to_string()[..8];
        let name = format!("qt_{}_{count}_{random}", std::process::id());
        assert!(name.len() <= 63, "schema name too long: {name}");
        PgSchema {
            url: url.to_string(),
            name,
        }
    }

    /// The location `queuectl` takes (`QUEUECTL_DB`, `--db`).
    pub fn location(&self) -> String {
        let separator = if self.url.contains('?') { '&' } else { '?' };
        format!("{}{separator}schema={}", self.url, self.name)
    }

    /// A connection whose unqualified names resolve in this schema.
    pub fn client(&self) -> postgres::Client {
        let mut client =
            connect(&self.url).unwrap_or_else(|e| panic!("connect to {}: {e}", queuectl::store::redact(&self.url)));
        client
            .batch_execute(&format!("SET search_path TO {}", self.name))
            .expect("set search_path");
        client
    }
}

impl Drop for PgSchema {
    /// Drops the schema. A session still holding a lock in it (a process the test left
    /// behind) is ended after 10 s of waiting, then the drop is tried once more.
    fn drop(&mut self) {
        let drop_schema = |client: &mut postgres::Client| {
            client.batch_execute(&format!(
                "SET lock_timeout = '10s'; DROP SCHEMA IF EXISTS {} CASCADE",
                self.name
            ))
        };
        let end_holders = |client: &mut postgres::Client| {
            client.execute(
                "SELECT pg_terminate_backend(l.pid) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation \
                 JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND l.pid <> pg_backend_pid()",
                &[&self.name],
            )
        };
        let result = connect(&self.url).and_then(|mut client| {
            drop_schema(&mut client)
                .or_else(|_| end_holders(&mut client).and_then(|_| drop_schema(&mut client)))
                .map_err(|e| e.to_string())
        });
        if let Err(error) = result {
            // Never panic in a drop (it may run during a panic); say what was left behind.
            print_uncaptured(&format!(
                "warning: could not drop test schema {} in {}: {error}",
                self.name,
                queuectl::store::redact(&self.url)
            ));
        }
    }
}
