//! The table of config keys: names, defaults, types and ranges, and the one function that
//! checks a value for a key wherever it comes from (the TOML file, `config set`, the database).

use crate::error::{Error, Result};

/// The type and range of a config value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum ValueType {
    /// An integer in `min..=max`.
    Integer { min: i64, max: i64 },
    /// An integer in `min..=max`, or none (empty text; `none` in `config set`).
    OptionalInteger { min: i64, max: i64 },
    /// A finite number in `min..=max`.
    Number { min: f64, max: f64 },
    /// `true` or `false`.
    Bool,
    /// A path that must not be empty: an empty one would silently mean "the queue home".
    Path,
    /// A shell command; empty means none, so `config set hooks.on_dead ''` can switch off a
    /// hook that the file sets.
    Command,
    /// A list of uids (comma-separated in `config set`, an array in the file).
    UidList,
}

impl ValueType {
    /// What a value of this type must be, for error messages ("an integer from 0 to 1000").
    pub(crate) fn expected(self) -> String {
        match self {
            ValueType::Integer { min, max } => format!("an integer from {min} to {max}"),
            ValueType::OptionalInteger { min, max } => format!("an integer from {min} to {max}"),
            ValueType::Number { min, max } => format!("a number from {min} to {max}"),
            ValueType::Bool => "true or false".to_string(),
            ValueType::Path => "a non-empty string".to_string(),
            ValueType::Command => "a string (a shell command)".to_string(),
            ValueType::UidList => "an array of uids (integers from 0 to 4294967295)".to_string(),
        }
    }
}

/// One config key.
#[derive(Debug, Clone, Copy)]
pub struct KeyDef {
    /// The key's canonical name (underscores).
    pub name: &'static str,
    /// The default, in the form `config set` takes; empty means "none".
    pub default: &'static str,
    /// One line of documentation.
    pub doc: &'static str,
    pub(crate) value_type: ValueType,
}

/// Every key queuectl knows, in the order `config list` shows them.
pub const KEYS: &[KeyDef] = &[
    KeyDef {
        name: "max_retries",
        default: "3",
        doc: "retries after the first run before a job goes to the DLQ",
        value_type: ValueType::Integer { min: 0, max: 1000 },
    },
    KeyDef {
        name: "backoff_base",
        default: "2",
        doc: "retry delay is backoff_base ^ attempts seconds (a number >= 1)",
        value_type: ValueType::Number { min: 1.0, max: 1000.0 },
    },
    KeyDef {
        name: "backoff_max_seconds",
        default: "3600",
        doc: "the longest delay between two attempts",
        value_type: ValueType::Integer {
            min: 1,
            max: 31_536_000,
        },
    },
    KeyDef {
        name: "job_timeout_seconds",
        default: "",
        doc: "kill a job after this many seconds (none by default)",
        value_type: ValueType::OptionalInteger { min: 1, max: 2_592_000 },
    },
    KeyDef {
        name: "worker_count",
        default: "1",
        doc: "threads of `worker start` when --count is not given",
        value_type: ValueType::Integer { min: 1, max: 256 },
    },
    KeyDef {
        name: "output_limit_bytes",
        default: "65536",
        doc: "bytes of each of stdout and stderr kept per job (the tail)",
        value_type: ValueType::Integer {
            min: 0,
            max: 16_777_216,
        },
    },
    KeyDef {
        name: "heartbeat_seconds",
        default: "1",
        doc: "how often a worker records that it is alive",
        value_type: ValueType::Integer { min: 1, max: 60 },
    },
    KeyDef {
        name: "lease_seconds",
        default: "15",
        doc: "a worker silent this long has lost its jobs",
        value_type: ValueType::Integer { min: 3, max: 86_400 },
    },
    KeyDef {
        name: "stop_grace_seconds",
        default: "5",
        doc: "after SIGTERM to a timed-out job, wait this long before SIGKILL",
        value_type: ValueType::Integer { min: 0, max: 600 },
    },
    KeyDef {
        name: "spool_dir",
        default: "spool",
        doc: "the spool directory, relative to the queue home unless absolute",
        value_type: ValueType::Path,
    },
    KeyDef {
        name: "spool_max_file_bytes",
        default: "1048576",
        doc: "larger spool files are refused",
        value_type: ValueType::Integer {
            min: 1,
            max: 1_073_741_824,
        },
    },
    KeyDef {
        name: "spool_settle_ms",
        default: "2000",
        doc: "a spool file that does not parse yet is retried for this long",
        value_type: ValueType::Integer { min: 0, max: 3_600_000 },
    },
    KeyDef {
        name: "spool_keep_ingested",
        default: "false",
        doc: "move ingested spool files to spool/done/ instead of deleting them",
        value_type: ValueType::Bool,
    },
    KeyDef {
        name: "spool_allowed_uids",
        default: "",
        doc: "uids besides the worker's own whose spool files are accepted (comma-separated)",
        value_type: ValueType::UidList,
    },
    KeyDef {
        name: "hooks.on_started",
        default: "",
        doc: "shell command run when a job starts",
        value_type: ValueType::Command,
    },
    KeyDef {
        name: "hooks.on_completed",
        default: "",
        doc: "shell command run when a job completes",
        value_type: ValueType::Command,
    },
    KeyDef {
        name: "hooks.on_failed",
        default: "",
        doc: "shell command run when an attempt fails and a retry is scheduled",
        value_type: ValueType::Command,
    },
    KeyDef {
        name: "hooks.on_dead",
        default: "",
        doc: "shell command run when a job moves to the DLQ",
        value_type: ValueType::Command,
    },
    KeyDef {
        name: "hooks.timeout_seconds",
        default: "10",
        doc: "a hook running longer is killed",
        value_type: ValueType::Integer { min: 1, max: 3600 },
    },
];

