//! `queuectl spool`: ingest once, watch, submit a file, show what is waiting, list and retry
//! rejected files.

use super::enqueue::{print_ids, read_jobs_text};
use super::output::{cut, print_json, print_table};
use anyhow::{anyhow, Context, Result};
use clap::{Args, Subcommand};
use queuectl::error::Error;
use queuectl::job::{parse_jobs, JobSpec};
use queuectl::spool::{self, escape_text, SpoolEvent};
use queuectl::time::format_ms;
use queuectl::{Home, Shutdown};
use std::path::PathBuf;

/// `queuectl spool` subcommands.
#[derive(Debug, Subcommand)]
pub enum SpoolCommand {
    /// Ingest every file in spool/incoming once and exit (for cron)
    #[command(
        after_help = "Example:\n  queuectl spool ingest\n\nExit code 1 if any file was rejected (moved to \
                            spool/failed), else 0. If another process is ingesting the spool, this one \
                            does nothing (exit code 0)."
    )]
    Ingest,

    /// Ingest files as they arrive, without running jobs, until Ctrl-C or SIGTERM
    #[command(
        after_help = "Example:\n  queuectl spool watch\n\n`worker start` ingests the spool too \
                            (unless --no-spool); only one process ingests at a time, the others wait."
    )]
    Watch,

    /// Write jobs into the spool as a file (never waits on the database)
    #[command(
        after_help = "Examples:\n  queuectl spool submit '{\"command\":\"make backup\"}'\n  \
                            generate-jobs | queuectl spool submit -\n  queuectl spool submit --file jobs.ndjson\n\n\
                            Prints the jobs' ids; an ingester adds them."
    )]
    Submit(SubmitArgs),

    /// Show every file in spool/incoming and what becomes of it (ready, waiting and why, ...)
    #[command(after_help = "Example:\n  queuectl spool status --json")]
    Status {
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
    },

    /// List rejected files (in spool/failed) with the reason for each
    #[command(after_help = "Example:\n  queuectl spool failed --json")]
    Failed {
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
    },

    /// Move a rejected file back into spool/incoming to be read again (fix it first)
    #[command(after_help = "Example:\n  queuectl spool retry nightly.json")]
    Retry {
        /// The file's name as `spool failed` shows it
        name: String,
    },
}

/// Arguments of `queuectl spool submit`.
#[derive(Debug, Args)]
pub struct SubmitArgs {
    /// Jobs as JSON (object, array or NDJSON); `-` reads standard input
    #[arg(value_name = "JSON", conflicts_with = "file")]
    pub json: Option<String>,

    /// Read the jobs from this file (JSON object, array or NDJSON)
    #[arg(long, short = 'f', value_name = "FILE")]
    pub file: Option<PathBuf>,

    /// Print the ids as JSON instead of one a line
    #[arg(long = "json")]
    pub json_output: bool,
}

/// Prints one event: problems to standard error, the rest to standard output.
fn print_event(event: &SpoolEvent) {
    match event {
        SpoolEvent::Warning(_) | SpoolEvent::Insecure { .. } | SpoolEvent::LockHeld { .. } => eprintln!("{event}"),
        _ => println!("{event}"),
    }
}

fn plural(n: usize, word: &str) -> String {
    format!("{n} {word}{}", if n == 1 { "" } else { "s" })
}

