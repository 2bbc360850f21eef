//! Job JSON (one object, an array, NDJSON) into [`JobSpec`]s.

use super::spec::{JobSpec, Schedule, MAX_RETRIES_LIMIT, MAX_TIMEOUT_SECONDS, PRIORITY_LIMIT, SHELL_KIND};
use super::strict::{self, ReadError, Step};
use crate::error::InvalidJob;
use crate::time::{parse_rfc3339, Millis};
use serde_json::{Map, Value};

/// The fields a job's JSON may carry, in the order error messages list them.
pub const KNOWN_FIELDS: &[&str] = &[
    "id",
    "command",
    "kind",
    "payload",
    "max_retries",
    "priority",
    "run_at",
    "delay_seconds",
    "timeout_seconds",
    "cwd",
    "env",
];

/// Which of [`KNOWN_FIELDS`] a job's JSON gave (with a value other than `null`).
///
/// Batch-wide values (the CLI's `--priority` and friends) are applied only to jobs that do not
/// give the field themselves; this says which do, including ones whose value equals the
/// default (`"priority": 0`), which the [`JobSpec`] alone cannot tell.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GivenFields(u16);

impl GivenFields {
    /// True if the job's JSON gave `field` (one of [`KNOWN_FIELDS`]).
    pub fn contains(self, field: &str) -> bool {
        KNOWN_FIELDS
            .iter()
            .position(|known| *known == field)
            .is_some_and(|index| self.0 & (1 << index) != 0)
    }

    fn insert(&mut self, field: &str) {
        if let Some(index) = KNOWN_FIELDS.iter().position(|known| *known == field) {
            self.0 |= 1 << index;
        }
    }
}

/// Parses the text of `enqueue`, a `--file` or a spool file into job specs.
///
/// The text may be one JSON object, a JSON array of objects, or NDJSON (one object a line).
/// Errors name the field and, in a batch, the line (NDJSON) or index (array). An object that
/// gives a key twice is refused (naming the key), never read as "the last one wins". The specs
/// are also validated, so a successful parse is a batch that only the database can still refuse
/// (a duplicate id).
pub fn parse_jobs(text: &str) -> Result<Vec<(Option<String>, JobSpec)>, InvalidJob> {
    parse_jobs_with(text, |_, _| Ok(()))
}

/// [`parse_jobs`], calling `adjust` on each job after it is read and before it is validated,
/// with the fields its JSON gave. This is how values given once for a whole batch are applied;
/// an error from `adjust` is placed at the job's line or index like any other refusal.
pub fn parse_jobs_with(
    text: &str,
    mut adjust: impl FnMut(&mut JobSpec, GivenFields) -> Result<(), InvalidJob>,
) -> Result<Vec<(Option<String>, JobSpec)>, InvalidJob> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(InvalidJob::whole("empty input: no jobs given"));
    }
    let items: Vec<(Option<String>, Value)> = match strict::from_str(trimmed) {
        Ok(Value::Array(items)) => {
            if items.is_empty() {
                return Err(InvalidJob::whole("empty batch: the array holds no jobs"));
            }
            items
                .into_iter()
                .enumerate()
                .map(|(i, v)| (Some(format!("index {i}")), v))
                .collect()
        }
        Ok(value) => vec![(None, value)],
        Err(whole_error) => {
            let lines: Vec<(usize, &str)> = text
                .lines()
                .enumerate()
                .filter(|(_, line)| !line.trim().is_empty())
                .map(|(i, line)| (i + 1, line))
                .collect();
            // NDJSON only if the first line is a complete value on its own; otherwise this is one
            // (pretty-printed) document and its own error names the right line. Completeness is
            // a matter of syntax, so a first line with a duplicate key still counts as NDJSON
            // and is refused below with its line number.
            let first_line_complete = lines
                .first()
                .map(|(_, l)| serde_json::from_str::<serde::de::IgnoredAny>(l).is_ok())
                .unwrap_or(false);
            if lines.len() < 2 || !trimmed.starts_with('{') || !first_line_complete {
                return Err(read_error(whole_error, None));
            }
            // Line by line, so the whole input never exists as parsed JSON values at once
            // (a 100k-line file would otherwise hold 100k `Value` trees).
            return parse_ndjson_with(text, adjust);
        }
    };
    let mut specs = Vec::with_capacity(items.len());
    for (location, value) in items {
        match read_job(value, &mut adjust) {
            Ok(spec) => specs.push((location, spec)),
            Err(e) => {
                return Err(match location {
                    Some(location) => e.at(location),
                    None => e,
                })
            }
        }
    }
    Ok(specs)
}

