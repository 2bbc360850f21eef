//! [`Settings`]: the effective config values, typed.

use super::keys::KEYS;
use super::keys::{find_key, normalize_value};
use super::{merge, ConfigEntry, EnvOverrides, ValueSource};
use crate::error::{Error, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The typed, effective settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Retries after the first run.
    pub max_retries: u32,
    /// Base of the exponential backoff.
    pub backoff_base: f64,
    /// Cap on the retry delay, in seconds.
    pub backoff_max_seconds: u64,
    /// Default job timeout.
    pub job_timeout_seconds: Option<u64>,
    /// Default thread count of `worker start`.
    pub worker_count: usize,
    /// Bytes kept of each output stream.
    pub output_limit_bytes: usize,
    /// Heartbeat interval.
    pub heartbeat_seconds: u64,
    /// A worker silent this long has lost its jobs.
    pub lease_seconds: u64,
    /// Grace between SIGTERM and SIGKILL for a timed-out job.
    pub stop_grace_seconds: u64,
    /// The spool directory (absolute once resolved against the home).
    pub spool_dir: PathBuf,
    /// Spool files over this size are refused.
    pub spool_max_file_bytes: u64,
    /// How long an unparsable spool file may still be being written.
    pub spool_settle_ms: u64,
    /// Move ingested spool files to `done/` instead of deleting them.
    pub spool_keep_ingested: bool,
    /// Extra uids whose spool files are accepted.
    pub spool_allowed_uids: Vec<u32>,
    /// Shell hooks.
    pub hooks: HookCommands,
}

/// One setting a reload changed, with both values in `config list`'s text form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingChange {
    /// The key.
    pub key: &'static str,
    /// The value before.
    pub old: String,
    /// The value after.
    pub new: String,
}

impl std::fmt::Display for SettingChange {
    /// `max_retries 3 -> 5`; a value with spaces (a hook) is quoted.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let show = |v: &str| {
            if v.is_empty() || v.contains(char::is_whitespace) {
                format!("{v:?}")
            } else {
                v.to_string()
            }
        };
        write!(f, "{} {} -> {}", self.key, show(&self.old), show(&self.new))
    }
}

/// Shell commands run on job life-cycle events (the `hooks.*` keys).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HookCommands {
    /// Run when a job starts.
    pub on_started: Option<String>,
    /// Run when a job completes.
    pub on_completed: Option<String>,
    /// Run when an attempt fails and a retry is scheduled.
    pub on_failed: Option<String>,
    /// Run when a job moves to the DLQ.
    pub on_dead: Option<String>,
    /// A hook running longer is killed.
    pub timeout_seconds: u64,
}

impl Settings {
    /// The built-in defaults, with the spool under `home`.
    pub fn defaults(home: &Path) -> Settings {
        Settings::from_entries(
            home,
            &merge(&BTreeMap::new(), &EnvOverrides::default(), &BTreeMap::new()),
        )
        .expect("built-in defaults are valid")
    }

