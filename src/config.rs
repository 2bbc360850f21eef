//! Settings and where each one comes from.
//!
//! Precedence, lowest first: built-in default < `config/queuectl.toml` < `queuectl config set`
//! (stored in the database) < a job's own field. The TOML file is read on every command (and
//! re-read by running workers), so a deployment driven by a config file only edits the file.
//! Every value is validated wherever it comes from: a bad value is an error, never a silent
//! default.

use crate::error::{Error, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The type and range of a config value.
#[derive(Debug, Clone, Copy)]
enum ValueType {
    Integer { min: i64, max: i64 },
    OptionalInteger { min: i64, max: i64 },
    Number { min: f64, max: f64 },
    Bool,
    Text,
    UidList,
}

/// One config key.
#[derive(Debug, Clone, Copy)]
pub struct KeyDef {
    /// The key's canonical name (underscores).
    pub name: &'static str,
    /// The default, in the form `config set` takes; empty means "none".
    pub default: &'static str,
    /// One line of documentation.
    pub doc: &'static str,
    value_type: ValueType,
}

/// Every key queuectl knows, in the order `config list` shows them.
pub const KEYS: &[KeyDef] = &[
    KeyDef {
        name: "max_retries",
        default: "3",
        doc: "retries after the first run before a job goes to the DLQ",
        value_type: ValueType::Integer { min: 0, max: 1000 },
    },
    KeyDef {
        name: "backoff_base",
        default: "2",
        doc: "retry delay is backoff_base ^ attempts seconds (a number >= 1)",
        value_type: ValueType::Number { min: 1.0, max: 1000.0 },
    },
    KeyDef {
        name: "backoff_max_seconds",
        default: "3600",
        doc: "the longest delay between two attempts",
        value_type: ValueType::Integer {
            min: 1,
            max: 31_536_000,
        },
    },
    KeyDef {
        name: "job_timeout_seconds",
        default: "",
        doc: "kill a job after this many seconds (none by default)",
        value_type: ValueType::OptionalInteger { min: 1, max: 2_592_000 },
    },
    KeyDef {
        name: "worker_count",
        default: "1",
        doc: "threads of `worker start` when --count is not given",
        value_type: ValueType::Integer { min: 1, max: 256 },
    },
    KeyDef {
        name: "output_limit_bytes",
        default: "65536",
        doc: "bytes of each of stdout and stderr kept per job (the tail)",
        value_type: ValueType::Integer {
            min: 0,
            max: 16_777_216,
        },
    },
    KeyDef {
        name: "heartbeat_seconds",
        default: "1",
        doc: "how often a worker records that it is alive",
        value_type: ValueType::Integer { min: 1, max: 60 },
    },
    KeyDef {
        name: "lease_seconds",
        default: "15",
        doc: "a worker silent this long has lost its jobs",
        value_type: ValueType::Integer { min: 3, max: 86_400 },
    },
    KeyDef {
        name: "stop_grace_seconds",
        default: "5",
        doc: "after SIGTERM to a timed-out job, wait this long before SIGKILL",
        value_type: ValueType::Integer { min: 0, max: 600 },
    },
    KeyDef {
        name: "spool_dir",
        default: "spool",
        doc: "the spool directory, relative to the queue home unless absolute",
        value_type: ValueType::Text,
    },
    KeyDef {
        name: "spool_max_file_bytes",
        default: "1048576",
        doc: "larger spool files are refused",
        value_type: ValueType::Integer {
            min: 1,
            max: 1_073_741_824,
        },
    },
    KeyDef {
        name: "spool_settle_ms",
        default: "2000",
        doc: "a spool file that does not parse yet is retried for this long",
        value_type: ValueType::Integer { min: 0, max: 3_600_000 },
    },
    KeyDef {
        name: "spool_keep_ingested",
        default: "false",
        doc: "move ingested spool files to spool/done/ instead of deleting them",
        value_type: ValueType::Bool,
    },
    KeyDef {
        name: "spool_allowed_uids",
        default: "",
        doc: "uids besides the worker's own whose spool files are accepted (comma-separated)",
        value_type: ValueType::UidList,
    },
    KeyDef {
        name: "hooks.on_started",
        default: "",
        doc: "shell command run when a job starts",
        value_type: ValueType::Text,
    },
    KeyDef {
        name: "hooks.on_completed",
        default: "",
        doc: "shell command run when a job completes",
        value_type: ValueType::Text,
    },
    KeyDef {
        name: "hooks.on_failed",
        default: "",
        doc: "shell command run when an attempt fails and a retry is scheduled",
        value_type: ValueType::Text,
    },
    KeyDef {
        name: "hooks.on_dead",
        default: "",
        doc: "shell command run when a job moves to the DLQ",
        value_type: ValueType::Text,
    },
    KeyDef {
        name: "hooks.timeout_seconds",
        default: "10",
        doc: "a hook running longer is killed",
        value_type: ValueType::Integer { min: 1, max: 3600 },
    },
];

/// Where an effective value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueSource {
    /// The built-in default.
    Default,
    /// `config/queuectl.toml`.
    File,
    /// `queuectl config set` (the database).
    Set,
}

