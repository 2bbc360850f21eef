//! `queuectl wait`: block until jobs are completed or dead (scripts and tests use it instead of
//! sleeping). The exit code says how they ended: 0 all completed, 3 some dead, 1 timed out.

use super::{jobs, Verdict, EXIT_JOBS_DEAD};
use anyhow::Result;
use clap::Args;
use queuectl::error::Error;
use queuectl::time::parse_duration;
use queuectl::Queue;

/// Arguments of `queuectl wait`.
#[derive(Debug, Args)]
pub struct WaitArgs {
    /// The jobs to wait for, by id or unique id prefix (default: every job in the queue)
    pub ids: Vec<String>,

    /// Give up after this long (exit code 1), e.g. 60s; default: wait forever. A job that is
    /// dead when the wait ends makes the exit code 3
    #[arg(long, value_name = "DURATION")]
    pub timeout: Option<String>,

    /// Print nothing on success
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

/// Runs `queuectl wait`: resolves the ids, then [`Queue::wait`] does the waiting.
pub fn run(queue: &Queue, args: &WaitArgs) -> Result<()> {
    let timeout = match &args.timeout {
        Some(t) => Some(parse_duration(t).map_err(|e| Error::InvalidArgument(format!("--timeout: {e}")))?),
        None => None,
    };
    // Unknown ids are a mistake to report now, not a wait that can never end; prefixes are
    // resolved once, so the wait follows the jobs they named even if a later job shares them.
    let ids = super::ids::resolve_all(queue, &args.ids)?;
    let report = queue.wait(&ids, timeout)?;
    if report.timed_out {
        let waiting = match &report.counts {
            Some(_) => format!("{} jobs not finished", report.unfinished()),
            None => {
                let open: Vec<String> = report
                    .jobs
                    .iter()
                    .filter(|(_, s)| !s.is_final())
                    .map(|(id, s)| format!("{id} ({s})"))
                    .collect();
                format!("still waiting for {}", open.join(", "))
            }
        };
        anyhow::bail!("timed out after {}: {waiting}", args.timeout.as_deref().unwrap_or(""));
    }
    if !args.quiet {
        if ids.is_empty() {
            println!(
                "all jobs finished: {} completed, {} dead",
                report.completed(),
                report.dead()
            );
        } else {
            for (id, state) in &report.jobs {
                println!("{id} {state}");
            }
        }
    }
    verdict(
        report.dead(),
        if ids.is_empty() { "in the queue" } else { "waited for" },
    )
}

/// Success when no job is dead; otherwise exit code 3, so a script can tell "done" from "done,
/// but something died" without parsing the output.
fn verdict(dead: u64, which: &str) -> Result<()> {
    if dead == 0 {
        return Ok(());
    }
    Err(Verdict {
        code: EXIT_JOBS_DEAD,
        message: format!(
            "{} {which} {} dead (in the DLQ)",
            jobs(dead),
            if dead == 1 { "is" } else { "are" }
        ),
    }
    .into())
}
