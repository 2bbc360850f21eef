//! `queuectl list`: the jobs for people (a table, newest first, short ids, local times) and
//! for scripts (`--format` fields as tab-separated values, or `--json`).

use super::ids::short_form;
use super::output::{print_json, print_table, rough_duration, TimeStyle};
use anyhow::Result;
use clap::builder::{PossibleValue, TypedValueParser};
use clap::Args;
use queuectl::error::Error;
use queuectl::store::ListFilter;
use queuectl::time::now_ms;
use queuectl::{Job, Queue, State};
use std::io::Write;

/// Arguments of `queuectl list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only jobs in this state
    #[arg(long, short = 's', value_parser = StateName)]
    pub state: Option<String>,

    /// At most this many jobs: the newest N (the oldest N with --oldest-first)
    #[arg(long, short = 'n', value_name = "N")]
    pub limit: Option<u64>,

    /// Oldest first (enqueue order) instead of newest first
    #[arg(long)]
    pub oldest_first: bool,

    /// Only jobs whose command contains TEXT (case-sensitive; % and _ are plain characters)
    #[arg(long, value_name = "TEXT")]
    pub search: Option<String>,

    /// Print these fields, tab-separated, one job a line, no header (for scripts), e.g.
    /// id,state,attempts
    #[arg(long, value_name = "FIELDS", conflicts_with = "json")]
    pub format: Option<String>,

    /// Show times in UTC instead of local time (tables and --format)
    #[arg(long)]
    pub utc: bool,

    /// Print a JSON array of job objects (times in RFC 3339 UTC)
    #[arg(long)]
    pub json: bool,
}

/// The state names, offered by `--help` and shell completion. Parsing is left to
/// [`State`]'s own `FromStr`, so a wrong name gets the library's message (naming the valid
/// ones) and exit code 2 like every other refused value.
#[derive(Debug, Clone, Copy)]
pub struct StateName;

impl TypedValueParser for StateName {
    type Value = String;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> std::result::Result<String, clap::Error> {
        clap::builder::StringValueParser::new().parse_ref(cmd, arg, value)
    }

    fn possible_values(&self) -> Option<Box<dyn Iterator<Item = PossibleValue> + '_>> {
        Some(Box::new(
            ["pending", "processing", "completed", "failed", "dead"]
                .into_iter()
                .map(PossibleValue::new),
        ))
    }
}

/// The fields `--format` knows, with what each prints.
pub const FIELDS: &[(&str, &str)] = &[
    ("id", "the full id"),
    ("short_id", "the id as the table shows it"),
    ("state", "pending, processing, completed, failed or dead"),
    ("attempts", "runs so far / most runs allowed, e.g. 4/4"),
    ("runs", "runs so far"),
    ("max_runs", "most runs allowed (max_retries + 1)"),
    ("priority", "the priority"),
    ("kind", "the executor kind"),
    ("command", "the command"),
    ("created", "when it was enqueued"),
    ("updated", "its last change"),
    ("run_at", "not run before this time"),
    ("next", "run_at while pending or failed, the finish time once finished"),
    ("started", "the start of its latest run"),
    ("finished", "the end of its latest run"),
    ("exit_code", "the exit code of its latest run"),
    ("worker", "the worker that holds or last held it"),
    ("last_error", "the error of its latest failed run"),
    ("source", "cli, api or spool:NAME"),
];

/// Parses `--format`'s comma-separated field list; an unknown or empty field is refused.
pub fn parse_fields(text: &str) -> Result<Vec<&'static str>> {
    let known = || FIELDS.iter().map(|(name, _)| *name).collect::<Vec<_>>().join(", ");
    let mut fields = Vec::new();
    for part in text.split(',') {
        let part = part.trim();
        match FIELDS.iter().find(|(name, _)| *name == part) {
            Some((name, _)) => fields.push(*name),
            None if part.is_empty() => {
                return Err(Error::InvalidArgument(format!(
                    "--format has an empty field in `{text}` (known fields: {})",
                    known()
                ))
                .into())
            }
            None => {
                return Err(Error::InvalidArgument(format!(
                    "--format: unknown field `{part}` (known fields: {})",
                    known()
                ))
                .into())
            }
        }
    }
    Ok(fields)
}

