//! Reading `config/queuectl.toml` strictly: every problem (not UTF-8, malformed TOML, an
//! unknown or misplaced key, a key set twice, a wrong TOML type, a bad value) is an error
//! naming the line, never a silent default.

use super::keys::{
    canonical_name, find_key, nearest_key, normalize_value, unknown_key_hint, KeyDef, ValueType, HOOKS_PREFIX,
};
use super::kinds::{check_kind_name, check_kind_value, kind_key, qualified, unknown_kind_key, KindPolicy};
use crate::error::{Error, Result};
use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;
use toml::de::{DeTable, DeValue};
use toml::Spanned;

/// The top-level key naming where the jobs live (a file path or a `postgres://` URL). It is not
/// a setting (`config set` cannot store it in the database it names): `--db` and
/// `QUEUECTL_DB` win over it.
pub const DB_URL_KEY: &str = "db_url";

/// The `db_url` of a config file, if it sets one. A missing file sets none; a file that cannot be
/// read or parsed is an error naming it.
pub fn read_db_url(path: &Path) -> Result<Option<String>> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(path, e)),
    };
    let text =
        std::str::from_utf8(&bytes).map_err(|_| Error::Config(format!("{}: not valid UTF-8", path.display())))?;
    parse_config_text(text).map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
    let document = DeTable::parse(text).map_err(|e| Error::Config(format!("{}: {}", path.display(), e.message())))?;
    Ok(document
        .get_ref()
        .iter()
        .find_map(|(key, value)| match value.get_ref() {
            DeValue::String(url) if key.get_ref() == DB_URL_KEY => Some(url.to_string()),
            _ => None,
        }))
}

/// What a config file holds: its settings and its per-kind policies (`[kinds.NAME]` tables).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConfigFile {
    /// Each key it sets, canonical name to canonical text.
    pub values: BTreeMap<&'static str, String>,
    /// Each kind table, by kind.
    pub kinds: BTreeMap<String, KindPolicy>,
}

/// Reads `config/queuectl.toml` into canonical key/value text. A missing file is empty.
/// Any problem (not UTF-8, malformed TOML, an unknown key, a wrong type, a bad value) is an
/// [`Error::Config`] naming the file and the line.
pub fn read_config_file(path: &Path) -> Result<BTreeMap<&'static str, String>> {
    read_config(path).map(|file| file.values)
}

/// Reads `config/queuectl.toml` whole: settings and kind tables. A missing file is empty; any
/// problem is an [`Error::Config`] naming the file and the line.
pub fn read_config(path: &Path) -> Result<ConfigFile> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ConfigFile::default()),
        Err(e) => return Err(Error::io(path, e)),
    };
    parse_file_bytes(&bytes).map_err(|e| Error::Config(format!("{}: {e}", path.display())))
}

/// Parses the bytes of a config file; the error is one line without the file's name.
pub fn parse_config_bytes(bytes: &[u8]) -> std::result::Result<BTreeMap<&'static str, String>, String> {
    parse_file_bytes(bytes).map(|file| file.values)
}

fn parse_file_bytes(bytes: &[u8]) -> std::result::Result<ConfigFile, String> {
    match std::str::from_utf8(bytes) {
        Ok(text) => parse_config(text),
        Err(e) => {
            let offset = e.valid_up_to();
            let line = bytes[..offset].iter().filter(|b| **b == b'\n').count() + 1;
            Err(format!("not valid UTF-8 at byte {offset} (line {line})"))
        }
    }
}

/// One `key = value` of the file, with where it was written.
struct Entry<'a> {
    /// The key as written, with `hooks.` in front for keys of the hooks table.
    name: String,
    key_span: Range<usize>,
    value: &'a Spanned<DeValue<'a>>,
    /// The line of the `[hooks]` header when the key sits under one (not a dotted key).
    hooks_header_line: Option<usize>,
    /// For a key of a `[kinds.NAME]` table: the kind, and the line of the table's header when
    /// the key sits under one.
    kind: Option<(String, Option<usize>)>,
}

/// Parses the TOML text of a config file; the error is one line without the file's name.
///
/// Keys are top-level (`max_retries = 3`) except the hooks, which are `hooks.on_dead = "..."`
/// or the same keys in a `[hooks]` table. Each value must have the key's TOML type: a string
/// for a command or a path, an integer for a count, an array of integers for uids.
pub fn parse_config_text(text: &str) -> std::result::Result<BTreeMap<&'static str, String>, String> {
    parse_config(text).map(|file| file.values)
}