/// The prefix of the keys that live in the file's `[hooks]` table.
pub(crate) const HOOKS_PREFIX: &str = "hooks.";

/// The canonical spelling of a key name: dashes and underscores are the same.
pub(crate) fn canonical_name(name: &str) -> String {
    name.trim().replace('-', "_")
}

/// Finds a key by its canonical name.
pub(crate) fn find_key(canonical: &str) -> Option<&'static KeyDef> {
    KEYS.iter().find(|k| k.name == canonical)
}

/// Finds a key by name; dashes and underscores are the same. An unknown name is an error that
/// suggests the nearest key, or lists them all when none is near.
pub fn key_def(name: &str) -> Result<&'static KeyDef> {
    if let Some(rest) = canonical_name(name).strip_prefix("kinds.") {
        let kind = rest.split('.').next().unwrap_or("NAME");
        return Err(Error::Config(format!(
            "`{}` is a per-kind policy: set it in the config file's `[kinds.{kind}]` table (or in code \
             with `PoolBuilder::kind_policy`), not as a config key",
            name.trim()
        )));
    }
    find_key(&canonical_name(name)).ok_or_else(|| {
        Error::Config(format!(
            "unknown config key `{}`{}",
            name.trim(),
            unknown_key_hint(name)
        ))
    })
}

/// "; did you mean `max_retries`?" for a near miss, else " (known keys: ...)".
pub(crate) fn unknown_key_hint(name: &str) -> String {
    match nearest_key(name) {
        Some(near) => format!("; did you mean `{near}`?"),
        None => {
            let names: Vec<&str> = KEYS.iter().map(|k| k.name).collect();
            format!(" (known keys: {})", names.join(", "))
        }
    }
}

/// The known key nearest to `name` by edit distance, if it is near enough to be a typo.
/// A hook name given without its table (`on_dead`) finds its key (`hooks.on_dead`).
pub(crate) fn nearest_key(name: &str) -> Option<&'static str> {
    let wanted = canonical_name(name).to_lowercase();
    // About one typo per three characters, at most three: `max_retry` finds `max_retries`,
    // while `colour` finds nothing rather than a misleading guess.
    let allowed = (wanted.chars().count() / 3).clamp(1, 3);
    KEYS.iter()
        .map(|k| {
            let short = k.name.strip_prefix(HOOKS_PREFIX).unwrap_or(k.name);
            let distance = edit_distance(&wanted, k.name).min(edit_distance(&wanted, short));
            (distance, k.name)
        })
        .filter(|(distance, _)| *distance <= allowed)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, name)| name)
}

/// Levenshtein distance over characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        current[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
}

/// Checks `value` for `key` and returns its canonical text form (the form stored by
/// `config set` and shown by `config list`; empty means none).
pub fn normalize_value(key: &KeyDef, value: &str) -> Result<String> {
    check_value(key, value, &format!("`{}`", key.name))
}

/// [`normalize_value`] with errors that name `subject` (the key, or the environment variable
/// that gave the value) instead of the key alone.
pub(crate) fn check_value(key: &KeyDef, value: &str, subject: &str) -> Result<String> {
    let value = value.trim();
    let bad = || {
        Error::Config(format!(
            "invalid value `{value}` for {subject}: must be {}",
            expected_in_text(key.value_type)
        ))
    };
    match key.value_type {
        ValueType::Integer { min, max } => match value.parse::<i64>() {
            Ok(n) if (min..=max).contains(&n) => Ok(n.to_string()),
            _ => Err(bad()),
        },
        ValueType::OptionalInteger { min, max } => {
            if value.is_empty() || value == "none" {
                return Ok(String::new());
            }
            match value.parse::<i64>() {
                Ok(n) if (min..=max).contains(&n) => Ok(n.to_string()),
                _ => Err(bad()),
            }
        }
        ValueType::Number { min, max } => match value.parse::<f64>() {
            Ok(n) if n.is_finite() && n >= min && n <= max => Ok(n.to_string()),
            _ => Err(bad()),
        },
        ValueType::Bool => match value {
            "true" | "yes" | "on" | "1" => Ok("true".into()),
            "false" | "no" | "off" | "0" => Ok("false".into()),
            _ => Err(bad()),
        },
        ValueType::Path | ValueType::Command => {
            if value.contains('\0') {
                Err(Error::Config(format!(
                    "invalid value for {subject}: contains a NUL byte"
                )))
            } else if value.is_empty() && key.value_type == ValueType::Path {
                Err(Error::Config(format!("invalid value for {subject}: must not be empty")))
            } else {
                Ok(value.to_string())
            }
        }
        ValueType::UidList => {
            let mut uids = Vec::new();
            for part in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                uids.push(part.parse::<u32>().map_err(|_| bad())?);
            }
            Ok(uids.iter().map(|u| u.to_string()).collect::<Vec<_>>().join(","))
        }
    }
}