impl ValueSource {
    /// `default`, `file` or `set`.
    pub fn as_str(self) -> &'static str {
        match self {
            ValueSource::Default => "default",
            ValueSource::File => "file",
            ValueSource::Set => "set",
        }
    }
}

/// One effective config value and its source.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigEntry {
    /// The key's canonical name.
    pub key: &'static str,
    /// The value in the form `config set` takes; empty means "none".
    pub value: String,
    /// Where it came from.
    pub source: ValueSource,
    /// One line of documentation.
    pub doc: &'static str,
}

/// Finds a key by name; dashes and underscores are the same.
pub fn key_def(name: &str) -> Result<&'static KeyDef> {
    let canonical = name.trim().replace('-', "_");
    KEYS.iter().find(|k| k.name == canonical).ok_or_else(|| {
        let names: Vec<&str> = KEYS.iter().map(|k| k.name).collect();
        Error::Config(format!(
            "unknown config key `{name}` (known keys: {})",
            names.join(", ")
        ))
    })
}

/// Checks `value` for `key` and returns its canonical text form.
pub fn normalize_value(key: &KeyDef, value: &str) -> Result<String> {
    let value = value.trim();
    let bad = |what: String| Error::Config(format!("invalid value `{value}` for `{}`: {what}", key.name));
    match key.value_type {
        ValueType::Integer { min, max } => match value.parse::<i64>() {
            Ok(n) if (min..=max).contains(&n) => Ok(n.to_string()),
            _ => Err(bad(format!("must be an integer from {min} to {max}"))),
        },
        ValueType::OptionalInteger { min, max } => {
            if value.is_empty() || value == "none" {
                return Ok(String::new());
            }
            match value.parse::<i64>() {
                Ok(n) if (min..=max).contains(&n) => Ok(n.to_string()),
                _ => Err(bad(format!("must be an integer from {min} to {max}, or `none`"))),
            }
        }
        ValueType::Number { min, max } => match value.parse::<f64>() {
            Ok(n) if n.is_finite() && n >= min && n <= max => Ok(n.to_string()),
            _ => Err(bad(format!("must be a number from {min} to {max}"))),
        },
        ValueType::Bool => match value {
            "true" | "yes" | "on" | "1" => Ok("true".into()),
            "false" | "no" | "off" | "0" => Ok("false".into()),
            _ => Err(bad("must be true or false".into())),
        },
        ValueType::Text => {
            if value.contains('\0') {
                Err(bad("contains a NUL byte".into()))
            } else {
                Ok(value.to_string())
            }
        }
        ValueType::UidList => {
            let mut uids = Vec::new();
            for part in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                uids.push(
                    part.parse::<u32>()
                        .map_err(|_| bad("must be a comma-separated list of uids".into()))?,
                );
            }
            Ok(uids.iter().map(|u| u.to_string()).collect::<Vec<_>>().join(","))
        }
    }
}

/// Reads `config/queuectl.toml` into canonical key/value text. A missing file is empty.
pub fn read_config_file(path: &Path) -> Result<BTreeMap<&'static str, String>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(Error::io(path, e)),
    };
    parse_config_text(&text).map_err(|e| Error::Config(format!("{}: {e}", path.display())))
}

/// Parses the TOML text of a config file.
pub fn parse_config_text(text: &str) -> std::result::Result<BTreeMap<&'static str, String>, String> {
    let table: toml::Table = toml::from_str(text).map_err(|e| {
        let position = e.span().map(|span| line_column(text, span.start));
        match position {
            Some((line, column)) => format!("line {line}, column {column}: {}", e.message().trim()),
            None => e.message().trim().to_string(),
        }
    })?;
    let mut values = BTreeMap::new();
    let mut flat = Vec::new();
    for (key, value) in table {
        match value {
            toml::Value::Table(inner) => {
                for (inner_key, inner_value) in inner {
                    flat.push((format!("{key}.{inner_key}"), inner_value));
                }
            }
            other => flat.push((key, other)),
        }
    }
    for (key, value) in flat {
        let def = key_def(&key).map_err(|e| e.to_string())?;
        let text = match &value {
            toml::Value::String(s) => s.clone(),
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            toml::Value::Array(items) => items
                .iter()
                .map(|item| match item {
                    toml::Value::Integer(i) => Ok(i.to_string()),
                    _ => Err(format!("`{key}` must be a list of integers")),
                })
                .collect::<std::result::Result<Vec<_>, _>>()?
                .join(","),
            other => return Err(format!("`{key}` has an unsupported value {other}")),
        };
        let normalized = normalize_value(def, &text).map_err(|e| e.to_string())?;
        values.insert(def.name, normalized);
    }
    Ok(values)
}

fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map(|l| l.chars().count()).unwrap_or(0) + 1;
    (line, column)
}

/// Merges the three layers into the effective value of every key.
pub fn effective(file: &BTreeMap<&'static str, String>, stored: &BTreeMap<String, String>) -> Vec<ConfigEntry> {
    KEYS.iter()
        .map(|def| {
            let (value, source) = if let Some(v) = stored.get(def.name) {
                (v.clone(), ValueSource::Set)
            } else if let Some(v) = file.get(def.name) {
                (v.clone(), ValueSource::File)
            } else {
                (def.default.to_string(), ValueSource::Default)
            };
            ConfigEntry {
                key: def.name,
                value,
                source,
                doc: def.doc,
            }
        })
        .collect()
}

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

/// Shell commands run on job life-cycle events (from the `[hooks]` table).
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
        Settings::from_entries(home, &effective(&BTreeMap::new(), &BTreeMap::new()))
            .expect("built-in defaults are valid")
    }

    /// Builds typed settings from effective entries; `home` resolves relative paths.
    pub fn from_entries(home: &Path, entries: &[ConfigEntry]) -> Result<Settings> {
        let get = |key: &str| -> &str {
            entries
                .iter()
                .find(|e| e.key == key)
                .map(|e| e.value.as_str())
                .unwrap_or("")
        };
        let int = |key: &str| -> Result<i64> {
            get(key)
                .parse::<i64>()
                .map_err(|_| Error::Config(format!("invalid value for `{key}`")))
        };
        let text = |key: &str| -> Option<String> {
            let v = get(key);
            if v.is_empty() {
                None
            } else {
                Some(v.to_string())
            }
        };
        let spool = PathBuf::from(get("spool_dir"));
        let (heartbeat, lease) = (int("heartbeat_seconds")?, int("lease_seconds")?);
        if lease < 3 * heartbeat {
            // With fewer than three heartbeats per lease, one late heartbeat makes a live worker
            // on another host look dead, and its jobs would be recovered while they run.
            return Err(Error::Config(format!(
                "`lease_seconds` ({lease}) must be at least 3 times `heartbeat_seconds` ({heartbeat})"
            )));
        }
        Ok(Settings {
            max_retries: int("max_retries")? as u32,
            backoff_base: get("backoff_base")
                .parse()
                .map_err(|_| Error::Config("invalid value for `backoff_base`".into()))?,
            backoff_max_seconds: int("backoff_max_seconds")? as u64,
            job_timeout_seconds: text("job_timeout_seconds").and_then(|v| v.parse().ok()),
            worker_count: int("worker_count")? as usize,
            output_limit_bytes: int("output_limit_bytes")? as usize,
            heartbeat_seconds: int("heartbeat_seconds")? as u64,
            lease_seconds: int("lease_seconds")? as u64,
            stop_grace_seconds: int("stop_grace_seconds")? as u64,
            spool_dir: if spool.is_absolute() { spool } else { home.join(spool) },
            spool_max_file_bytes: int("spool_max_file_bytes")? as u64,
            spool_settle_ms: int("spool_settle_ms")? as u64,
            spool_keep_ingested: get("spool_keep_ingested") == "true",
            spool_allowed_uids: get("spool_allowed_uids")
                .split(',')
                .filter(|p| !p.is_empty())
                .filter_map(|p| p.parse().ok())
                .collect(),
            hooks: HookCommands {
                on_started: text("hooks.on_started"),
                on_completed: text("hooks.on_completed"),
                on_failed: text("hooks.on_failed"),
                on_dead: text("hooks.on_dead"),
                timeout_seconds: int("hooks.timeout_seconds")? as u64,
            },
        })
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

/// The documented config file `queuectl init` writes when none exists.
pub const DEFAULT_CONFIG_FILE: &str = r#"# queuectl configuration.
#
# Precedence, lowest first: built-in default < this file < `queuectl config set` (stored in
# queue.db; `queuectl config unset KEY` drops it) < a job's own field. This file is read by
# every command and re-read by running workers, so editing it is enough.
# `queuectl config list` shows every effective value and where it came from.

# Retries after the first run: a job with max_retries = 3 runs at most 4 times.
max_retries = 3

# After failed attempt n the next run is backoff_base ^ n seconds later (a number >= 1).
backoff_base = 2

# The longest delay between two attempts, in seconds.
backoff_max_seconds = 3600

# Kill a job that runs longer than this many seconds (unset: no timeout).
# job_timeout_seconds = 600

# Threads of `queuectl worker start` when --count is not given.
# worker_count = 1

# Bytes of each of stdout and stderr kept per job (the tail).
# output_limit_bytes = 65536

# A worker that has not sent a heartbeat for this long has lost its jobs.
# lease_seconds = 15

# The spool directory other programs drop job files into (relative to this home).
# spool_dir = "spool"
# spool_max_file_bytes = 1048576
# spool_settle_ms = 2000
# spool_keep_ingested = false
# spool_allowed_uids = []

# Shell commands run on job events, with QUEUECTL_JOB_ID, QUEUECTL_JOB_COMMAND,
# QUEUECTL_JOB_STATE, QUEUECTL_JOB_ATTEMPTS, QUEUECTL_JOB_EXIT_CODE and QUEUECTL_JOB_ERROR set.
[hooks]
# on_dead = "notify-send \"job $QUEUECTL_JOB_ID died: $QUEUECTL_JOB_ERROR\""
# timeout_seconds = 10
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_file_parses_to_the_defaults() {
        let values = parse_config_text(DEFAULT_CONFIG_FILE).unwrap();
        for (key, value) in &values {
            assert_eq!(key_def(key).unwrap().default, value, "{key}");
        }
        assert!(values.contains_key("max_retries"));
    }

    #[test]
    fn precedence_default_file_set() {
        let mut file = BTreeMap::new();
        file.insert("max_retries", "5".to_string());
        file.insert("backoff_base", "3".to_string());
        let mut stored = BTreeMap::new();
        stored.insert("backoff_base".to_string(), "1.5".to_string());
        let entries = effective(&file, &stored);
        let find = |k: &str| entries.iter().find(|e| e.key == k).unwrap().clone();
        assert_eq!(
            (find("max_retries").value.as_str(), find("max_retries").source),
            ("5", ValueSource::File)
        );
        assert_eq!(
            (find("backoff_base").value.as_str(), find("backoff_base").source),
            ("1.5", ValueSource::Set)
        );
        assert_eq!(find("backoff_max_seconds").source, ValueSource::Default);
        let settings = Settings::from_entries(Path::new("/q"), &entries).unwrap();
        assert_eq!(settings.max_retries, 5);
        assert_eq!(settings.backoff_base, 1.5);
        assert_eq!(settings.retry_policy(Some(9)).max_retries, 9);
        assert_eq!(settings.spool_dir, PathBuf::from("/q/spool"));
    }

    #[test]
    fn keys_accept_dashes_and_refuse_unknowns() {
        assert_eq!(key_def("max-retries").unwrap().name, "max_retries");
        let e = key_def("max_retry").unwrap_err().to_string();
        assert!(
            e.starts_with("unknown config key `max_retry` (known keys: max_retries, backoff_base"),
            "{e}"
        );
    }

    #[test]
    fn values_are_validated() {
        let base = key_def("backoff_base").unwrap();
        assert_eq!(normalize_value(base, "1.5").unwrap(), "1.5");
        assert!(normalize_value(base, "0.5").is_err());
        assert!(normalize_value(base, "abc").is_err());
        let retries = key_def("max_retries").unwrap();
        assert!(normalize_value(retries, "-1").is_err());
        assert!(normalize_value(retries, "2.5").is_err());
        let timeout = key_def("job_timeout_seconds").unwrap();
        assert_eq!(normalize_value(timeout, "none").unwrap(), "");
        let uids = key_def("spool_allowed_uids").unwrap();
        assert_eq!(normalize_value(uids, "1000, 1001").unwrap(), "1000,1001");
    }

    #[test]
    fn malformed_toml_names_line_and_column() {
        let e = parse_config_text("max_retries = 3\nbackoff_base = = 2\n").unwrap_err();
        assert!(e.starts_with("line 2, column"), "{e}");
        let e = parse_config_text("max_retries = \"lots\"\n").unwrap_err();
        assert!(e.contains("invalid value `lots` for `max_retries`"), "{e}");
        let e = parse_config_text("colour = 1\n").unwrap_err();
        assert!(e.contains("unknown config key `colour`"), "{e}");
        let values = parse_config_text("[hooks]\non_dead = \"echo dead\"\n").unwrap();
        assert_eq!(values.get("hooks.on_dead").map(String::as_str), Some("echo dead"));
    }
}
