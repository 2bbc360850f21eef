//! [`Settings`]: the effective config values, typed.

use super::keys::KEYS;
use super::keys::{find_key, normalize_value};
use super::kinds::{qualified, KindPolicy};
use super::{merge, ConfigEntry, EnvOverrides, ValueSource};
use crate::backoff::RetryPolicy;
use crate::error::{Error, Result};
use crate::job::Job;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The typed, effective settings.
///
/// A pool reads them from the queue (default < file < environment < `config set`), or takes
/// them from code with [`PoolBuilder::settings`](crate::PoolBuilder::settings): start from
/// [`Settings::defaults`] and change fields. Per-kind policies ([`kinds`](Self::kinds)) sit
/// between a job's own fields and these global values; see [`Settings::retry_policy_for`].
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
    /// Retry and timeout policies per job kind (the file's `[kinds.NAME]` tables).
    pub kinds: BTreeMap<String, KindPolicy>,
}

/// One setting a reload changed, with both values in `config list`'s text form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingChange {
    /// The key (`kinds.NAME.KEY` for a kind's policy).
    pub key: String,
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
                Some(ValueSource::File) => home.join(crate::home::CONFIG_FILE).display().to_string(),
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
            kinds: BTreeMap::new(),
        })
    }

    /// The same settings with these per-kind policies.
    pub fn with_kinds(mut self, kinds: BTreeMap<String, KindPolicy>) -> Settings {
        self.kinds = kinds;
        self
    }

    /// Checks every value against the same rules as the config file and `config set` (ranges,
    /// a lease of at least three heartbeats, kind names): how settings built in code are
    /// checked before a pool uses them. The error names the key.
    pub fn validate(&self) -> Result<()> {
        let entries: Vec<ConfigEntry> = self
            .texts()
            .into_iter()
            .filter_map(|(key, value)| {
                let def = find_key(key)?;
                Some(ConfigEntry {
                    key: def.name,
                    value,
                    source: ValueSource::Default,
                    doc: def.doc,
                })
            })
            .collect();
        Settings::from_entries(&self.spool_dir, &entries)?;
        if self.spool_dir.as_os_str().is_empty() {
            return Err(Error::Config("invalid value for `spool_dir`: must not be empty".into()));
        }
        for (kind, policy) in &self.kinds {
            policy.validate(kind)?;
        }
        Ok(())
    }

    /// The policy a kind has, if the settings name one.
    pub fn kind_policy(&self, kind: &str) -> KindPolicy {
        self.kinds.get(kind).copied().unwrap_or_default()
    }

    /// The retry policy for `job`: each value from the job's own field (`max_retries`), else
    /// its kind's policy, else these settings.
    pub fn retry_policy_for(&self, job: &Job) -> RetryPolicy {
        let kind = self.kind_policy(&job.kind);
        RetryPolicy {
            max_retries: job.max_retries.or(kind.max_retries).unwrap_or(self.max_retries),
            backoff_base: kind.backoff_base.unwrap_or(self.backoff_base),
            backoff_max_seconds: kind.backoff_max_seconds.unwrap_or(self.backoff_max_seconds),
        }
    }

    /// The `max_retries` of a job of `kind` that sets none itself.
    pub fn max_retries_for(&self, kind: &str) -> u32 {
        self.kind_policy(kind).max_retries.unwrap_or(self.max_retries)
    }

    /// The timeout for `job`: its own `timeout_seconds`, else its kind's, else
    /// `job_timeout_seconds`; `None` for no timeout.
    pub fn timeout_for(&self, job: &Job) -> Option<Duration> {
        job.timeout_seconds
            .or(self.kind_policy(&job.kind).timeout_seconds)
            .or(self.job_timeout_seconds)
            .map(Duration::from_secs)
    }

    /// Every key's value in the text form `config list` shows (`none` for none), in the order
    /// of [`KEYS`]: what a reload compares to say what changed.
    pub fn values(&self) -> Vec<(&'static str, String)> {
        self.texts()
            .into_iter()
            .map(|(key, value)| {
                let none = value.is_empty() && key != "spool_dir";
                (key, if none { "none".to_string() } else { value })
            })
            .collect()
    }

    /// Every key's value in the text form `config set` takes (empty for none).
    fn texts(&self) -> Vec<(&'static str, String)> {
        let text = |v: &Option<String>| v.clone().unwrap_or_default();
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
                    "spool_allowed_uids" => self
                        .spool_allowed_uids
                        .iter()
                        .map(|u| u.to_string())
                        .collect::<Vec<_>>()
                        .join(","),
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

    /// Every kind policy value as `(kinds.NAME.KEY, text)`, kinds in name order.
    fn kind_values(&self) -> BTreeMap<String, String> {
        self.kinds
            .iter()
            .flat_map(|(kind, policy)| {
                policy
                    .values()
                    .into_iter()
                    .map(move |(key, value)| (qualified(kind, key), value))
            })
            .collect()
    }

    /// The keys whose values differ from `self` in `newer`, in the order of [`KEYS`].
    /// Kind policies follow, by `kinds.NAME.KEY` (`none` where one side sets nothing).
    pub fn changes_to(&self, newer: &Settings) -> Vec<SettingChange> {
        let mut changes: Vec<SettingChange> = self
            .values()
            .into_iter()
            .zip(newer.values())
            .filter(|((_, old), (_, new))| old != new)
            .map(|((key, old), (_, new))| SettingChange {
                key: key.to_string(),
                old,
                new,
            })
            .collect();
        let (old_kinds, new_kinds) = (self.kind_values(), newer.kind_values());
        let keys: std::collections::BTreeSet<&String> = old_kinds.keys().chain(new_kinds.keys()).collect();
        for key in keys {
            let old = old_kinds.get(key).cloned().unwrap_or_else(|| "none".into());
            let new = new_kinds.get(key).cloned().unwrap_or_else(|| "none".into());
            if old != new {
                changes.push(SettingChange {
                    key: key.clone(),
                    old,
                    new,
                });
            }
        }
        changes
    }

    /// The retry policy these settings describe for a job whose own `max_retries` is
    /// `job_max_retries`, leaving kind policies out (see [`retry_policy_for`](Self::retry_policy_for)).
    pub fn retry_policy(&self, job_max_retries: Option<u32>) -> crate::backoff::RetryPolicy {
        crate::backoff::RetryPolicy {
            max_retries: job_max_retries.unwrap_or(self.max_retries),
            backoff_base: self.backoff_base,
            backoff_max_seconds: self.backoff_max_seconds,
        }
    }
}
