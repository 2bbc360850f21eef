//! Which names are spool files, and a file's identity: the key recorded when its jobs are
//! committed and the ids derived for jobs that name none.

use std::borrow::Cow;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use uuid::Uuid;

/// The namespace of ids derived from spool files (a fixed, random UUID: changing it would make
/// a file re-read after an upgrade map to new ids).
const DERIVED_ID_NAMESPACE: Uuid = Uuid::from_u128(0x6a1f_3c2e_9b4d_4e7a_8c15_d2f0_7e93_a4b6);

/// How a spool file's text is parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// `*.json`: one job object or an array of them.
    Json,
    /// `*.ndjson`: one job object a line.
    Ndjson,
}

/// What the ingester makes of one name in `incoming/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NameKind<'a> {
    /// A spool file to read.
    Spool(Format, &'a str),
    /// A spool file's extension on a name that is not UTF-8: refused (a job's source and
    /// `spool retry` need the name as text), under a UTF-8 name in `failed/`.
    NotUtf8(Format),
    /// A dotfile: a writer's scratch file, left alone.
    Dotfile,
    /// Any other name, left alone.
    Other,
}

/// Sorts one name in `incoming/`. The extension is compared without regard to case, so
/// `JOB.JSON` (as some tools and file systems write it) is a spool file too.
pub(crate) fn classify(name: &OsStr) -> NameKind<'_> {
    let bytes = name.as_bytes();
    if bytes.starts_with(b".") || bytes.contains(&b'/') {
        return NameKind::Dotfile;
    }
    let Some(format) = format_of_bytes(bytes) else {
        return NameKind::Other;
    };
    match name.to_str() {
        Some(text) => NameKind::Spool(format, text),
        None => NameKind::NotUtf8(format),
    }
}

/// The format of a file in `incoming/`, or `None` for names the ingester does not read:
/// dotfiles (editors' and writers' scratch files) and anything not ending in `.json` or
/// `.ndjson` (in any case).
#[cfg_attr(not(feature = "spool"), allow(dead_code))] // the watcher and the tests
pub(crate) fn format_of(name: &str) -> Option<Format> {
    match classify(OsStr::new(name)) {
        NameKind::Spool(format, _) => Some(format),
        _ => None,
    }
}

fn format_of_bytes(name: &[u8]) -> Option<Format> {
    let ends_with =
        |suffix: &[u8]| name.len() > suffix.len() && name[name.len() - suffix.len()..].eq_ignore_ascii_case(suffix);
    if ends_with(b".ndjson") {
        Some(Format::Ndjson)
    } else if ends_with(b".json") {
        Some(Format::Json)
    } else {
        None
    }
}

