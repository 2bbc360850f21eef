//! The environment layer: `QUEUECTL_<KEY>` variables override the config file.
//!
//! A key's variable is `QUEUECTL_` followed by the key in upper case with dots as underscores:
//! `max_retries` is `QUEUECTL_MAX_RETRIES`, `hooks.on_dead` is `QUEUECTL_HOOKS_ON_DEAD`. Only
//! names that are exactly a key's variable count. That matters because jobs inherit their
//! worker's environment and the CLI sets other `QUEUECTL_` variables (`QUEUECTL_HOME`,
//! `QUEUECTL_DB`, and for jobs and hooks `QUEUECTL_JOB_ID`, `QUEUECTL_LEASE`, ...): a
//! `queuectl` run by a job must not read those as settings, and no key's variable is one of
//! them (a unit test checks). Values are text, checked exactly like `config set` values, and a
//! bad one is an error naming the variable.

use super::keys::{check_value, KeyDef, KEYS};
use crate::error::{Error, Result};
use std::collections::BTreeMap;
use std::ffi::OsString;

/// The prefix of every config variable.
pub const ENV_PREFIX: &str = "QUEUECTL_";

/// `QUEUECTL_` variables the CLI, jobs and hooks use for other things than settings. No key's
/// variable may be one of these.
pub const RESERVED_ENV_VARS: &[&str] = &[
    "QUEUECTL_HOME",
    "QUEUECTL_DB",
    "QUEUECTL_JOB_ID",
    "QUEUECTL_ATTEMPT",
    "QUEUECTL_LEASE",
    "QUEUECTL_JOB_COMMAND",
    "QUEUECTL_JOB_STATE",
    "QUEUECTL_JOB_ATTEMPTS",
    "QUEUECTL_JOB_EXIT_CODE",
    "QUEUECTL_JOB_ERROR",
];

/// The environment variable that sets `key`: `QUEUECTL_MAX_RETRIES`, `QUEUECTL_HOOKS_ON_DEAD`.
pub fn env_var_name(key: &KeyDef) -> String {
    format!("{ENV_PREFIX}{}", key.name.replace('.', "_").to_uppercase())
}

/// Config values given by `QUEUECTL_<KEY>` environment variables, checked and canonical.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EnvOverrides {
    values: BTreeMap<&'static str, String>,
}

impl EnvOverrides {
    /// Reads this process's environment. A process's environment only changes if the process
    /// changes it, so a running worker in effect reads it once, at start.
    pub fn from_process() -> Result<EnvOverrides> {
        EnvOverrides::from_vars(std::env::vars_os())
    }

    /// Reads the config variables among `vars` (name, value pairs); other names are ignored.
    /// A value that is not valid UTF-8 or not valid for its key is an error naming the variable.
    pub fn from_vars(vars: impl IntoIterator<Item = (OsString, OsString)>) -> Result<EnvOverrides> {
        let mut values = BTreeMap::new();
        for (name, value) in vars {
            let Some(name) = name.to_str() else { continue };
            if !name.starts_with(ENV_PREFIX) {
                continue;
            }
            let Some(key) = KEYS.iter().find(|k| env_var_name(k) == name) else {
                continue;
            };
            let value = value
                .into_string()
                .map_err(|_| Error::Config(format!("environment variable `{name}` is not valid UTF-8")))?;
            let subject = format!("environment variable `{name}` (config key `{}`)", key.name);
            values.insert(key.name, check_value(key, &value, &subject)?);
        }
        Ok(EnvOverrides { values })
    }

    /// The canonical value the environment gives `key`, if any.
    pub fn get(&self, key: &str) -> Option<&String> {
        self.values.get(key)
    }

