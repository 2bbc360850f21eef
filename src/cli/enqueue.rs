//! `queuectl enqueue`.

use anyhow::{Context, Result};
use clap::Args;
use queuectl::error::Error;
use queuectl::job::{parse_jobs_with, GivenFields, JobSpec, Schedule, Source};
use queuectl::time::{parse_duration, parse_rfc3339};
use queuectl::InvalidJob;
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

    /// The job's id (default: a generated UUID); with JSON input, only for a single job
    #[arg(long)]
    pub id: Option<String>,

    /// Retries after the first run (default: config max_retries); applies to every job
    #[arg(long, value_name = "N")]
    pub max_retries: Option<u32>,

    /// Higher runs first (default 0); applies to every job
    #[arg(long, allow_negative_numbers = true, value_name = "N")]
    pub priority: Option<i64>,

    /// Run no earlier than this long from now, e.g. 30s, 5m, 1h; applies to every job
    #[arg(long, conflicts_with = "run_at", value_name = "DURATION")]
    pub delay: Option<String>,

    /// Run no earlier than this time (RFC 3339, e.g. 2025-11-10T10:30:00Z); applies to every job
    #[arg(long, value_name = "TIME")]
    pub run_at: Option<String>,

    /// Kill the job after this long, e.g. 60s (default: config job_timeout_seconds); applies to
    /// every job
    #[arg(long, value_name = "DURATION")]
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
/// Input that is not UTF-8 is the caller's mistake (exit code 2), named with its byte offset.
pub fn read_jobs_text(json: Option<&str>, file: Option<&Path>) -> Result<Option<String>> {
    if let Some(path) = file {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        return Ok(Some(utf8(bytes, &format!("file {}", path.display()))?));
    }
    match json {
        Some("-") => {
            let mut bytes = Vec::new();
            std::io::stdin()
                .read_to_end(&mut bytes)
                .context("reading jobs from standard input")?;
            Ok(Some(utf8(bytes, "standard input")?))
        }
        Some(text) => Ok(Some(text.to_string())),
        None => Ok(None),
    }
}

/// The bytes as text, or an error naming the first byte that is not UTF-8.
fn utf8(bytes: Vec<u8>, what: &str) -> Result<String, Error> {
    String::from_utf8(bytes).map_err(|e| {
        let offset = e.utf8_error().valid_up_to();
        let byte = e.as_bytes()[offset];
        Error::InvalidArgument(format!(
            "{what} is not valid UTF-8: byte 0x{byte:02x} at byte offset {offset}"
        ))
    })
}

/// The flags that set a job field, parsed once and applied to every job of the input.
///
/// A job that gives the same field itself is refused rather than one of the two silently
/// winning: the flag and the JSON disagree, and only the caller knows which was meant.
#[derive(Debug, Default)]
struct FieldFlags {
    id: Option<String>,
    max_retries: Option<u32>,
    priority: Option<i64>,
    schedule: Option<(&'static str, Schedule)>,
    timeout_seconds: Option<u64>,
}

impl FieldFlags {
    fn from_args(args: &EnqueueArgs) -> Result<FieldFlags> {
        let mut flags = FieldFlags {
            id: args.id.clone(),
            max_retries: args.max_retries,
            priority: args.priority,
            ..FieldFlags::default()
        };
        if let Some(delay) = &args.delay {
            let delay = parse_duration(delay).map_err(|e| Error::InvalidArgument(format!("--delay: {e}")))?;
            flags.schedule = Some(("--delay", Schedule::After(delay.as_secs_f64())));
        }
        if let Some(at) = &args.run_at {
            let at = parse_rfc3339(at).map_err(|e| Error::InvalidArgument(format!("--run-at `{at}` {e}")))?;
            flags.schedule = Some(("--run-at", Schedule::At(at)));
        }
        if let Some(timeout) = &args.timeout {
            let duration = parse_duration(timeout).map_err(|e| Error::InvalidArgument(format!("--timeout: {e}")))?;
            flags.timeout_seconds = Some(duration.as_secs_f64().ceil() as u64);
        }
        Ok(flags)
    }

    /// Sets the flags' fields on `spec`, refusing a field its JSON gave too.
    fn apply(&self, spec: &mut JobSpec, given: GivenFields) -> Result<(), InvalidJob> {
        let conflict = |flag: &str, fields: &[&str]| match fields.iter().find(|f| given.contains(f)) {
            Some(field) => Err(InvalidJob::whole(format!(
                "{flag} conflicts with the job's own `{field}` field: give one or the other"
            ))),
            None => Ok(()),
        };
        if let Some(id) = &self.id {
            conflict("--id", &["id"])?;
            spec.id = Some(id.clone());
        }
        if let Some(max_retries) = self.max_retries {
            conflict("--max-retries", &["max_retries"])?;
            spec.max_retries = Some(max_retries);
        }
        if let Some(priority) = self.priority {
            conflict("--priority", &["priority"])?;
            spec.priority = priority;
        }
        if let Some((flag, schedule)) = self.schedule {
            conflict(flag, &["run_at", "delay_seconds"])?;
            spec.schedule = schedule;
        }
        if let Some(timeout) = self.timeout_seconds {
            conflict("--timeout", &["timeout_seconds"])?;
            spec.timeout_seconds = Some(timeout);
        }
        Ok(())
    }
}

/// Builds the specs the arguments describe: the JSON input with the field flags applied to
/// every job, or one job from `--command` and the flags.
pub fn specs_from_args(args: &EnqueueArgs) -> Result<Vec<(Option<String>, JobSpec)>> {
    let flags = FieldFlags::from_args(args)?;
    if let Some(text) = read_jobs_text(args.json.as_deref(), args.file.as_deref())? {
        let specs = parse_jobs_with(&text, |spec, given| flags.apply(spec, given)).map_err(Error::InvalidJob)?;
        if flags.id.is_some() && specs.len() > 1 {
            return Err(Error::InvalidArgument(format!(
                "--id names one job, but the input holds {} jobs: give each job an `id` field instead",
                specs.len()
            ))
            .into());
        }
        return Ok(specs);
    }
    let Some(command) = &args.command else {
        return Err(Error::InvalidArgument(
            "nothing to enqueue: give a job as JSON, `-` for standard input, --file FILE or --command CMD".into(),
        )
        .into());
    };
    let mut spec = JobSpec::shell(command.clone());
    flags
        .apply(&mut spec, GivenFields::default())
        .map_err(Error::InvalidJob)?;
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
    if args.json_output && !args.spool {
        return super::inspect::print_added_jobs(queue, &ids);
    }
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
