//! Queue overhead with a no-op executor (issue 3, "Speed"; issue 9 for PostgreSQL): how many
//! jobs a 2-thread pool claims and completes per second when running a job costs nothing, first
//! on an otherwise empty table, then with 1,000,000 finished jobs (and their attempt rows)
//! already in it.
//!
//! Run: `cargo bench --bench queue_overhead` (harness = false; this is not a timed test).
//! Options (after `--`): `--jobs N` (default 50000), `--finished N` (default 1000000),
//! `--rounds R` (default 3), `--threads T` (default 2), `--dir DIR` (where the temporary
//! homes go; default the system temp dir), `--db postgres://USER@HOST/DB` (the jobs go in
//! PostgreSQL instead of SQLite: a scratch schema per home, dropped at the end, even on a
//! panic; a `schema=NAME` in the URL is used as the schemas' prefix), `--server-pid PID` (the
//! PostgreSQL postmaster's pid, for a server on this machine that serves nobody else: each
//! round then also prints the server's CPU time per job, its processes' user + system time
//! from /proc, finished backends included through the postmaster's children's times),
//! `--vacuum` (PostgreSQL: `VACUUM ANALYZE jobs` after each round's enqueue, before the pool
//! starts, as autovacuum would: without it a fresh schema has no statistics, and the big table
//! keeps the dead index entries of earlier rounds, which every claim walks; see BENCHMARKS.md),
//! `--setup-sql SQL` (PostgreSQL: run in each queue's schema right after `init`, `{schema}`
//! standing for its name; for experiments such as dropping a trigger, see bench/probes.sh).
//!
//! The two cases run interleaved (empty, big, empty, big, ...) and the summary reports the
//! median of each and their ratio, so machine load affects both sides alike.
//! Every empty-table round uses a fresh home; the big table is built once and grows by
//! `--jobs` completed jobs per round (reported). SQLite's big table: library inserts, then one
//! SQL UPDATE; PostgreSQL's: one `INSERT ... SELECT FROM generate_series` of completed jobs
//! and one of their attempt rows (the count triggers keep `status` right), then `VACUUM
//! ANALYZE` of both tables, as autovacuum would do after a bulk load.
//!
//! Each round also prints this process's CPU time (user + system, `getrusage`) per job; with
//! PostgreSQL the server's share is not in it (see `--server-pid`).

use queuectl::executor::{ExecContext, Outcome};
use queuectl::job::{Job, JobSpec};
use queuectl::store::DbLocation;
use queuectl::worker::PoolBuilder;
use queuectl::{Home, Queue, Shutdown};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::Instant;

#[cfg(feature = "postgres")]
#[path = "pg_scratch.rs"]
mod pg_scratch;

#[cfg(feature = "postgres")]
mod pg {
    //! The PostgreSQL side: the bulk load, counts.
    pub use super::pg_scratch::Scratch;

    /// Adds `n` completed `noop` jobs, one attempt row each, in one transaction of two
    /// statements; then `VACUUM ANALYZE`.
    pub fn bulk_load_finished(scratch: &Scratch, n: usize) {
        let mut client = scratch.client();
        let now = queuectl::time::now_ms();
        let mut tx = client.transaction().unwrap();
        tx.execute(
            "INSERT INTO jobs (id, kind, command, payload, state, attempts, priority, run_at, created_at, \
                 updated_at, started_at, finished_at, worker, lease, exit_code, source) \
             SELECT 'done-' || g, 'noop', '', '{}', 'completed', 1, 0, $1, $1, $1, $1, $1, 'bench', 1, 0, 'api' \
             FROM generate_series(1, $2::int8) g",
            &[&now, &(n as i64)],
        )
        .expect("bulk load of jobs");
        tx.execute(
            "INSERT INTO attempts (job_seq, attempt, outcome, worker, started_at, finished_at, exit_code) \
             SELECT seq, 1, 'completed', 'bench', created_at, created_at, 0 FROM jobs WHERE state = 'completed'",
            &[],
        )
        .expect("bulk load of attempts");
        tx.commit().unwrap();
        // One statement per call: several in one call would run as one transaction block.
        client.batch_execute("VACUUM ANALYZE jobs").unwrap();
        client.batch_execute("VACUUM ANALYZE attempts").unwrap();
    }

    /// (rows in `jobs`, completed jobs by the counts).
    pub fn counts(scratch: &Scratch) -> (i64, i64) {
        let mut client = scratch.client();
        let total: i64 = client.query_one("SELECT count(*) FROM jobs", &[]).unwrap().get(0);
        let done: i64 = client
            .query_one(
                "SELECT COALESCE(sum(n), 0)::int8 FROM job_counts WHERE state = 'completed'",
                &[],
            )
            .unwrap()
            .get(0);
        (total, done)
    }
}

