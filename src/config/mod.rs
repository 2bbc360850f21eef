//! Settings and where each one comes from.
//!
//! Precedence, lowest first: built-in default < `config/queuectl.toml` < `queuectl config set`
//! (stored in the database) < a job's own field. The TOML file is read on every command (and
//! re-read by running workers), so a deployment driven by a config file only edits the file.
//! Every value is validated wherever it comes from: a bad value is an error, never a silent
//! default.
//!
//! - `keys`: the table of keys (name, default, type and range, documentation) and
//!   [`normalize_value`], the one check every value goes through.
//! - `toml_file`: reading the file strictly (wrong types, unknown keys, non-UTF-8 bytes are
//!   errors naming the line or byte).
//! - `default_file`: the documented file `init` writes (0600, no `[table]` header, so appended
//!   lines stay top-level) and the warning for a file others can write.
//! - `settings`: [`Settings`], the typed result of the merge.

mod default_file;
mod keys;
mod settings;
mod toml_file;

pub use default_file::{permission_warnings, write_default_file, DEFAULT_CONFIG_FILE};
pub use keys::{key_def, normalize_value, KeyDef, KEYS};
pub use settings::{HookCommands, Settings};
pub use toml_file::{parse_config_bytes, parse_config_text, read_config_file};

use std::collections::BTreeMap;

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

/// Merges the three layers into the effective value of every key: a stored (`config set`)
/// value beats the file's, which beats the default.
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

#[cfg(test)]
mod tests;
