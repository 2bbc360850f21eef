//! The config file on disk: the documented file `init` writes, created private whatever the
//! umask, and the check that only its owner can change it. Its hooks run shell commands as the
//! worker's user, so whoever can write it can run commands as that user.

use crate::error::{Error, Result};
use std::path::Path;

/// Writes the documented default config file if none exists: the file 0600 and its directory
/// 0700, whatever the umask, as its hooks run commands. Returns whether it wrote one.
pub fn write_default_file(path: &Path) -> Result<bool> {
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    if let Some(parent) = path.parent() {
        if !parent.is_dir() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)
                .map_err(|e| Error::io(parent, e))?;
        }
    }
    let mut file = match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(false),
        Err(e) => return Err(Error::io(path, e)),
    };
    if let Err(e) = file.write_all(DEFAULT_CONFIG_FILE.as_bytes()) {
        // A half-written file would be taken for the user's own on the next `init`.
        let _ = std::fs::remove_file(path);
        return Err(Error::io(path, e));
    }
    Ok(true)
}

/// One warning line for each of the config file and its directory that users other than the
/// owner can write: they could add a hook and so run commands as the worker's user.
pub fn permission_warnings(path: &Path) -> Vec<String> {
    use std::os::unix::fs::PermissionsExt;
    let Ok(metadata) = std::fs::metadata(path) else {
        return Vec::new();
    };
    let mut warnings = Vec::new();
    let mut check = |what: &Path, mode: u32, fix: &str| {
        if mode & 0o022 != 0 {
            let who = if mode & 0o002 != 0 { "world" } else { "group" };
            warnings.push(format!(
                "{} is {who}-writable (mode {:04o}): whoever can write it can run commands as the \
                 worker's user through its hooks; run `chmod {fix} {}`",
                what.display(),
                mode & 0o7777,
                what.display()
            ));
        }
    };
    check(path, metadata.permissions().mode(), "600");
    if let Some(parent) = path.parent() {
        if let Ok(dir) = std::fs::metadata(parent) {
            check(parent, dir.permissions().mode(), "700");
        }
    }
    warnings
}

/// The documented config file `queuectl init` writes when none exists.
///
/// It has no `[table]` header, so a line appended at its end is a top-level setting (under a
/// trailing `[hooks]` header it would be read as a hook).
pub const DEFAULT_CONFIG_FILE: &str = r#"# queuectl configuration.
#
# Precedence, lowest first: built-in default < this file < QUEUECTL_<KEY> environment
# variables (QUEUECTL_MAX_RETRIES, QUEUECTL_HOOKS_ON_DEAD) < `queuectl config set` (stored in
# queue.db; `queuectl config unset KEY` drops it) < a job's own field. This file is read by
# every command and re-read by running workers (at once on SIGHUP), so editing it is enough.
# `queuectl config list` shows every effective value and where it came from.
# This file has no [table] headers: a line appended at its end is a setting like any other.

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

# How often a worker records that it is alive, and how long a silent worker keeps its jobs
# (at least 3 heartbeats).
# heartbeat_seconds = 1
# lease_seconds = 15

# After SIGTERM to a timed-out job, wait this long before SIGKILL.
# stop_grace_seconds = 5

# The spool directory other programs drop job files into (relative to this home).
# spool_dir = "spool"
# spool_max_file_bytes = 1048576
# spool_settle_ms = 2000
# spool_keep_ingested = false
# spool_allowed_uids = [1001, 1002]

# Shell commands run on job events, with QUEUECTL_JOB_ID, QUEUECTL_JOB_COMMAND,
# QUEUECTL_JOB_STATE, QUEUECTL_JOB_ATTEMPTS, QUEUECTL_JOB_EXIT_CODE and QUEUECTL_JOB_ERROR set.
# They run as the worker's user: keep this file writable by its owner only.
# hooks.on_started = "logger \"job $QUEUECTL_JOB_ID started\""
# hooks.on_completed = "logger \"job $QUEUECTL_JOB_ID completed\""
# hooks.on_failed = "logger \"job $QUEUECTL_JOB_ID failed: $QUEUECTL_JOB_ERROR\""
# hooks.on_dead = "notify-send \"job $QUEUECTL_JOB_ID died: $QUEUECTL_JOB_ERROR\""
# hooks.timeout_seconds = 10

# Per job kind: max_retries, backoff_base, backoff_max_seconds and timeout_seconds for the
# jobs of one kind, over the values above (a job's own field still wins). Dotted keys keep
# this file free of [table] headers; a [kinds.resize] table works too, at the end of the file.
# kinds.resize.max_retries = 5
# kinds.resize.timeout_seconds = 120
"#;

#[cfg(test)]
mod tests {
    use super::super::{key_def, parse_config_text};
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
    fn every_commented_setting_of_the_default_file_parses_when_uncommented() {
        let uncommented: String = DEFAULT_CONFIG_FILE
            .lines()
            .map(|l| match l.strip_prefix("# ") {
                Some(rest) if rest.contains(" = ") && !rest.contains("max_retries = 3 runs") => rest,
                _ => l,
            })
            .map(|l| format!("{l}\n"))
            .collect();
        let values = parse_config_text(&uncommented).unwrap();
        assert_eq!(values["job_timeout_seconds"], "600");
        assert_eq!(values["spool_allowed_uids"], "1001,1002");
        assert!(values["hooks.on_dead"].starts_with("notify-send"));
        let kinds = super::super::parse_config(&uncommented).unwrap().kinds;
        assert_eq!(
            kinds["resize"],
            super::super::KindPolicy::new().max_retries(5).timeout_seconds(120)
        );
    }

    #[test]
    fn a_line_appended_to_the_default_file_stays_top_level() {
        let values = parse_config_text(&format!("{DEFAULT_CONFIG_FILE}job_timeout_seconds = 60\n")).unwrap();
        assert_eq!(values["job_timeout_seconds"], "60");
        let values = parse_config_text(&format!("{DEFAULT_CONFIG_FILE}hooks.on_dead = \"echo dead\"\n")).unwrap();
        assert_eq!(values["hooks.on_dead"], "echo dead");
    }

    #[test]
    fn a_file_and_directory_others_can_write_are_each_named() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config/queuectl.toml");
        assert!(write_default_file(&config).unwrap());
        assert!(!write_default_file(&config).unwrap(), "an existing file is kept");
        assert!(permission_warnings(&config).is_empty());
        let chmod =
            |path: &Path, mode: u32| std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
        chmod(&config, 0o646);
        chmod(config.parent().unwrap(), 0o770);
        let warnings = permission_warnings(&config);
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(
            warnings[0].contains("queuectl.toml is world-writable (mode 0646)"),
            "{warnings:?}"
        );
        assert!(
            warnings[0].ends_with(&format!("run `chmod 600 {}`", config.display())),
            "{warnings:?}"
        );
        assert!(
            warnings[1].contains("config is group-writable (mode 0770)"),
            "{warnings:?}"
        );
        assert!(permission_warnings(&dir.path().join("missing.toml")).is_empty());
    }
}
