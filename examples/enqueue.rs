//! Enqueue jobs from Rust: one at a time and as an all-or-nothing batch.
//!
//! Run: `cargo run --example enqueue -- [HOME]` (default: a temporary home).

use queuectl::{Home, JobSpec, Queue, Schedule};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let temp = tempfile::tempdir()?;
    let root = std::env::args()
        .nth(1)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| temp.path().to_path_buf());
    let home = Home::new(&root);
    let (queue, _) = Queue::init(&home)?;

    // One job with a few options.
    let id = queue.enqueue(
        JobSpec::shell("echo nightly backup")
            .with_max_retries(5)
            .with_priority(10)
            .with_timeout_seconds(600)
            .with_env("TARGET", "/srv/backup"),
    )?;
    println!("enqueued {id}");

    // A batch is one transaction: a bad job refuses the whole batch, nothing is written.
    let batch = [
        JobSpec::shell("echo first").with_id("report-1"),
        JobSpec::shell("echo later")
            .with_id("report-2")
            .with_schedule(Schedule::After(60.0)),
    ];
    for id in queue.enqueue_batch(batch)? {
        println!("enqueued {id}");
    }
    match queue.enqueue(JobSpec::shell("echo again").with_id("report-1")) {
        Err(queuectl::Error::DuplicateId { id, .. }) => println!("refused as expected: `{id}` already exists"),
        other => return Err(format!("expected a duplicate-id error, got {other:?}").into()),
    }
    let status = queue.status()?;
    println!(
        "pending: {} ({} due now, {} scheduled later)",
        status.counts.pending, status.due_now, status.scheduled
    );
    Ok(())
}
