//! [`JobSpec`]: a job as submitted, its limits, and the rules every entry point applies.

use crate::error::InvalidJob;
use crate::time::Millis;
use serde_json::Value;
use std::collections::BTreeMap;

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

impl Schedule {
    /// The first run time of a job enqueued at `now`.
    pub fn run_at(self, now: Millis) -> Millis {
        match self {
            Schedule::Now => now,
            Schedule::At(at) => at,
            Schedule::After(seconds) => now + (seconds * 1000.0).round() as i64,
        }
    }
}

/// A job as submitted, before it is stored.
///
/// Build one with [`JobSpec::shell`] or [`JobSpec::kind`] and the setters, or parse JSON with
/// [`parse_jobs`](super::parse_jobs). Every field but the command is optional; config supplies
/// the defaults.
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
