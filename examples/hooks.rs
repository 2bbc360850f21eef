//! Life-cycle hooks: a Rust observer for library users, and the config file's `[hooks]` shell
//! commands for CLI users, side by side.
//!
//! Run: `cargo run --example hooks`

use queuectl::{Home, JobSpec, PoolBuilder, Queue, Shutdown, WorkerEvent};
use std::sync::{Arc, Mutex};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let temp = tempfile::tempdir()?;
    let home = Home::new(temp.path());
    let (queue, _) = Queue::init(&home)?;

    // A shell hook from the config file: it appends to a file in the home (its working directory).
    std::fs::write(
        home.config_path(),
        "max_retries = 0\n[hooks]\non_dead = 'echo \"$QUEUECTL_JOB_ID died: $QUEUECTL_JOB_ERROR\" >> dead.log'\n",
    )?;

    queue.enqueue(JobSpec::shell("true").with_id("fine"))?;
    queue.enqueue(JobSpec::shell("exit 3").with_id("broken"))?;

    // A Rust observer: called on the pool's coordinator thread, so keep it quick.
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    PoolBuilder::new(&home)
        .observer(move |event: &WorkerEvent| {
            let line = match event {
                WorkerEvent::JobStarted { job, .. } => format!("started {}", job.id),
                WorkerEvent::JobCompleted { job, .. } => format!("completed {}", job.id),
                WorkerEvent::JobDead { job, outcome, .. } => {
                    format!("dead {} ({})", job.id, outcome.error.clone().unwrap_or_default())
                }
                _ => return,
            };
            record.lock().unwrap().push(line);
        })
        .until_empty(true)
        .run(&Shutdown::new())?;

    for line in seen.lock().unwrap().iter() {
        println!("observer: {line}");
    }
    // The shell hook runs on its own thread; give it a moment to write (bounded wait).
    let log = home.root().join("dead.log");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !log.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    print!("hook: {}", std::fs::read_to_string(&log)?);
    Ok(())
}