/// What a value must be, in the words of `config set` (text, not TOML types).
fn expected_in_text(value_type: ValueType) -> String {
    match value_type {
        ValueType::OptionalInteger { min, max } => format!("an integer from {min} to {max}, or `none`"),
        ValueType::Bool => "true or false".to_string(),
        ValueType::UidList => "a comma-separated list of uids".to_string(),
        other => other.expected(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_accept_dashes_and_refuse_unknowns_listing_the_keys() {
        assert_eq!(key_def("max-retries").unwrap().name, "max_retries");
        assert_eq!(key_def(" hooks.on-dead ").unwrap().name, "hooks.on_dead");
        let e = key_def("colour").unwrap_err().to_string();
        assert!(
            e.starts_with("unknown config key `colour` (known keys: max_retries, backoff_base"),
            "{e}"
        );
        let e = key_def("kinds.resize.max_retries").unwrap_err().to_string();
        assert_eq!(
            e,
            "`kinds.resize.max_retries` is a per-kind policy: set it in the config file's `[kinds.resize]` \
             table (or in code with `PoolBuilder::kind_policy`), not as a config key"
        );
    }

    #[test]
    fn a_near_miss_suggests_the_nearest_key() {
        let e = key_def("max_retry").unwrap_err().to_string();
        assert_eq!(e, "unknown config key `max_retry`; did you mean `max_retries`?");
        assert_eq!(nearest_key("backof-base"), Some("backoff_base"));
        assert_eq!(nearest_key("on_dead"), Some("hooks.on_dead"));
        assert_eq!(nearest_key("hooks.ondead"), Some("hooks.on_dead"));
        assert_eq!(nearest_key("spool-dirs"), Some("spool_dir"));
        assert_eq!(nearest_key("colour"), None);
        // Short names get one typo: `dead` is three edits from `on_dead`, no suggestion.
        assert_eq!(nearest_key("dead"), None);
        assert_eq!(nearest_key("spool_di"), Some("spool_dir"));
        assert_eq!(nearest_key(""), None);
    }

    #[test]
    fn edit_distance_counts_insertions_deletions_and_substitutions() {
        assert_eq!(edit_distance("", ""), 0);
        assert_eq!(edit_distance("abc", ""), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("a", "b"), 1);
        assert_eq!(edit_distance("abc", "abd"), 1);
        assert_eq!(edit_distance("ab", "ba"), 2);
        assert_eq!(edit_distance("max_retry", "max_retries"), 3);
    }

    #[test]
    fn values_are_validated_and_made_canonical() {
        let base = key_def("backoff_base").unwrap();
        assert_eq!(normalize_value(base, "1.5").unwrap(), "1.5");
        assert_eq!(normalize_value(base, " 2.0 ").unwrap(), "2");
        assert!(normalize_value(base, "0.5").is_err());
        assert!(normalize_value(base, "abc").is_err());
        assert!(normalize_value(base, "inf").is_err());
        assert!(normalize_value(base, "NaN").is_err());
        let retries = key_def("max_retries").unwrap();
        assert!(normalize_value(retries, "-1").is_err());
        assert!(normalize_value(retries, "2.5").is_err());
        assert!(normalize_value(retries, "").is_err());
        let timeout = key_def("job_timeout_seconds").unwrap();
        assert_eq!(normalize_value(timeout, "none").unwrap(), "");
        assert_eq!(normalize_value(timeout, "").unwrap(), "");
        let uids = key_def("spool_allowed_uids").unwrap();
        assert_eq!(normalize_value(uids, "1000, 1001").unwrap(), "1000,1001");
        assert!(normalize_value(uids, "1000,-1").is_err());
        let keep = key_def("spool_keep_ingested").unwrap();
        assert_eq!(normalize_value(keep, "yes").unwrap(), "true");
        assert!(normalize_value(keep, "maybe").is_err());
    }

    #[test]
    fn an_empty_spool_dir_is_refused_but_an_empty_hook_means_none() {
        let spool = key_def("spool_dir").unwrap();
        for empty in ["", "   "] {
            let e = normalize_value(spool, empty).unwrap_err().to_string();
            assert_eq!(e, "invalid value for `spool_dir`: must not be empty");
        }
        assert!(normalize_value(spool, "a\0b").is_err());
        let hook = key_def("hooks.on_dead").unwrap();
        assert_eq!(normalize_value(hook, "").unwrap(), "");
        assert!(normalize_value(hook, "echo \0").is_err());
    }

    #[test]
    fn every_default_is_valid_and_canonical() {
        for key in KEYS {
            assert_eq!(normalize_value(key, key.default).unwrap(), key.default, "{}", key.name);
        }
    }
}