struct Options {
    jobs: usize,
    finished: usize,
    rounds: usize,
    threads: usize,
    dir: Option<PathBuf>,
    db: Option<String>,
    server_pid: Option<u32>,
    vacuum: bool,
    setup_sql: Option<String>,
}

fn options() -> Options {
    let mut o = Options {
        jobs: 50_000,
        finished: 1_000_000,
        rounds: 3,
        threads: 2,
        dir: None,
        db: None,
        server_pid: None,
        vacuum: false,
        setup_sql: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| panic!("{arg} needs a value"));
        match arg.as_str() {
            "--jobs" => o.jobs = value().parse().expect("--jobs N"),
            "--finished" => o.finished = value().parse().expect("--finished N"),
            "--rounds" => o.rounds = value().parse().expect("--rounds N"),
            "--threads" => o.threads = value().parse().expect("--threads N"),
            "--dir" => o.dir = Some(PathBuf::from(value())),
            "--db" => o.db = Some(value()),
            "--vacuum" => o.vacuum = true,
            "--setup-sql" => o.setup_sql = Some(value()),
            "--server-pid" => o.server_pid = Some(value().parse().expect("--server-pid PID")),
            // `cargo bench` passes `--bench`; ignore it and any libtest-style flags.
            _ => {}
        }
    }
    o
}

fn temp_home(parent: &Option<PathBuf>, label: &str) -> tempfile::TempDir {
    let prefix = format!("queuectl-bench-{label}-");
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix);
    match parent {
        Some(dir) => builder.tempdir_in(dir),
        None => builder.tempdir(),
    }
    .expect("creating a temporary home")
}

/// Where the jobs go: SQLite files in the temporary homes, or scratch schemas in PostgreSQL
/// (`url` without the schema parameter; `prefix` names the schemas).
enum Backend {
    Sqlite,
    #[cfg(feature = "postgres")]
    Postgres {
        url: String,
        prefix: String,
    },
}

/// One queue: its home directory, and its scratch schema on PostgreSQL (dropped last).
struct Bench {
    home: Home,
    #[cfg(feature = "postgres")]
    scratch: Option<pg::Scratch>,
    _dir: tempfile::TempDir,
}

impl Backend {
    fn new(db: Option<&str>) -> Backend {
        let Some(db) = db else { return Backend::Sqlite };
        match DbLocation::parse(db).expect("--db") {
            DbLocation::Sqlite(_) => panic!("--db takes a postgres:// URL (SQLite is the default)"),
            #[cfg(feature = "postgres")]
            DbLocation::Postgres { .. } => {
                let (url, prefix) = pg_scratch::parse_db(db, "qo");
                Backend::Postgres { url, prefix }
            }
            #[cfg(not(feature = "postgres"))]
            DbLocation::Postgres { .. } => panic!("built without the postgres feature"),
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Backend::Sqlite => "SQLite",
            #[cfg(feature = "postgres")]
            Backend::Postgres { .. } => "PostgreSQL",
        }
    }

    /// A fresh queue labelled `label` (initialised; then `setup_sql` runs in it).
    fn queue(&self, parent: &Option<PathBuf>, label: &str, setup_sql: Option<&str>) -> Bench {
        let dir = temp_home(parent, label);
        let home = Home::new(dir.path());
        match self {
            Backend::Sqlite => {
                assert!(setup_sql.is_none(), "--setup-sql is for PostgreSQL");
                Queue::init(&home).expect("init");
                Bench {
                    home,
                    #[cfg(feature = "postgres")]
                    scratch: None,
                    _dir: dir,
                }
            }
            #[cfg(feature = "postgres")]
            Backend::Postgres { url, prefix } => {
                let scratch = pg::Scratch::new(url, format!("{prefix}_{label}"));
                let home = home.with_db(scratch.location.clone());
                Queue::init(&home).expect("init");
                if let Some(sql) = setup_sql {
                    let DbLocation::Postgres { schema, .. } = &scratch.location else {
                        unreachable!()
                    };
                    scratch
                        .client()
                        .batch_execute(&sql.replace("{schema}", schema))
                        .expect("--setup-sql");
                }
                Bench {
                    home,
                    scratch: Some(scratch),
                    _dir: dir,
                }
            }
        }
    }
}

impl Bench {
    /// Adds `n` finished jobs with one attempt row each.
    fn add_finished(&self, n: usize) {
        #[cfg(feature = "postgres")]
        if let Some(scratch) = &self.scratch {
            pg::bulk_load_finished(scratch, n);
            return;
        }
        let mut queue = Queue::open(&self.home).expect("open");
        enqueue_noop(&mut queue, n, 100_000);
        drop(queue);
        finish_all_pending(self.home.db().sqlite_path().expect("a SQLite home"));
    }

