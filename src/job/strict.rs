//! Reading JSON into a `serde_json::Value` while refusing duplicate object keys.
//!
//! serde_json keeps the last of two equal keys, so `{"command":"a","command":"b"}` would run `b`
//! and silently drop `a`. Jobs are instructions to run commands: an ambiguous one is refused,
//! naming the key and where it was, instead of guessing which one was meant.

use serde::de::{DeserializeSeed, Error as _, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use std::cell::RefCell;
use std::fmt;

/// One step from a value to a value inside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    /// The value of this key of an object.
    Key(String),
    /// This element of an array.
    Index(usize),
}

/// Why strict reading failed.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// An object holds `key` twice; `path` leads from the document to that object.
    Duplicate {
        key: String,
        path: Vec<Step>,
        line: usize,
        column: usize,
    },
    /// Anything serde_json refuses on its own (syntax, trailing characters, depth).
    Json(serde_json::Error),
}

/// The first duplicate found, and the path to it (built innermost first while unwinding).
#[derive(Default)]
struct Found {
    key: Option<String>,
    reversed_path: Vec<Step>,
}

/// Parses `text` as one JSON document, refusing duplicate keys at any depth.
pub(crate) fn from_str(text: &str) -> Result<Value, ReadError> {
    let found = RefCell::new(Found::default());
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let result = StrictSeed { found: &found }
        .deserialize(&mut deserializer)
        .and_then(|value| deserializer.end().map(|_| value));
    match result {
        Ok(value) => Ok(value),
        Err(error) => {
            let found = found.into_inner();
            match found.key {
                Some(key) => {
                    let mut path = found.reversed_path;
                    path.reverse();
                    Err(ReadError::Duplicate {
                        key,
                        path,
                        line: error.line(),
                        column: error.column(),
                    })
                }
                None => Err(ReadError::Json(error)),
            }
        }
    }
}

#[derive(Clone, Copy)]
struct StrictSeed<'a> {
    found: &'a RefCell<Found>,
}

impl StrictSeed<'_> {
    /// Records `step` on the way out of a failed inner value, if that failure was a duplicate.
    fn note(&self, step: Step) {
        let mut found = self.found.borrow_mut();
        if found.key.is_some() {
            found.reversed_path.push(step);
        }
    }
}

