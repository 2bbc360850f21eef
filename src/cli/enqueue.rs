//! `queuectl enqueue` (and the shared work of `queuectl add`, in `add.rs`).

use anyhow::{Context, Result};
use clap::Args;
use queuectl::error::Error;
use queuectl::job::{
    check_env_name, parse_jobs_with, shell_command_from_words, GivenFields, JobSpec, Schedule, Source,
};
use queuectl::time::{parse_duration, parse_time};
use queuectl::InvalidJob;
use queuectl::Queue;
use std::collections::BTreeMap;
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

    /// The shell command of a single job given by flags (runs in the queue home unless --cwd)
    #[arg(long, short = 'c')]
    pub command: Option<String>,

    /// The flags every form shares.
    #[command(flatten)]
    pub flags: JobFlags,

    /// After `--`: the command as you would type it, run from the current directory (as `add`)
    #[arg(last = true, value_name = "CMD", conflicts_with_all = ["json", "file", "command"])]
    pub words: Vec<String>,
}

/// The flags `enqueue` and `add` share: a job's fields, and how the result is printed.
#[derive(Debug, Args)]
pub struct JobFlags {
    /// The job's id (default: a generated UUID); with JSON input, only for a single job
    #[arg(long)]
    pub id: Option<String>,

    /// Retries after the first run (default: config max_retries); applies to every job
    #[arg(long, value_name = "N")]
    pub max_retries: Option<u32>,

    /// Higher runs first (default 0); applies to every job
    #[arg(long, allow_negative_numbers = true, value_name = "N")]
    pub priority: Option<i64>,

    /// Run no earlier than this long from now: 90s, 15m, 1h30m, 2d, 1w; applies to every job
    #[arg(long, conflicts_with = "run_at", value_name = "DURATION")]
    pub delay: Option<String>,

    /// Run no earlier than this time: RFC 3339, `2026-12-01 14:30`, `14:30`, `9am`, `tomorrow 9am`,
    /// `mon 9am`, `in 2h`, `now` (local times in the local zone, TZ honoured); applies to every job
    #[arg(long, value_name = "TIME")]
    pub run_at: Option<String>,

    /// Kill the job after this long, e.g. 60s (default: config job_timeout_seconds); applies to
    /// every job
    #[arg(long, value_name = "DURATION")]
    pub timeout: Option<String>,

    /// The job's working directory (must exist; stored absolute); applies to every job
    #[arg(long, value_name = "DIR")]
    pub cwd: Option<PathBuf>,

    /// Set NAME to VALUE in the job's environment (repeatable); applies to every job
    #[arg(long = "env", value_name = "NAME=VALUE")]
    pub env: Vec<String>,

    /// Copy NAME's current value into the job's environment (repeatable; refused if unset)
    #[arg(long, value_name = "NAME")]
    pub env_pass: Vec<String>,

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
    cwd: Option<String>,
    /// `None` when neither `--env` nor `--env-pass` was given (an empty map would still
    /// conflict with a job's own `env`).
    env: Option<FlagEnvironment>,
}

/// The variables `--env`/`--env-pass` set, with the flag to name in a conflict.
type FlagEnvironment = (&'static str, BTreeMap<String, String>);

impl FieldFlags {
    fn from_args(args: &JobFlags) -> Result<FieldFlags> {
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
            let at = parse_time(at).map_err(|e| Error::InvalidArgument(format!("--run-at: {e}")))?;
            flags.schedule = Some(("--run-at", Schedule::At(at)));
        }
        if let Some(timeout) = &args.timeout {
            let duration = parse_duration(timeout).map_err(|e| Error::InvalidArgument(format!("--timeout: {e}")))?;
            flags.timeout_seconds = Some(duration.as_secs_f64().ceil() as u64);
        }
        if let Some(dir) = &args.cwd {
            flags.cwd = Some(existing_directory(dir)?);
        }
        flags.env = environment_from_flags(&args.env, &args.env_pass)?;
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
        if let Some(cwd) = &self.cwd {
            conflict("--cwd", &["cwd"])?;
            spec.cwd = Some(cwd.clone());
        }
        if let Some((flag, env)) = &self.env {
            conflict(flag, &["env"])?;
            spec.env = env.clone();
        }
        Ok(())
    }
}