    /// `VACUUM ANALYZE jobs` on PostgreSQL (what autovacuum does once enough rows changed).
    fn vacuum(&self) {
        #[cfg(feature = "postgres")]
        if let Some(scratch) = &self.scratch {
            scratch
                .client()
                .batch_execute("VACUUM ANALYZE jobs")
                .expect("VACUUM ANALYZE");
        }
    }

    /// (rows in `jobs`, completed jobs by the counts).
    fn counts(&self) -> (i64, i64) {
        #[cfg(feature = "postgres")]
        if let Some(scratch) = &self.scratch {
            return pg::counts(scratch);
        }
        sqlite_counts(self.home.db().sqlite_path().expect("a SQLite home"))
    }
}

fn enqueue_noop(queue: &mut Queue, count: usize, batch: usize) {
    let mut left = count;
    while left > 0 {
        let n = left.min(batch);
        let specs = (0..n).map(|_| JobSpec::kind("noop", json!({})));
        queue.enqueue_batch(specs).expect("enqueue");
        left -= n;
    }
}

/// This process's CPU time (user + system) so far, in seconds.
fn cpu_seconds() -> f64 {
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes into the struct we own.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(usage.ru_utime) + t(usage.ru_stime)
}

/// Fields 14-17 of /proc/PID/stat (utime, stime, cutime, cstime), in clock ticks.
fn stat_times(pid: u32) -> Option<[u64; 4]> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces: count fields after the last ')'.
    let rest = &text[text.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state): utime is field 14, so index 11.
    let get = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
    Some([get(11)?, get(12)?, get(13)?, get(14)?])
}

/// CPU seconds used so far by the server whose postmaster is `pid`: its own, its live
/// children's, and its finished children's (which the postmaster has reaped).
fn server_cpu_seconds(pid: u32) -> f64 {
    let tick = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let mut ticks = stat_times(pid).map_or(0, |t| t.iter().sum());
    if let Ok(children) = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")) {
        for child in children.split_whitespace().filter_map(|c| c.parse::<u32>().ok()) {
            ticks += stat_times(child).map_or(0, |t| t[0] + t[1]);
        }
    }
    ticks as f64 / tick
}

/// The server's CPU seconds, once the backends of connections closed so far have exited (a
/// closed connection's backend exits a moment later; waits at most a second for the count
/// of the postmaster's children to settle).
fn settled_server_cpu(pid: u32) -> f64 {
    let count = || {
        std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
            .map(|c| c.split_whitespace().count())
            .unwrap_or(0)
    };
    let deadline = Instant::now() + std::time::Duration::from_secs(1);
    let mut last = count();
    while Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
        let now = count();
        if now == last {
            break;
        }
        last = now;
    }
    server_cpu_seconds(pid)
}

/// Runs a pool with a no-op executor until the queue is empty; returns (jobs, seconds, CPU
/// seconds of this process).
fn drain(home: &Home, threads: usize) -> (u64, f64, f64) {
    let cpu = cpu_seconds();
    let start = Instant::now();
    let ran = PoolBuilder::new(home)
        .threads(threads)
        .without_shell()
        .executor("noop", |_job: &Job, _ctx: &ExecContext| Outcome::success())
        .until_empty(true)
        .shell_hooks(false)
        .run(&Shutdown::new())
        .expect("pool run")
        .attempts;
    (ran, start.elapsed().as_secs_f64(), cpu_seconds() - cpu)
}

/// Marks every pending job completed, with one attempt row each, in one SQL transaction.
fn finish_all_pending(db: &Path) {
    let conn = rusqlite::Connection::open(db).expect("open db");
    conn.busy_timeout(std::time::Duration::from_secs(30)).unwrap();
    conn.execute_batch(
        "BEGIN IMMEDIATE;
         INSERT INTO queuectl_attempts (job_seq, attempt, outcome, worker, started_at, finished_at, exit_code)
             SELECT seq, 1, 'completed', 'bench', created_at, created_at, 0 FROM queuectl_jobs WHERE state = 'pending';
         UPDATE queuectl_jobs SET state = 'completed', attempts = 1, worker = 'bench', started_at = created_at,
             finished_at = created_at, exit_code = 0 WHERE state = 'pending';
         COMMIT;
         PRAGMA wal_checkpoint(TRUNCATE);",
    )
    .expect("marking jobs completed");
}