/// Parses the TOML text of a config file whole, settings and kind tables (see
/// [`parse_config_text`] for the settings and [`crate::config::KindPolicy`] for the tables); the
/// error is one line without the file's name.
pub fn parse_config(text: &str) -> std::result::Result<ConfigFile, String> {
    let document = DeTable::parse(text).map_err(|e| {
        let mut message = e.message().trim().replace('\n', " ");
        match e.span() {
            Some(span) => {
                let (line, column) = line_column(text, span.start);
                // toml says only "duplicate key": name it, as the key may be far from its twin.
                if message == "duplicate key" {
                    if let Some(key) = text.get(span).filter(|k| !k.contains('\n')) {
                        message = match first_line_setting(text, key, line) {
                            Some(first) => {
                                format!("duplicate key `{key}`: first set at line {first}; each key may be set once")
                            }
                            None => format!("duplicate key `{key}`: each key may be set once"),
                        };
                    }
                }
                format!("line {line}, column {column}: {message}")
            }
            None => message,
        }
    })?;
    let mut entries = Vec::new();
    for (key, value) in document.get_ref().iter() {
        let key_line = line_of(text, key.span().start);
        if key.get_ref() == DB_URL_KEY {
            // Where the database is, not a setting: read by `db_url_from_text`.
            if !matches!(value.get_ref(), DeValue::String(_)) {
                return Err(format!(
                    "line {key_line}: `{DB_URL_KEY}` must be a string (a file path or postgres://...), found {}",
                    describe(text, value)
                ));
            }
            continue;
        }
        if canonical_name(key.get_ref()) == "kinds" {
            kind_entries(text, key, value, &mut entries)?;
            continue;
        }
        if canonical_name(key.get_ref()) != "hooks" {
            entries.push(Entry {
                name: key.get_ref().to_string(),
                key_span: key.span(),
                value,
                hooks_header_line: None,
                kind: None,
            });
            continue;
        }
        let DeValue::Table(hooks) = value.get_ref() else {
            return Err(format!(
                "line {key_line}: `hooks` must be a table of hook commands (`hooks.on_dead = \"...\"`), found {}",
                describe(text, value)
            ));
        };
        // A `[hooks]` header captures every key below it, up to the next header; the error for
        // an unknown key there says so, since that is how a key appended at the end goes wrong.
        let is_header = text
            .lines()
            .nth(key_line - 1)
            .is_some_and(|l| l.trim_start().starts_with('['));
        for (inner, inner_value) in hooks.iter() {
            entries.push(Entry {
                name: format!("{HOOKS_PREFIX}{}", inner.get_ref()),
                key_span: inner.span(),
                value: inner_value,
                hooks_header_line: is_header.then_some(key_line),
                kind: None,
            });
        }
    }
    // Report problems in reading order, so the first one named is the first in the file.
    entries.sort_by_key(|e| e.key_span.start);
    let mut values = BTreeMap::new();
    let mut kinds: BTreeMap<String, KindPolicy> = BTreeMap::new();
    let mut first_line: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut first_kind_line: BTreeMap<(String, &'static str), usize> = BTreeMap::new();
    for entry in &entries {
        let line = line_of(text, entry.key_span.start);
        if let Some((kind, header)) = &entry.kind {
            let (name, def) = kind_key(&entry.name).ok_or_else(|| unknown_kind_entry(entry, kind, *header, line))?;
            if let Some(first) = first_kind_line.get(&(kind.clone(), name)) {
                return Err(format!(
                    "line {line}: `{}` sets `{}` again (first set at line {first})",
                    qualified(kind, &entry.name),
                    qualified(kind, name)
                ));
            }
            first_kind_line.insert((kind.clone(), name), line);
            let value_line = line_of(text, entry.value.span().start);
            let raw = value_text(def, entry.value, text).map_err(|e| {
                format!(
                    "line {value_line}: {}",
                    e.replacen(&format!("`{}`", def.name), &format!("`{}`", qualified(kind, name)), 1)
                )
            })?;
            let checked = check_kind_value(kind, name, &raw).map_err(|e| format!("line {value_line}: {e}"))?;
            kinds.entry(kind.clone()).or_default().set(name, &checked);
            continue;
        }
        let def = find_key(&canonical_name(&entry.name)).ok_or_else(|| unknown_key(entry, line))?;
        if let Some(first) = first_line.get(def.name) {
            return Err(format!(
                "line {line}: `{}` sets `{}` again (first set at line {first})",
                entry.name, def.name
            ));
        }
        first_line.insert(def.name, line);
        let value_line = line_of(text, entry.value.span().start);
        let raw = value_text(def, entry.value, text).map_err(|e| format!("line {value_line}: {e}"))?;
        let normalized = normalize_value(def, &raw).map_err(|e| format!("line {value_line}: {e}"))?;
        values.insert(def.name, normalized);
    }
    Ok(ConfigFile { values, kinds })
}

/// The entries of the `kinds` table: one table per kind (`[kinds.resize]`, or
/// `kinds.resize.max_retries = 5`), each holding that kind's policy keys.
fn kind_entries<'a>(
    text: &str,
    key: &Spanned<std::borrow::Cow<'a, str>>,
    value: &'a Spanned<DeValue<'a>>,
    entries: &mut Vec<Entry<'a>>,
) -> std::result::Result<(), String> {
    let key_line = line_of(text, key.span().start);
    let is_header_at = |line: usize| {
        text.lines()
            .nth(line - 1)
            .is_some_and(|l| l.trim_start().starts_with('['))
    };
    let DeValue::Table(kinds) = value.get_ref() else {
        return Err(format!(
            "line {key_line}: `kinds` must be a table of job kinds (`[kinds.resize]` with `max_retries = 5` \
             below it), found {}",
            describe(text, value)
        ));
    };
    for (kind_key_span, policy) in kinds.iter() {
        let kind = kind_key_span.get_ref().to_string();
        let kind_line = line_of(text, kind_key_span.span().start);
        let DeValue::Table(keys) = policy.get_ref() else {
            // `[kinds]` then `worker_count = 4`: a top-level key that landed in the table.
            if is_header_at(key_line) && find_key(&canonical_name(&kind)).is_some() {
                return Err(format!(
                    "`{kind}` at line {kind_line} is inside the `[kinds]` table that starts at line {key_line}, \
                     so it reads as `kinds.{kind}`: move it above that line"
                ));
            }
            return Err(format!(
                "line {kind_line}: `{}` must be a table of that kind's policy (`[{}]` with \
                 `max_retries = 5` below it), found {}",
                qualified(&kind, "").trim_end_matches('.'),
                qualified(&kind, "").trim_end_matches('.'),
                describe(text, policy)
            ));
        };
        check_kind_name(&kind).map_err(|e| format!("line {kind_line}: {e}"))?;
        let header = is_header_at(kind_line).then_some(kind_line);
        for (inner, inner_value) in keys.iter() {
            entries.push(Entry {
                name: inner.get_ref().to_string(),
                key_span: inner.span(),
                value: inner_value,
                hooks_header_line: None,
                kind: Some((kind.clone(), header)),
            });
        }
    }
    Ok(())
}

