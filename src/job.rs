//! The job model: what callers submit ([`JobSpec`]), what is stored ([`Job`]), its [`State`],
//! and the one validation path every entry point (CLI, library, spool) goes through.

use crate::error::{Error, InvalidJob, Result};
use crate::time::{format_ms, parse_rfc3339, Millis};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// The longest job id accepted, in bytes.
pub const MAX_ID_BYTES: usize = 200;
/// The longest command accepted, in bytes (64 KiB).
pub const MAX_COMMAND_BYTES: usize = 64 * 1024;
/// The largest JSON payload accepted, in bytes once serialised.
pub const MAX_PAYLOAD_BYTES: usize = 1024 * 1024;
/// The highest `max_retries` a job may ask for.
pub const MAX_RETRIES_LIMIT: u32 = 1000;
/// Priorities range over `-PRIORITY_LIMIT..=PRIORITY_LIMIT`.
pub const PRIORITY_LIMIT: i64 = 1_000_000;
/// The longest timeout a job may ask for: 30 days, in seconds.
pub const MAX_TIMEOUT_SECONDS: u64 = 30 * 24 * 3600;
/// The furthest into the future a job may be scheduled: 10 years, in seconds.
pub const MAX_DELAY_SECONDS: f64 = 10.0 * 365.0 * 24.0 * 3600.0;
/// The job kind run by the built-in shell executor.
pub const SHELL_KIND: &str = "shell";

/// The fields a job's JSON may carry, in the order error messages list them.
pub const KNOWN_FIELDS: &[&str] = &[
    "id",
    "command",
    "kind",
    "payload",
    "max_retries",
    "priority",
    "run_at",
    "delay_seconds",
    "timeout_seconds",
    "cwd",
    "env",
];

/// The life-cycle state of a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum State {
    /// Waiting; runnable once `run_at <= now`.
    Pending,
    /// Claimed by a live worker.
    Processing,
    /// Ran with exit code 0.
    Completed,
    /// An attempt failed and a retry is scheduled at `run_at`.
    Failed,
    /// Retries are used up: the dead-letter queue.
    Dead,
}

impl State {
    /// All states, in life-cycle order.
    pub const ALL: [State; 5] = [
        State::Pending,
        State::Processing,
        State::Completed,
        State::Failed,
        State::Dead,
    ];

    /// The state's name as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Processing => "processing",
            State::Completed => "completed",
            State::Failed => "failed",
            State::Dead => "dead",
        }
    }

    /// True for states a job never leaves on its own (completed, dead).
    pub fn is_final(self) -> bool {
        matches!(self, State::Completed | State::Dead)
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for State {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        State::ALL.into_iter().find(|s| s.as_str() == text).ok_or_else(|| {
            Error::InvalidArgument(format!(
                "unknown state `{text}` (valid states: pending, processing, completed, failed, dead)"
            ))
        })
    }
}

/// When a job may first run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Schedule {
    /// As soon as a worker is free.
    Now,
    /// At this time (milliseconds since the epoch).
    At(Millis),
    /// This many seconds after it is enqueued.
    After(f64),
}

/// A job as submitted, before it is stored.
///
/// Build one with [`JobSpec::shell`] or [`JobSpec::kind`] and the setters, or parse JSON with
/// [`parse_jobs`]. Every field but the command is optional; config supplies the defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct JobSpec {
    /// The job's id; a UUID is generated when absent.
    pub id: Option<String>,
    /// The shell command (required for the `shell` kind).
    pub command: String,
    /// Which executor runs the job; `shell` by default.
    pub kind: String,
    /// Data for a custom executor.
    pub payload: Option<Value>,
    /// Retries after the first run; config's `max_retries` when absent.
    pub max_retries: Option<u32>,
    /// Higher runs first; 0 by default.
    pub priority: i64,
    /// When the job may first run.
    pub schedule: Schedule,
    /// Kill the job after this many seconds; config's `job_timeout_seconds` when absent.
    pub timeout_seconds: Option<u64>,
    /// Working directory, relative to the queue home unless absolute.
    pub cwd: Option<String>,
    /// Extra environment variables.
    pub env: BTreeMap<String, String>,
}

