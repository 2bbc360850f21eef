//! The precedence merge end to end, and property tests of the file parser.

use super::*;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use std::path::{Path, PathBuf};

fn entry(entries: &[ConfigEntry], key: &str) -> (String, ValueSource) {
    let e = entries.iter().find(|e| e.key == key).expect("every key has an entry");
    (e.value.clone(), e.source)
}

fn file(text: &str) -> BTreeMap<&'static str, String> {
    parse_config_text(text).expect("test file parses")
}

fn stored(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn env(pairs: &[(&str, &str)]) -> EnvOverrides {
    EnvOverrides::from_vars(pairs.iter().map(|(k, v)| (k.into(), v.into()))).expect("test variables are valid")
}

/// The merge without any environment variables, so these tests do not depend on the
/// environment `cargo test` runs in.
fn effective(file: &BTreeMap<&'static str, String>, stored: &BTreeMap<String, String>) -> Vec<ConfigEntry> {
    merge(file, &EnvOverrides::default(), stored)
}

#[test]
fn the_environment_beats_the_file_and_the_default() {
    let entries = merge(
        &file("max_retries = 5\nbackoff_base = 3\n"),
        &env(&[("QUEUECTL_MAX_RETRIES", "7"), ("QUEUECTL_WORKER_COUNT", "2")]),
        &BTreeMap::new(),
    );
    assert_eq!(entry(&entries, "max_retries"), ("7".into(), ValueSource::Env));
    assert_eq!(entry(&entries, "worker_count"), ("2".into(), ValueSource::Env));
    assert_eq!(entry(&entries, "backoff_base"), ("3".into(), ValueSource::File));
    assert_eq!(entry(&entries, "backoff_max_seconds").1, ValueSource::Default);
    assert_eq!(ValueSource::Env.as_str(), "env");
}

#[test]
fn a_stored_value_beats_the_environment_and_unsetting_it_hands_the_key_back() {
    let variables = env(&[("QUEUECTL_MAX_RETRIES", "7"), ("QUEUECTL_HOOKS_ON_DEAD", "echo env")]);
    let mut values = stored(&[("max_retries", "9"), ("hooks.on_dead", "")]);
    let entries = merge(&file("max_retries = 5\n"), &variables, &values);
    assert_eq!(entry(&entries, "max_retries"), ("9".into(), ValueSource::Set));
    assert_eq!(entry(&entries, "hooks.on_dead"), (String::new(), ValueSource::Set));
    values.remove("max_retries");
    let entries = merge(&file("max_retries = 5\n"), &variables, &values);
    assert_eq!(entry(&entries, "max_retries"), ("7".into(), ValueSource::Env));
    // And a job's own field still beats every layer.
    let settings = Settings::from_entries(Path::new("/q"), &entries).unwrap();
    assert_eq!(settings.retry_policy(Some(1)).max_retries, 1);
    assert_eq!(settings.retry_policy(None).max_retries, 7);
}

#[test]
fn spool_keep_ingested_is_off_unless_set_true() {
    let settings =
        |text: &str| Settings::from_entries(Path::new("/q"), &effective(&file(text), &BTreeMap::new())).unwrap();
    assert!(!settings("").spool_keep_ingested);
    assert!(settings("spool_keep_ingested = true\n").spool_keep_ingested);
    assert!(!settings("spool_keep_ingested = false\n").spool_keep_ingested);
}

#[test]
fn the_lease_rule_names_the_variable_that_broke_it() {
    let entries = merge(
        &BTreeMap::new(),
        &env(&[("QUEUECTL_HEARTBEAT_SECONDS", "10")]),
        &BTreeMap::new(),
    );
    let e = Settings::from_entries(Path::new("/q"), &entries)
        .unwrap_err()
        .to_string();
    assert!(e.contains("heartbeat_seconds from `QUEUECTL_HEARTBEAT_SECONDS`"), "{e}");
    assert!(e.contains("lease_seconds from the default"), "{e}");
}

#[test]
fn a_reload_reports_exactly_the_keys_that_changed() {
    let home = Path::new("/q");
    let before = Settings::defaults(home);
    assert!(before.changes_to(&before).is_empty());
    let after = Settings::from_entries(
        home,
        &effective(
            &file("max_retries = 5\nhooks.on_dead = \"echo dead\"\n"),
            &stored(&[("job_timeout_seconds", "60")]),
        ),
    )
    .unwrap();
    let changes: Vec<String> = before.changes_to(&after).iter().map(|c| c.to_string()).collect();
    assert_eq!(
        changes,
        [
            "max_retries 3 -> 5",
            "job_timeout_seconds none -> 60",
            "hooks.on_dead none -> \"echo dead\""
        ]
    );
}

#[test]
fn every_key_shows_in_the_values_a_reload_compares() {
    // Change every key at once: a key that `Settings::values` forgot would not show up.
    let all = stored(&[
        ("max_retries", "9"),
        ("backoff_base", "3"),
        ("backoff_max_seconds", "60"),
        ("job_timeout_seconds", "5"),
        ("worker_count", "2"),
        ("output_limit_bytes", "10"),
        ("heartbeat_seconds", "2"),
        ("lease_seconds", "30"),
        ("stop_grace_seconds", "1"),
        ("spool_dir", "elsewhere"),
        ("spool_max_file_bytes", "100"),
        ("spool_settle_ms", "10"),
        ("spool_keep_ingested", "true"),
        ("spool_allowed_uids", "7"),
        ("hooks.on_started", "a"),
        ("hooks.on_completed", "b"),
        ("hooks.on_failed", "c"),
        ("hooks.on_dead", "d"),
        ("hooks.timeout_seconds", "2"),
    ]);
    assert_eq!(all.len(), KEYS.len(), "a key is missing from this test");
    let after = Settings::from_entries(Path::new("/q"), &effective(&BTreeMap::new(), &all)).unwrap();
    let changes = Settings::defaults(Path::new("/q")).changes_to(&after);
    let changed: Vec<&str> = changes.iter().map(|c| c.key.as_str()).collect();
    let keys: Vec<&str> = KEYS.iter().map(|k| k.name).collect();
    assert_eq!(changed, keys);
    assert!(after.values().iter().all(|(_, v)| v != "?"));
}

#[test]
fn without_file_or_stored_values_every_key_is_its_default() {
    let entries = effective(&BTreeMap::new(), &BTreeMap::new());
    assert_eq!(entries.len(), KEYS.len());
    for e in &entries {
        assert_eq!(e.source, ValueSource::Default, "{}", e.key);
        assert_eq!(e.value, key_def(e.key).unwrap().default);
    }
    let settings = Settings::from_entries(Path::new("/q"), &entries).unwrap();
    assert_eq!(settings, Settings::defaults(Path::new("/q")));
    assert_eq!(settings.max_retries, 3);
    assert_eq!(settings.job_timeout_seconds, None);
    assert_eq!(
        settings.hooks,
        HookCommands {
            timeout_seconds: 10,
            ..HookCommands::default()
        }
    );
}

#[test]
fn the_file_beats_the_default() {
    let entries = effective(
        &file("max_retries = 5\nhooks.on_dead = \"echo dead\"\n"),
        &BTreeMap::new(),
    );
    assert_eq!(entry(&entries, "max_retries"), ("5".into(), ValueSource::File));
    assert_eq!(
        entry(&entries, "hooks.on_dead"),
        ("echo dead".into(), ValueSource::File)
    );
    assert_eq!(entry(&entries, "backoff_base"), ("2".into(), ValueSource::Default));
    let settings = Settings::from_entries(Path::new("/q"), &entries).unwrap();
    assert_eq!(settings.max_retries, 5);
    assert_eq!(settings.hooks.on_dead.as_deref(), Some("echo dead"));
}

#[test]
fn a_stored_value_beats_the_file_and_the_default() {
    let file = file("max_retries = 5\nbackoff_base = 3\n");
    let entries = effective(&file, &stored(&[("backoff_base", "1.5"), ("worker_count", "4")]));
    assert_eq!(entry(&entries, "max_retries"), ("5".into(), ValueSource::File));
    assert_eq!(entry(&entries, "backoff_base"), ("1.5".into(), ValueSource::Set));
    assert_eq!(entry(&entries, "worker_count"), ("4".into(), ValueSource::Set));
    assert_eq!(entry(&entries, "backoff_max_seconds").1, ValueSource::Default);
    let settings = Settings::from_entries(Path::new("/q"), &entries).unwrap();
    assert_eq!(
        (settings.max_retries, settings.backoff_base, settings.worker_count),
        (5, 1.5, 4)
    );
}

#[test]
fn a_stored_empty_hook_switches_off_the_files_hook() {
    let entries = effective(
        &file("hooks.on_dead = \"echo dead\"\n"),
        &stored(&[("hooks.on_dead", "")]),
    );
    assert_eq!(entry(&entries, "hooks.on_dead"), (String::new(), ValueSource::Set));
    let settings = Settings::from_entries(Path::new("/q"), &entries).unwrap();
    assert_eq!(settings.hooks.on_dead, None);
}

#[test]
fn dropping_a_stored_value_falls_back_to_the_file_then_the_default() {
    let file = file("max_retries = 7\n");
    let mut values = stored(&[("max_retries", "9")]);
    assert_eq!(
        entry(&effective(&file, &values), "max_retries"),
        ("9".into(), ValueSource::Set)
    );
    values.remove("max_retries");
    assert_eq!(
        entry(&effective(&file, &values), "max_retries"),
        ("7".into(), ValueSource::File)
    );
    assert_eq!(
        entry(&effective(&BTreeMap::new(), &values), "max_retries"),
        ("3".into(), ValueSource::Default)
    );
}

#[test]
fn a_jobs_own_max_retries_beats_every_layer() {
    let entries = effective(&file("max_retries = 5\n"), &stored(&[("max_retries", "6")]));
    let settings = Settings::from_entries(Path::new("/q"), &entries).unwrap();
    assert_eq!(settings.retry_policy(None).max_retries, 6);
    assert_eq!(settings.retry_policy(Some(0)).max_retries, 0);
    assert_eq!(settings.retry_policy(Some(9)).max_retries, 9);
}

#[test]
fn the_spool_dir_is_relative_to_the_home_unless_absolute() {
    let relative = effective(&file("spool_dir = \"in/box\"\n"), &BTreeMap::new());
    let settings = Settings::from_entries(Path::new("/q"), &relative).unwrap();
    assert_eq!(settings.spool_dir, PathBuf::from("/q/in/box"));
    let absolute = effective(&BTreeMap::new(), &stored(&[("spool_dir", "/var/spool/q")]));
    let settings = Settings::from_entries(Path::new("/q"), &absolute).unwrap();
    assert_eq!(settings.spool_dir, PathBuf::from("/var/spool/q"));
}

#[test]
fn the_lease_rule_applies_across_layers() {
    let entries = effective(&file("lease_seconds = 6\n"), &stored(&[("heartbeat_seconds", "3")]));
    let e = Settings::from_entries(Path::new("/q"), &entries)
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "`lease_seconds` (6) must be at least 3 times `heartbeat_seconds` (3) (lease_seconds from \
         /q/config/queuectl.toml, heartbeat_seconds from `config set`)"
    );
    let entries = effective(&file("lease_seconds = 9\n"), &stored(&[("heartbeat_seconds", "3")]));
    assert!(Settings::from_entries(Path::new("/q"), &entries).is_ok());
}