/// The error for a key a kind table does not take; a top-level key that landed under a
/// `[kinds.NAME]` header says so.
fn unknown_kind_entry(entry: &Entry<'_>, kind: &str, header: Option<usize>, line: usize) -> String {
    let global = find_key(&canonical_name(&entry.name));
    match (global, header) {
        (Some(def), Some(header)) => format!(
            "`{}` at line {line} is inside the `[{}]` table that starts at line {header}, so it reads as \
             `{}`: move it above that line",
            entry.name,
            qualified(kind, "").trim_end_matches('.'),
            qualified(kind, def.name)
        ),
        _ => format!("{} at line {line}", unknown_kind_key(kind, &entry.name)),
    }
}

/// The error for a key queuectl does not know, with the likeliest fix.
fn unknown_key(entry: &Entry<'_>, line: usize) -> String {
    let inner = entry.name.strip_prefix(HOOKS_PREFIX);
    let misplaced = inner.and_then(|inner| find_key(&canonical_name(inner)));
    match (misplaced, entry.hooks_header_line) {
        (Some(def), Some(header)) => format!(
            "`{}` at line {line} is inside the `[hooks]` table that starts at line {header}, so it \
             reads as `hooks.{}`: move it above that line",
            inner.unwrap_or_default(),
            def.name
        ),
        (Some(def), None) => format!(
            "unknown key `{}` at line {line}; did you mean `{}`?",
            entry.name, def.name
        ),
        (None, _) => {
            // Inside `[hooks]`, `ondead` is a typo of `hooks.on_dead`, not of a top-level key.
            // A typo of a top-level key under the header is both misspelt and misplaced.
            let hint = match (inner, entry.hooks_header_line) {
                (Some(inner), Some(header)) => match nearest_key(&format!("{HOOKS_PREFIX}{inner}")) {
                    Some(near) => format!("; did you mean `{near}`?"),
                    None => match nearest_key(inner).filter(|near| !near.starts_with(HOOKS_PREFIX)) {
                        Some(near) => format!(
                            "; did you mean `{near}`? It would have to go above the `[hooks]` table \
                             that starts at line {header}"
                        ),
                        None => unknown_key_hint(&entry.name),
                    },
                },
                _ => unknown_key_hint(&entry.name),
            };
            format!("unknown key `{}` at line {line}{hint}", entry.name)
        }
    }
}