impl JobSpec {
    /// A shell job running `command` with `sh -c`.
    pub fn shell(command: impl Into<String>) -> Self {
        JobSpec {
            id: None,
            command: command.into(),
            kind: SHELL_KIND.to_string(),
            payload: None,
            max_retries: None,
            priority: 0,
            schedule: Schedule::Now,
            timeout_seconds: None,
            cwd: None,
            env: BTreeMap::new(),
        }
    }

    /// A job for the executor registered for `kind`, carrying `payload`.
    pub fn kind(kind: impl Into<String>, payload: Value) -> Self {
        JobSpec {
            kind: kind.into(),
            payload: Some(payload),
            ..JobSpec::shell("")
        }
    }

    /// Sets the id.
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// Sets the job's own `max_retries`.
    pub fn with_max_retries(mut self, max_retries: u32) -> Self {
        self.max_retries = Some(max_retries);
        self
    }

    /// Sets the priority (higher runs first).
    pub fn with_priority(mut self, priority: i64) -> Self {
        self.priority = priority;
        self
    }

    /// Sets when the job may first run.
    pub fn with_schedule(mut self, schedule: Schedule) -> Self {
        self.schedule = schedule;
        self
    }

    /// Sets the timeout in seconds.
    pub fn with_timeout_seconds(mut self, seconds: u64) -> Self {
        self.timeout_seconds = Some(seconds);
        self
    }

    /// Adds an environment variable.
    pub fn with_env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.insert(key.into(), value.into());
        self
    }

    /// Sets the working directory.
    pub fn with_cwd(mut self, cwd: impl Into<String>) -> Self {
        self.cwd = Some(cwd.into());
        self
    }

    /// Checks every rule a job must meet. The same rules apply to every entry point.
    pub fn validate(&self) -> Result<(), InvalidJob> {
        if let Some(id) = &self.id {
            validate_id(id)?;
        }
        validate_kind(&self.kind)?;
        if self.kind == SHELL_KIND && self.command.trim().is_empty() {
            return Err(if self.command.is_empty() {
                InvalidJob::field("command", "is missing or empty")
            } else {
                InvalidJob::field("command", "must not be blank")
            });
        }
        if self.command.len() > MAX_COMMAND_BYTES {
            return Err(InvalidJob::field(
                "command",
                format!(
                    "is {} bytes, over the limit of {MAX_COMMAND_BYTES} bytes (64 KiB)",
                    self.command.len()
                ),
            ));
        }
        if self.command.contains('\0') {
            return Err(InvalidJob::field("command", "contains a NUL byte"));
        }
        if let Some(payload) = &self.payload {
            let size = payload.to_string().len();
            if size > MAX_PAYLOAD_BYTES {
                return Err(InvalidJob::field(
                    "payload",
                    format!("is {size} bytes, over the limit of {MAX_PAYLOAD_BYTES} bytes"),
                ));
            }
        }
        if let Some(max_retries) = self.max_retries {
            if max_retries > MAX_RETRIES_LIMIT {
                return Err(InvalidJob::field(
                    "max_retries",
                    format!("must be from 0 to {MAX_RETRIES_LIMIT}, got {max_retries}"),
                ));
            }
        }
        if self.priority.abs() > PRIORITY_LIMIT {
            return Err(InvalidJob::field(
                "priority",
                format!(
                    "must be from -{PRIORITY_LIMIT} to {PRIORITY_LIMIT}, got {}",
                    self.priority
                ),
            ));
        }
        if let Schedule::After(seconds) = self.schedule {
            if !(0.0..=MAX_DELAY_SECONDS).contains(&seconds) {
                return Err(InvalidJob::field(
                    "delay_seconds",
                    format!("must be from 0 to {MAX_DELAY_SECONDS} (10 years), got {seconds}"),
                ));
            }
        }
        if let Some(timeout) = self.timeout_seconds {
            if timeout == 0 || timeout > MAX_TIMEOUT_SECONDS {
                return Err(InvalidJob::field(
                    "timeout_seconds",
                    format!("must be from 1 to {MAX_TIMEOUT_SECONDS} (30 days), got {timeout}"),
                ));
            }
        }
        if let Some(cwd) = &self.cwd {
            if cwd.is_empty() || cwd.contains('\0') {
                return Err(InvalidJob::field("cwd", "must be a non-empty path without NUL bytes"));
            }
        }
        for (key, value) in &self.env {
            if key.is_empty() || key.contains('=') || key.contains('\0') {
                return Err(InvalidJob::field(
                    "env",
                    format!(
                        "has an invalid variable name `{}` (empty, or contains `=` or NUL)",
                        key.escape_debug()
                    ),
                ));
            }
            if value.contains('\0') {
                return Err(InvalidJob::field(
                    "env",
                    format!("value of `{key}` contains a NUL byte"),
                ));
            }
        }
        Ok(())
    }
}

