//! Pickup latency through the library (issue 9, "Speed"): an application that holds a
//! [`Queue`] open enqueues one job; an idle 1-thread pool in the same process, on its own
//! connections, runs it. Measured: from the `enqueue` call to the executor starting the job,
//! and from the `enqueue` call's return (the commit) to that start. On PostgreSQL the pool is
//! woken by the `NOTIFY` the commit sends (through the server, like a worker on another host);
//! on SQLite by its `data_version` poll. Unlike the CLI measurement in `bench/measure*.py`,
//! no process starts and no connection is made per job.
//!
//! Run: `cargo bench --bench pickup` (harness = false; not a timed test).
//! Options (after `--`): `--samples N` (default 200), `--db postgres://USER@HOST/DB` (a scratch
//! schema, dropped at the end), `--dir DIR` (where the temporary home goes).
//!
//! Each sample waits a random 10–30 ms first, so the pool is idle when the job arrives.

use queuectl::executor::{ExecContext, Outcome};
use queuectl::job::{Job, JobSpec};
use queuectl::worker::PoolBuilder;
use queuectl::{Home, Queue, Shutdown};
use serde_json::json;
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, Instant};

#[cfg(feature = "postgres")]
#[path = "pg_scratch.rs"]
mod pg_scratch;

struct Options {
    samples: usize,
    db: Option<String>,
    dir: Option<PathBuf>,
}

fn options() -> Options {
    let mut o = Options {
        samples: 200,
        db: None,
        dir: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| panic!("{arg} needs a value"));
        match arg.as_str() {
            "--samples" => o.samples = value().parse().expect("--samples N"),
            "--db" => o.db = Some(value()),
            "--dir" => o.dir = Some(PathBuf::from(value())),
            _ => {} // `--bench` from cargo
        }
    }
    o
}

/// Nearest-rank percentile of microsecond values.
fn pct(values: &[f64], p: f64) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let k = ((p / 100.0 * v.len() as f64).ceil() as usize).max(1);
    v[k - 1]
}

fn main() {
    let o = options();
    let mut builder = tempfile::Builder::new();
    builder.prefix("queuectl-bench-pickup-");
    let dir = match &o.dir {
        Some(parent) => builder.tempdir_in(parent),
        None => builder.tempdir(),
    }
    .expect("temporary home");
    let home = Home::new(dir.path());
    #[cfg(feature = "postgres")]
    let scratch = o.db.as_deref().map(|db| {
        let (url, prefix) = pg_scratch::parse_db(db, "pickup");
        pg_scratch::Scratch::new(&url, format!("{prefix}_q"))
    });
    #[cfg(feature = "postgres")]
    let home = match &scratch {
        Some(scratch) => home.with_db(scratch.location.clone()),
        None => home,
    };
    #[cfg(not(feature = "postgres"))]
    assert!(o.db.is_none(), "built without the postgres feature");
    let backend = if home.db().is_postgres() {
        "PostgreSQL"
    } else {
        "SQLite"
    };
    eprintln!("pickup ({backend}): {} samples", o.samples);
    Queue::init(&home).expect("init");

    let (tx, rx) = mpsc::channel::<(String, Instant)>();
    let shutdown = Shutdown::new();
    let pool = {
        let home = home.clone();
        let shutdown = shutdown.clone();
        std::thread::spawn(move || {
            PoolBuilder::new(&home)
                .threads(1)
                .without_shell()
                .executor("ping", move |job: &Job, _ctx: &ExecContext| {
                    let _ = tx.send((job.id.clone(), Instant::now()));
                    Outcome::success()
                })
                .shell_hooks(false)
                .run(&shutdown)
                .expect("pool run")
        })
    };

    let queue = Queue::open(&home).expect("open");
    let deadline = Instant::now() + Duration::from_secs(15);
    while queue.status().expect("status").workers.is_empty() {
        assert!(Instant::now() < deadline, "the pool did not register");
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(300));

    let (mut total, mut after, mut call) = (Vec::new(), Vec::new(), Vec::new());
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in 0..o.samples {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(Duration::from_micros(10_000 + seed % 20_000));
        let id = format!("p{i}");
        let t0 = Instant::now();
        queue
            .enqueue(JobSpec::kind("ping", json!({})).with_id(id.clone()))
            .expect("enqueue");
        let t1 = Instant::now();
        let (ran, at) = rx.recv_timeout(Duration::from_secs(10)).expect("the job ran");
        assert_eq!(ran, id);
        let us = |d: Duration| d.as_secs_f64() * 1e6;
        total.push(us(at.duration_since(t0)));
        after.push(at.checked_duration_since(t1).map_or(0.0, us));
        call.push(us(t1 - t0));
    }
    shutdown.request_stop();
    pool.join().expect("pool thread");
    drop(queue);

    let ms = |v: &[f64], p: f64| pct(v, p) / 1000.0;
    println!(
        "enqueue call -> job start: median {:.2} ms, p90 {:.2} ms, p99 {:.2} ms",
        ms(&total, 50.0),
        ms(&total, 90.0),
        ms(&total, 99.0)
    );
    println!(
        "enqueue returned -> job start: median {:.2} ms, p99 {:.2} ms; the enqueue call: median {:.2} ms, p99 {:.2} ms",
        ms(&after, 50.0),
        ms(&after, 99.0),
        ms(&call, 50.0),
        ms(&call, 99.0)
    );
    println!("RESULT pickup_backend {backend}");
    println!("RESULT pickup_total_median_ms {:.2}", ms(&total, 50.0));
    println!("RESULT pickup_total_p99_ms {:.2}", ms(&total, 99.0));
    println!("RESULT pickup_after_commit_median_ms {:.2}", ms(&after, 50.0));
    println!("RESULT pickup_after_commit_p99_ms {:.2}", ms(&after, 99.0));
    println!("RESULT pickup_enqueue_call_median_ms {:.2}", ms(&call, 50.0));
    println!("RESULT pickup_enqueue_call_p99_ms {:.2}", ms(&call, 99.0));
}
