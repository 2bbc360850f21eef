//! `queuectl backup FILE`.

use super::output::print_json;
use anyhow::Result;
use clap::Args;
use queuectl::store::{BackupReport, Overwrite};
use queuectl::{Home, Queue, State};
use serde_json::json;
use std::path::PathBuf;

/// Arguments of `queuectl backup`.
#[derive(Debug, Args)]
pub struct BackupArgs {
    /// The file to write (its directory must exist)
    #[arg(value_name = "FILE")]
    pub file: PathBuf,

    /// Replace FILE if it exists
    #[arg(long)]
    pub force: bool,

    /// Print JSON: {"path", "schema_version", "jobs": {...}, "total"}
    #[arg(long)]
    pub json: bool,
}

/// Runs `queuectl backup`.
pub fn run(home: &Home, args: &BackupArgs) -> Result<()> {
    let overwrite = if args.force {
        Overwrite::Replace
    } else {
        Overwrite::Refuse
    };
    let report = Queue::backup(home, &args.file, overwrite)?;
    if args.json {
        print_json(&report_json(&report));
    } else {
        println!(
            "backed up {} to {} (schema version {})",
            home.db(),
            report.path.display(),
            report.schema_version
        );
        println!("{}", counts_line(&report));
    }
    Ok(())
}

/// "jobs: 3 pending, 0 processing, ... (14 total)": the copy's own counts.
pub fn counts_line(report: &BackupReport) -> String {
    let parts: Vec<String> = State::ALL
        .iter()
        .map(|s| format!("{} {}", report.counts.get(*s), s.as_str()))
        .collect();
    format!("jobs: {} ({} total)", parts.join(", "), report.counts.total())
}

/// The report as JSON (also used by `migrate --json` for its backup).
pub fn report_json(report: &BackupReport) -> serde_json::Value {
    let mut jobs = serde_json::Map::new();
    for state in State::ALL {
        jobs.insert(state.as_str().into(), report.counts.get(state).into());
    }
    json!({
        "path": report.path,
        "schema_version": report.schema_version,
        "jobs": jobs,
        "total": report.counts.total(),
    })
}
