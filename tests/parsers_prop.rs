//! Property tests of the parsers through the library's public API (the job parser for objects,
//! arrays and NDJSON; durations; RFC 3339 times), and a few dozen random refusals through the
//! binary. Each test prints its seed; rerun one with `QUEUECTL_PROPTEST_SEED=<seed>`.

mod common;

use common::{is_postgres, TestHome};
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};
use queuectl::job::{parse_jobs, parse_ndjson, spec_from_value, Schedule, KNOWN_FIELDS};
use queuectl::time::{format_duration, format_ms, parse_duration, parse_rfc3339, MAX_DURATION};
use serde_json::{json, Map, Number, Value};
use std::collections::BTreeMap;
use std::time::Duration;

// ---------------------------------------------------------------------------------------------
// The runner: a printed seed, no persistence files
// ---------------------------------------------------------------------------------------------

/// Runs `test` on `cases` values of `strategy`, from a seed that is printed first (and taken
/// from `QUEUECTL_PROPTEST_SEED` when set, to replay a failure).
fn check<S: Strategy>(name: &str, cases: u32, strategy: S, test: impl Fn(S::Value) -> Result<(), TestCaseError>)
where
    S::Value: std::fmt::Debug,
{
    let seed: u64 = match std::env::var("QUEUECTL_PROPTEST_SEED") {
        Ok(text) => text.parse().expect("QUEUECTL_PROPTEST_SEED must be a number"),
        Err(_) => {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0);
            nanos ^ u64::from(std::process::id()).rotate_left(32)
        }
    };
    eprintln!("{name}: proptest seed {seed} (replay with QUEUECTL_PROPTEST_SEED={seed})");
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let config = Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner = TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &bytes));
    if let Err(error) = runner.run(&strategy, test) {
        panic!("{name} failed with seed {seed}: {error}");
    }
}

// ---------------------------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------------------------

/// Any JSON value (finite numbers; keys unique, as in any `serde_json::Value`).
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", |f| Number::from_f64(f).map(Value::Number)),
        ".{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(Value::Array),
            btree_map(".{0,8}", inner, 0..6).prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// A JSON object whose keys are mostly job fields, with values of any type: it reaches every
/// field's type and range checks.
fn job_like_object() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        4 => proptest::sample::select(KNOWN_FIELDS.to_vec()).prop_map(str::to_string),
        1 => "[a-z_]{1,10}",
    ];
    let value = prop_oneof![
        json_value(),
        (-2_000_000i64..2_000_000).prop_map(Value::from),
        "[ -~]{0,30}".prop_map(Value::String),
        Just(json!("2030-01-01T00:00:00Z")),
    ];
    btree_map(key, value, 0..8).prop_map(|m| Value::Object(m.into_iter().collect()))
}

/// The fields of a valid job, and the JSON object that spells them.
#[derive(Debug, Clone)]
struct ValidJob {
    id: Option<String>,
    command: String,
    max_retries: Option<u32>,
    priority: Option<i64>,
    schedule: Schedule,
    timeout_seconds: Option<u64>,
    cwd: Option<String>,
    env: BTreeMap<String, String>,
}

impl ValidJob {
    fn to_json(&self) -> Value {
        let mut object = Map::new();
        if let Some(id) = &self.id {
            object.insert("id".into(), id.clone().into());
        }
        object.insert("command".into(), self.command.clone().into());
        if let Some(n) = self.max_retries {
            object.insert("max_retries".into(), n.into());
        }
        if let Some(n) = self.priority {
            object.insert("priority".into(), n.into());
        }
        match self.schedule {
            Schedule::Now => {}
            Schedule::At(ms) => {
                object.insert("run_at".into(), format_ms(ms).into());
            }
            Schedule::After(seconds) => {
                object.insert("delay_seconds".into(), json!(seconds));
            }
        }
        if let Some(n) = self.timeout_seconds {
            object.insert("timeout_seconds".into(), n.into());
        }
        if let Some(cwd) = &self.cwd {
            object.insert("cwd".into(), cwd.clone().into());
        }
        if !self.env.is_empty() {
            object.insert("env".into(), json!(self.env));
        }
        Value::Object(object)
    }
}