/// Checks a job id: 1 to 200 bytes, no control characters, not blank.
pub fn validate_id(id: &str) -> Result<(), InvalidJob> {
    if id.trim().is_empty() {
        return Err(InvalidJob::field("id", "must not be empty"));
    }
    if id.len() > MAX_ID_BYTES {
        return Err(InvalidJob::field(
            "id",
            format!("is {} bytes, over the limit of {MAX_ID_BYTES} bytes", id.len()),
        ));
    }
    if let Some(c) = id.chars().find(|c| c.is_control()) {
        return Err(InvalidJob::field(
            "id",
            format!("contains the control character {:?}", c),
        ));
    }
    Ok(())
}

fn validate_kind(kind: &str) -> Result<(), InvalidJob> {
    let ok = !kind.is_empty()
        && kind.len() <= 64
        && kind
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':'));
    if ok {
        Ok(())
    } else {
        Err(InvalidJob::field(
            "kind",
            "must be 1 to 64 characters of letters, digits, `_`, `-`, `.` or `:`",
        ))
    }
}

/// Parses the text of `enqueue`, a `--file` or a spool file into job specs.
///
/// The text may be one JSON object, a JSON array of objects, or NDJSON (one object a line).
/// Errors name the field and, in a batch, the line (NDJSON) or index (array). The specs are
/// also validated, so a successful parse is a batch that only the database can still refuse
/// (a duplicate id).
pub fn parse_jobs(text: &str) -> Result<Vec<(Option<String>, JobSpec)>, InvalidJob> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(InvalidJob::whole("empty input: no jobs given"));
    }
    let items: Vec<(Option<String>, Value)> = match serde_json::from_str::<Value>(trimmed) {
        Ok(Value::Array(items)) => {
            if items.is_empty() {
                return Err(InvalidJob::whole("empty batch: the array holds no jobs"));
            }
            items
                .into_iter()
                .enumerate()
                .map(|(i, v)| (Some(format!("index {i}")), v))
                .collect()
        }
        Ok(value) => vec![(None, value)],
        Err(whole_error) => {
            let lines: Vec<(usize, &str)> = text
                .lines()
                .enumerate()
                .filter(|(_, line)| !line.trim().is_empty())
                .map(|(i, line)| (i + 1, line))
                .collect();
            // NDJSON only if the first line is a complete value on its own; otherwise this is one
            // (pretty-printed) document and its own error names the right line.
            let first_line_complete = lines
                .first()
                .map(|(_, l)| serde_json::from_str::<Value>(l).is_ok())
                .unwrap_or(false);
            if lines.len() < 2 || !trimmed.starts_with('{') || !first_line_complete {
                return Err(json_error(&whole_error, None));
            }
            // Line by line, so the whole input never exists as parsed JSON values at once
            // (a 100k-line file would otherwise hold 100k `Value` trees).
            return parse_ndjson(text);
        }
    };
    let mut specs = Vec::with_capacity(items.len());
    for (location, value) in items {
        let spec = spec_from_value(value).and_then(|spec| spec.validate().map(|_| spec));
        match spec {
            Ok(spec) => specs.push((location, spec)),
            Err(e) => {
                return Err(match location {
                    Some(location) => e.at(location),
                    None => e,
                })
            }
        }
    }
    Ok(specs)
}

