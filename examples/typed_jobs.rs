//! Typed jobs in an embedding program: argument types per job kind, a per-kind retry policy
//! in code, outcomes that say "never retry" or "retry later", a handler that honours
//! cancellation, a pool on its own thread, and waiting for the jobs.
//!
//! Run: `cargo run --example typed_jobs`

use queuectl::{ExecContext, Home, JobArgs, JobSpec, KindPolicy, Outcome, PoolBuilder, Queue, State};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The arguments of a `resize` job.
#[derive(Debug, Serialize, Deserialize)]
struct Resize {
    path: String,
    width: u32,
}

impl JobArgs for Resize {
    const KIND: &'static str = "resize";
}

/// The handler: gets the arguments already read from the payload.
fn resize(args: Resize, context: &ExecContext) -> Outcome {
    if args.width == 0 {
        // Input that can never work: straight to the dead-letter queue, no retries spent.
        return Outcome::discard(format!("{}: width 0", args.path));
    }
    if args.width > 4096 && context.attempt == 1 {
        // Say when to come back instead of the exponential backoff (the attempt counts).
        return Outcome::retry_after(Duration::from_millis(200), "too big right now");
    }
    // "Work" in steps, stopping early when the pool is stopped by force or the timeout passes.
    for _ in 0..5 {
        if context.wait_timeout(Duration::from_millis(10)) {
            return Outcome::failure(format!("cancelled: {:?}", context.cancel_reason()));
        }
    }
    Outcome::success().with_output(format!("{} resized to {}px", args.path, args.width), "")
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let temp = tempfile::tempdir()?;
    let home = Home::new(temp.path());
    // Only the database: settings come from code below, not from a config file.
    let queue = Queue::create(&home)?;

    let ids = queue.enqueue_batch([
        JobSpec::typed(&Resize {
            path: "cat.png".into(),
            width: 640,
        })?
        .with_id("cat"),
        JobSpec::typed(&Resize {
            path: "map.png".into(),
            width: 8000,
        })?
        .with_id("map"),
        JobSpec::typed(&Resize {
            path: "bad.png".into(),
            width: 0,
        })?
        .with_id("bad"),
        // A payload written by hand that does not fit `Resize`: the attempt fails naming the field.
        JobSpec::kind("resize", serde_json::json!({ "path": "odd.png", "width": "wide" }))
            .with_id("odd")
            .with_max_retries(0),
    ])?;

    let handle = PoolBuilder::new(&home)
        .without_shell()
        .threads(2)
        .shell_hooks(false)
        .job(resize)
        .kind_policy("resize", KindPolicy::new().max_retries(2).timeout_seconds(30))
        .spawn()?;
    let waited = queue.wait(&ids, Some(Duration::from_secs(30)))?;
    handle.stop();
    let report = handle.join()?;

    for (id, state) in &waited.jobs {
        let job = queue.get(id)?;
        let detail = job.stdout.clone().or(job.last_error.clone()).unwrap_or_default();
        println!("{id:4} {:9} attempts={} {detail}", state.as_str(), job.attempts);
    }
    println!(
        "pool: {} attempts, {} completed, {} retried, {} dead",
        report.attempts, report.completed, report.retried, report.dead
    );
    assert_eq!(queue.get("cat")?.state, State::Completed);
    assert_eq!(queue.get("map")?.attempts, 2);
    assert_eq!(queue.get("bad")?.state, State::Dead);
    assert!(queue
        .get("odd")?
        .last_error
        .unwrap_or_default()
        .contains("payload.width"));
    Ok(())
}
