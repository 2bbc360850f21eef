//! Settings and where each one comes from.
//!
//! Precedence, lowest first: built-in default < `config/queuectl.toml` < `QUEUECTL_<KEY>`
//! environment variables < `queuectl config set` (stored in the database) < a job's own field.
//! A pool given settings in code ([`PoolBuilder::settings`](crate::PoolBuilder::settings)) uses
//! them instead of those four layers, and never writes them anywhere.
//!
//! Per-kind policies (`max_retries`, `backoff_base`, `backoff_max_seconds`, `timeout_seconds`
//! for one job kind) sit between the job and the global value: job's own field < is beaten by
//! nothing; then the kind's policy from code ([`PoolBuilder::kind_policy`](crate::PoolBuilder::kind_policy)),
//! then the file's `[kinds.NAME]` table, then the global setting from the layers above. In
//! full, for one job's `max_retries`: job field > code kind policy > file kind table >
//! `config set` > environment > file top-level > default. Kind tables come only from the file
//! or code (see [`KindPolicy`]).
//! The TOML file is read on every command (and re-read by running workers), so a deployment
//! driven by a config file only edits the file. Every value is validated wherever it comes
//! from: a bad value is an error, never a silent default.
//!
//! Why the environment sits between the file and `config set`: the environment is how a
//! deployment (a systemd unit, a container) adjusts one process's settings without editing a
//! shared file, so it beats the file; but it is fixed when a process starts, while `config set`
//! is the operator's way to change settings for every worker of the queue at once, at run time.
//! If the environment beat `config set`, a `config set` would silently do nothing for workers
//! started with a variable; `config unset` hands the key back to the environment.
//!
//! - `keys`: the table of keys (name, default, type and range, documentation) and
//!   [`normalize_value`], the one check every value goes through.
//! - `toml_file`: reading the file strictly (wrong types, unknown keys, non-UTF-8 bytes are
//!   errors naming the line or byte).
//! - `default_file`: the documented file `init` writes (0600, no `[table]` header, so appended
//!   lines stay top-level) and the warning for a file others can write.
//! - `settings`: [`Settings`], the typed result of the merge.
//! - `kinds`: [`KindPolicy`], one job kind's retry and timeout policy, and the checks of its
//!   values.

mod default_file;
mod env;
mod keys;
mod kinds;
mod settings;
mod toml_file;

pub use default_file::{permission_warnings, write_default_file, DEFAULT_CONFIG_FILE};
pub use env::{env_var_name, EnvOverrides, ENV_PREFIX, RESERVED_ENV_VARS};
pub use keys::{key_def, normalize_value, KeyDef, KEYS};
pub use kinds::{overlay as overlay_kinds, KindPolicy, KIND_KEYS};
pub use settings::{HookCommands, SettingChange, Settings};
pub use toml_file::{
    parse_config, parse_config_bytes, parse_config_text, read_config, read_config_file, read_db_url, ConfigFile,
    DB_URL_KEY,
};

use crate::error::{Error, Result};
use crate::home::Home;
use crate::store::Store;
use std::collections::BTreeMap;
use std::path::Path;

/// Where an effective value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueSource {
    /// The built-in default.
    Default,
    /// `config/queuectl.toml`.
    File,
    /// A `QUEUECTL_<KEY>` environment variable.
    Env,
    /// `queuectl config set` (the database).
    Set,
}

impl ValueSource {
    /// `default`, `file`, `env` or `set`.
    pub fn as_str(self) -> &'static str {
        match self {
            ValueSource::Default => "default",
            ValueSource::File => "file",
            ValueSource::Env => "env",
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

/// The effective value of every key from the file's values, the stored (`config set`) values
/// and this process's `QUEUECTL_<KEY>` environment variables; a bad variable is an error
/// naming it.
pub fn effective(
    file: &BTreeMap<&'static str, String>,
    stored: &BTreeMap<String, String>,
) -> crate::error::Result<Vec<ConfigEntry>> {
    Ok(merge(file, &EnvOverrides::from_process()?, stored))
}

/// Merges the layers into the effective value of every key: a stored (`config set`) value
/// beats the environment's, which beats the file's, which beats the default.
pub fn merge(
    file: &BTreeMap<&'static str, String>,
    env: &EnvOverrides,
    stored: &BTreeMap<String, String>,
) -> Vec<ConfigEntry> {
    KEYS.iter()
        .map(|def| {
            let (value, source) = if let Some(v) = stored.get(def.name) {
                (v.clone(), ValueSource::Set)
            } else if let Some(v) = env.get(def.name) {
                (v.clone(), ValueSource::Env)
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

#[cfg(test)]
mod tests;

/// The typed settings in effect for `home` with the values stored in `store`, with the config
/// file's kind tables.
pub fn load_settings(home: &Home, store: &dyn Store) -> Result<Settings> {
    let file = read_config(&home.config_path())?;
    let stored = store.config_values()?;
    Ok(Settings::from_entries(home.root(), &effective(&file.values, &stored)?)?.with_kinds(file.kinds))
}

/// Opens the queue database of `home` (see [`crate::store::open`]) and reads its settings.
pub fn open_with_settings(home: &Home) -> Result<(Box<dyn Store>, Settings)> {
    let store = crate::store::open(home.db())?;
    let settings = load_settings(home, store.as_ref())?;
    Ok((store, settings))
}

/// `home` with its jobs where its config file's `db_url` says, if it says (relative paths
/// against the home); unchanged otherwise, and when the file cannot be read: the command then
/// meets the file's problem when it reads its settings (read-only commands warn and go on). A
/// `db_url` that is not a valid location is an error naming the file.
pub fn with_db_url(home: Home) -> Result<Home> {
    let Ok(Some(text)) = read_db_url(&home.config_path()) else {
        return Ok(home);
    };
    let location = crate::store::DbLocation::parse(&text)
        .map_err(|e| Error::Config(format!("{}: db_url: {e}", home.config_path().display())))?;
    let location = match location {
        crate::store::DbLocation::Sqlite(_) if !Path::new(text.trim()).is_absolute() => {
            crate::store::DbLocation::Sqlite(home.root().join(text.trim()))
        }
        other => other,
    };
    Ok(home.with_db(location))
}