/// The value as text for [`normalize_value`], if its TOML type is the key's; else an error
/// naming the key, the type it needs and what was found.
fn value_text(def: &KeyDef, value: &Spanned<DeValue<'_>>, text: &str) -> std::result::Result<String, String> {
    let integer = |i: &toml::de::DeInteger<'_>| {
        // Out of i64 range: hand the digits on, so the range error quotes them.
        i64::from_str_radix(i.as_str(), i.radix())
            .map(|n| n.to_string())
            .unwrap_or_else(|_| i.to_string())
    };
    let found = match (def.value_type, value.get_ref()) {
        (ValueType::Integer { .. } | ValueType::OptionalInteger { .. }, DeValue::Integer(i)) => return Ok(integer(i)),
        (ValueType::Number { .. }, DeValue::Integer(i)) => return Ok(integer(i)),
        (ValueType::Number { .. }, DeValue::Float(f)) => return Ok(f.as_str().to_string()),
        (ValueType::Bool, DeValue::Boolean(b)) => return Ok(b.to_string()),
        (ValueType::Path | ValueType::Command, DeValue::String(s)) => return Ok(s.to_string()),
        (ValueType::UidList, DeValue::Array(items)) => {
            let mut uids = Vec::with_capacity(items.len());
            for item in items.iter() {
                match item.get_ref() {
                    DeValue::Integer(i) => uids.push(integer(i)),
                    _ => {
                        return Err(format!(
                            "`{}` must be {}, found an array holding {}",
                            def.name,
                            def.value_type.expected(),
                            describe(text, item)
                        ))
                    }
                }
            }
            return Ok(uids.join(","));
        }
        _ => describe(text, value),
    };
    let none = if matches!(def.value_type, ValueType::OptionalInteger { .. }) {
        " (leave the key out for none)"
    } else {
        ""
    };
    Err(format!(
        "`{}` must be {}{none}, found {found}",
        def.name,
        def.value_type.expected()
    ))
}

/// "a string (\"lots\")": a value's TOML type and, for scalars, how it was written.
fn describe(text: &str, value: &Spanned<DeValue<'_>>) -> String {
    let kind = match value.get_ref() {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a datetime",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => return "a table".to_string(),
    };
    let written = text.get(value.span()).unwrap_or("").lines().next().unwrap_or("");
    let mut shown: String = written.chars().take(40).collect();
    if shown.len() < written.len() {
        shown.push('…');
    }
    format!("{kind} ({shown})")
}

/// The first line before `before` that sets `key` (`key = `, `key.x = ` or `[key]`), to point
/// a duplicate key at its twin. A key (not a header) is looked for in its own table only: from
/// the last `[table]` header above it, so a kind table's `max_retries` twin is not taken for
/// the top-level one.
fn first_line_setting(text: &str, key: &str, before: usize) -> Option<usize> {
    let lines: Vec<&str> = text.lines().take(before.saturating_sub(1)).collect();
    let is_header = |line: &str| line.trim_start().starts_with('[');
    let from = if text.lines().nth(before.saturating_sub(1)).is_some_and(is_header) {
        0
    } else {
        lines.iter().rposition(|l| is_header(l)).map(|i| i + 1).unwrap_or(0)
    };
    lines[from..]
        .iter()
        .position(|line| {
            let line = line.trim_start();
            let header = line.strip_prefix('[').and_then(|l| l.trim_start().strip_prefix(key));
            if let Some(rest) = header {
                return rest.trim_start().starts_with(']');
            }
            line.strip_prefix(key)
                .map(|rest| rest.trim_start())
                .is_some_and(|rest| rest.starts_with('=') || rest.starts_with('.'))
        })
        .map(|index| from + index + 1)
}

/// The 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    line_column(text, offset).0
}

/// The 1-based line and column (in characters) of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    // A span from the parser may point inside a multi-byte character of malformed input.
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map(|l| l.chars().count()).unwrap_or(0) + 1;
    (line, column)
}

#[cfg(test)]
#[path = "toml_file_tests.rs"]
mod tests;