fn valid_job() -> impl Strategy<Value = ValidJob> {
    let schedule = prop_oneof![
        Just(Schedule::Now),
        (0u32..1_000_000).prop_map(|s| Schedule::After(f64::from(s) / 4.0)),
        (0i64..4_000_000_000_000).prop_map(Schedule::At),
    ];
    (
        proptest::option::of("[A-Za-z0-9_.:-]{1,40}"),
        "[!-~][ -~]{0,60}",
        proptest::option::of(0u32..=1000),
        proptest::option::of(-1_000_000i64..=1_000_000),
        schedule,
        proptest::option::of(1u64..=2_592_000),
        proptest::option::of("[a-z/]{1,20}"),
        btree_map("[A-Z_]{1,8}", "[ -~]{0,10}", 0..3),
    )
        .prop_map(
            |(id, command, max_retries, priority, schedule, timeout_seconds, cwd, env)| ValidJob {
                id,
                command,
                max_retries,
                priority,
                schedule,
                timeout_seconds,
                cwd,
                env,
            },
        )
}

/// Text that looks like JSON often enough to reach deep into the parser.
fn jsonish_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[\\[\\]{}\",:0-9a-z \\n\\\\.eE+-]{0,200}",
        vec(any::<u8>(), 0..200).prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
    ]
}

// ---------------------------------------------------------------------------------------------
// The job parser
// ---------------------------------------------------------------------------------------------

#[test]
fn the_job_parser_never_panics_on_any_text() {
    check("parse_jobs on any text", 2000, jsonish_text(), |text| {
        let _ = parse_jobs(&text);
        let _ = parse_ndjson(&text);
        Ok(())
    });
}

#[test]
fn the_job_parser_never_panics_on_any_json_and_what_it_accepts_is_valid() {
    let input = prop_oneof![
        json_value(),
        job_like_object(),
        vec(job_like_object(), 0..4).prop_map(Value::Array)
    ];
    check("parse_jobs on any JSON", 1500, input, |value| {
        let _ = spec_from_value(value.clone());
        for text in [
            value.to_string(),
            serde_json::to_string_pretty(&value).unwrap_or_default(),
        ] {
            if let Ok(specs) = parse_jobs(&text) {
                prop_assert!(!specs.is_empty());
                for (location, spec) in specs {
                    prop_assert!(
                        spec.validate().is_ok(),
                        "accepted an invalid spec at {location:?}: {spec:?}"
                    );
                }
            }
        }
        Ok(())
    });
}

#[test]
fn a_valid_job_reads_back_field_for_field_as_object_array_and_ndjson() {
    check("valid jobs round trip", 400, vec(valid_job(), 1..6), |jobs| {
        let objects: Vec<Value> = jobs.iter().map(ValidJob::to_json).collect();
        let ndjson: String = objects.iter().map(|o| format!("{o}\n")).collect();
        let array = Value::Array(objects.clone()).to_string();
        let pretty = serde_json::to_string_pretty(&Value::Array(objects.clone())).unwrap_or_default();
        let mut inputs = vec![(array, "index"), (pretty, "index")];
        if jobs.len() > 1 {
            inputs.push((ndjson, "line"));
        } else {
            inputs.push((objects[0].to_string(), ""));
        }
        for (text, kind) in inputs {
            let specs = parse_jobs(&text).map_err(|e| TestCaseError::fail(format!("{e}: {text}")))?;
            prop_assert_eq!(specs.len(), jobs.len());
            for (i, ((location, spec), job)) in specs.iter().zip(&jobs).enumerate() {
                let expected = match kind {
                    "index" => Some(format!("index {i}")),
                    "line" => Some(format!("line {}", i + 1)),
                    _ => None,
                };
                prop_assert_eq!(location, &expected);
                prop_assert_eq!(&spec.id, &job.id);
                prop_assert_eq!(&spec.command, &job.command);
                prop_assert_eq!(spec.max_retries, job.max_retries);
                prop_assert_eq!(spec.priority, job.priority.unwrap_or(0));
                prop_assert_eq!(spec.schedule, job.schedule);
                prop_assert_eq!(spec.timeout_seconds, job.timeout_seconds);
                prop_assert_eq!(&spec.cwd, &job.cwd);
                prop_assert_eq!(&spec.env, &job.env);
            }
        }
        Ok(())
    });
}

