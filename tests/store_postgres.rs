//! The store conformance suite (`queuectl::store::conformance`) against the PostgreSQL
//! backend: each case in a schema of its own (`conf_<pid>_<counter>_<random>`), dropped when
//! the case ends, also when it panics.
//!
//! The server is `postgres://postgres@127.0.0.1/test`, or `QUEUECTL_TEST_PG`. When it cannot be
//! reached, the cases return at once and one line says the PostgreSQL half was skipped and how
//! to enable it; with `QUEUECTL_REQUIRE_PG=1` they fail instead.
#![cfg(feature = "postgres")]

use postgres::{Client, NoTls};
use queuectl::store::conformance::{Factory, Fixture};
use queuectl::store::{redact, DbLocation};
use std::io::Write;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Once, OnceLock};
use std::time::Duration;

const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1/test";

/// The server the cases use.
fn server_url() -> String {
    std::env::var("QUEUECTL_TEST_PG")
        .ok()
        .filter(|u| !u.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_URL.to_string())
}

/// A plain connection to the server, for what the suite does beside the store (schemas).
fn admin_client(url: &str) -> Result<Client, postgres::Error> {
    let mut config = postgres::Config::from_str(url)?;
    config.connect_timeout(Duration::from_secs(5));
    config.connect(NoTls)
}

/// Whether the server answers (checked once per test binary), or why not.
fn reachable(url: &str) -> &'static Result<(), String> {
    static REACHABLE: OnceLock<Result<(), String>> = OnceLock::new();
    REACHABLE.get_or_init(|| {
        admin_client(url)
            .and_then(|mut client| client.simple_query("SELECT 1").map(|_| ()))
            .map_err(|e| {
                // postgres::Error's own text is generic ("error connecting to server"): add why.
                let mut text = e.to_string();
                let mut source = std::error::Error::source(&e);
                while let Some(cause) = source {
                    text.push_str(&format!(": {cause}"));
                    source = cause.source();
                }
                text
            })
    })
}

/// Fresh PostgreSQL schemas on the test server.
struct PgFactory;

impl Factory for PgFactory {
    fn available(&self) -> bool {
        let url = server_url();
        let Err(reason) = reachable(&url) else {
            return true;
        };
        if std::env::var("QUEUECTL_REQUIRE_PG").as_deref() == Ok("1") {
            panic!(
                "QUEUECTL_REQUIRE_PG=1 but the PostgreSQL server at {} cannot be reached: {reason}",
                redact(&url)
            );
        }
        static SAID: Once = Once::new();
        SAID.call_once(|| {
            // Straight to the process's stderr: libtest captures print macros, not this.
            let _ = writeln!(
                std::io::stderr(),
                "store_postgres: SKIPPED the PostgreSQL half of the store conformance suite: {} cannot be reached \
                 ({reason}); start a server on 127.0.0.1:5432 (user postgres, trust auth, database test) or set \
                 QUEUECTL_TEST_PG=postgres://user@host/db (QUEUECTL_REQUIRE_PG=1 makes this a failure)",
                redact(&url)
            );
        });
        false
    }

    fn fresh(&self) -> Box<dyn Fixture> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let url = server_url();
        let random = uuid::Uuid::new_v4().simple().to_string();
        let schema = format!(
            "conf_{}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            &random[..8]
        );
        // The guard exists before anything is created, so whatever a failing `create` or
        // `migrate` left behind is dropped too.
        let fixture = PgFixture {
            location: DbLocation::Postgres {
                url: url.clone(),
                schema: schema.clone(),
            },
            url,
            schema,
        };
        let (store, version) = queuectl::store::create(&fixture.location)
            .unwrap_or_else(|e| panic!("the PostgreSQL backend could not create a fresh queue: {e}"));
        assert_eq!(version, 0, "a new schema has no version");
        store
            .migrate()
            .unwrap_or_else(|e| panic!("migrating {}: {e}", fixture.location));
        Box::new(fixture)
    }
}

/// One case's schema; dropped (`DROP SCHEMA ... CASCADE`) with the fixture.
struct PgFixture {
    location: DbLocation,
    url: String,
    schema: String,
}

impl Fixture for PgFixture {
    fn location(&self) -> &DbLocation {
        &self.location
    }

    /// The backend keeps its version in the schema's `meta` table, key `schema_version`.
    fn set_schema_version(&self, version: i64) {
        let mut client = admin_client(&self.url).expect("connect to set the schema version");
        let sql = format!(
            "INSERT INTO {}.meta (key, value) VALUES ('schema_version', $1) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            self.schema
        );
        client
            .execute(&sql, &[&version.to_string()])
            .expect("write the schema version");
    }

    fn remove(&self) {
        let mut client = admin_client(&self.url).expect("connect to drop the schema");
        client
            .batch_execute(&format!("DROP SCHEMA {} CASCADE", self.schema))
            .expect("drop the schema");
    }
}

impl Drop for PgFixture {
    fn drop(&mut self) {
        // The schema name was made above from [a-z0-9_] only: no quoting needed.
        let result = admin_client(&self.url)
            .and_then(|mut client| client.batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema)));
        if let Err(e) = result {
            let _ = writeln!(
                std::io::stderr(),
                "store_postgres: could not drop schema {}: {e}",
                self.schema
            );
        }
    }
}

queuectl::store_conformance!(PgFactory);

/// A fixture's schema is gone once the fixture drops, also when the case panicked.
#[test]
fn fixture_schema_is_dropped_even_after_a_panic() {
    if !PgFactory.available() {
        return;
    }
    let schema_exists = |name: &str| -> bool {
        let mut client = admin_client(&server_url()).expect("connect");
        client
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM information_schema.schemata WHERE schema_name = $1)",
                &[&name],
            )
            .expect("query")
            .get(0)
    };
    let name = std::sync::Mutex::new(String::new());
    let outcome = std::panic::catch_unwind(|| {
        let fixture = PgFactory.fresh();
        let DbLocation::Postgres { schema, .. } = fixture.location() else {
            unreachable!("a PostgreSQL location")
        };
        *name.lock().unwrap() = schema.clone();
        assert!(schema_exists(schema), "the fixture's schema exists while it lives");
        panic!("a failing case");
    });
    assert!(outcome.is_err());
    let name = name.into_inner().unwrap();
    assert!(!name.is_empty(), "the fixture was made");
    assert!(!schema_exists(&name), "schema {name} is left after the panic");
}