#[test]
fn a_bad_stored_value_is_an_error_naming_the_key_and_the_fix() {
    // An older queuectl accepted `config set spool_dir ''`; such a value must not silently
    // become "the queue home".
    for (key, value) in [("spool_dir", ""), ("max_retries", "lots"), ("job_timeout_seconds", "0")] {
        let entries = effective(&BTreeMap::new(), &stored(&[(key, value)]));
        let e = Settings::from_entries(Path::new("/q"), &entries).unwrap_err();
        assert!(matches!(e, crate::Error::Config(_)), "{e:?}");
        let e = e.to_string();
        assert!(e.contains(&format!("`{key}`")), "{e}");
        assert!(e.contains(&format!("queuectl config unset {key}")), "{e}");
    }
}

#[test]
fn keys_missing_from_the_entries_take_their_defaults() {
    let settings = Settings::from_entries(Path::new("/q"), &[]).unwrap();
    assert_eq!(settings, Settings::defaults(Path::new("/q")));
}

// ---------------------------------------------------------------------------------------------
// Property tests. Each prints its seed; QUEUECTL_TEST_SEED=N replays a run.
// ---------------------------------------------------------------------------------------------

fn runner(name: &str, cases: u32) -> TestRunner {
    let seed: u64 = std::env::var("QUEUECTL_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        });
    eprintln!("{name}: seed {seed} (replay with QUEUECTL_TEST_SEED={seed})");
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let config = Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    };
    TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &bytes))
}