#[test]
fn a_key_given_twice_is_always_refused_naming_the_key() {
    let input = (valid_job(), any::<prop::sample::Index>(), json_value());
    check("duplicate keys", 400, input, |(job, pick, extra)| {
        let object = job.to_json();
        let keys: Vec<&String> = object.as_object().map(|o| o.keys().collect()).unwrap_or_default();
        let key = keys[pick.index(keys.len())].clone();
        let text = object.to_string();
        // Append the key again, with any value, before the closing brace.
        let doubled = format!("{},{}:{extra}}}", &text[..text.len() - 1], Value::String(key.clone()));
        let needle = format!("duplicate key `{}`", key.escape_debug());
        let error = parse_jobs(&doubled)
            .expect_err("a duplicate key must be refused")
            .to_string();
        prop_assert!(error.contains(&needle), "{error} should contain {needle}: {doubled}");
        // In a batch, the error says which job it was.
        let batch = format!("[{text},{doubled}]");
        let error = parse_jobs(&batch).expect_err("refused").to_string();
        prop_assert!(error.starts_with("invalid job at index 1: "), "{error}");
        prop_assert!(error.contains(&needle), "{error}");
        let ndjson = format!("{text}\n{doubled}\n");
        let error = parse_jobs(&ndjson).expect_err("refused").to_string();
        prop_assert!(error.starts_with("invalid job at line 2: "), "{error}");
        prop_assert!(error.contains(&needle), "{error}");
        Ok(())
    });
}

// ---------------------------------------------------------------------------------------------
// Durations and times
// ---------------------------------------------------------------------------------------------

#[test]
fn duration_parsing_never_panics_and_stays_within_the_limit() {
    let input = prop_oneof![
        any::<String>(),
        "[0-9.eE+-]{0,30}(ns|us|ms|s|m|h|d|w|y|)",
        "[0-9]{1,25}[a-z]{0,3}([0-9]{1,25}[a-z]{0,3}){0,3}",
        any::<f64>().prop_map(|f| f.to_string()),
        any::<f64>().prop_map(|f| format!("{f}s")),
    ];
    check("parse_duration", 3000, input, |text| {
        if let Ok(duration) = parse_duration(&text) {
            prop_assert!(duration <= MAX_DURATION, "{text} -> {duration:?}");
        }
        Ok(())
    });
}

#[test]
fn durations_in_each_unit_parse_to_their_value() {
    let input = (
        0u64..1_000_000_000,
        proptest::sample::select(vec![("ms", 1u64), ("s", 1000), ("m", 60_000), ("h", 3_600_000)]),
    );
    check("duration units", 1000, input, |(n, (unit, millis))| {
        let text = format!("{n}{unit}");
        let expected = Duration::from_millis(n * millis);
        let result = parse_duration(&text);
        if expected > MAX_DURATION {
            prop_assert!(result.is_err(), "{text} is over the limit but gave {result:?}");
        } else {
            prop_assert_eq!(result, Ok(expected), "{}", text);
        }
        Ok(())
    });
}

#[test]
fn negative_durations_are_always_refused() {
    check("negative durations", 500, (1u64..u64::MAX, "(|s|ms|m)"), |(n, unit)| {
        let text = format!("-{n}{unit}");
        prop_assert!(parse_duration(&text).is_err(), "{text} accepted");
        Ok(())
    });
}

#[test]
fn formatting_any_duration_never_panics() {
    check(
        "format_duration",
        2000,
        (any::<u64>(), 0u32..1_000_000_000),
        |(secs, nanos)| {
            let text = format_duration(Duration::new(secs, nanos));
            prop_assert!(!text.is_empty());
            Ok(())
        },
    );
}

#[test]
fn time_parsing_never_panics() {
    let input = prop_oneof![
        any::<String>(),
        "[0-9]{1,6}-[0-9]{1,3}-[0-9]{1,3}[Tt ][0-9]{1,3}:[0-9]{1,3}:[0-9]{1,3}(\\.[0-9]{0,12})?(Z|z|[+-][0-9]{2}:[0-9]{2})?",
    ];
    check("parse_rfc3339", 3000, input, |text| {
        let _ = parse_rfc3339(&text);
        Ok(())
    });
}