    /// Builds typed settings from effective entries; `home` resolves relative paths.
    ///
    /// Every value is checked again here, wherever it came from: a value stored by an older
    /// queuectl (say an empty `spool_dir`) is an error naming the key and how to fix it, never
    /// a silent default. A key missing from `entries` takes its default.
    pub fn from_entries(home: &Path, entries: &[ConfigEntry]) -> Result<Settings> {
        let mut values: BTreeMap<&str, String> = BTreeMap::new();
        for entry in entries {
            let Some(def) = find_key(entry.key) else {
                continue;
            };
            let value = normalize_value(def, &entry.value).map_err(|e| match entry.source {
                ValueSource::Set => Error::Config(format!(
                    "{e} (stored by `queuectl config set`; set it again or run `queuectl config unset {}`)",
                    def.name
                )),
                ValueSource::File => Error::Config(format!("{e} (in the config file)")),
                ValueSource::Env => Error::Config(format!(
                    "{e} (from the environment variable `{}`)",
                    super::env_var_name(def)
                )),
                ValueSource::Default => e,
            })?;
            values.insert(def.name, value);
        }
        let get = |key: &'static str| -> String {
            values
                .get(key)
                .cloned()
                .or_else(|| find_key(key).map(|def| def.default.to_string()))
                .unwrap_or_default()
        };
        // The values are normalized above, so these parses only fail if the key table and
        // this function disagree; that is still an error rather than a panic.
        let int = |key: &'static str| -> Result<i64> {
            get(key)
                .parse::<i64>()
                .map_err(|_| Error::Config(format!("invalid value for `{key}`")))
        };
        let text = |key: &'static str| -> Option<String> { Some(get(key)).filter(|v| !v.is_empty()) };
        let (heartbeat, lease) = (int("heartbeat_seconds")?, int("lease_seconds")?);
        if lease < 3 * heartbeat {
            // With fewer than three heartbeats per lease, one late heartbeat makes a live worker
            // on another host look dead, and its jobs would be recovered while they run.
            let from = |key: &str| match entries.iter().find(|e| e.key == key).map(|e| e.source) {
                Some(ValueSource::File) => "the config file".to_string(),
                Some(ValueSource::Set) => "`config set`".to_string(),
                Some(ValueSource::Env) => match super::keys::find_key(key) {
                    Some(def) => format!("`{}`", super::env_var_name(def)),
                    None => "the environment".to_string(),
                },
                _ => "the default".to_string(),
            };
            return Err(Error::Config(format!(
                "`lease_seconds` ({lease}) must be at least 3 times `heartbeat_seconds` ({heartbeat}) \
                 (lease_seconds from {}, heartbeat_seconds from {})",
                from("lease_seconds"),
                from("heartbeat_seconds")
            )));
        }
        let job_timeout_seconds = match text("job_timeout_seconds") {
            Some(_) => Some(int("job_timeout_seconds")? as u64),
            None => None,
        };
        let spool = PathBuf::from(get("spool_dir"));
        let mut spool_allowed_uids = Vec::new();
        for uid in get("spool_allowed_uids").split(',').filter(|p| !p.is_empty()) {
            spool_allowed_uids.push(
                uid.parse()
                    .map_err(|_| Error::Config("invalid value for `spool_allowed_uids`".into()))?,
            );
        }
        Ok(Settings {
            max_retries: int("max_retries")? as u32,
            backoff_base: get("backoff_base")
                .parse()
                .map_err(|_| Error::Config("invalid value for `backoff_base`".into()))?,
            backoff_max_seconds: int("backoff_max_seconds")? as u64,
            job_timeout_seconds,
            worker_count: int("worker_count")? as usize,
            output_limit_bytes: int("output_limit_bytes")? as usize,
            heartbeat_seconds: heartbeat as u64,
            lease_seconds: lease as u64,
            stop_grace_seconds: int("stop_grace_seconds")? as u64,
            spool_dir: if spool.is_absolute() { spool } else { home.join(spool) },
            spool_max_file_bytes: int("spool_max_file_bytes")? as u64,
            spool_settle_ms: int("spool_settle_ms")? as u64,
            spool_keep_ingested: get("spool_keep_ingested") == "true",
            spool_allowed_uids,
            hooks: HookCommands {
                on_started: text("hooks.on_started"),
                on_completed: text("hooks.on_completed"),
                on_failed: text("hooks.on_failed"),
                on_dead: text("hooks.on_dead"),
                timeout_seconds: int("hooks.timeout_seconds")? as u64,
            },
        })
    }

    /// Every key's value in the text form `config list` shows (`none` for none), in the order
    /// of [`KEYS`]: what a reload compares to say what changed.
    pub fn values(&self) -> Vec<(&'static str, String)> {
        let text = |v: &Option<String>| v.clone().unwrap_or_else(|| "none".to_string());
        KEYS.iter()
            .map(|def| {
                let value = match def.name {
                    "max_retries" => self.max_retries.to_string(),
                    "backoff_base" => self.backoff_base.to_string(),
                    "backoff_max_seconds" => self.backoff_max_seconds.to_string(),
                    "job_timeout_seconds" => text(&self.job_timeout_seconds.map(|t| t.to_string())),
                    "worker_count" => self.worker_count.to_string(),
                    "output_limit_bytes" => self.output_limit_bytes.to_string(),
                    "heartbeat_seconds" => self.heartbeat_seconds.to_string(),
                    "lease_seconds" => self.lease_seconds.to_string(),
                    "stop_grace_seconds" => self.stop_grace_seconds.to_string(),
                    "spool_dir" => self.spool_dir.display().to_string(),
                    "spool_max_file_bytes" => self.spool_max_file_bytes.to_string(),
                    "spool_settle_ms" => self.spool_settle_ms.to_string(),
                    "spool_keep_ingested" => self.spool_keep_ingested.to_string(),
                    "spool_allowed_uids" => match self.spool_allowed_uids.as_slice() {
                        [] => "none".to_string(),
                        uids => uids.iter().map(|u| u.to_string()).collect::<Vec<_>>().join(","),
                    },
                    "hooks.on_started" => text(&self.hooks.on_started),
                    "hooks.on_completed" => text(&self.hooks.on_completed),
                    "hooks.on_failed" => text(&self.hooks.on_failed),
                    "hooks.on_dead" => text(&self.hooks.on_dead),
                    "hooks.timeout_seconds" => self.hooks.timeout_seconds.to_string(),
                    // A key added to the table but not here shows as unknown, and the unit
                    // test that every key has a distinct value catches it.
                    _ => "?".to_string(),
                };
                (def.name, value)
            })
            .collect()
    }

    /// The keys whose values differ from `self` in `newer`, in the order of [`KEYS`].
    pub fn changes_to(&self, newer: &Settings) -> Vec<SettingChange> {
        self.values()
            .into_iter()
            .zip(newer.values())
            .filter(|((_, old), (_, new))| old != new)
            .map(|((key, old), (_, new))| SettingChange { key, old, new })
            .collect()
    }

    /// The retry policy these settings describe.
    pub fn retry_policy(&self, job_max_retries: Option<u32>) -> crate::backoff::RetryPolicy {
        crate::backoff::RetryPolicy {
            max_retries: job_max_retries.unwrap_or(self.max_retries),
            backoff_base: self.backoff_base,
            backoff_max_seconds: self.backoff_max_seconds,
        }
    }
}
