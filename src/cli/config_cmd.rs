//! `queuectl config`.

use super::output::{print_json, print_table};
use anyhow::Result;
use clap::Subcommand;
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
    #[command(after_help = "Example:\n  queuectl config get max_retries")]
    Get {
        /// The key
        key: String,
    },
    /// Drop a stored value so the file (or the default) applies again
    #[command(after_help = "Example:\n  queuectl config unset max-retries")]
    Unset {
        /// The key
        key: String,
    },
    /// Every key, its effective value and where it came from (default, file or set)
    #[command(after_help = "Example:\n  queuectl config list --json")]
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
        ConfigCommand::Get { key } => {
            let entry = queue.config_get(key)?;
            println!("{}", display(&entry.value));
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
            if *json {
                let items = entries
                    .iter()
                    .map(|e| serde_json::json!({"key": e.key, "value": e.value, "source": e.source.as_str(), "doc": e.doc}))
                    .collect();
                print_json(&serde_json::Value::Array(items));
            } else {
                let rows: Vec<Vec<String>> = entries
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
                print_table(&["KEY", "VALUE", "SOURCE", "MEANING"], &rows);
            }
        }
    }
    Ok(())
}

fn display(value: &str) -> String {
    if value.is_empty() {
        "none".to_string()
    } else {
        value.to_string()
    }
}
