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

    #[test]
    fn other_errors_are_serde_jsons_own() {
        assert!(matches!(from_str(r#"{"a":1} x"#), Err(ReadError::Json(_))));
        assert!(matches!(from_str(r#"{"a":"#), Err(ReadError::Json(_))));
        // serde_json's depth limit still applies, so deep nesting cannot overflow the stack.
        assert!(matches!(from_str(&"[".repeat(100_000)), Err(ReadError::Json(_))));
    }
}
