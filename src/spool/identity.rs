//! Which names are spool files, and a file's identity: the key recorded when its jobs are
//! committed and the ids derived for jobs that name none.

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

/// The format of a file in `incoming/`, or `None` for names the ingester ignores: dotfiles
/// (editors' and writers' scratch files) and anything not ending in `.json` or `.ndjson`.
pub(crate) fn format_of(name: &str) -> Option<Format> {
    if name.starts_with('.') || name.contains('/') {
        return None;
    }
    if name.ends_with(".ndjson") {
        Some(Format::Ndjson)
    } else if name.ends_with(".json") {
        Some(Format::Json)
    } else {
        None
    }
}

/// The identity of one version of a spool file: inode, size, modification time, a hash of the
/// content, and name.
///
/// It is recorded with the file's jobs in the commit, so a file found again after a crash
/// between the commit and the unlink is recognised and only removed. The device number is
/// left out on purpose: every file of one `incoming/` shares it, and it can change across a
/// reboot (device-mapper, NFS, btrfs), which would turn a re-read into new jobs. The content
/// hash guards against a new file that reuses a freed inode within one mtime tick.
pub(crate) fn file_key(name: &str, ino: u64, size: u64, mtime_ns: i128, content: &[u8]) -> String {
    let content_hash = Uuid::new_v5(&DERIVED_ID_NAMESPACE, content).simple();
    // `/` cannot occur in a file name, so the fields can never run into each other.
    format!("{ino}/{size}/{mtime_ns}/{content_hash}/{name}")
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

fn split_extension(name: &str) -> (&str, &str) {
    for extension in [".ndjson", ".json"] {
        if let Some(stem) = name.strip_suffix(extension) {
            return (stem, extension);
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
        for ignored in [
            ".job.json",
            ".json",
            "job.json.tmp",
            "job.JSON",
            "job.txt",
            "job",
            "job.jsonl",
            "",
        ] {
            assert_eq!(format_of(ignored), None, "{ignored}");
        }
    }

    #[test]
    fn keys_and_ids_are_stable_and_distinct() {
        let key = file_key("a.json", 12, 30, 1_700_000_000_123_456_789, b"{\"command\":\"x\"}");
        assert_eq!(
            key,
            file_key("a.json", 12, 30, 1_700_000_000_123_456_789, b"{\"command\":\"x\"}")
        );
        assert!(
            key.ends_with("/a.json") && key.starts_with("12/30/1700000000123456789/"),
            "{key}"
        );
        for other in [
            file_key("b.json", 12, 30, 1_700_000_000_123_456_789, b"{\"command\":\"x\"}"),
            file_key("a.json", 13, 30, 1_700_000_000_123_456_789, b"{\"command\":\"x\"}"),
            file_key("a.json", 12, 31, 1_700_000_000_123_456_789, b"{\"command\":\"x\"}"),
            file_key("a.json", 12, 30, 1_700_000_000_123_456_790, b"{\"command\":\"x\"}"),
            file_key("a.json", 12, 30, 1_700_000_000_123_456_789, b"{\"command\":\"y\"}"),
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
    }
}