#[test]
fn any_time_formats_and_parses_back_to_the_same_millisecond() {
    // Year 1 to year 9999: what RFC 3339 can spell.
    let range = -62_135_596_800_000i64..=253_402_300_799_999;
    check("time round trip", 2000, (range, any::<i64>()), |(ms, anything)| {
        prop_assert_eq!(parse_rfc3339(&format_ms(ms)), Ok(ms));
        let _ = format_ms(anything);
        Ok(())
    });
}

// ---------------------------------------------------------------------------------------------
// Through the binary: a refusal exits 2 and changes nothing
// ---------------------------------------------------------------------------------------------

/// The bytes of the database files (under PostgreSQL a dump of the home's schema) and the names
/// in the spool: what a refusal must not change.
fn queue_bytes(home: &TestHome) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    for name in ["queue.db", "queue.db-wal"] {
        if let Ok(bytes) = std::fs::read(home.path().join(name)) {
            files.push((name.to_string(), bytes));
        }
    }
    if is_postgres() {
        files.push(("database".to_string(), home.db_dump().into_bytes()));
    }
    for dir in ["spool/incoming", "spool/tmp"] {
        let mut names: Vec<String> = std::fs::read_dir(home.path().join(dir))
            .map(|entries| {
                entries
                    .flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        files.push((dir.to_string(), names.join("\n").into_bytes()));
    }
    files
}

/// Input that is almost always wrong, in many different ways.
fn bad_input() -> impl Strategy<Value = (Vec<u8>, Vec<&'static str>)> {
    let bytes = prop_oneof![
        vec(any::<u8>(), 0..120),
        job_like_object().prop_map(|v| v.to_string().into_bytes()),
        (valid_job(), any::<prop::sample::Index>()).prop_map(|(job, cut)| {
            // A valid job cut short.
            let text = job.to_json().to_string();
            text.as_bytes()[..cut.index(text.len())].to_vec()
        }),
        valid_job().prop_map(|job| {
            let text = job.to_json().to_string();
            format!("{},\"command\":\"again\"}}", &text[..text.len() - 1]).into_bytes()
        }),
        (valid_job(), any::<u8>()).prop_map(|(job, byte)| {
            // A valid job with one byte that is not UTF-8.
            let mut bytes = job.to_json().to_string().into_bytes();
            bytes.insert(1, 0x80 | (byte & 0x3f));
            bytes
        }),
    ];
    let flags = prop_oneof![
        Just(vec![]),
        Just(vec!["--priority", "1"]),
        Just(vec!["--id", "x", "--delay", "1s"]),
        Just(vec!["--spool"]),
    ];
    (bytes, flags)
}

#[test]
fn a_refused_enqueue_through_the_binary_exits_2_and_changes_nothing() {
    let home = TestHome::new();
    home.run(&["enqueue", "--id", "existing", "--command", "true"]).ok();
    check("binary refusals", 40, bad_input(), |(input, flags)| {
        let before = queue_bytes(&home);
        let mut args = vec!["enqueue", "-"];
        args.extend_from_slice(&flags);
        let mut child = home
            .command(&args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn queuectl");
        {
            use std::io::Write;
            let _ = child.stdin.take().expect("stdin").write_all(&input);
        }
        let output = child.wait_with_output().expect("wait queuectl");
        let stderr = String::from_utf8_lossy(&output.stderr);
        match output.status.code() {
            // Rarely the random input is a valid job: then it was added, which is fine.
            Some(0) => {}
            Some(2) => {
                prop_assert!(output.stdout.is_empty(), "stdout of a refusal: {output:?}");
                prop_assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {}", stderr);
                prop_assert!(stderr.starts_with("queuectl: error: "), "{}", stderr);
                prop_assert!(queue_bytes(&home) == before, "a refusal changed the queue: {}", stderr);
            }
            other => {
                return Err(TestCaseError::fail(format!(
                    "exit {other:?} for {:?} {flags:?}: {stderr}",
                    String::from_utf8_lossy(&input)
                )))
            }
        }
        Ok(())
    });
}