/// Runs `queuectl list`.
pub fn list(queue: &Queue, args: &ListArgs) -> Result<()> {
    // Everything the user typed is checked before the query, so a refusal costs nothing.
    let state = args.state.as_deref().map(str::parse::<State>).transpose()?;
    let fields = args.format.as_deref().map(parse_fields).transpose()?;
    if args.search.as_deref() == Some("") {
        return Err(Error::InvalidArgument("--search needs some text to look for".into()).into());
    }
    let settings = queue.settings()?;
    let filter = ListFilter {
        state,
        search: args.search.clone(),
        limit: args.limit,
        oldest_first: args.oldest_first,
    };
    let jobs = queue.list_filtered(&filter)?;
    let style = TimeStyle { utc: args.utc };
    if args.json {
        let items = jobs
            .iter()
            .map(|j| j.to_json(settings.max_retries_for(&j.kind)))
            .collect();
        print_json(&serde_json::Value::Array(items));
    } else if let Some(fields) = fields {
        let stdout = std::io::stdout();
        let mut out = std::io::BufWriter::new(stdout.lock());
        for job in &jobs {
            let values = fields
                .iter()
                .map(|field| {
                    field_value(queue, job, field, settings.max_retries_for(&job.kind), style).map(|v| escape(&v))
                })
                .collect::<Result<Vec<_>>>()?;
            let _ = writeln!(out, "{}", values.join("\t"));
        }
    } else if jobs.is_empty() {
        eprintln!("no jobs");
    } else {
        let now = now_ms();
        let rows = jobs
            .iter()
            .map(|job| {
                Ok(vec![
                    short_form(queue, &job.id)?,
                    job.state.to_string(),
                    attempts(job, settings.max_retries_for(&job.kind)),
                    job.priority.to_string(),
                    style.table(job.created_at),
                    next(job, now, style),
                    job.command.clone(),
                ])
            })
            .collect::<Result<Vec<_>>>()?;
        print_table(
            &["ID", "STATE", "ATTEMPTS", "PRIO", "CREATED", "NEXT", "COMMAND"],
            &rows,
        );
    }
    Ok(())
}

/// `runs/max runs`: a job with max_retries 3 runs at most 4 times, so a dead one shows `4/4`.
pub fn attempts(job: &Job, default_max_retries: u32) -> String {
    format!(
        "{}/{}",
        job.attempts,
        u64::from(job.effective_max_retries(default_max_retries)) + 1
    )
}

/// The NEXT column: when something happens to the job next (or last happened, once finished).
/// `now` or `in 5m 3s` for a waiting job, `running` while processing, the finish time once
/// completed or dead.
pub fn next(job: &Job, now: i64, style: TimeStyle) -> String {
    match job.state {
        State::Pending | State::Failed if job.run_at <= now => "now".to_string(),
        State::Pending | State::Failed => format!("in {}", rough_duration(job.run_at - now)),
        State::Processing => "running".to_string(),
        State::Completed | State::Dead => job.finished_at.map(|t| style.table(t)).unwrap_or_else(|| "-".into()),
    }
}

/// One `--format` field of a job; absent values are empty.
fn field_value(queue: &Queue, job: &Job, field: &str, default_max_retries: u32, style: TimeStyle) -> Result<String> {
    let time = |t: Option<i64>| t.map(|t| style.rfc3339(t)).unwrap_or_default();
    let max_runs = u64::from(job.effective_max_retries(default_max_retries)) + 1;
    Ok(match field {
        "id" => job.id.clone(),
        "short_id" => short_form(queue, &job.id)?,
        "state" => job.state.to_string(),
        "attempts" => attempts(job, default_max_retries),
        "runs" => job.attempts.to_string(),
        "max_runs" => max_runs.to_string(),
        "priority" => job.priority.to_string(),
        "kind" => job.kind.clone(),
        "command" => job.command.clone(),
        "created" => style.rfc3339(job.created_at),
        "updated" => style.rfc3339(job.updated_at),
        "run_at" => style.rfc3339(job.run_at),
        "next" => match job.state {
            State::Pending | State::Failed => style.rfc3339(job.run_at),
            State::Processing => String::new(),
            State::Completed | State::Dead => time(job.finished_at),
        },
        "started" => time(job.started_at),
        "finished" => time(job.finished_at),
        "exit_code" => job.exit_code.map(|c| c.to_string()).unwrap_or_default(),
        "worker" => job.worker.clone().unwrap_or_default(),
        "last_error" => job.last_error.clone().unwrap_or_default(),
        "source" => job.source.to_string(),
        // parse_fields only lets known names through.
        other => return Err(Error::InvalidArgument(format!("--format: unknown field `{other}`")).into()),
    })
}

/// Keeps one job on one line with tab-separated fields: backslash, tab, newline and carriage
/// return are written as `\\`, `\t`, `\n`, `\r`.
pub fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_keeps_a_value_on_one_tab_free_line() {
        assert_eq!(escape("a\tb\nc\\d\re"), "a\\tb\\nc\\\\d\\re");
        assert_eq!(escape("plain"), "plain");
    }

    #[test]
    fn field_lists_refuse_unknown_and_empty_names() {
        assert_eq!(
            parse_fields("id, state,attempts").unwrap(),
            vec!["id", "state", "attempts"]
        );
        assert!(parse_fields("id,,state").is_err());
        assert!(parse_fields("ID").is_err());
    }
}