/// `text` with every character that could forge or garble a line of output escaped the way
/// Rust's `escape_debug` writes it: control characters (`\n`, `\r`, `\t`, `\u{1b}`), the
/// Unicode line and paragraph separators and the bidirectional-text controls, which can make
/// a name display as another. Everything else, including quotes and backslashes, is kept, so
/// ordinary names print unchanged.
pub fn escape_text(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if needs_escape(c) {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{2028}' | '\u{2029}' | '\u{061c}' | '\u{200e}' | '\u{200f}')
        || ('\u{202a}'..='\u{202e}').contains(&c)
        || ('\u{2066}'..='\u{2069}').contains(&c)
}

/// A file name as one safe line of text: [`escape_text`], with each byte that is not UTF-8
/// shown as `\xNN`.
pub(crate) fn display_name(name: &OsStr) -> String {
    let mut out = String::new();
    for chunk in name.as_bytes().utf8_chunks() {
        out.push_str(&escape_text(chunk.valid()));
        for byte in chunk.invalid() {
            out.push_str(&format!("\\x{byte:02x}"));
        }
    }
    out
}

/// The identity of one version of a spool file: inode, size, modification time, a hash of the
/// content, and name.
///
/// It is recorded with the file's jobs in the commit, so a file found again after a crash
/// between the commit and the unlink is recognised and only removed. The device number is
/// left out on purpose: every file of one `incoming/` shares it, and it can change across a
/// reboot (device-mapper, NFS, btrfs), which would turn a re-read into new jobs. The content
/// hash guards against a new file that reuses a freed inode within one mtime tick.
pub(crate) fn file_key(name: &str, ino: u64, size: u64, mtime_ns: i128, content_hash: &str) -> String {
    // `/` cannot occur in a file name, so the fields can never run into each other.
    format!("{ino}/{size}/{mtime_ns}/{content_hash}/{name}")
}

/// A digest of a file's content, for its key and to tell whether a file that was touched
/// after it was read still holds what was read.
pub(crate) fn content_hash(content: &[u8]) -> String {
    Uuid::new_v5(&DERIVED_ID_NAMESPACE, content).simple().to_string()
}

/// The id of the `index`th job (0-based) of the file with `file_key`, for jobs without an id:
/// a UUID v5, so reading the same file again yields the same ids.
pub(crate) fn derived_id(file_key: &str, index: usize) -> String {
    Uuid::new_v5(&DERIVED_ID_NAMESPACE, format!("{file_key}#{index}").as_bytes()).to_string()
}

/// True when `text` is complete JSON in `format` (it may still be an invalid job). A file
/// that fails to parse but is complete is refused at once; an incomplete one may still be
/// being written.
pub(crate) fn is_complete(text: &str, format: Format) -> bool {
    use serde::de::IgnoredAny;
    let lines_parse = || {
        let mut any = false;
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            if serde_json::from_str::<IgnoredAny>(line).is_err() {
                return false;
            }
            any = true;
        }
        any
    };
    match format {
        Format::Json => serde_json::from_str::<IgnoredAny>(text).is_ok() || lines_parse(),
        Format::Ndjson => lines_parse(),
    }
}

/// A free name in `dir` for `name`: `name` itself when neither it nor its `.error.txt` exists,
/// else `stem-2.json`, `stem-3.json`, ... keeping the extension so the file can be retried.
pub(crate) fn free_name(dir: &std::path::Path, name: &str) -> String {
    let taken = |candidate: &str| {
        dir.join(candidate).symlink_metadata().is_ok()
            || dir
                .join(format!("{candidate}{}", super::ERROR_SUFFIX))
                .symlink_metadata()
                .is_ok()
    };
    if !taken(name) {
        return name.to_string();
    }
    let (stem, extension) = split_extension(name);
    (2u64..)
        .map(|n| format!("{stem}-{n}{extension}"))
        .find(|candidate| !taken(candidate))
        .unwrap_or_else(|| name.to_string())
}