/// Runs `test` on values of `strategy`; a failure panics with the smallest failing input.
fn check<S: Strategy>(name: &str, cases: u32, strategy: S, test: impl Fn(S::Value) -> Result<(), TestCaseError>)
where
    S::Value: std::fmt::Debug,
{
    if let Err(e) = runner(name, cases).run(&strategy, test) {
        panic!("{name}: {e}");
    }
}

/// What must hold of any parse result: an error is one line; values are known keys in
/// canonical form, and the merge on top of them never panics.
fn check_outcome(outcome: std::result::Result<BTreeMap<&'static str, String>, String>) -> Result<(), TestCaseError> {
    match outcome {
        Err(message) => {
            prop_assert!(!message.is_empty());
            prop_assert!(!message.contains('\n'), "an error is one line: {message:?}");
        }
        Ok(values) => {
            for (key, value) in &values {
                let def = key_def(key).map_err(|e| TestCaseError::fail(e.to_string()))?;
                let again = normalize_value(def, value).ok();
                prop_assert_eq!(again.as_ref(), Some(value), "{} not canonical", key);
            }
            let _ = Settings::from_entries(Path::new("/q"), &effective(&values, &BTreeMap::new()));
        }
    }
    Ok(())
}

#[test]
fn arbitrary_text_never_panics_the_parser() {
    check("arbitrary text", 2000, any::<String>(), |text| {
        check_outcome(parse_config_text(&text))
    });
}