/// Parses NDJSON strictly line by line (the `*.ndjson` spool format).
pub fn parse_ndjson(text: &str) -> Result<Vec<(Option<String>, JobSpec)>, InvalidJob> {
    parse_ndjson_with(text, |_, _| Ok(()))
}

fn parse_ndjson_with(
    text: &str,
    mut adjust: impl FnMut(&mut JobSpec, GivenFields) -> Result<(), InvalidJob>,
) -> Result<Vec<(Option<String>, JobSpec)>, InvalidJob> {
    let mut specs = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let location = format!("line {}", index + 1);
        let value = strict::from_str(line).map_err(|e| read_error(e, Some(location.clone())))?;
        let spec = read_job(value, &mut adjust).map_err(|e| e.at(location.clone()))?;
        specs.push((Some(location), spec));
    }
    if specs.is_empty() {
        return Err(InvalidJob::whole("empty input: no jobs given"));
    }
    Ok(specs)
}

/// One job of a batch: read, adjusted, validated.
fn read_job(
    value: Value,
    adjust: &mut impl FnMut(&mut JobSpec, GivenFields) -> Result<(), InvalidJob>,
) -> Result<JobSpec, InvalidJob> {
    let (mut spec, given) = read_spec(value)?;
    adjust(&mut spec, given)?;
    spec.validate()?;
    Ok(spec)
}

/// The refusal for JSON that could not be read. `location` is the NDJSON line, if any; a
/// duplicate key inside a top-level array gets the element's index as its location.
fn read_error(error: ReadError, location: Option<String>) -> InvalidJob {
    let (key, path, line, column) = match error {
        ReadError::Json(error) => return json_error(&error, location),
        ReadError::Duplicate {
            key,
            path,
            line,
            column,
        } => (key, path, line, column),
    };
    let mut steps = path.as_slice();
    let mut location = location;
    if location.is_none() {
        if let Some((Step::Index(index), rest)) = steps.split_first() {
            location = Some(format!("index {index}"));
            steps = rest;
        }
    }
    let inside = if steps.is_empty() {
        String::new()
    } else {
        format!(" in `{}`", render_path(steps))
    };
    // An NDJSON line is parsed on its own, so serde_json's line number would always be 1 there.
    let position = if location.as_deref().is_some_and(|l| l.starts_with("line ")) {
        format!("column {column}")
    } else {
        format!("line {line}, column {column}")
    };
    let invalid = InvalidJob::whole(format!("duplicate key `{}`{inside} ({position})", key.escape_debug()));
    match location {
        Some(location) => invalid.at(location),
        None => invalid,
    }
}

/// `env`, `payload.items[2].name`: the path to a value inside a job, for messages.
fn render_path(steps: &[Step]) -> String {
    let mut text = String::new();
    for step in steps {
        match step {
            Step::Key(key) => {
                if !text.is_empty() {
                    text.push('.');
                }
                text.push_str(&key.escape_debug().to_string());
            }
            Step::Index(index) => text.push_str(&format!("[{index}]")),
        }
    }
    text
}

fn json_error(error: &serde_json::Error, location: Option<String>) -> InvalidJob {
    let message = error.to_string();
    // serde_json appends " at line L column C"; keep its position, which is what people need.
    let reason = format!("malformed JSON: {message}");
    let invalid = InvalidJob::whole(reason);
    match location {
        Some(location) => invalid.at(location),
        None => invalid,
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn expect_string(field: &str, value: Value) -> Result<String, InvalidJob> {
    match value {
        Value::String(s) => Ok(s),
        other => Err(InvalidJob::field(
            field,
            format!("must be a string, got {}", type_name(&other)),
        )),
    }
}

fn expect_integer(field: &str, value: &Value, min: i64, max: i64) -> Result<i64, InvalidJob> {
    let out_of_range = || InvalidJob::field(field, format!("must be an integer from {min} to {max}, got {value}"));
    match value {
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                if (min..=max).contains(&i) {
                    return Ok(i);
                }
                return Err(out_of_range());
            }
            if n.as_u64().is_some() {
                return Err(out_of_range());
            }
            match n.as_f64() {
                Some(f) if f.fract() == 0.0 && f >= min as f64 && f <= max as f64 => Ok(f as i64),
                _ => Err(out_of_range()),
            }
        }
        other => Err(InvalidJob::field(
            field,
            format!("must be an integer, got {}", type_name(other)),
        )),
    }
}

/// Converts one JSON object into a spec, refusing unknown fields and wrong types.
pub fn spec_from_value(value: Value) -> Result<JobSpec, InvalidJob> {
    read_spec(value).map(|(spec, _)| spec)
}

