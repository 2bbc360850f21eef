//! Per-kind policies: `max_retries`, backoff and timeout for one job kind, from code
//! ([`PoolBuilder::kind_policy`](crate::PoolBuilder::kind_policy)) and from the config file's
//! `[kinds.NAME]` tables.
//!
//! ```toml
//! [kinds.resize]
//! max_retries = 5
//! backoff_base = 3
//! backoff_max_seconds = 600
//! timeout_seconds = 120
//! ```
//!
//! For one job, each value is the first of: the job's own field (`max_retries`,
//! `timeout_seconds`), the kind's policy from code, the kind's `[kinds.NAME]` table, the
//! global setting (itself default < file < environment < `config set`). A kind table sets only
//! what it names; the rest falls through. Kind tables live only in the file (or in code): there
//! are no environment variables or `config set` keys for them.

use super::keys::{canonical_name, check_value, find_key};
use crate::error::{Error, Result};
use std::collections::BTreeMap;

/// The keys a `[kinds.NAME]` table takes, each with the global key whose type and range it has.
pub const KIND_KEYS: [(&str, &str); 4] = [
    ("max_retries", "max_retries"),
    ("backoff_base", "backoff_base"),
    ("backoff_max_seconds", "backoff_max_seconds"),
    ("timeout_seconds", "job_timeout_seconds"),
];

/// Retry and timeout policy for one job kind. A field left `None` falls back to the settings;
/// a job's own `max_retries` and `timeout_seconds` win over both.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct KindPolicy {
    /// Retries after the first run.
    pub max_retries: Option<u32>,
    /// Base of the exponential backoff (`delay = base ^ attempts` seconds).
    pub backoff_base: Option<f64>,
    /// Cap on the retry delay, in seconds.
    pub backoff_max_seconds: Option<u64>,
    /// Timeout of one attempt, in seconds.
    pub timeout_seconds: Option<u64>,
}

impl KindPolicy {
    /// A policy that sets nothing (everything falls through to the settings).
    pub fn new() -> KindPolicy {
        KindPolicy::default()
    }

    /// Sets `max_retries`.
    pub fn max_retries(mut self, max_retries: u32) -> Self {
        self.max_retries = Some(max_retries);
        self
    }

    /// Sets the backoff base.
    pub fn backoff_base(mut self, base: f64) -> Self {
        self.backoff_base = Some(base);
        self
    }

    /// Sets the cap on the retry delay, in seconds.
    pub fn backoff_max_seconds(mut self, seconds: u64) -> Self {
        self.backoff_max_seconds = Some(seconds);
        self
    }

    /// Sets the timeout of one attempt, in seconds.
    pub fn timeout_seconds(mut self, seconds: u64) -> Self {
        self.timeout_seconds = Some(seconds);
        self
    }

    /// This policy with the fields it leaves unset taken from `under`.
    pub fn or(self, under: KindPolicy) -> KindPolicy {
        KindPolicy {
            max_retries: self.max_retries.or(under.max_retries),
            backoff_base: self.backoff_base.or(under.backoff_base),
            backoff_max_seconds: self.backoff_max_seconds.or(under.backoff_max_seconds),
            timeout_seconds: self.timeout_seconds.or(under.timeout_seconds),
        }
    }

    /// The values it sets, as `(key, text)` in the order of [`KIND_KEYS`].
    pub fn values(&self) -> Vec<(&'static str, String)> {
        let mut values = Vec::new();
        if let Some(v) = self.max_retries {
            values.push(("max_retries", v.to_string()));
        }
        if let Some(v) = self.backoff_base {
            values.push(("backoff_base", v.to_string()));
        }
        if let Some(v) = self.backoff_max_seconds {
            values.push(("backoff_max_seconds", v.to_string()));
        }
        if let Some(v) = self.timeout_seconds {
            values.push(("timeout_seconds", v.to_string()));
        }
        values
    }

    /// Checks the kind's name and every value against the same ranges as the global keys;
    /// the error names `kinds.KIND.KEY`.
    pub fn validate(&self, kind: &str) -> Result<()> {
        check_kind_name(kind).map_err(Error::Config)?;
        for (key, value) in self.values() {
            check_kind_value(kind, key, &value).map_err(Error::Config)?;
        }
        Ok(())
    }

    /// Sets one key from its checked text form (as [`check_kind_value`] returns it).
    pub(crate) fn set(&mut self, key: &str, value: &str) {
        match key {
            "max_retries" => self.max_retries = value.parse().ok(),
            "backoff_base" => self.backoff_base = value.parse().ok(),
            "backoff_max_seconds" => self.backoff_max_seconds = value.parse().ok(),
            "timeout_seconds" => self.timeout_seconds = value.parse().ok(),
            _ => {}
        }
    }
}

/// How `kinds.NAME.KEY` is written in messages (the kind quoted when TOML would need it).
pub(crate) fn qualified(kind: &str, key: &str) -> String {
    let bare = !kind.is_empty() && kind.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if bare {
        format!("kinds.{kind}.{key}")
    } else {
        format!("kinds.{kind:?}.{key}")
    }
}

