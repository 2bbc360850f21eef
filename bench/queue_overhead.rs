//! Queue overhead with a no-op executor (issue 3, "Speed"): how many jobs a 2-thread pool
//! claims and completes per second when running a job costs nothing, first on an otherwise
//! empty table, then with 1,000,000 finished jobs (and their attempt rows) already in it.
//!
//! Run: `cargo bench --bench queue_overhead` (harness = false; this is not a timed test).
//! Options (after `--`): `--jobs N` (default 50000), `--finished N` (default 1000000),
//! `--rounds R` (default 3), `--threads T` (default 2), `--dir DIR` (where the temporary
//! homes go; default the system temp dir).
//!
//! The two cases run interleaved (empty, big, empty, big, ...) and the summary reports the
//! median of each and their ratio, so machine load affects both sides alike.
//! Every empty-table round uses a fresh home; the big table is built once and grows by
//! `--jobs` completed jobs per round (reported).

use queuectl::executor::{ExecContext, Outcome};
use queuectl::job::{Job, JobSpec, Source};
use queuectl::worker::PoolBuilder;
use queuectl::{Home, Queue, Shutdown};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::Instant;

struct Options {
    jobs: usize,
    finished: usize,
    rounds: usize,
    threads: usize,
    dir: Option<PathBuf>,
}

fn options() -> Options {
    let mut o = Options {
        jobs: 50_000,
        finished: 1_000_000,
        rounds: 3,
        threads: 2,
        dir: None,
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

fn enqueue_noop(queue: &mut Queue, count: usize, batch: usize) {
    let mut left = count;
    while left > 0 {
        let n = left.min(batch);
        let specs: Vec<(Option<String>, JobSpec)> = (0..n).map(|_| (None, JobSpec::kind("noop", json!({})))).collect();
        queue.enqueue_batch(specs, Source::Api).expect("enqueue");
        left -= n;
    }
}

/// Runs a pool with a no-op executor until the queue is empty; returns (jobs, seconds).
fn drain(home: &Home, threads: usize) -> (u64, f64) {
    let start = Instant::now();
    let ran = PoolBuilder::new(home)
        .threads(threads)
        .without_shell()
        .executor("noop", |_job: &Job, _ctx: &ExecContext| Outcome::success())
        .until_empty(true)
        .shell_hooks(false)
        .run(&Shutdown::new())
        .expect("pool run");
    (ran, start.elapsed().as_secs_f64())
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

fn counts(db: &Path) -> (i64, i64) {
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

fn main() {
    let o = options();
    eprintln!(
        "queue_overhead: {} no-op jobs, {} threads, {} rounds; big table: {} finished jobs",
        o.jobs, o.threads, o.rounds, o.finished
    );

    // The big table, built once: library inserts in batches of 100k, then one SQL statement.
    let big_dir = temp_home(&o.dir, "big");
    let big_home = Home::new(big_dir.path());
    {
        let started = Instant::now();
        let (mut queue, _) = Queue::init(&big_home).expect("init");
        enqueue_noop(&mut queue, o.finished, 100_000);
        drop(queue);
        finish_all_pending(big_home.db().sqlite_path().expect("a SQLite home"));
        eprintln!(
            "built the table of {} finished jobs in {:.1}s",
            o.finished,
            started.elapsed().as_secs_f64()
        );
    }

    let mut empty_rates = Vec::new();
    let mut big_rates = Vec::new();
    for round in 1..=o.rounds {
        // Empty table: a fresh home each round.
        let dir = temp_home(&o.dir, "empty");
        let home = Home::new(dir.path());
        let (mut queue, _) = Queue::init(&home).expect("init");
        enqueue_noop(&mut queue, o.jobs, 100_000);
        drop(queue);
        let (ran, secs) = drain(&home, o.threads);
        assert_eq!(ran as usize, o.jobs, "the pool ran every job");
        let rate = ran as f64 / secs;
        empty_rates.push(rate);
        println!("round {round} empty-table: {ran} jobs in {secs:.3}s = {rate:.0} jobs/s");
        drop(dir);

        // Big table: add this round's pending jobs to the finished ones.
        let mut queue = Queue::open(&big_home).expect("open");
        enqueue_noop(&mut queue, o.jobs, 100_000);
        drop(queue);
        let (total_before, done_before) = counts(big_home.db().sqlite_path().expect("a SQLite home"));
        let (ran, secs) = drain(&big_home, o.threads);
        assert_eq!(ran as usize, o.jobs, "the pool ran every job");
        let rate = ran as f64 / secs;
        big_rates.push(rate);
        println!(
            "round {round} big-table:   {ran} jobs in {secs:.3}s = {rate:.0} jobs/s ({done_before} finished jobs, {total_before} rows)"
        );
    }
    let empty = median(&empty_rates);
    let big = median(&big_rates);
    println!("RESULT queue_overhead_empty_jobs_per_s {empty:.0}");
    println!("RESULT queue_overhead_big_jobs_per_s {big:.0}");
    println!("RESULT queue_overhead_big_over_empty {:.3}", big / empty);
    println!(
        "RESULT queue_overhead_rounds empty=[{}] big=[{}]",
        empty_rates
            .iter()
            .map(|r| format!("{r:.0}"))
            .collect::<Vec<_>>()
            .join(", "),
        big_rates
            .iter()
            .map(|r| format!("{r:.0}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
}
