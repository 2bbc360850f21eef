//! What is stored and shown: [`Job`], its [`State`], its history ([`Attempt`]) and [`Source`].

use crate::error::{Error, Result};
use crate::time::{format_ms, Millis};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

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
    /// The job `spec` would be right after it was enqueued at `now` (pending, never run, `seq`
    /// and `lease` 0), without a database: for unit tests of executors and of the life-cycle
    /// rules. The id is the spec's, or a new UUID.
    pub fn from_spec(spec: super::JobSpec, now: Millis) -> Job {
        Job {
            seq: 0,
            id: spec.id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
            kind: spec.kind,
            command: spec.command,
            payload: spec.payload,
            state: State::Pending,
            attempts: 0,
            max_retries: spec.max_retries,
            priority: spec.priority,
            run_at: spec.schedule.run_at(now),
            timeout_seconds: spec.timeout_seconds,
            cwd: spec.cwd,
            env: spec.env,
            created_at: now,
            updated_at: now,
            started_at: None,
            finished_at: None,
            worker: None,
            exit_code: None,
            last_error: None,
            stdout: None,
            stderr: None,
            source: Source::Api.to_stored(),
            lease: 0,
        }
    }

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
        // Other implementations of the spec call a failed job's retry time `next_retry_at`;
        // it is `run_at` under the name scripts written for them look for (null otherwise).
        object.insert(
            "next_retry_at".into(),
            if self.state == State::Failed {
                format_ms(self.run_at).into()
            } else {
                Value::Null
            },
        );
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

    #[test]
    fn states_round_trip() {
        for state in State::ALL {
            assert_eq!(state.as_str().parse::<State>().unwrap(), state);
        }
        let e = "done".parse::<State>().unwrap_err().to_string();
        assert!(e.contains("valid states: pending, processing, completed, failed, dead"));
    }
}