#[test]
fn arbitrary_bytes_never_panic_the_parser() {
    check(
        "arbitrary bytes",
        2000,
        proptest::collection::vec(any::<u8>(), 0..300),
        |bytes| {
            let outcome = parse_config_bytes(&bytes);
            if std::str::from_utf8(&bytes).is_err() {
                let message = outcome.as_ref().err().cloned().unwrap_or_default();
                prop_assert!(message.starts_with("not valid UTF-8 at byte "), "{:?}", message);
            }
            check_outcome(outcome)
        },
    );
}

/// Lines that look like a config file: known and unknown keys (with dashes), values of every
/// TOML type, `[hooks]` and other headers, comments and junk, so that the parser's later
/// stages (types, ranges, duplicates, misplaced keys) are reached, not only the TOML syntax.
fn config_like_line() -> impl Strategy<Value = String> {
    let key = prop_oneof![
        proptest::sample::select(KEYS.iter().map(|k| k.name).collect::<Vec<_>>()).prop_map(str::to_string),
        proptest::sample::select(KEYS.iter().map(|k| k.name.replace('_', "-")).collect::<Vec<_>>()),
        proptest::sample::select(vec!["on_dead", "timeout_seconds", "max_retry", "colour", "hooks", "x"])
            .prop_map(str::to_string),
    ];
    let value = prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        (0i64..5000).prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|f| format!("{f:?}")),
        proptest::sample::select(vec!["true", "false", "inf", "nan", "-0", "0x1F", "1_000", "1979-05-27"])
            .prop_map(str::to_string),
        "[a-z0-9 /\\\\\"é.-]{0,12}".prop_map(|s| format!("{s:?}")),
        proptest::collection::vec(-5i64..70000, 0..4).prop_map(|v| format!("{v:?}")),
        Just("{ on_dead = \"x\" }".to_string()),
        Just("[\"a\", 1]".to_string()),
    ];
    prop_oneof![
        (key, value).prop_map(|(k, v)| format!("{k} = {v}")),
        proptest::sample::select(vec![
            "[hooks]",
            "[hook]",
            "[spool_dir]",
            "[hooks.on_dead]",
            "[[hooks]]",
            "# c",
            ""
        ])
        .prop_map(str::to_string),
        "[ -~]{0,20}",
    ]
}

