//! `queuectl config`.

use super::output::{print_json, print_table};
use anyhow::Result;
use clap::Subcommand;
use queuectl::config::ConfigEntry;
use queuectl::Queue;

/// `queuectl config` subcommands.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Store a value in the database (overrides config/queuectl.toml)
    #[command(after_help = "Examples:\n  queuectl config set max-retries 5\n  queuectl config set backoff-base 1.5")]
    Set {
        /// The key (dashes or underscores)
        key: String,
        /// The value
        #[arg(allow_hyphen_values = true)]
        value: String,
    },
    /// Print one key's effective value
    #[command(
        after_help = "Examples:\n  queuectl config get max_retries\n  queuectl config get max_retries --json   # with its source"
    )]
    Get {
        /// The key
        key: String,
        /// Print JSON: {"key", "value", "source", "env", "doc"}
        #[arg(long)]
        json: bool,
    },
    /// Drop a stored value so the file (or the default) applies again
    #[command(after_help = "Example:\n  queuectl config unset max-retries")]
    Unset {
        /// The key
        key: String,
    },
    /// Every key, its effective value and where it came from (default, file, env or set)
    #[command(
        after_help = "Example:\n  queuectl config list --json\n\nPrecedence, lowest first: default < config/queuectl.toml < environment < config set < a\njob's own field. Every key can be set by the environment variable QUEUECTL_ and the key in\nupper case, dots as underscores: QUEUECTL_MAX_RETRIES=5, QUEUECTL_HOOKS_ON_DEAD='...'."
    )]
    List {
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
}

/// Runs `queuectl config ...`.
pub fn run(queue: &Queue, command: &ConfigCommand) -> Result<()> {
    if matches!(command, ConfigCommand::Get { .. } | ConfigCommand::List { .. }) {
        // Showing values that no command could use (say a lease shorter than three heartbeats)
        // would hide the problem: name it instead, as every command that needs settings does.
        queue.settings()?;
    }
    match command {
        ConfigCommand::Set { key, value } => {
            let (key, value) = queue.config_set(key, value)?;
            println!("{key} = {}", if value.is_empty() { "none" } else { &value });
        }
        ConfigCommand::Get { key, json } => {
            let entry = queue.config_get(key)?;
            if *json {
                print_json(&entry_json(&entry));
            } else {
                println!("{}", display(&entry.value));
            }
        }
        ConfigCommand::Unset { key } => {
            let (key, existed) = queue.config_unset(key)?;
            let entry = queue.config_get(key)?;
            if existed {
                println!(
                    "{key} unset; now {} (from {})",
                    display(&entry.value),
                    entry.source.as_str()
                );
            } else {
                println!(
                    "{key} was not set; it is {} (from {})",
                    display(&entry.value),
                    entry.source.as_str()
                );
            }
        }
        ConfigCommand::List { json } => {
            let entries = queue.config_entries()?;
            // The file's kind tables follow the keys, one row per value they set.
            let kinds: Vec<(String, String, String)> = queue
                .kind_policies()?
                .iter()
                .flat_map(|(kind, policy)| {
                    policy.values().into_iter().map(move |(key, value)| {
                        let name = if kind.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
                            format!("kinds.{kind}.{key}")
                        } else {
                            format!("kinds.{kind:?}.{key}")
                        };
                        (
                            name,
                            value,
                            format!("{key} for jobs of kind {kind} (a job's own field wins)"),
                        )
                    })
                })
                .collect();
            if *json {
                let mut items: Vec<serde_json::Value> = entries.iter().map(entry_json).collect();
                items.extend(kinds.iter().map(|(key, value, doc)| {
                    serde_json::json!({"key": key, "value": value, "source": "file", "env": "", "doc": doc})
                }));
                print_json(&serde_json::Value::Array(items));
            } else {
                let mut rows: Vec<Vec<String>> = entries
                    .iter()
                    .map(|e| {
                        vec![
                            e.key.to_string(),
                            display(&e.value),
                            e.source.as_str().to_string(),
                            e.doc.to_string(),
                        ]
                    })
                    .collect();
                rows.extend(
                    kinds
                        .into_iter()
                        .map(|(key, value, doc)| vec![key, value, "file".to_string(), doc]),
                );
                print_table(&["KEY", "VALUE", "SOURCE", "MEANING"], &rows);
            }
        }
    }
    Ok(())
}

/// One entry as JSON; `env` names the variable that would set the key.
fn entry_json(entry: &ConfigEntry) -> serde_json::Value {
    let env = queuectl::config::key_def(entry.key)
        .map(queuectl::config::env_var_name)
        .unwrap_or_default();
    serde_json::json!({
        "key": entry.key,
        "value": entry.value,
        "source": entry.source.as_str(),
        "env": env,
        "doc": entry.doc,
    })
}

fn display(value: &str) -> String {
    if value.is_empty() {
        "none".to_string()
    } else {
        value.to_string()
    }
}