/// Runs `queuectl spool ...`.
pub fn run(home: &Home, command: &SpoolCommand) -> Result<()> {
    match command {
        SpoolCommand::Ingest => {
            let report = spool::ingest_once(home, &print_event)?;
            if report.lock_held {
                println!("skipped: another process is ingesting the spool");
                return Ok(());
            }
            let mut summary = format!(
                "ingested {} from {}",
                plural(report.jobs_added, "job"),
                plural(report.files_ingested, "file")
            );
            if report.files_rejected > 0 {
                summary.push_str(&format!(
                    ", rejected {} (see `queuectl spool failed`)",
                    plural(report.files_rejected, "file")
                ));
            }
            if report.files_left > 0 {
                summary.push_str(&format!(
                    ", left {} still being written",
                    plural(report.files_left, "file")
                ));
            }
            if report.files_ignored > 0 {
                summary.push_str(&format!(
                    ", ignored {} not named *.json or *.ndjson (see `queuectl spool status`)",
                    plural(report.files_ignored, "file")
                ));
            }
            println!("{summary}");
            if report.files_rejected > 0 {
                // Exit code 1 so that cron mail or a script notices; the files are in failed/.
                return Err(anyhow!(
                    "rejected {} (see `queuectl spool failed`)",
                    plural(report.files_rejected, "file")
                ));
            }
            Ok(())
        }
        SpoolCommand::Status { json } => {
            print_status(&spool::status(home)?, *json);
            Ok(())
        }
        SpoolCommand::Watch => {
            let shutdown = Shutdown::new();
            let handler_shutdown = shutdown.clone();
            ctrlc::set_handler(move || handler_shutdown.request_stop()).context("installing the signal handler")?;
            spool::watch(home, &shutdown, &print_event)?;
            Ok(())
        }
        SpoolCommand::Submit(args) => {
            let Some(text) = read_jobs_text(args.json.as_deref(), args.file.as_deref())? else {
                return Err(Error::InvalidArgument(
                    "nothing to submit: give jobs as JSON, `-` for standard input, or --file FILE".into(),
                )
                .into());
            };
            let specs: Vec<JobSpec> = parse_jobs(&text)
                .map_err(Error::InvalidJob)?
                .into_iter()
                .map(|(_, s)| s)
                .collect();
            let ids = spool::submit(home, &specs)?;
            print_ids(&ids, args.json_output);
            Ok(())
        }
        SpoolCommand::Failed { json } => {
            let files = spool::list_failed(home)?;
            if *json {
                let items: Vec<serde_json::Value> = files
                    .iter()
                    .map(|f| {
                        serde_json::json!({
                            "name": f.name,
                            "path": f.path,
                            "reason": f.reason,
                            "details": f.details,
                            "size": f.size,
                            "rejected_at": f.rejected_at.map(format_ms),
                        })
                    })
                    .collect();
                print_json(&serde_json::Value::Array(items));
            } else if files.is_empty() {
                println!("no rejected spool files");
            } else {
                let rows: Vec<Vec<String>> = files
                    .iter()
                    .map(|f| {
                        vec![
                            cut(&escape_text(&f.name), 60),
                            f.rejected_at.map(format_ms).unwrap_or_else(|| "-".into()),
                            escape_text(&f.reason).into_owned(),
                        ]
                    })
                    .collect();
                print_table(&["NAME", "REJECTED", "REASON"], &rows);
            }
            Ok(())
        }
        SpoolCommand::Retry { name } => {
            let path = spool::retry_failed(home, name)?;
            println!(
                "moved {} back to {}",
                escape_text(name),
                escape_text(&path.to_string_lossy())
            );
            Ok(())
        }
    }
}

/// Prints `spool status`: the directory, the ingester, then one row per name in incoming/.
fn print_status(status: &spool::SpoolStatus, json: bool) {
    if json {
        let files: Vec<serde_json::Value> = status
            .files
            .iter()
            .map(|f| {
                serde_json::json!({
                    "name": f.name,
                    "state": f.state.as_str(),
                    "reason": f.reason,
                    "size": f.size,
                    "unchanged_ms": f.unchanged_ms,
                })
            })
            .collect();
        print_json(&serde_json::json!({
            "dir": status.dir,
            "ingester_pid": status.ingester_pid,
            "failed": status.failed,
            "files": files,
        }));
        return;
    }
    println!("spool: {}", escape_text(&status.dir.to_string_lossy()));
    match status.ingester_pid {
        Some(pid) => println!("ingester: PID {pid}"),
        None => println!(
            "ingester: none running (start `queuectl worker start` or `queuectl spool watch`, or run `queuectl spool ingest`)"
        ),
    }
    if status.failed > 0 {
        println!(
            "failed: {} (see `queuectl spool failed`)",
            plural(status.failed, "file")
        );
    }
    if status.files.is_empty() {
        println!("incoming: empty");
        return;
    }
    let rows: Vec<Vec<String>> = status
        .files
        .iter()
        .map(|f| {
            vec![
                cut(&f.name, 60),
                f.state.as_str().to_string(),
                f.size.map(|s| s.to_string()).unwrap_or_else(|| "-".into()),
                f.unchanged_ms
                    .map(|ms| format!("{:.1}s", ms as f64 / 1000.0))
                    .unwrap_or_else(|| "-".into()),
                f.reason.clone(),
            ]
        })
        .collect();
    print_table(&["NAME", "STATE", "SIZE", "UNCHANGED", "REASON"], &rows);
}