#[test]
fn config_like_files_never_panic_the_parser() {
    let file = proptest::collection::vec(config_like_line(), 0..8).prop_map(|lines| lines.join("\n"));
    check("config-like files", 3000, file, |text| {
        check_outcome(parse_config_text(&text))
    });
}

/// A valid TOML value for a key and the canonical text it must parse to.
fn valid_value(def: &'static KeyDef) -> BoxedStrategy<(String, String)> {
    use super::keys::ValueType;
    match def.value_type {
        ValueType::Integer { min, max } | ValueType::OptionalInteger { min, max } => {
            (min..=max).prop_map(|n| (n.to_string(), n.to_string())).boxed()
        }
        ValueType::Number { min, max } => (min..=max).prop_map(|f| (format!("{f:?}"), f.to_string())).boxed(),
        ValueType::Bool => any::<bool>().prop_map(|b| (b.to_string(), b.to_string())).boxed(),
        ValueType::Path => "[a-z/]{0,8}[a-z]".prop_map(|s| (format!("{s:?}"), s)).boxed(),
        ValueType::Command => "[a-z $\"'|]{0,16}"
            .prop_map(|s| (format!("{s:?}"), s.trim().to_string()))
            .boxed(),
        ValueType::UidList => proptest::collection::vec(any::<u32>(), 0..4)
            .prop_map(|v| {
                let text = v.iter().map(|u| u.to_string()).collect::<Vec<_>>().join(",");
                (format!("{v:?}"), text)
            })
            .boxed(),
    }
}

#[test]
fn any_valid_file_parses_to_its_values_in_either_hooks_form() {
    let keys = proptest::sample::subsequence(KEYS.iter().collect::<Vec<_>>(), 0..KEYS.len());
    let file = keys
        .prop_flat_map(|defs| {
            let values: Vec<_> = defs.iter().map(|d| valid_value(d)).collect();
            (Just(defs), values, any::<bool>())
        })
        .prop_map(|(defs, values, hooks_as_table)| {
            let mut top = String::new();
            // A `[hooks]` header after dotted `hooks.` keys would define the table twice.
            let mut table = String::from(if hooks_as_table { "[hooks]\n" } else { "" });
            let mut expected = BTreeMap::new();
            for (def, (toml_value, canonical)) in defs.iter().zip(values) {
                match def.name.strip_prefix("hooks.") {
                    Some(inner) if hooks_as_table => table.push_str(&format!("{inner} = {toml_value}\n")),
                    _ => top.push_str(&format!("{} = {toml_value}\n", def.name)),
                }
                expected.insert(def.name, canonical);
            }
            (format!("{top}{table}"), expected)
        });
    check("valid files", 1000, file, |(text, expected)| {
        prop_assert_eq!(parse_config_text(&text), Ok(expected), "{}", text);
        Ok(())
    });
}

