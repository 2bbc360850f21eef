//! `queuectl migrate`, and the lines `init` and `worker start` print when they migrate.

use super::output::print_json;
use anyhow::Result;
use clap::Args;
use queuectl::queue::MigrateReport;
use queuectl::{Home, Queue};
use serde_json::json;

/// Arguments of `queuectl migrate`.
#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// Print JSON: {"from", "to", "migrated", "backup", "last_migrated_by"}
    #[arg(long)]
    pub json: bool,
}

/// Runs `queuectl migrate`.
pub fn run(home: &Home, args: &MigrateArgs) -> Result<()> {
    let (_, report) = Queue::migrate(home)?;
    if args.json {
        print_json(&json!({
            "database": home.db().to_string(),
            "from": report.from,
            "to": report.to,
            "migrated": report.backup.is_some(),
            "backup": report.backup.as_ref().map(super::backup::report_json),
            "last_migrated_by": report.last_migrated_by,
        }));
        return Ok(());
    }
    if report.backup.is_none() {
        println!(
            "{} is at schema version {}, the current one: nothing to migrate{}",
            home.db(),
            report.to,
            last_by(&report)
        );
        return Ok(());
    }
    for line in migrated_lines(home, &report) {
        println!("{line}");
    }
    Ok(())
}

/// What a migration did, for `migrate`, `init` and `worker start`: the backup first, then the
/// versions.
pub fn migrated_lines(home: &Home, report: &MigrateReport) -> Vec<String> {
    let mut lines = Vec::new();
    if let Some(backup) = &report.backup {
        lines.push(format!(
            "backup before migrating: {} ({})",
            backup.path.display(),
            super::jobs(backup.counts.total())
        ));
    }
    lines.push(format!(
        "migrated {} from schema version {} to {}{}",
        home.db(),
        report.from,
        report.to,
        last_by(report)
    ));
    lines
}

fn last_by(report: &MigrateReport) -> String {
    report
        .last_migrated_by
        .as_ref()
        .map(|by| format!(" (last migrated by {by})"))
        .unwrap_or_default()
}