/// Splits off a spool extension in whatever case it is written.
fn split_extension(name: &str) -> (&str, &str) {
    for extension in [".ndjson", ".json"] {
        let at = name.len().wrapping_sub(extension.len());
        if name.len() > extension.len() && name.is_char_boundary(at) && name[at..].eq_ignore_ascii_case(extension) {
            return name.split_at(at);
        }
    }
    (name, "")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_ingester_takes() {
        assert_eq!(format_of("job.json"), Some(Format::Json));
        assert_eq!(format_of("batch.ndjson"), Some(Format::Ndjson));
        assert_eq!(format_of("a.b.json"), Some(Format::Json));
        assert_eq!(format_of("JOB.JSON"), Some(Format::Json));
        assert_eq!(format_of("Batch.NdJson"), Some(Format::Ndjson));
        for ignored in [
            ".job.json",
            ".json",
            "job.json.tmp",
            "job.txt",
            "job",
            "job.jsonl",
            "",
            "x.jsön",
        ] {
            assert_eq!(format_of(ignored), None, "{ignored}");
        }
        use std::os::unix::ffi::OsStrExt;
        let latin1 = OsStr::from_bytes(b"caf\xe9.JSON");
        assert_eq!(classify(latin1), NameKind::NotUtf8(Format::Json));
        assert_eq!(classify(OsStr::from_bytes(b"caf\xe9.txt")), NameKind::Other);
        assert_eq!(classify(OsStr::from_bytes(b".caf\xe9.json")), NameKind::Dotfile);
        assert_eq!(display_name(latin1), "caf\\xe9.JSON");
    }

    #[test]
    fn escaping_keeps_every_name_on_one_line() {
        assert_eq!(escape_text("plain name-1.json"), "plain name-1.json");
        assert!(matches!(escape_text("plain.json"), Cow::Borrowed(_)));
        assert_eq!(
            escape_text("a\nspool: ingested 9 jobs from b.json"),
            "a\\nspool: ingested 9 jobs from b.json"
        );
        assert_eq!(escape_text("tab\there\r"), "tab\\there\\r");
        assert_eq!(escape_text("\u{1b}[31mred"), "\\u{1b}[31mred");
        assert_eq!(escape_text("evil\u{202e}nosj.exe"), "evil\\u{202e}nosj.exe");
        assert_eq!(escape_text("line\u{2028}sep"), "line\\u{2028}sep");
        // Quotes, backslashes and non-ASCII text are kept as they are.
        assert_eq!(escape_text(r#"it's "x" \ café.json"#), r#"it's "x" \ café.json"#);
        use std::os::unix::ffi::OsStrExt;
        assert_eq!(display_name(OsStr::from_bytes(b"a\nb\xff.json")), "a\\nb\\xff.json");
    }

    #[test]
    fn keys_and_ids_are_stable_and_distinct() {
        let x = content_hash(b"{\"command\":\"x\"}");
        let y = content_hash(b"{\"command\":\"y\"}");
        assert_ne!(x, y);
        let key = file_key("a.json", 12, 30, 1_700_000_000_123_456_789, &x);
        assert_eq!(key, file_key("a.json", 12, 30, 1_700_000_000_123_456_789, &x));
        assert!(
            key.ends_with("/a.json") && key.starts_with("12/30/1700000000123456789/"),
            "{key}"
        );
        for other in [
            file_key("b.json", 12, 30, 1_700_000_000_123_456_789, &x),
            file_key("a.json", 13, 30, 1_700_000_000_123_456_789, &x),
            file_key("a.json", 12, 31, 1_700_000_000_123_456_789, &x),
            file_key("a.json", 12, 30, 1_700_000_000_123_456_790, &x),
            file_key("a.json", 12, 30, 1_700_000_000_123_456_789, &y),
        ] {
            assert_ne!(key, other);
        }
        let id = derived_id(&key, 0);
        assert_eq!(id, derived_id(&key, 0));
        assert_ne!(id, derived_id(&key, 1));
        let parsed = Uuid::parse_str(&id).unwrap();
        assert_eq!(parsed.get_version_num(), 5);
    }

    #[test]
    fn completeness() {
        assert!(is_complete("{\"command\":\"x\"}", Format::Json));
        assert!(is_complete("{\"colour\":1}", Format::Json)); // complete, if invalid
        assert!(is_complete("[{\"command\":\"x\"}]", Format::Json));
        assert!(is_complete("{\"a\":1}\n{\"b\":2}\n", Format::Json));
        assert!(!is_complete("{\"command\":\"x", Format::Json));
        assert!(!is_complete("", Format::Json));
        assert!(!is_complete("  \n", Format::Ndjson));
        assert!(is_complete("{\"a\":1}\n\n{\"b\":2}", Format::Ndjson));
        assert!(!is_complete("{\"a\":1}\n{\"b\":", Format::Ndjson));
    }

    #[test]
    fn free_names_keep_the_extension() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(free_name(dir.path(), "x.json"), "x.json");
        std::fs::write(dir.path().join("x.json"), "").unwrap();
        assert_eq!(free_name(dir.path(), "x.json"), "x-2.json");
        std::fs::write(dir.path().join("x-2.json.error.txt"), "").unwrap();
        assert_eq!(free_name(dir.path(), "x.json"), "x-3.json");
        std::fs::write(dir.path().join("y.ndjson"), "").unwrap();
        assert_eq!(free_name(dir.path(), "y.ndjson"), "y-2.ndjson");
        std::fs::write(dir.path().join("Z.JSON"), "").unwrap();
        assert_eq!(free_name(dir.path(), "Z.JSON"), "Z-2.JSON");
    }
}
