//! `queuectl enqueue`.

use anyhow::{Context, Result};
use clap::Args;
use queuectl::error::Error;
use queuectl::job::{parse_jobs, JobSpec, Schedule, Source};
use queuectl::time::{parse_duration, parse_rfc3339};
use queuectl::Queue;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Arguments of `queuectl enqueue`.
#[derive(Debug, Args)]
pub struct EnqueueArgs {
    /// A job as JSON (object, array or NDJSON); `-` reads standard input
    #[arg(value_name = "JSON", conflicts_with_all = ["file", "command"])]
    pub json: Option<String>,

    /// Read the jobs from this file (JSON object, array or NDJSON)
    #[arg(long, short = 'f', value_name = "FILE", conflicts_with = "command")]
    pub file: Option<PathBuf>,

    /// The shell command of a single job given by flags
    #[arg(long, short = 'c')]
    pub command: Option<String>,

    /// The job's id (default: a generated UUID)
    #[arg(long, requires = "command")]
    pub id: Option<String>,

    /// Retries after the first run (default: config max_retries)
    #[arg(long, requires = "command", value_name = "N")]
    pub max_retries: Option<u32>,

    /// Higher runs first (default 0)
    #[arg(long, requires = "command", allow_negative_numbers = true, value_name = "N")]
    pub priority: Option<i64>,

    /// Run no earlier than this long from now, e.g. 30s, 5m, 1h
    #[arg(long, requires = "command", conflicts_with = "run_at", value_name = "DURATION")]
    pub delay: Option<String>,

    /// Run no earlier than this time (RFC 3339, e.g. 2025-11-10T10:30:00Z)
    #[arg(long, requires = "command", value_name = "TIME")]
    pub run_at: Option<String>,

    /// Kill the job after this long, e.g. 60s (default: config job_timeout_seconds)
    #[arg(long, requires = "command", value_name = "DURATION")]
    pub timeout: Option<String>,

    /// Print the added jobs as JSON instead of one id a line
    #[arg(long = "json")]
    pub json_output: bool,

    /// Write the jobs as a file into the spool directory instead of the database (never waits
    /// on the database); a worker or `spool watch` adds them
    #[arg(long)]
    pub spool: bool,
}

/// The jobs' text from a JSON argument, `-` (standard input) or a file; `None` if none given.
pub fn read_jobs_text(json: Option<&str>, file: Option<&Path>) -> Result<Option<String>> {
    if let Some(path) = file {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        return Ok(Some(text));
    }
    match json {
        Some("-") => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("reading jobs from standard input")?;
            Ok(Some(text))
        }
        Some(text) => Ok(Some(text.to_string())),
        None => Ok(None),
    }
}

/// Builds the specs the arguments describe.
pub fn specs_from_args(args: &EnqueueArgs) -> Result<Vec<(Option<String>, JobSpec)>> {
    if let Some(text) = read_jobs_text(args.json.as_deref(), args.file.as_deref())? {
        return Ok(parse_jobs(&text).map_err(Error::InvalidJob)?);
    }
    let Some(command) = &args.command else {
        return Err(Error::InvalidArgument(
            "nothing to enqueue: give a job as JSON, `-` for standard input, --file FILE or --command CMD".into(),
        )
        .into());
    };
    let mut spec = JobSpec::shell(command.clone());
    spec.id = args.id.clone();
    spec.max_retries = args.max_retries;
    spec.priority = args.priority.unwrap_or(0);
    if let Some(delay) = &args.delay {
        let delay = parse_duration(delay).map_err(|e| Error::InvalidArgument(format!("--delay: {e}")))?;
        spec.schedule = Schedule::After(delay.as_secs_f64());
    }
    if let Some(at) = &args.run_at {
        let at = parse_rfc3339(at).map_err(|e| Error::InvalidArgument(format!("--run-at `{at}` {e}")))?;
        spec.schedule = Schedule::At(at);
    }
    if let Some(timeout) = &args.timeout {
        let duration = parse_duration(timeout).map_err(|e| Error::InvalidArgument(format!("--timeout: {e}")))?;
        let seconds = duration.as_secs_f64().ceil() as u64;
        spec.timeout_seconds = Some(seconds);
    }
    spec.validate().map_err(Error::InvalidJob)?;
    Ok(vec![(None, spec)])
}

/// Runs `queuectl enqueue`.
pub fn run(queue: &mut Queue, args: &EnqueueArgs) -> Result<()> {
    let specs = specs_from_args(args)?;
    let ids = if args.spool {
        let specs: Vec<JobSpec> = specs.into_iter().map(|(_, spec)| spec).collect();
        queuectl::spool::submit_to_dir(&queue.settings()?.spool_dir, &specs)?
    } else {
        queue.enqueue_batch(specs, Source::Cli)?
    };
    print_ids(&ids, args.json_output);
    Ok(())
}

/// Prints the ids of added (or spooled) jobs: one a line, or as JSON.
pub fn print_ids(ids: &[String], json: bool) {
    if json {
        let items: Vec<serde_json::Value> = ids.iter().map(|id| serde_json::json!({ "id": id })).collect();
        super::output::print_json(&serde_json::Value::Array(items));
    } else {
        let mut text = String::with_capacity(ids.len() * 40);
        for id in ids {
            text.push_str(id);
            text.push('\n');
        }
        print!("{text}");
    }
}