#[test]
fn a_jobs_field_beats_its_kinds_policy_which_beats_every_global_layer() {
    let text = "max_retries = 1\nbackoff_base = 3\n[kinds.resize]\nmax_retries = 5\nbackoff_max_seconds = 60\n";
    let file = parse_config(text).unwrap();
    // `config set` is the strongest global layer; the kind table still beats it.
    let entries = effective(
        &file.values,
        &stored(&[("max_retries", "2"), ("job_timeout_seconds", "30")]),
    );
    let settings = Settings::from_entries(Path::new("/q"), &entries)
        .unwrap()
        .with_kinds(file.kinds);
    let job = |kind: &str, own: Option<u32>| {
        let mut spec = crate::job::JobSpec::kind(kind, serde_json::json!({}));
        spec.max_retries = own;
        crate::job::Job::from_spec(spec, 0)
    };
    let policy = settings.retry_policy_for(&job("resize", None));
    assert_eq!(
        (policy.max_retries, policy.backoff_base, policy.backoff_max_seconds),
        (5, 3.0, 60),
        "the kind's values, the global base (the kind sets none)"
    );
    assert_eq!(settings.retry_policy_for(&job("resize", Some(0))).max_retries, 0);
    assert_eq!(settings.retry_policy_for(&job("crop", None)).max_retries, 2);
    assert_eq!(settings.max_retries_for("resize"), 5);

    // Code's kind policy over the file's, field by field.
    let code = BTreeMap::from([(
        "resize".to_string(),
        KindPolicy::new().max_retries(9).timeout_seconds(7),
    )]);
    let settings = settings.clone().with_kinds(overlay_kinds(&settings.kinds, &code));
    let resize = job("resize", None);
    assert_eq!(settings.retry_policy_for(&resize).max_retries, 9);
    assert_eq!(settings.retry_policy_for(&resize).backoff_max_seconds, 60);
    assert_eq!(settings.timeout_for(&resize), Some(std::time::Duration::from_secs(7)));
    assert_eq!(
        settings.timeout_for(&job("crop", None)),
        Some(std::time::Duration::from_secs(30))
    );
    let mut own = job("resize", None);
    own.timeout_seconds = Some(2);
    assert_eq!(settings.timeout_for(&own), Some(std::time::Duration::from_secs(2)));
}

#[test]
fn a_reload_reports_kind_policy_changes_by_their_full_key() {
    let before = Settings::defaults(Path::new("/q")).with_kinds(BTreeMap::from([(
        "resize".to_string(),
        KindPolicy::new().max_retries(5),
    )]));
    let after = Settings::defaults(Path::new("/q")).with_kinds(BTreeMap::from([(
        "resize".to_string(),
        KindPolicy::new().timeout_seconds(9),
    )]));
    let changes: Vec<String> = before.changes_to(&after).iter().map(|c| c.to_string()).collect();
    assert_eq!(
        changes,
        [
            "kinds.resize.max_retries 5 -> none",
            "kinds.resize.timeout_seconds none -> 9"
        ]
    );
}

#[test]
fn settings_built_in_code_are_checked_like_the_files() {
    let mut settings = Settings::defaults(Path::new("/q"));
    assert!(settings.validate().is_ok());
    settings.backoff_base = 0.5;
    assert_eq!(
        settings.validate().unwrap_err().to_string(),
        "invalid value `0.5` for `backoff_base`: must be a number from 1 to 1000"
    );
    settings.backoff_base = 2.0;
    settings.hooks.on_dead = Some("echo dead".into());
    settings.job_timeout_seconds = Some(5);
    assert!(settings.validate().is_ok());
    settings.kinds.insert("bad kind".into(), KindPolicy::new());
    assert!(settings
        .validate()
        .unwrap_err()
        .to_string()
        .contains("`kinds.\"bad kind\"`"));
}
