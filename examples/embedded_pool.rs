//! An embedded worker pool: a custom job kind (a Rust closure) next to shell jobs, with a
//! shutdown handle the program controls.
//!
//! Run: `cargo run --example embedded_pool`

use queuectl::{ExecContext, Home, Job, JobSpec, Outcome, PoolBuilder, Queue, Shutdown, State, WorkerEvent};
use serde_json::json;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let temp = tempfile::tempdir()?;
    let home = Home::new(temp.path());
    let (queue, _) = Queue::init(&home)?;
    queue.config_set("backoff_base", "1")?; // retry after 1 s, to keep the example short

    queue.enqueue(JobSpec::shell("echo shell job says hi").with_id("shell-1"))?;
    queue.enqueue(JobSpec::kind("square", json!({ "n": 12 })).with_id("square-12"))?;
    queue.enqueue(
        JobSpec::kind("square", json!({ "n": "twelve" }))
            .with_id("square-bad")
            .with_max_retries(1),
    )?;

    // The executor for `square` jobs: any `Fn(&Job, &ExecContext) -> Outcome + Send + Sync`.
    let square = |job: &Job, _context: &ExecContext| match job.payload.as_ref().and_then(|p| p["n"].as_i64()) {
        Some(n) => Outcome::success().with_output(format!("{}", n * n), ""),
        None => Outcome::failure("payload field `n` must be an integer"),
    };

    let shutdown = Shutdown::new(); // call shutdown.request_stop() from anywhere to stop gracefully
    let report = PoolBuilder::new(&home)
        .threads(2)
        .executor("square", square)
        .observer(|event: &WorkerEvent| match event {
            WorkerEvent::JobCompleted { job, .. } => println!("completed {}", job.id),
            WorkerEvent::JobRetrying { job, delay, .. } => println!("{} failed, retrying in {delay:?}", job.id),
            WorkerEvent::JobDead { job, outcome, .. } => println!("{} is dead: {:?}", job.id, outcome.error),
            _ => {}
        })
        .until_empty(true)
        .run(&shutdown)?;

    println!(
        "{} attempts: {} completed, {} retried, {} dead",
        report.attempts, report.completed, report.retried, report.dead
    );
    println!(
        "square-12 printed {:?}",
        queue.get("square-12")?.stdout.unwrap_or_default()
    );
    assert_eq!(queue.get("shell-1")?.state, State::Completed);
    assert_eq!(queue.get("square-bad")?.state, State::Dead);
    Ok(())
}