/// [`spec_from_value`], also saying which fields the object gave.
fn read_spec(value: Value) -> Result<(JobSpec, GivenFields), InvalidJob> {
    let object: Map<String, Value> = match value {
        Value::Object(object) => object,
        other => {
            return Err(InvalidJob::whole(format!(
                "expected a JSON object, got {}",
                type_name(&other)
            )))
        }
    };
    let mut spec = JobSpec::shell("");
    let mut has_command = false;
    let mut run_at: Option<Millis> = None;
    let mut delay: Option<f64> = None;
    let mut given = GivenFields::default();
    for (key, value) in object {
        if !value.is_null() {
            given.insert(&key);
        }
        match key.as_str() {
            "id" => spec.id = Some(expect_string("id", value)?),
            "command" => {
                spec.command = expect_string("command", value)?;
                has_command = true;
            }
            "kind" => spec.kind = expect_string("kind", value)?,
            "payload" => spec.payload = if value.is_null() { None } else { Some(value) },
            "max_retries" => {
                spec.max_retries = Some(expect_integer("max_retries", &value, 0, MAX_RETRIES_LIMIT as i64)? as u32)
            }
            "priority" => spec.priority = expect_integer("priority", &value, -PRIORITY_LIMIT, PRIORITY_LIMIT)?,
            "run_at" => {
                let text = expect_string("run_at", value)?;
                run_at = Some(parse_rfc3339(&text).map_err(|e| InvalidJob::field("run_at", e))?);
            }
            "delay_seconds" => {
                let seconds = value.as_f64().filter(|_| value.is_number()).ok_or_else(|| {
                    InvalidJob::field("delay_seconds", format!("must be a number, got {}", type_name(&value)))
                })?;
                delay = Some(seconds);
            }
            "timeout_seconds" => {
                if !value.is_null() {
                    spec.timeout_seconds =
                        Some(expect_integer("timeout_seconds", &value, 1, MAX_TIMEOUT_SECONDS as i64)? as u64);
                }
            }
            "cwd" => spec.cwd = Some(expect_string("cwd", value)?),
            "env" => match value {
                Value::Object(vars) => {
                    for (name, value) in vars {
                        match value {
                            Value::String(s) => {
                                spec.env.insert(name, s);
                            }
                            other => {
                                return Err(InvalidJob::field(
                                    "env",
                                    format!("value of `{name}` must be a string, got {}", type_name(&other)),
                                ))
                            }
                        }
                    }
                }
                other => {
                    return Err(InvalidJob::field(
                        "env",
                        format!("must be an object of strings, got {}", type_name(&other)),
                    ))
                }
            },
            unknown => {
                return Err(InvalidJob::whole(format!(
                    "unknown field `{}` (known fields: {})",
                    unknown.escape_debug(),
                    KNOWN_FIELDS.join(", ")
                )))
            }
        }
    }
    if !has_command && spec.kind == SHELL_KIND {
        return Err(InvalidJob::field("command", "is missing"));
    }
    spec.schedule = match (run_at, delay) {
        (Some(_), Some(_)) => {
            return Err(InvalidJob::field("run_at", "and `delay_seconds` cannot both be given"));
        }
        (Some(at), None) => Schedule::At(at),
        (None, Some(seconds)) => Schedule::After(seconds),
        (None, None) => Schedule::Now,
    };
    Ok((spec, given))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> Result<JobSpec, InvalidJob> {
        parse_jobs(text).map(|mut v| v.remove(0).1)
    }

    #[test]
    fn parses_the_spec_example() {
        let spec = one(r#"{"id":"job1","command":"echo hi"}"#).unwrap();
        assert_eq!(spec.id.as_deref(), Some("job1"));
        assert_eq!(spec.command, "echo hi");
        assert_eq!(spec.kind, "shell");
    }

    #[test]
    fn parses_arrays_and_ndjson_with_locations() {
        let jobs = parse_jobs(r#"[{"command":"a"},{"command":"b"}]"#).unwrap();
        assert_eq!(jobs.len(), 2);
        assert_eq!(jobs[1].0.as_deref(), Some("index 1"));
        let jobs = parse_jobs("{\"command\":\"a\"}\n\n{\"command\":\"b\"}\n").unwrap();
        assert_eq!(jobs[1].0.as_deref(), Some("line 3"));
    }

    #[test]
    fn refusals_name_the_field_and_the_location() {
        let e = parse_jobs("{\"command\":\"a\"}\n{\"command\":\"\"}").unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid job at line 2: field `command` is missing or empty"
        );
        let e = one(r#"{"command":"a","max_retries":"3"}"#).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid job: field `max_retries` must be an integer, got a string"
        );
        let e = one(r#"{"command":"a","max_retries":-1}"#).unwrap_err();
        assert!(
            e.to_string()
                .contains("`max_retries` must be an integer from 0 to 1000, got -1"),
            "{e}"
        );
        let e = one(r#"{"command":"a","colour":"red"}"#).unwrap_err();
        assert!(
            e.to_string()
                .contains("unknown field `colour` (known fields: id, command,"),
            "{e}"
        );
        let e = parse_jobs("[]").unwrap_err();
        assert!(e.to_string().contains("empty batch"), "{e}");
        let e = parse_jobs("   ").unwrap_err();
        assert!(e.to_string().contains("empty input"), "{e}");
        let e = one("{\"command\":").unwrap_err();
        assert!(e.to_string().starts_with("invalid job: malformed JSON: "), "{e}");
        let e = parse_jobs(r#"[{"command":"a"}, 5]"#).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid job at index 1: expected a JSON object, got a number"
        );
    }

    #[test]
    fn given_fields_include_default_values_but_not_nulls() {
        let mut seen = Vec::new();
        parse_jobs_with(
            r#"[{"command":"a","priority":0,"timeout_seconds":null},{"command":"b","run_at":"2030-01-01T00:00:00Z"}]"#,
            |_, given| {
                seen.push(
                    KNOWN_FIELDS
                        .iter()
                        .filter(|f| given.contains(f))
                        .copied()
                        .collect::<Vec<_>>(),
                );
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(seen, vec![vec!["command", "priority"], vec!["command", "run_at"]]);
        assert!(!GivenFields::default().contains("no such field"));
    }

    #[test]
    fn an_adjustment_is_validated_and_its_refusal_is_placed_at_the_job() {
        let specs = parse_jobs_with("{\"command\":\"a\"}\n{\"command\":\"b\"}", |spec, _| {
            spec.priority = 5;
            Ok(())
        })
        .unwrap();
        assert!(specs.iter().all(|(_, spec)| spec.priority == 5));
        let e = parse_jobs_with(r#"[{"command":"a"},{"command":"b","priority":1}]"#, |_, given| {
            if given.contains("priority") {
                Err(InvalidJob::whole("clash"))
            } else {
                Ok(())
            }
        })
        .unwrap_err();
        assert_eq!(e.to_string(), "invalid job at index 1: clash");
        let e = parse_jobs_with(r#"{"command":"a"}"#, |spec, _| {
            spec.priority = PRIORITY_LIMIT + 1;
            Ok(())
        })
        .unwrap_err();
        assert!(e.to_string().contains("field `priority` must be from"), "{e}");
    }

    #[test]
    fn duplicate_keys_are_refused_with_the_key_and_the_place() {
        let e = one(r#"{"command":"a","command":"b"}"#).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid job: duplicate key `command` (line 1, column 24)"
        );
        let e =
            parse_jobs("[{\"command\":\"a\"},\n {\"command\":\"b\",\"env\":{\"X\":\"1\",\"X\":\"2\"}}]").unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid job at index 1: duplicate key `X` in `env` (line 2, column 34)"
        );
        let e = parse_jobs("{\"command\":\"a\"}\n{\"command\":\"b\",\"payload\":[{\"k\":1,\"k\":2}]}").unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid job at line 2: duplicate key `k` in `payload[0]` (column 36)"
        );
        let e = parse_jobs("{\"id\":\"a\",\"id\":\"b\",\"command\":\"x\"}\n{\"command\":\"y\"}").unwrap_err();
        assert!(
            e.to_string().starts_with("invalid job at line 1: duplicate key `id`"),
            "{e}"
        );
    }

    #[test]
    fn other_kinds_need_no_command() {
        let spec = one(r#"{"kind":"email","payload":{"to":"a@b"}}"#).unwrap();
        assert_eq!(spec.kind, "email");
        assert!(one(r#"{"kind":"bad kind","command":"x"}"#).is_err());
    }

    #[test]
    fn schedule_fields() {
        let spec = one(r#"{"command":"a","delay_seconds":1.5}"#).unwrap();
        assert_eq!(spec.schedule, Schedule::After(1.5));
        let spec = one(r#"{"command":"a","run_at":"2030-01-01T00:00:00Z"}"#).unwrap();
        assert!(matches!(spec.schedule, Schedule::At(_)));
        assert!(one(r#"{"command":"a","run_at":"2030-01-01T00:00:00Z","delay_seconds":1}"#).is_err());
        assert!(one(r#"{"command":"a","delay_seconds":-1}"#).is_err());
        assert!(one(r#"{"command":"a","timeout_seconds":0}"#).is_err());
    }
}
