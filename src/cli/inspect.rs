//! `queuectl show` and `logs` (one job, by id or unique id prefix), and the job JSON every
//! command prints.

use super::ids::resolve;
use super::output::print_json;
use anyhow::Result;
use clap::Args;
use queuectl::time::format_ms;
use queuectl::{Job, Queue};
use std::io::Write;

/// Arguments of `queuectl show`.
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The job's id, or a unique prefix of it (at least 4 characters)
    pub id: String,

    /// Print the job and its history as JSON
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `queuectl logs`.
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// The job's id, or a unique prefix of it (at least 4 characters)
    pub id: String,
}

/// Prints the jobs just added, whole, as a JSON array (`enqueue --json`): the same objects
/// `show --json` and `list --json` print, so a script gets the resolved id, run_at and
/// max_retries without a second command.
pub fn print_added_jobs(queue: &Queue, ids: &[String]) -> Result<()> {
    let settings = queue.settings()?;
    let items = ids
        .iter()
        .map(|id| Ok(job_json(&queue.get(id)?, &settings)))
        .collect::<Result<Vec<_>>>()?;
    print_json(&serde_json::Value::Array(items));
    Ok(())
}

/// One job as the JSON object every command prints.
/// `max_retries` is the job's own, else its kind's, else the setting.
pub fn job_json(job: &Job, settings: &queuectl::Settings) -> serde_json::Value {
    job.to_json(settings.max_retries_for(&job.kind))
}

/// Runs `queuectl show`.
pub fn show(queue: &Queue, args: &ShowArgs) -> Result<()> {
    let settings = queue.settings()?;
    let job = queue.get(&resolve(queue, &args.id)?)?;
    let history = queue.history(&job.id)?;
    if args.json {
        let mut value = job.to_json(settings.max_retries_for(&job.kind));
        value["history"] = serde_json::Value::Array(history.iter().map(|a| a.to_json()).collect());
        print_json(&value);
        return Ok(());
    }
    let opt = |t: Option<i64>| t.map(format_ms).unwrap_or_else(|| "-".into());
    let max_retries = job.effective_max_retries(settings.max_retries_for(&job.kind));
    let mut out = String::new();
    let mut field = |name: &str, value: String| out.push_str(&format!("{:<16}{}\n", format!("{name}:"), value));
    field("id", job.id.clone());
    field("state", job.state.to_string());
    field("command", job.command.clone());
    field("kind", job.kind.clone());
    if let Some(payload) = &job.payload {
        field("payload", payload.to_string());
    }
    field(
        "attempts",
        format!(
            "{} (max_retries {}{}: at most {} runs)",
            job.attempts,
            max_retries,
            if job.max_retries.is_some() {
                ", the job's own"
            } else {
                ", from config"
            },
            max_retries + 1
        ),
    );
    field("priority", job.priority.to_string());
    field("run_at", format_ms(job.run_at));
    field(
        "timeout",
        job.timeout_seconds
            .map(|t| format!("{t}s"))
            .unwrap_or_else(|| "-".into()),
    );
    if let Some(cwd) = &job.cwd {
        field("cwd", cwd.clone());
    }
    for (k, v) in &job.env {
        field("env", format!("{k}={v}"));
    }
    field("source", job.source.to_string());
    field("created_at", format_ms(job.created_at));
    field("updated_at", format_ms(job.updated_at));
    field("started_at", opt(job.started_at));
    field("finished_at", opt(job.finished_at));
    field("worker", job.worker.clone().unwrap_or_else(|| "-".into()));
    field(
        "exit_code",
        job.exit_code.map(|c| c.to_string()).unwrap_or_else(|| "-".into()),
    );
    field("last_error", job.last_error.clone().unwrap_or_else(|| "-".into()));
    if history.is_empty() {
        out.push_str("history:        no attempts yet\n");
    } else {
        out.push_str("history:\n");
        for a in &history {
            let took = match a.started_at {
                Some(s) => format!(
                    " in {}",
                    queuectl::time::format_duration(
                        std::time::Duration::from_millis((a.finished_at - s).max(0) as u64)
                    )
                ),
                None => String::new(),
            };
            out.push_str(&format!(
                "  #{:<3} {:<11} {}{}{}{}\n",
                a.attempt,
                a.outcome,
                format_ms(a.finished_at),
                took,
                a.error.as_ref().map(|e| format!(": {e}")).unwrap_or_default(),
                a.worker.as_ref().map(|w| format!(" [{w}]")).unwrap_or_default(),
            ));
        }
    }
    for (name, text) in [("stdout", &job.stdout), ("stderr", &job.stderr)] {
        if let Some(text) = text.as_ref().filter(|t| !t.is_empty()) {
            out.push_str(&format!("{name}:\n"));
            for line in text.lines() {
                out.push_str("  | ");
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    print!("{out}");
    Ok(())
}

/// Runs `queuectl logs`.
pub fn logs(queue: &Queue, args: &LogsArgs) -> Result<()> {
    let job = queue.get(&resolve(queue, &args.id)?)?;
    if job.stdout.is_none() && job.stderr.is_none() {
        eprintln!("job `{}` has no captured output yet (state {})", job.id, job.state);
    }
    if let Some(text) = &job.stdout {
        let _ = std::io::stdout().write_all(text.as_bytes());
    }
    if let Some(text) = &job.stderr {
        let _ = std::io::stderr().write_all(text.as_bytes());
    }
    Ok(())
}