impl<'de> DeserializeSeed<'de> for StrictSeed<'_> {
    type Value = Value;

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StrictSeed<'_> {
    type Value = Value;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("any JSON value")
    }

    fn visit_bool<E>(self, value: bool) -> Result<Value, E> {
        Ok(Value::Bool(value))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Value, E> {
        Ok(Value::Number(value.into()))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Value, E> {
        Ok(Value::Number(value.into()))
    }

    fn visit_f64<E>(self, value: f64) -> Result<Value, E> {
        // JSON text cannot spell NaN or infinity; serde_json's own `Value` maps them to null too.
        Ok(Number::from_f64(value).map(Value::Number).unwrap_or(Value::Null))
    }

    fn visit_str<E>(self, value: &str) -> Result<Value, E> {
        Ok(Value::String(value.to_owned()))
    }

    fn visit_string<E>(self, value: String) -> Result<Value, E> {
        Ok(Value::String(value))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        self.deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
        loop {
            match seq.next_element_seed(self) {
                Ok(Some(item)) => items.push(item),
                Ok(None) => return Ok(Value::Array(items)),
                Err(error) => {
                    self.note(Step::Index(items.len()));
                    return Err(error);
                }
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                let message = format!("duplicate key `{}`", key.escape_debug());
                self.found.borrow_mut().key = Some(key);
                return Err(A::Error::custom(message));
            }
            match map.next_value_seed(self) {
                Ok(value) => {
                    object.insert(key, value);
                }
                Err(error) => {
                    self.note(Step::Key(key));
                    return Err(error);
                }
            }
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn duplicate(text: &str) -> (String, Vec<Step>) {
        match from_str(text) {
            Err(ReadError::Duplicate { key, path, .. }) => (key, path),
            other => panic!("expected a duplicate key in {text}, got {other:?}"),
        }
    }

    #[test]
    fn reads_the_same_values_as_serde_json() {
        let text = r#"{"a":[1,-2,3.5,18446744073709551615,1e300,null,true,"x\u00e9"],"b":{"c":{}}}"#;
        let strict = from_str(text).unwrap();
        let lenient: Value = serde_json::from_str(text).unwrap();
        assert_eq!(strict, lenient);
    }

    #[test]
    fn refuses_a_duplicate_key_and_says_where_it_is() {
        assert_eq!(
            duplicate(r#"{"command":"a","command":"b"}"#),
            ("command".into(), vec![])
        );
        assert_eq!(
            duplicate(r#"[{"command":"a"},{"env":{"X":"1","X":"2"}}]"#),
            ("X".into(), vec![Step::Index(1), Step::Key("env".into())])
        );
        assert_eq!(
            duplicate(r#"{"payload":[0,{"k":1,"k":1}]}"#),
            ("k".into(), vec![Step::Key("payload".into()), Step::Index(1)])
        );
    }

    #[test]
    fn equal_keys_in_different_objects_are_fine() {
        assert!(from_str(r#"[{"command":"a"},{"command":"b","env":{"command":"c"}}]"#).is_ok());
    }

    /// Runs a property from a printed seed (`QUEUECTL_PROPTEST_SEED` replays one).
    fn check<S: proptest::strategy::Strategy>(
        name: &str,
        strategy: S,
        test: impl Fn(S::Value) -> Result<(), proptest::test_runner::TestCaseError>,
    ) where
        S::Value: std::fmt::Debug,
    {
        use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
        let seed: u64 = std::env::var("QUEUECTL_PROPTEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| crate::time::now_ms() as u64 ^ u64::from(std::process::id()).rotate_left(32));
        eprintln!("{name}: proptest seed {seed} (replay with QUEUECTL_PROPTEST_SEED={seed})");
        let mut bytes = [0u8; 32];
        bytes[..8].copy_from_slice(&seed.to_le_bytes());
        let config = Config {
            cases: 1000,
            failure_persistence: None,
            ..Config::default()
        };
        let mut runner = TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &bytes));
        if let Err(error) = runner.run(&strategy, test) {
            panic!("{name} failed with seed {seed}: {error}");
        }
    }

    fn any_json() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>().prop_filter_map("finite", |f| Number::from_f64(f).map(Value::Number)),
            ".{0,10}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 40, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                proptest::collection::btree_map(".{0,6}", inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    #[test]
    fn any_document_without_duplicates_reads_as_serde_json_reads_it() {
        check("strict = serde_json without duplicates", any_json(), |value| {
            for text in [
                value.to_string(),
                serde_json::to_string_pretty(&value).unwrap_or_default(),
            ] {
                let lenient: Value = serde_json::from_str(&text).map_err(|e| {
                    proptest::test_runner::TestCaseError::fail(format!("serde_json refused its own output: {e}"))
                })?;
                match from_str(&text) {
                    Ok(strict) => proptest::prop_assert_eq!(strict, lenient),
                    Err(e) => proptest::prop_assert!(false, "refused {text}: {e:?}"),
                }
            }
            Ok(())
        });
    }

    #[test]
    fn strict_reading_accepts_only_what_serde_json_accepts_and_reads_it_the_same() {
        use proptest::prelude::*;
        let text = prop_oneof![any::<String>(), "[\\[\\]{}\",:0-9a-z \\n]{0,80}"];
        check("strict refuses what serde_json refuses", text, |text| {
            let lenient = serde_json::from_str::<Value>(&text);
            match from_str(&text) {
                Ok(strict) => prop_assert_eq!(Some(strict), lenient.ok()),
                Err(ReadError::Json(_)) => prop_assert!(lenient.is_err(), "strict refused valid JSON {text}"),
                // A duplicate key may come before a syntax error further on: either refusal is right.
                Err(ReadError::Duplicate { .. }) => {}
            }
            Ok(())
        });
    }

    #[test]
    fn other_errors_are_serde_jsons_own() {
        assert!(matches!(from_str(r#"{"a":1} x"#), Err(ReadError::Json(_))));
        assert!(matches!(from_str(r#"{"a":"#), Err(ReadError::Json(_))));
        // serde_json's depth limit still applies, so deep nesting cannot overflow the stack.
        assert!(matches!(from_str(&"[".repeat(100_000)), Err(ReadError::Json(_))));
    }
}
