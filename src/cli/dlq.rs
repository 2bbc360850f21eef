//! `queuectl dlq`.

use anyhow::Result;
use clap::Subcommand;
use queuectl::error::Error;
use queuectl::{Queue, State};

/// `queuectl dlq` subcommands.
#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// List the jobs in the dead-letter queue
    #[command(after_help = "Example:\n  queuectl dlq list --json")]
    List {
        /// Print a JSON array of job objects
        #[arg(long)]
        json: bool,
        /// At most this many jobs (the ones that died first)
        #[arg(long, short = 'n', value_name = "N")]
        limit: Option<u64>,
        /// Show times in UTC instead of local time
        #[arg(long)]
        utc: bool,
    },
    /// Put dead jobs back to pending with attempts reset to 0 (history is kept)
    #[command(after_help = "Examples:\n  queuectl dlq retry job1 job2\n  queuectl dlq retry --all")]
    Retry {
        /// The ids of dead jobs, or unique prefixes of them (at least 4 characters)
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        ids: Vec<String>,
        /// Retry every dead job
        #[arg(long)]
        all: bool,
    },
}

/// Runs `queuectl dlq ...`.
pub fn run(queue: &mut Queue, command: &DlqCommand) -> Result<()> {
    match command {
        DlqCommand::List { json, limit, utc } => {
            let settings = queue.settings()?;
            let jobs = queue.list(Some(State::Dead), *limit)?;
            if !json && jobs.is_empty() {
                eprintln!("the dead-letter queue is empty");
                return Ok(());
            }
            if *json {
                let items = jobs.iter().map(|j| super::inspect::job_json(j, &settings)).collect();
                super::output::print_json(&serde_json::Value::Array(items));
            } else {
                let style = super::output::TimeStyle { utc: *utc };
                let rows = jobs
                    .iter()
                    .map(|j| {
                        Ok(vec![
                            super::ids::short_form(queue, &j.id)?,
                            super::list::attempts(j, settings.max_retries_for(&j.kind)),
                            j.finished_at.map(|t| style.table(t)).unwrap_or_else(|| "-".into()),
                            j.last_error.clone().unwrap_or_default(),
                            j.command.clone(),
                        ])
                    })
                    .collect::<Result<Vec<_>>>()?;
                super::output::print_table(&["ID", "ATTEMPTS", "DIED", "LAST ERROR", "COMMAND"], &rows);
            }
        }
        DlqCommand::Retry { ids, all } => {
            if *all {
                let n = queue.dlq_retry_all()?;
                println!(
                    "moved {n} job{} from the DLQ back to pending",
                    if n == 1 { "" } else { "s" }
                );
            } else {
                let ids = ids
                    .iter()
                    .map(|id| super::ids::resolve_or_keep(queue, id))
                    .collect::<Result<Vec<_>>>()?;
                let mut unique = ids.clone();
                unique.sort();
                unique.dedup();
                if unique.len() != ids.len() {
                    return Err(Error::InvalidArgument("an id is given more than once".into()).into());
                }
                queue.dlq_retry(&ids)?;
                for id in &ids {
                    println!("{id}: moved from the DLQ back to pending");
                }
            }
        }
    }
    Ok(())
}