/// `dir` as an absolute path with symlinks resolved, if it is an existing directory: the job
/// runs later, from wherever the worker was started, so a relative path would mean nothing.
fn existing_directory(dir: &Path) -> Result<String, Error> {
    let shown = dir.display();
    let resolved = std::fs::canonicalize(dir).map_err(|e| {
        Error::InvalidArgument(match e.kind() {
            std::io::ErrorKind::NotFound => format!("--cwd `{shown}`: no such directory"),
            _ => format!("--cwd `{shown}`: cannot be used ({e})"),
        })
    })?;
    if !resolved.is_dir() {
        return Err(Error::InvalidArgument(format!("--cwd `{shown}` is not a directory")));
    }
    path_text(resolved, "--cwd")
}

/// A path as the UTF-8 text a job's `cwd` holds; `what` names the path in the refusal.
fn path_text(path: PathBuf, what: &str) -> Result<String, Error> {
    path.into_os_string().into_string().map_err(|path| {
        Error::InvalidArgument(format!(
            "{what} `{}` is not valid UTF-8, which a job's cwd must be",
            Path::new(&path).display()
        ))
    })
}

/// The job environment `--env NAME=VALUE` and `--env-pass NAME` give, or `None` for neither.
/// A name given twice is refused: which value was meant is the caller's to say.
fn environment_from_flags(pairs: &[String], passed: &[String]) -> Result<Option<FlagEnvironment>, Error> {
    if pairs.is_empty() && passed.is_empty() {
        return Ok(None);
    }
    let mut env = BTreeMap::new();
    let mut insert = |flag: &str, name: &str, value: String| -> Result<(), Error> {
        check_env_name(name).map_err(|e| Error::InvalidArgument(format!("{flag}: {e}")))?;
        if env.insert(name.to_string(), value).is_some() {
            return Err(Error::InvalidArgument(format!(
                "{flag}: `{name}` is given twice: give each variable once"
            )));
        }
        Ok(())
    };
    for pair in pairs {
        let Some((name, value)) = pair.split_once('=') else {
            return Err(Error::InvalidArgument(format!(
                "--env `{}` has no `=`: give NAME=VALUE (or --env-pass NAME to copy a variable)",
                pair.escape_debug()
            )));
        };
        insert("--env", name, value.to_string())?;
    }
    for name in passed {
        check_env_name(name).map_err(|e| Error::InvalidArgument(format!("--env-pass: {e}")))?;
        let value = match std::env::var(name) {
            Ok(value) => value,
            Err(std::env::VarError::NotPresent) => {
                return Err(Error::InvalidArgument(format!(
                    "--env-pass `{name}`: the variable is not set here"
                )))
            }
            Err(std::env::VarError::NotUnicode(_)) => {
                return Err(Error::InvalidArgument(format!(
                    "--env-pass `{name}`: the value is not valid UTF-8, which a job's env must be"
                )))
            }
        };
        insert("--env-pass", name, value)?;
    }
    // Name the flag in a conflict with a job's own `env`: `--env` if it was given at all.
    let flag = if pairs.is_empty() { "--env-pass" } else { "--env" };
    Ok(Some((flag, env)))
}

/// Where the jobs of an `enqueue` or `add` come from.
pub enum JobInput<'a> {
    /// JSON text (an object, an array or NDJSON), or `-` for standard input, from the
    /// positional argument; or a file.
    Json {
        text: Option<&'a str>,
        file: Option<&'a Path>,
    },
    /// `--command CMD`: one job, a shell command string.
    Command(&'a str),
    /// The words after `--` (or after `add`'s options): one job, run from the current
    /// directory.
    Words(&'a [String]),
}

impl EnqueueArgs {
    /// Which input the arguments give; clap has already refused more than one.
    fn input(&self) -> JobInput<'_> {
        if !self.words.is_empty() {
            JobInput::Words(&self.words)
        } else if let Some(command) = &self.command {
            JobInput::Command(command)
        } else {
            JobInput::Json {
                text: self.json.as_deref(),
                file: self.file.as_deref(),
            }
        }
    }
}