/// Parses NDJSON strictly line by line (the `*.ndjson` spool format).
pub fn parse_ndjson(text: &str) -> Result<Vec<(Option<String>, JobSpec)>, InvalidJob> {
    let mut specs = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let location = format!("line {}", index + 1);
        let value = serde_json::from_str::<Value>(line).map_err(|e| json_error(&e, Some(location.clone())))?;
        let spec = spec_from_value(value)
            .and_then(|spec| spec.validate().map(|_| spec))
            .map_err(|e| e.at(location.clone()))?;
        specs.push((Some(location), spec));
    }
    if specs.is_empty() {
        return Err(InvalidJob::whole("empty input: no jobs given"));
    }
    Ok(specs)
}

fn json_error(error: &serde_json::Error, location: Option<String>) -> InvalidJob {
    let message = error.to_string();
    // serde_json appends " at line L column C"; keep its position, which is what people need.
    let reason = format!("malformed JSON: {message}");
    let invalid = InvalidJob::whole(reason);
    match location {
        Some(location) => invalid.at(location),
        None => invalid,
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn expect_string(field: &str, value: Value) -> Result<String, InvalidJob> {
    match value {
        Value::String(s) => Ok(s),
        other => Err(InvalidJob::field(
            field,
            format!("must be a string, got {}", type_name(&other)),
        )),
    }
}

fn expect_integer(field: &str, value: &Value, min: i64, max: i64) -> Result<i64, InvalidJob> {
    let out_of_range = || InvalidJob::field(field, format!("must be an integer from {min} to {max}, got {value}"));
    match value {
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                if (min..=max).contains(&i) {
                    return Ok(i);
                }
                return Err(out_of_range());
            }
            if n.as_u64().is_some() {
                return Err(out_of_range());
            }
            match n.as_f64() {
                Some(f) if f.fract() == 0.0 && f >= min as f64 && f <= max as f64 => Ok(f as i64),
                _ => Err(out_of_range()),
            }
        }
        other => Err(InvalidJob::field(
            field,
            format!("must be an integer, got {}", type_name(other)),
        )),
    }
}

/// Converts one JSON object into a spec, refusing unknown fields and wrong types.
pub fn spec_from_value(value: Value) -> Result<JobSpec, InvalidJob> {
    let object: Map<String, Value> = match value {
        Value::Object(object) => object,
        other => {
            return Err(InvalidJob::whole(format!(
                "expected a JSON object, got {}",
                type_name(&other)
            )))
        }
    };
    let mut spec = JobSpec::shell("");
    let mut has_command = false;
    let mut run_at: Option<Millis> = None;
    let mut delay: Option<f64> = None;
    for (key, value) in object {
        match key.as_str() {
            "id" => spec.id = Some(expect_string("id", value)?),
            "command" => {
                spec.command = expect_string("command", value)?;
                has_command = true;
            }
            "kind" => spec.kind = expect_string("kind", value)?,
            "payload" => spec.payload = if value.is_null() { None } else { Some(value) },
            "max_retries" => {
                spec.max_retries = Some(expect_integer("max_retries", &value, 0, MAX_RETRIES_LIMIT as i64)? as u32)
            }
            "priority" => spec.priority = expect_integer("priority", &value, -PRIORITY_LIMIT, PRIORITY_LIMIT)?,
            "run_at" => {
                let text = expect_string("run_at", value)?;
                run_at = Some(parse_rfc3339(&text).map_err(|e| InvalidJob::field("run_at", e))?);
            }
            "delay_seconds" => {
                let seconds = value.as_f64().filter(|_| value.is_number()).ok_or_else(|| {
                    InvalidJob::field("delay_seconds", format!("must be a number, got {}", type_name(&value)))
                })?;
                delay = Some(seconds);
            }
            "timeout_seconds" => {
                if !value.is_null() {
                    spec.timeout_seconds =
                        Some(expect_integer("timeout_seconds", &value, 1, MAX_TIMEOUT_SECONDS as i64)? as u64);
                }
            }
            "cwd" => spec.cwd = Some(expect_string("cwd", value)?),
            "env" => match value {
                Value::Object(vars) => {
                    for (name, value) in vars {
                        match value {
                            Value::String(s) => {
                                spec.env.insert(name, s);
                            }
                            other => {
                                return Err(InvalidJob::field(
                                    "env",
                                    format!("value of `{name}` must be a string, got {}", type_name(&other)),
                                ))
                            }
                        }
                    }
                }
                other => {
                    return Err(InvalidJob::field(
                        "env",
                        format!("must be an object of strings, got {}", type_name(&other)),
                    ))
                }
            },
            unknown => {
                return Err(InvalidJob::whole(format!(
                    "unknown field `{}` (known fields: {})",
                    unknown.escape_debug(),
                    KNOWN_FIELDS.join(", ")
                )))
            }
        }
    }
    if !has_command && spec.kind == SHELL_KIND {
        return Err(InvalidJob::field("command", "is missing"));
    }
    spec.schedule = match (run_at, delay) {
        (Some(_), Some(_)) => {
            return Err(InvalidJob::field("run_at", "and `delay_seconds` cannot both be given"));
        }
        (Some(at), None) => Schedule::At(at),
        (None, Some(seconds)) => Schedule::After(seconds),
        (None, None) => Schedule::Now,
    };
    Ok(spec)
}