fn sqlite_counts(db: &Path) -> (i64, i64) {
    let conn = rusqlite::Connection::open(db).expect("open db");
    let total: i64 = conn
        .query_row("SELECT COUNT(*) FROM queuectl_jobs", [], |r| r.get(0))
        .unwrap();
    let done: i64 = conn
        .query_row(
            "SELECT COALESCE(SUM(n), 0) FROM queuectl_job_counts WHERE state = 'completed'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    (total, done)
}

fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn list(values: &[f64]) -> String {
    values.iter().map(|r| format!("{r:.0}")).collect::<Vec<_>>().join(", ")
}

fn main() {
    let o = options();
    let backend = Backend::new(o.db.as_deref());
    eprintln!(
        "queue_overhead ({}): {} no-op jobs, {} threads, {} rounds; big table: {} finished jobs",
        backend.name(),
        o.jobs,
        o.threads,
        o.rounds,
        o.finished
    );

    // The big table, built once. With `--finished 0` there is no big case.
    let big = (o.finished > 0).then(|| {
        let started = Instant::now();
        let big = backend.queue(&o.dir, "big", o.setup_sql.as_deref());
        big.add_finished(o.finished);
        eprintln!(
            "built the table of {} finished jobs in {:.1}s",
            o.finished,
            started.elapsed().as_secs_f64()
        );
        big
    });

    let mut empty_rates = Vec::new();
    let mut big_rates = Vec::new();
    let mut cpu_us = Vec::new();
    let mut server_us = Vec::new();
    let mut big_cpu_us = Vec::new();
    let mut big_server_us = Vec::new();
    for round in 1..=o.rounds {
        // Empty table: a fresh queue each round.
        let empty = backend.queue(&o.dir, &format!("e{round}"), o.setup_sql.as_deref());
        let mut queue = Queue::open(&empty.home).expect("open");
        enqueue_noop(&mut queue, o.jobs, 100_000);
        drop(queue);
        if o.vacuum {
            empty.vacuum();
        }
        let server_before = o.server_pid.map(settled_server_cpu);
        let (ran, secs, cpu) = drain(&empty.home, o.threads);
        let server = server_before.map(|before| settled_server_cpu(o.server_pid.unwrap()) - before);
        assert_eq!(ran as usize, o.jobs, "the pool ran every job");
        let rate = ran as f64 / secs;
        empty_rates.push(rate);
        cpu_us.push(cpu / ran as f64 * 1e6);
        if let Some(server) = server {
            server_us.push(server / ran as f64 * 1e6);
        }
        println!(
            "round {round} empty-table: {ran} jobs in {secs:.3}s = {rate:.0} jobs/s (this process's CPU: {:.0} us/job{})",
            cpu / ran as f64 * 1e6,
            server.map_or(String::new(), |s| format!(", the server's: {:.0} us/job", s / ran as f64 * 1e6))
        );
        drop(empty);

        // Big table: add this round's pending jobs to the finished ones.
        if let Some(big) = &big {
            let mut queue = Queue::open(&big.home).expect("open");
            enqueue_noop(&mut queue, o.jobs, 100_000);
            drop(queue);
            if o.vacuum {
                big.vacuum();
            }
            let (total_before, done_before) = big.counts();
            let server_before = o.server_pid.map(settled_server_cpu);
            let (ran, secs, cpu) = drain(&big.home, o.threads);
            let server = server_before.map(|before| settled_server_cpu(o.server_pid.unwrap()) - before);
            assert_eq!(ran as usize, o.jobs, "the pool ran every job");
            let rate = ran as f64 / secs;
            big_rates.push(rate);
            big_cpu_us.push(cpu / ran as f64 * 1e6);
            if let Some(server) = server {
                big_server_us.push(server / ran as f64 * 1e6);
            }
            println!(
                "round {round} big-table:   {ran} jobs in {secs:.3}s = {rate:.0} jobs/s ({done_before} finished jobs, {total_before} rows; this process's CPU: {:.0} us/job{})",
                cpu / ran as f64 * 1e6,
                server.map_or(String::new(), |s| format!(", the server's: {:.0} us/job", s / ran as f64 * 1e6))
            );
        }
    }
    let empty = median(&empty_rates);
    println!("RESULT queue_overhead_backend {}", backend.name());
    println!("RESULT queue_overhead_empty_jobs_per_s {empty:.0}");
    println!(
        "RESULT queue_overhead_empty_client_cpu_us_per_job {:.0}",
        median(&cpu_us)
    );
    if !server_us.is_empty() {
        println!(
            "RESULT queue_overhead_empty_server_cpu_us_per_job {:.0}",
            median(&server_us)
        );
    }
    if !big_rates.is_empty() {
        let big = median(&big_rates);
        println!("RESULT queue_overhead_big_jobs_per_s {big:.0}");
        println!("RESULT queue_overhead_big_over_empty {:.3}", big / empty);
        println!(
            "RESULT queue_overhead_big_client_cpu_us_per_job {:.0}",
            median(&big_cpu_us)
        );
        if !big_server_us.is_empty() {
            println!(
                "RESULT queue_overhead_big_server_cpu_us_per_job {:.0}",
                median(&big_server_us)
            );
        }
    }
    println!(
        "RESULT queue_overhead_rounds empty=[{}] big=[{}]",
        list(&empty_rates),
        list(&big_rates)
    );
}