/// A kind table's name must be a job kind a job could have.
pub(crate) fn check_kind_name(kind: &str) -> std::result::Result<(), String> {
    crate::job::validate_kind(kind)
        .map_err(|e| format!("`{}`: the kind {}", qualified(kind, "").trim_end_matches('.'), e.reason))
}

/// The global key a kind key takes its type and range from, by the kind key's canonical name.
pub(crate) fn kind_key(key: &str) -> Option<(&'static str, &'static super::KeyDef)> {
    let key = canonical_name(key);
    KIND_KEYS
        .iter()
        .find(|(name, _)| *name == key)
        .map(|(name, global)| (*name, find_key(global).expect("kind keys name real keys")))
}

/// Checks one kind value (in the text form `config set` takes) and returns its canonical text;
/// the error names `kinds.KIND.KEY`.
pub(crate) fn check_kind_value(kind: &str, key: &str, value: &str) -> std::result::Result<String, String> {
    let (name, def) = kind_key(key).ok_or_else(|| unknown_kind_key(kind, key))?;
    let subject = format!("`{}`", qualified(kind, name));
    let text = check_value(def, value, &subject).map_err(|e| e.to_string())?;
    if text.is_empty() {
        // `none` is how the global timeout says "none"; a kind says it by leaving the key out.
        return Err(format!(
            "invalid value `{value}` for {subject}: leave the key out for none"
        ));
    }
    Ok(text)
}

/// The error for a key a kind table does not take.
pub(crate) fn unknown_kind_key(kind: &str, key: &str) -> String {
    let names: Vec<&str> = KIND_KEYS.iter().map(|(name, _)| *name).collect();
    format!(
        "unknown key `{}` (a kind table takes {})",
        qualified(kind, key),
        names.join(", ")
    )
}

/// Code's policies over the file's, field by field, per kind.
pub fn overlay(
    file: &BTreeMap<String, KindPolicy>,
    code: &BTreeMap<String, KindPolicy>,
) -> BTreeMap<String, KindPolicy> {
    let mut merged = file.clone();
    for (kind, policy) in code {
        let under = merged.get(kind).copied().unwrap_or_default();
        merged.insert(kind.clone(), policy.or(under));
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kind_is_written_bare_when_toml_allows_and_quoted_otherwise() {
        assert_eq!(
            qualified("thumb_nail-2", "max_retries"),
            "kinds.thumb_nail-2.max_retries"
        );
        assert_eq!(qualified("mail.send", "max_retries"), "kinds.\"mail.send\".max_retries");
        assert_eq!(qualified("", "max_retries"), "kinds.\"\".max_retries");
    }

    #[test]
    fn code_beats_file_field_by_field() {
        let file = BTreeMap::from([
            (
                "resize".to_string(),
                KindPolicy::new().max_retries(5).timeout_seconds(60),
            ),
            ("crop".to_string(), KindPolicy::new().backoff_base(3.0)),
        ]);
        let code = BTreeMap::from([("resize".to_string(), KindPolicy::new().max_retries(9))]);
        let merged = overlay(&file, &code);
        assert_eq!(merged["resize"], KindPolicy::new().max_retries(9).timeout_seconds(60));
        assert_eq!(merged["crop"], KindPolicy::new().backoff_base(3.0));
    }

    #[test]
    fn values_out_of_the_global_ranges_are_refused_naming_the_kind_key() {
        let e = KindPolicy::new()
            .max_retries(1001)
            .validate("resize")
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "invalid value `1001` for `kinds.resize.max_retries`: must be an integer from 0 to 1000"
        );
        let e = KindPolicy::new()
            .backoff_base(0.5)
            .validate("a.b")
            .unwrap_err()
            .to_string();
        assert!(e.contains("`kinds.\"a.b\".backoff_base`"), "{e}");
        let e = KindPolicy::new()
            .timeout_seconds(0)
            .validate("resize")
            .unwrap_err()
            .to_string();
        assert!(e.contains("`kinds.resize.timeout_seconds`"), "{e}");
        let e = KindPolicy::new().validate("bad kind").unwrap_err().to_string();
        assert!(
            e.starts_with("`kinds.\"bad kind\"`: the kind must be 1 to 64 characters"),
            "{e}"
        );
        assert!(KindPolicy::new()
            .max_retries(0)
            .timeout_seconds(1)
            .validate("resize")
            .is_ok());
    }

    #[test]
    fn a_kind_key_takes_dashes_and_unknown_ones_list_the_keys() {
        assert_eq!(kind_key("max-retries").unwrap().0, "max_retries");
        assert_eq!(kind_key("timeout_seconds").unwrap().1.name, "job_timeout_seconds");
        assert_eq!(
            check_kind_value("resize", "worker_count", "3").unwrap_err(),
            "unknown key `kinds.resize.worker_count` (a kind table takes max_retries, backoff_base, \
             backoff_max_seconds, timeout_seconds)"
        );
        assert!(check_kind_value("resize", "timeout_seconds", "none").is_err());
    }
}