/// Where a job came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The `queuectl enqueue` command.
    Cli,
    /// The library API.
    Api,
    /// A spool file with this name.
    Spool(String),
}

impl Source {
    /// The stored form: `cli`, `api` or `spool:NAME`.
    pub fn to_stored(&self) -> String {
        match self {
            Source::Cli => "cli".to_string(),
            Source::Api => "api".to_string(),
            Source::Spool(name) => format!("spool:{name}"),
        }
    }
}

/// A job as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    /// Enqueue order; never reused.
    pub seq: i64,
    /// The job's unique id.
    pub id: String,
    /// Which executor runs it.
    pub kind: String,
    /// The shell command (may be empty for other kinds).
    pub command: String,
    /// Data for a custom executor.
    pub payload: Option<Value>,
    /// The current state.
    pub state: State,
    /// Attempts that ran and counted (interrupted attempts do not count).
    pub attempts: u32,
    /// The job's own `max_retries`, if it set one; config's applies otherwise.
    pub max_retries: Option<u32>,
    /// Higher runs first.
    pub priority: i64,
    /// Not before this time.
    pub run_at: Millis,
    /// The job's own timeout, if it set one.
    pub timeout_seconds: Option<u64>,
    /// Working directory, if set.
    pub cwd: Option<String>,
    /// Extra environment variables.
    pub env: BTreeMap<String, String>,
    /// When it was enqueued.
    pub created_at: Millis,
    /// When it last changed.
    pub updated_at: Millis,
    /// When its latest attempt started.
    pub started_at: Option<Millis>,
    /// When its latest attempt finished.
    pub finished_at: Option<Millis>,
    /// The worker that holds (or last held) it.
    pub worker: Option<String>,
    /// The exit code of its latest attempt.
    pub exit_code: Option<i32>,
    /// The error of its latest failed attempt.
    pub last_error: Option<String>,
    /// The tail of its latest attempt's standard output (only loaded by `get`).
    pub stdout: Option<String>,
    /// The tail of its latest attempt's standard error (only loaded by `get`).
    pub stderr: Option<String>,
    /// Where it came from: `cli`, `api` or `spool:NAME`.
    pub source: String,
    /// How many times it has been claimed; identifies the current claim, so the result of a
    /// holder that lost the job (presumed dead, then back) is never applied.
    pub lease: i64,
}

impl Job {
    /// The `max_retries` in effect: the job's own, else `default` (from config).
    pub fn effective_max_retries(&self, default: u32) -> u32 {
        self.max_retries.unwrap_or(default)
    }