/// Builds the specs the input and flags describe: JSON jobs with the field flags applied to
/// every job, or one job from `--command` or words and the flags.
pub fn specs_from_input(input: &JobInput<'_>, args: &JobFlags) -> Result<Vec<(Option<String>, JobSpec)>> {
    let flags = FieldFlags::from_args(args)?;
    let (command, default_cwd) = match input {
        JobInput::Json { text, file } => {
            let Some(jobs_text) = read_jobs_text(*text, *file)? else {
                return Err(Error::InvalidArgument(
                    "nothing to enqueue: give a job as JSON, `-` for standard input, --file FILE, --command CMD or -- CMD [ARGS...]".into(),
                )
                .into());
            };
            let specs = match parse_jobs_with(&jobs_text, |spec, given| flags.apply(spec, given)) {
                Ok(specs) => specs,
                Err(error) => return Err(with_add_hint(error, *text, *file).into()),
            };
            if flags.id.is_some() && specs.len() > 1 {
                return Err(Error::InvalidArgument(format!(
                    "--id names one job, but the input holds {} jobs: give each job an `id` field instead",
                    specs.len()
                ))
                .into());
            }
            return Ok(specs);
        }
        // `--command` keeps the working directory it always had (the queue home), so scripts
        // written for it behave as before.
        JobInput::Command(command) => (command.to_string(), None),
        JobInput::Words(words) => {
            let Some(command) = shell_command_from_words(words) else {
                return Err(Error::InvalidArgument("no command given after `--`".into()).into());
            };
            // Typed in a shell, a command means "here": the directory it was typed in.
            let here = match &flags.cwd {
                Some(_) => None,
                None => Some(current_directory()?),
            };
            (command, here)
        }
    };
    let mut spec = JobSpec::shell(command);
    flags
        .apply(&mut spec, GivenFields::default())
        .map_err(Error::InvalidJob)?;
    if spec.cwd.is_none() {
        spec.cwd = default_cwd;
    }
    spec.validate().map_err(Error::InvalidJob)?;
    Ok(vec![(None, spec)])
}

/// The current directory, absolute, as a job's `cwd`.
fn current_directory() -> Result<String, Error> {
    let here = std::env::current_dir().map_err(|e| {
        Error::InvalidArgument(format!(
            "the current directory cannot be read ({e}): give the job's directory with --cwd DIR"
        ))
    })?;
    path_text(here, "the current directory")
}

/// A JSON refusal of the positional argument, with a hint when the text was plainly not meant
/// as JSON but as a command (`queuectl enqueue 'echo hi'`): the way to say that is `add`.
fn with_add_hint(error: InvalidJob, text: Option<&str>, file: Option<&Path>) -> Error {
    let Some(text) = text.filter(|text| *text != "-" && file.is_none()) else {
        return Error::InvalidJob(error);
    };
    let trimmed = text.trim();
    if trimmed.is_empty() || trimmed.starts_with('{') || trimmed.starts_with('[') {
        return Error::InvalidJob(error);
    }
    Error::InvalidArgument(format!(
        "{error}; did you mean `queuectl add -- {}`?",
        suggested_words(trimmed)
    ))
}

/// The words of `command` as they would be typed after `add --`: plain words as they are,
/// anything with shell syntax as one single-quoted word (which `add` runs as is).
fn suggested_words(command: &str) -> String {
    let plain = command.split_whitespace().all(|word| {
        word.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-./:,+@%=".contains(c))
    });
    if plain && !command.contains('\n') {
        command.split_whitespace().collect::<Vec<_>>().join(" ")
    } else {
        format!("'{}'", command.replace('\'', r"'\''").replace('\n', " "))
    }
}

/// Runs `queuectl enqueue`.
pub fn run(queue: &mut Queue, args: &EnqueueArgs) -> Result<()> {
    run_input(queue, &args.input(), &args.flags)
}

/// Adds (or spools) the jobs of `input` and prints their ids.
pub fn run_input(queue: &mut Queue, input: &JobInput<'_>, flags: &JobFlags) -> Result<()> {
    let specs = specs_from_input(input, flags)?;
    let ids = if flags.spool {
        let specs: Vec<JobSpec> = specs.into_iter().map(|(_, spec)| spec).collect();
        queuectl::spool::submit_to_dir(&queue.settings()?.spool_dir, &specs)?
    } else {
        queue.enqueue_located(specs, Source::Cli)?
    };
    if flags.json_output && !flags.spool {
        return super::inspect::print_added_jobs(queue, &ids);
    }
    print_ids(&ids, flags.json_output);
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
