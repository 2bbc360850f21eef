//! Helpers shared by the PostgreSQL store tests (`tests/store_postgres_smoke.rs`,
//! `tests/store_postgres_liveness.rs`, `tests/store_postgres_holdings.rs`): a schema of the test's own in the server named by
//! `QUEUECTL_TEST_PG` (default `postgres://postgres@127.0.0.1/test`), dropped afterwards, and
//! the jobs, attempts and workers the tests build.
#![allow(dead_code)]

use queuectl::job::State;
use queuectl::store::{self, AttemptOutcome, DbLocation, FinishedAttempt, NewJob, WorkerRecord};
use queuectl::time::now_ms;
use queuectl::Job;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1/test";

/// Polls `check` every 10 ms until it holds; false if it did not within `timeout`.
pub fn poll(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A schema of its own, dropped when the test ends (whatever its outcome).
pub struct Scratch {
    pub url: String,
    pub schema: String,
}

impl Scratch {
    /// A fresh schema name, or `None` (after one line) when no server is reachable and none
    /// was asked for.
    pub fn new(tag: &str) -> Option<Scratch> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let asked = std::env::var("QUEUECTL_TEST_PG").ok().filter(|u| !u.is_empty());
        let required = asked.is_some() || std::env::var("QUEUECTL_REQUIRE_PG").is_ok_and(|v| v == "1");
        let url = asked.unwrap_or_else(|| DEFAULT_URL.to_string());
        if let Err(e) = postgres::Client::connect(&url, postgres::NoTls) {
            if required {
                panic!("PostgreSQL at {url} is required (QUEUECTL_REQUIRE_PG / QUEUECTL_TEST_PG) but unreachable: {e}");
            }
            println!("skipped: no PostgreSQL at {url} ({e}); set QUEUECTL_REQUIRE_PG=1 to require one");
            return None;
        }
        let schema = format!(
            "smoke_{tag}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        Some(Scratch { url, schema })
    }

    pub fn location(&self) -> DbLocation {
        DbLocation::parse(&format!("{}?schema={}", self.url, self.schema)).expect("location")
    }

    /// The same queue, its sessions named `name` (to find them in `pg_stat_activity`).
    pub fn location_named(&self, name: &str) -> DbLocation {
        DbLocation::parse(&format!("{}?application_name={name}&schema={}", self.url, self.schema)).expect("location")
    }

    pub fn admin(&self) -> postgres::Client {
        postgres::Client::connect(&self.url, postgres::NoTls).expect("admin connection")
    }

    /// An admin connection whose `search_path` is this schema (tables by their bare names).
    pub fn admin_in_schema(&self) -> postgres::Client {
        let mut client = self.admin();
        client
            .batch_execute(&format!("SET search_path TO {}", self.schema))
            .expect("search_path");
        client
    }

    /// The server's TCP address (for a proxy in front of it).
    pub fn server_addr(&self) -> SocketAddr {
        let config: postgres::Config = self.url.parse().expect("QUEUECTL_TEST_PG is a URL");
        let host = match config.get_hosts().first() {
            Some(postgres::config::Host::Tcp(host)) => host.clone(),
            other => panic!("this test needs a TCP server, not {other:?}"),
        };
        let port = config.get_ports().first().copied().unwrap_or(5432);
        std::net::ToSocketAddrs::to_socket_addrs(&(host.as_str(), port))
            .expect("resolve the server")
            .next()
            .expect("an address")
    }

    /// A store of this queue that reaches the server at `addr` (a proxy), its schema migrated.
    pub fn store_via(&self, addr: SocketAddr) -> Box<dyn store::Store> {
        let (scheme, rest) = self.url.split_once("://").expect("a URL");
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let user = authority
            .rsplit_once('@')
            .map_or(String::new(), |(user, _)| format!("{user}@"));
        let url = format!("{scheme}://{user}{addr}/{path}?schema={}", self.schema);
        let (store, _) = store::create(&DbLocation::parse(&url).expect("location")).expect("create");
        store.migrate().expect("migrate");
        store
    }

    pub fn store(&self) -> Box<dyn store::Store> {
        let (store, _) = store::create(&self.location()).expect("create");
        store.migrate().expect("migrate");
        store
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Ok(mut client) = postgres::Client::connect(&self.url, postgres::NoTls) {
            let _ = client.batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema));
        }
    }
}

pub fn job(id: &str, priority: i64, run_at: i64) -> NewJob {
    NewJob {
        id: id.into(),
        kind: "shell".into(),
        command: format!("echo {id}"),
        payload: None,
        max_retries: None,
        priority,
        run_at,
        created_at: run_at,
        timeout_seconds: None,
        cwd: None,
        env: None,
        source: "api".into(),
        location: None,
    }
}

pub fn finished(job: &Job, outcome: AttemptOutcome, new_state: State, run_at: Option<i64>) -> FinishedAttempt {
    FinishedAttempt {
        job_seq: job.seq,
        lease: job.lease,
        attempts: job.attempts + u32::from(outcome.counts()),
        outcome,
        new_state,
        run_at,
        started_at: job.started_at,
        finished_at: now_ms(),
        exit_code: Some(if outcome == AttemptOutcome::Completed { 0 } else { 1 }),
        error: (outcome != AttemptOutcome::Completed).then(|| "exit 1".to_string()),
        stdout: Some("out".into()),
        stderr: None,
    }
}

pub fn worker(id: &str) -> WorkerRecord {
    WorkerRecord {
        id: id.into(),
        pid: 1,
        host: "elsewhere".into(),
        proc_start: None,
        started_at: now_ms(),
        heartbeat_at: now_ms(),
        threads: 1,
        kinds: vec!["shell".into()],
        slots: serde_json::json!([]),
        stopping: false,
        version: "test".into(),
    }
}

/// The per-state counts must equal the rows in each state.
#[track_caller]
pub fn assert_counts_match_rows(store: &dyn store::Store) {
    let counts = store.counts().expect("counts");
    for state in State::ALL {
        let rows = store.list_jobs(Some(state), None).expect("list").len() as u64;
        assert_eq!(counts.get(state), rows, "{state}: {counts:?}");
    }
}