    /// True when no config variable is set.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
        pairs
            .iter()
            .map(|(k, v)| (OsString::from(k), OsString::from(v)))
            .collect()
    }

    #[test]
    fn every_key_has_a_variable_named_after_it() {
        let names: Vec<String> = KEYS.iter().map(env_var_name).collect();
        assert!(names.contains(&"QUEUECTL_MAX_RETRIES".to_string()));
        assert!(names.contains(&"QUEUECTL_HOOKS_ON_DEAD".to_string()));
        assert!(names.contains(&"QUEUECTL_HOOKS_TIMEOUT_SECONDS".to_string()));
        let mut unique = names.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), names.len(), "two keys share a variable: {names:?}");
    }

    #[test]
    fn no_key_variable_collides_with_a_variable_the_cli_or_jobs_use() {
        for key in KEYS {
            let name = env_var_name(key);
            assert!(!RESERVED_ENV_VARS.contains(&name.as_str()), "{name} is reserved");
        }
        // The variables the job environment carries are not read as settings, whatever they hold.
        let reserved: Vec<(&str, &str)> = RESERVED_ENV_VARS.iter().map(|n| (*n, "not a setting")).collect();
        assert!(EnvOverrides::from_vars(vars(&reserved)).unwrap().is_empty());
        assert!(!EnvOverrides::from_vars(vars(&[("QUEUECTL_MAX_RETRIES", "4")]))
            .unwrap()
            .is_empty());
    }

    #[test]
    fn only_exact_upper_case_key_variables_count() {
        let env = EnvOverrides::from_vars(vars(&[
            ("QUEUECTL_MAX_RETRIES", " 5 "),
            ("QUEUECTL_HOOKS_ON_DEAD", "echo dead"),
            ("queuectl_backoff_base", "9"),
            ("QUEUECTL_MAX_RETRY", "x"),
            ("QUEUECTL_HOOKS.ON_FAILED", "x"),
            ("MAX_RETRIES", "x"),
        ]))
        .unwrap();
        assert_eq!(env.get("max_retries").map(String::as_str), Some("5"));
        assert_eq!(env.get("hooks.on_dead").map(String::as_str), Some("echo dead"));
        assert_eq!(env.values.len(), 2, "{env:?}");
    }

    #[test]
    fn values_are_checked_like_config_set_and_made_canonical() {
        let env = EnvOverrides::from_vars(vars(&[
            ("QUEUECTL_SPOOL_KEEP_INGESTED", "yes"),
            ("QUEUECTL_JOB_TIMEOUT_SECONDS", "none"),
            ("QUEUECTL_SPOOL_ALLOWED_UIDS", "1000, 1001"),
            ("QUEUECTL_HOOKS_ON_DEAD", ""),
        ]))
        .unwrap();
        assert_eq!(env.get("spool_keep_ingested").map(String::as_str), Some("true"));
        assert_eq!(env.get("job_timeout_seconds").map(String::as_str), Some(""));
        assert_eq!(env.get("spool_allowed_uids").map(String::as_str), Some("1000,1001"));
        assert_eq!(env.get("hooks.on_dead").map(String::as_str), Some(""));
    }

    #[test]
    fn a_bad_value_names_the_variable_and_what_it_must_be() {
        let e = EnvOverrides::from_vars(vars(&[("QUEUECTL_MAX_RETRIES", "lots")]))
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "invalid value `lots` for environment variable `QUEUECTL_MAX_RETRIES` (config key `max_retries`): \
             must be an integer from 0 to 1000"
        );
        let e = EnvOverrides::from_vars(vars(&[("QUEUECTL_SPOOL_DIR", " ")]))
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "invalid value for environment variable `QUEUECTL_SPOOL_DIR` (config key `spool_dir`): must not be empty"
        );
    }

    #[test]
    fn a_value_that_is_not_utf8_names_the_variable() {
        use std::os::unix::ffi::OsStringExt;
        let bad = vec![(
            OsString::from("QUEUECTL_HOOKS_ON_DEAD"),
            OsString::from_vec(vec![b'e', 0xff]),
        )];
        let e = EnvOverrides::from_vars(bad).unwrap_err().to_string();
        assert_eq!(e, "environment variable `QUEUECTL_HOOKS_ON_DEAD` is not valid UTF-8");
    }
}