    /// The job as JSON, with the spec's field names and RFC 3339 times.
    pub fn to_json(&self, default_max_retries: u32) -> Value {
        let opt_time = |t: Option<Millis>| t.map(|t| Value::String(format_ms(t))).unwrap_or(Value::Null);
        let mut object = Map::new();
        object.insert("id".into(), self.id.clone().into());
        object.insert("command".into(), self.command.clone().into());
        object.insert("state".into(), self.state.as_str().into());
        object.insert("attempts".into(), self.attempts.into());
        object.insert(
            "max_retries".into(),
            self.effective_max_retries(default_max_retries).into(),
        );
        object.insert("created_at".into(), format_ms(self.created_at).into());
        object.insert("updated_at".into(), format_ms(self.updated_at).into());
        object.insert("kind".into(), self.kind.clone().into());
        object.insert("payload".into(), self.payload.clone().unwrap_or(Value::Null));
        object.insert("priority".into(), self.priority.into());
        object.insert("run_at".into(), format_ms(self.run_at).into());
        object.insert(
            "timeout_seconds".into(),
            self.timeout_seconds.map(Value::from).unwrap_or(Value::Null),
        );
        object.insert("cwd".into(), self.cwd.clone().map(Value::from).unwrap_or(Value::Null));
        object.insert(
            "env".into(),
            Value::Object(
                self.env
                    .iter()
                    .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                    .collect(),
            ),
        );
        object.insert("started_at".into(), opt_time(self.started_at));
        object.insert("finished_at".into(), opt_time(self.finished_at));
        object.insert(
            "worker".into(),
            self.worker.clone().map(Value::from).unwrap_or(Value::Null),
        );
        object.insert(
            "exit_code".into(),
            self.exit_code.map(Value::from).unwrap_or(Value::Null),
        );
        object.insert(
            "last_error".into(),
            self.last_error.clone().map(Value::from).unwrap_or(Value::Null),
        );
        object.insert("source".into(), self.source.clone().into());
        if self.stdout.is_some() || self.stderr.is_some() {
            object.insert(
                "stdout".into(),
                self.stdout.clone().map(Value::from).unwrap_or(Value::Null),
            );
            object.insert(
                "stderr".into(),
                self.stderr.clone().map(Value::from).unwrap_or(Value::Null),
            );
        }
        Value::Object(object)
    }
}

/// One recorded attempt of a job: the job's history.
#[derive(Debug, Clone, PartialEq)]
pub struct Attempt {
    /// The attempt number (1-based) as counted when it ended; interrupted attempts repeat the
    /// number of the attempt that replaces them.
    pub attempt: u32,
    /// How it ended: `completed`, `failed`, `lost` (worker died) or `interrupted` (shutdown).
    pub outcome: String,
    /// The worker that ran it.
    pub worker: Option<String>,
    /// When it started.
    pub started_at: Option<Millis>,
    /// When it ended.
    pub finished_at: Millis,
    /// The exit code, if the process exited.
    pub exit_code: Option<i32>,
    /// What went wrong, for failures.
    pub error: Option<String>,
    /// The tail of standard output.
    pub stdout_tail: Option<String>,
    /// The tail of standard error.
    pub stderr_tail: Option<String>,
}

impl Attempt {
    /// The attempt as JSON.
    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "attempt": self.attempt,
            "outcome": self.outcome,
            "worker": self.worker,
            "started_at": self.started_at.map(format_ms),
            "finished_at": format_ms(self.finished_at),
            "exit_code": self.exit_code,
            "error": self.error,
            "stdout_tail": self.stdout_tail,
            "stderr_tail": self.stderr_tail,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> Result<JobSpec, InvalidJob> {
        parse_jobs(text).map(|mut v| v.remove(0).1)
    }

