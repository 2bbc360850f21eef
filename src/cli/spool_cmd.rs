//! `queuectl spool`: ingest once, watch, submit a file, list and retry rejected files.

use anyhow::Result;
use clap::Subcommand;
use queuectl::Home;

/// `queuectl spool` subcommands.
#[derive(Debug, Subcommand)]
pub enum SpoolCommand {
    /// Ingest every file in spool/incoming once and exit (for cron)
    #[command(after_help = "Example:\n  queuectl spool ingest")]
    Ingest,
}

/// Runs `queuectl spool ...`.
pub fn run(_home: &Home, command: &SpoolCommand) -> Result<()> {
    match command {
        SpoolCommand::Ingest => anyhow::bail!("spool ingestion is not built yet"),
    }
}
