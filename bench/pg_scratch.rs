//! Scratch schemas for the benchmarks that take `--db postgres://...` (included by
//! `queue_overhead.rs` and `pickup.rs` with `#[path]`).

use queuectl::store::DbLocation;

/// Where a `--db` option puts the jobs: the URL without its `schema=` parameter, and the
/// prefix of the scratch schemas (the URL's schema if it names one, else `bench_LABEL_PID`).
pub fn parse_db(db: &str, label: &str) -> (String, String) {
    match DbLocation::parse(db).expect("--db") {
        DbLocation::Postgres { url, schema } => {
            let prefix = if db.contains("schema=") {
                schema
            } else {
                format!("bench_{label}_{}", std::process::id())
            };
            (url, prefix)
        }
        DbLocation::Sqlite(_) => panic!("--db takes a postgres:// URL (SQLite is the default)"),
    }
}

/// A scratch schema, dropped with everything in it when this is dropped (also when a panic
/// unwinds past it).
pub struct Scratch {
    /// Where a queue home points to put its jobs here.
    pub location: DbLocation,
    url: String,
    schema: String,
}

impl Scratch {
    /// The schema `schema` on the server at `url`, dropped first if a killed run left it.
    pub fn new(url: &str, schema: String) -> Scratch {
        let scratch = Scratch {
            location: DbLocation::Postgres {
                url: url.to_string(),
                schema: schema.clone(),
            },
            url: url.to_string(),
            schema,
        };
        scratch.drop_schema();
        scratch
    }

    /// A connection whose `search_path` is the schema.
    #[allow(dead_code)] // not every bench runs SQL of its own
    pub fn client(&self) -> postgres::Client {
        let mut client = postgres::Client::connect(&self.url, postgres::NoTls).expect("connecting to PostgreSQL");
        client
            .batch_execute(&format!("SET search_path TO {}", self.schema))
            .expect("search_path");
        client
    }

    fn drop_schema(&self) {
        match postgres::Client::connect(&self.url, postgres::NoTls) {
            Ok(mut client) => {
                if let Err(e) = client.batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema)) {
                    eprintln!("dropping schema {}: {e}", self.schema);
                }
            }
            Err(e) => eprintln!("dropping schema {}: {e}", self.schema),
        }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        self.drop_schema();
    }
}