    #[test]
    fn parses_the_spec_example() {
        let spec = one(r#"{"id":"job1","command":"echo hi"}"#).unwrap();
        assert_eq!(spec.id.as_deref(), Some("job1"));
        assert_eq!(spec.command, "echo hi");
        assert_eq!(spec.kind, "shell");
    }

    #[test]
    fn parses_arrays_and_ndjson_with_locations() {
        let jobs = parse_jobs(r#"[{"command":"a"},{"command":"b"}]"#).unwrap();
        assert_eq!(jobs.len(), 2);
        assert_eq!(jobs[1].0.as_deref(), Some("index 1"));
        let jobs = parse_jobs("{\"command\":\"a\"}\n\n{\"command\":\"b\"}\n").unwrap();
        assert_eq!(jobs[1].0.as_deref(), Some("line 3"));
    }

    #[test]
    fn refusals_name_the_field_and_the_location() {
        let e = parse_jobs("{\"command\":\"a\"}\n{\"command\":\"\"}").unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid job at line 2: field `command` is missing or empty"
        );
        let e = one(r#"{"command":"a","max_retries":"3"}"#).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid job: field `max_retries` must be an integer, got a string"
        );
        let e = one(r#"{"command":"a","max_retries":-1}"#).unwrap_err();
        assert!(
            e.to_string()
                .contains("`max_retries` must be an integer from 0 to 1000, got -1"),
            "{e}"
        );
        let e = one(r#"{"command":"a","colour":"red"}"#).unwrap_err();
        assert!(
            e.to_string()
                .contains("unknown field `colour` (known fields: id, command,"),
            "{e}"
        );
        let e = parse_jobs("[]").unwrap_err();
        assert!(e.to_string().contains("empty batch"), "{e}");
        let e = parse_jobs("   ").unwrap_err();
        assert!(e.to_string().contains("empty input"), "{e}");
        let e = one("{\"command\":").unwrap_err();
        assert!(e.to_string().starts_with("invalid job: malformed JSON: "), "{e}");
        let e = parse_jobs(r#"[{"command":"a"}, 5]"#).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid job at index 1: expected a JSON object, got a number"
        );
    }

    #[test]
    fn id_rules() {
        assert!(validate_id("job-1").is_ok());
        assert!(validate_id("").is_err());
        assert!(validate_id("a\tb")
            .unwrap_err()
            .to_string()
            .contains("control character"));
        assert!(validate_id(&"x".repeat(201))
            .unwrap_err()
            .to_string()
            .contains("over the limit of 200"));
        assert!(validate_id(&"x".repeat(200)).is_ok());
    }

    #[test]
    fn command_size_limit() {
        let spec = JobSpec::shell("x".repeat(MAX_COMMAND_BYTES + 1));
        assert!(spec.validate().unwrap_err().to_string().contains("64 KiB"));
        assert!(JobSpec::shell("x".repeat(MAX_COMMAND_BYTES)).validate().is_ok());
    }

    #[test]
    fn other_kinds_need_no_command() {
        let spec = one(r#"{"kind":"email","payload":{"to":"a@b"}}"#).unwrap();
        assert_eq!(spec.kind, "email");
        assert!(one(r#"{"kind":"bad kind","command":"x"}"#).is_err());
    }

    #[test]
    fn schedule_fields() {
        let spec = one(r#"{"command":"a","delay_seconds":1.5}"#).unwrap();
        assert_eq!(spec.schedule, Schedule::After(1.5));
        let spec = one(r#"{"command":"a","run_at":"2030-01-01T00:00:00Z"}"#).unwrap();
        assert!(matches!(spec.schedule, Schedule::At(_)));
        assert!(one(r#"{"command":"a","run_at":"2030-01-01T00:00:00Z","delay_seconds":1}"#).is_err());
        assert!(one(r#"{"command":"a","delay_seconds":-1}"#).is_err());
        assert!(one(r#"{"command":"a","timeout_seconds":0}"#).is_err());
    }

    #[test]
    fn states_round_trip() {
        for state in State::ALL {
            assert_eq!(state.as_str().parse::<State>().unwrap(), state);
        }
        let e = "done".parse::<State>().unwrap_err().to_string();
        assert!(e.contains("valid states: pending, processing, completed, failed, dead"));
    }
}
