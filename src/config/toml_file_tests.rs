//! Tests of the strict config file reader: keys, hooks, kind tables, types, ranges and the
//! messages that name the line.

use super::*;

fn parse(text: &str) -> std::result::Result<BTreeMap<&'static str, String>, String> {
    parse_config_text(text)
}

#[test]
fn hooks_are_read_as_dotted_keys_or_as_a_table() {
    let dotted = parse("hooks.on_dead = \"echo dead\"\nhooks.timeout_seconds = 5\n").unwrap();
    let table = parse("[hooks]\non_dead = \"echo dead\"\ntimeout_seconds = 5\n").unwrap();
    assert_eq!(dotted, table);
    assert_eq!(table["hooks.on_dead"], "echo dead");
    assert_eq!(table["hooks.timeout_seconds"], "5");
    let inline = parse("hooks = { on-dead = \"echo dead\" }\n").unwrap();
    assert_eq!(inline["hooks.on_dead"], "echo dead");
}

#[test]
fn a_top_level_key_under_a_hooks_header_says_where_it_landed() {
    let e = parse("max_retries = 3\n[hooks]\non_dead = \"x\"\nbackoff_base = 5\n").unwrap_err();
    assert_eq!(
        e,
        "`backoff_base` at line 4 is inside the `[hooks]` table that starts at line 2, so it \
         reads as `hooks.backoff_base`: move it above that line"
    );
    let e = parse("hooks.max_retries = 5\n").unwrap_err();
    assert_eq!(
        e,
        "unknown key `hooks.max_retries` at line 1; did you mean `max_retries`?"
    );
}

#[test]
fn an_unknown_key_suggests_the_nearest_one() {
    let e = parse("backoff_base = 2\n\nmax_retry = 3\n").unwrap_err();
    assert_eq!(e, "unknown key `max_retry` at line 3; did you mean `max_retries`?");
    let e = parse("max_retries = 3\n[hooks]\nmax_retry = 5\n").unwrap_err();
    assert_eq!(
        e,
        "unknown key `hooks.max_retry` at line 3; did you mean `max_retries`? It would have to go above \
         the `[hooks]` table that starts at line 2"
    );
    let e = parse("[hooks]\nondead = \"x\"\n").unwrap_err();
    assert_eq!(e, "unknown key `hooks.ondead` at line 2; did you mean `hooks.on_dead`?");
    let e = parse("colour = 1\n").unwrap_err();
    assert!(
        e.starts_with("unknown key `colour` at line 1 (known keys: max_retries,"),
        "{e}"
    );
    let e = parse("[colour]\nred = 1\n").unwrap_err();
    assert!(e.starts_with("unknown key `colour` at line 1 (known keys:"), "{e}");
}

#[test]
fn the_first_problem_in_the_file_is_the_one_named() {
    // Keys are stored sorted; the error must follow the file's order, not the alphabet.
    let e = parse("zzz = 1\naaa = 2\n").unwrap_err();
    assert!(e.starts_with("unknown key `zzz` at line 1"), "{e}");
}

#[test]
fn a_key_set_twice_is_refused_naming_both_lines() {
    let e = parse("max_retries = 3\nmax-retries = 4\n").unwrap_err();
    assert_eq!(
        e,
        "line 2: `max-retries` sets `max_retries` again (first set at line 1)"
    );
    let e = parse("max_retries = 3\nmax_retries = 4\n").unwrap_err();
    assert_eq!(
        e,
        "line 2, column 1: duplicate key `max_retries`: first set at line 1; each key may be set once"
    );
    let e = parse("# x\nmax_retries = 3\n\n  max_retries=4\n").unwrap_err();
    assert!(e.contains("first set at line 2;"), "{e}");
    let e = parse("hooks.on_dead = \"a\"\n[hooks]\non_dead = \"b\"\n").unwrap_err();
    assert!(
        e.starts_with("line 2, column 2: duplicate key `hooks`: first set at line 1"),
        "{e}"
    );
}

#[test]
fn every_wrong_type_names_key_line_and_expected_type() {
    let cases = [
        (
            "[hooks]\non_dead = 5\n",
            "line 2: `hooks.on_dead` must be a string (a shell command), found an integer (5)",
        ),
        (
            "spool_dir = 5\n",
            "line 1: `spool_dir` must be a non-empty string, found an integer (5)",
        ),
        (
            "max_retries = \"lots\"\n",
            "line 1: `max_retries` must be an integer from 0 to 1000, found a string (\"lots\")",
        ),
        (
            "\nmax_retries = 2.5\n",
            "line 2: `max_retries` must be an integer from 0 to 1000, found a float (2.5)",
        ),
        (
            "backoff_base = \"2\"\n",
            "line 1: `backoff_base` must be a number from 1 to 1000, found a string (\"2\")",
        ),
        (
            "spool_keep_ingested = \"yes\"\n",
            "line 1: `spool_keep_ingested` must be true or false, found a string (\"yes\")",
        ),
        (
            "spool_keep_ingested = 1\n",
            "line 1: `spool_keep_ingested` must be true or false, found an integer (1)",
        ),
        (
            "spool_allowed_uids = 1000\n",
            "line 1: `spool_allowed_uids` must be an array of uids (integers from 0 to 4294967295), \
             found an integer (1000)",
        ),
        (
            "spool_allowed_uids = [1000, \"bob\"]\n",
            "line 1: `spool_allowed_uids` must be an array of uids (integers from 0 to 4294967295), \
             found an array holding a string (\"bob\")",
        ),
        (
            "job_timeout_seconds = \"none\"\n",
            "line 1: `job_timeout_seconds` must be an integer from 1 to 2592000 (leave the key out for \
             none), found a string (\"none\")",
        ),
        (
            "worker_count = 1979-05-27\n",
            "line 1: `worker_count` must be an integer from 1 to 256, found a datetime (1979-05-27)",
        ),
        (
            "[spool_dir]\nx = 1\n",
            "line 1: `spool_dir` must be a non-empty string, found a table",
        ),
        (
            "hooks = 5\n",
            "line 1: `hooks` must be a table of hook commands (`hooks.on_dead = \"...\"`), found an \
             integer (5)",
        ),
        (
            "[hooks.on_dead]\ncommand = \"x\"\n",
            "line 1: `hooks.on_dead` must be a string (a shell command), found a table",
        ),
    ];
    for (text, expected) in cases {
        assert_eq!(parse(text).unwrap_err(), expected, "for {text:?}");
    }
}

#[test]
fn values_out_of_range_or_empty_name_the_line() {
    let e = parse("\n\nmax_retries = 1001\n").unwrap_err();
    assert_eq!(
        e,
        "line 3: invalid value `1001` for `max_retries`: must be an integer from 0 to 1000"
    );
    let e = parse("max_retries = 99999999999999999999999\n").unwrap_err();
    assert!(
        e.contains("invalid value `99999999999999999999999` for `max_retries`"),
        "{e}"
    );
    let e = parse("spool_dir = \"  \"\n").unwrap_err();
    assert_eq!(e, "line 1: invalid value for `spool_dir`: must not be empty");
    let e = parse("spool_allowed_uids = [1000, -1]\n").unwrap_err();
    assert!(
        e.starts_with("line 1: invalid value `1000,-1` for `spool_allowed_uids`"),
        "{e}"
    );
    let e = parse("backoff_base = inf\n").unwrap_err();
    assert!(e.contains("`backoff_base`"), "{e}");
    let e = parse("backoff_base = nan\n").unwrap_err();
    assert!(e.contains("`backoff_base`"), "{e}");
}

#[test]
fn toml_number_forms_are_read_by_value() {
    let values = parse("max_retries = 1_0\nworker_count = 0x10\nbackoff_base = 1_5e-1\nbackoff_max_seconds = +60\n");
    let values = values.unwrap();
    assert_eq!(values["max_retries"], "10");
    assert_eq!(values["worker_count"], "16");
    assert_eq!(values["backoff_base"], "1.5");
    assert_eq!(values["backoff_max_seconds"], "60");
    let values = parse("backoff_base = 3\nspool_keep_ingested = true\nhooks.on_dead = \"\"\n").unwrap();
    assert_eq!(values["backoff_base"], "3");
    assert_eq!(values["spool_keep_ingested"], "true");
    assert_eq!(values["hooks.on_dead"], "", "an empty hook is none");
}

#[test]
fn malformed_toml_names_line_and_column() {
    let e = parse("max_retries = 3\nbackoff_base = = 2\n").unwrap_err();
    assert!(e.starts_with("line 2, column"), "{e}");
    assert!(!e.contains('\n'), "one line: {e:?}");
}

#[test]
fn bytes_that_are_not_utf8_are_refused_naming_the_offset() {
    let e = parse_config_bytes(b"max_retries = 3\n# caf\xe9\n").unwrap_err();
    assert_eq!(e, "not valid UTF-8 at byte 21 (line 2)");
    let e = parse_config_bytes(b"\xff").unwrap_err();
    assert_eq!(e, "not valid UTF-8 at byte 0 (line 1)");
    assert_eq!(parse_config_bytes(b"max_retries = 4\n").unwrap()["max_retries"], "4");
}

#[test]
fn line_column_never_splits_a_character() {
    assert_eq!(line_column("é", 1), (1, 1));
    assert_eq!(line_column("a\nbé", 5), (2, 3));
    assert_eq!(line_column("a", 99), (1, 2));
}

fn kinds(text: &str) -> std::result::Result<BTreeMap<String, KindPolicy>, String> {
    parse_config(text).map(|file| file.kinds)
}

#[test]
fn kind_tables_are_read_in_every_toml_form() {
    let header = kinds("max_retries = 3\n[kinds.resize]\nmax_retries = 5\ntimeout-seconds = 60\n").unwrap();
    let dotted = kinds("kinds.resize.max_retries = 5\nkinds.resize.timeout_seconds = 60\n").unwrap();
    let inline = kinds("[kinds]\nresize = { max_retries = 5, timeout_seconds = 60 }\n").unwrap();
    assert_eq!(header, dotted);
    assert_eq!(header, inline);
    assert_eq!(header["resize"], KindPolicy::new().max_retries(5).timeout_seconds(60));
    let file =
        parse_config("max_retries = 3\n[kinds.\"img.crop\"]\nbackoff_base = 1.5\nbackoff_max_seconds = 90\n").unwrap();
    assert_eq!(
        file.values["max_retries"], "3",
        "a top-level key above the tables stays top-level"
    );
    assert_eq!(
        file.kinds["img.crop"],
        KindPolicy::new().backoff_base(1.5).backoff_max_seconds(90)
    );
}

#[test]
fn kind_table_mistakes_name_the_line_and_the_kind_key() {
    let cases = [
        (
            "[kinds.resize]\nmax_retries = 1001\n",
            "line 2: invalid value `1001` for `kinds.resize.max_retries`: must be an integer from 0 to 1000",
        ),
        (
            "[kinds.resize]\nmax_retries = \"5\"\n",
            "line 2: `kinds.resize.max_retries` must be an integer from 0 to 1000, found a string (\"5\")",
        ),
        (
            "[kinds.resize]\ntimeout_seconds = \"none\"\n",
            "line 2: `kinds.resize.timeout_seconds` must be an integer from 1 to 2592000 (leave the key out for \
             none), found a string (\"none\")",
        ),
        (
            "[kinds.resize]\nmax_retry = 5\n",
            "unknown key `kinds.resize.max_retry` (a kind table takes max_retries, backoff_base, \
             backoff_max_seconds, timeout_seconds) at line 2",
        ),
        (
            "[kinds.resize]\nmax_retries = 5\nworker_count = 4\n",
            "`worker_count` at line 3 is inside the `[kinds.resize]` table that starts at line 1, so it reads \
             as `kinds.resize.worker_count`: move it above that line",
        ),
        (
            "[kinds]\nworker_count = 4\n",
            "`worker_count` at line 2 is inside the `[kinds]` table that starts at line 1, so it reads as \
             `kinds.worker_count`: move it above that line",
        ),
        (
            "kinds = 5\n",
            "line 1: `kinds` must be a table of job kinds (`[kinds.resize]` with `max_retries = 5` below it), \
             found an integer (5)",
        ),
        (
            "kinds.resize = 5\n",
            "line 1: `kinds.resize` must be a table of that kind's policy (`[kinds.resize]` with \
             `max_retries = 5` below it), found an integer (5)",
        ),
        (
            "[kinds.\"bad kind\"]\nmax_retries = 1\n",
            "line 1: `kinds.\"bad kind\"`: the kind must be 1 to 64 characters of letters, digits, `_`, `-`, \
             `.` or `:`",
        ),
        (
            "max_retries = 3\n[kinds.resize]\nmax_retries = 1\nmax_retries = 2\n",
            "line 4, column 1: duplicate key `max_retries`: first set at line 3; each key may be set once",
        ),
        (
            "[kinds.resize]\nmax_retries = 1\nmax-retries = 2\n",
            "line 3: `kinds.resize.max-retries` sets `kinds.resize.max_retries` again (first set at line 2)",
        ),
    ];
    for (text, expected) in cases {
        assert_eq!(kinds(text).unwrap_err(), expected, "for {text:?}");
    }
}

#[test]
fn db_url_must_be_a_string() {
    let e = parse("db_url = 5\n").unwrap_err();
    assert_eq!(
        e,
        "line 1: `db_url` must be a string (a file path or postgres://...), found an integer (5)"
    );
    assert!(parse("db_url = \"jobs.db\"\n").is_ok());
}

#[test]
fn a_long_wrong_value_is_cut_at_40_characters_and_says_so() {
    let long = format!("\"{}\"", "a".repeat(50));
    let e = parse(&format!("max_retries = {long}\n")).unwrap_err();
    assert_eq!(
        e,
        format!(
            "line 1: `max_retries` must be an integer from 0 to 1000, found a string ({}…)",
            &long[..40]
        )
    );
    let e = parse("max_retries = \"abc\"\n").unwrap_err();
    assert_eq!(
        e,
        "line 1: `max_retries` must be an integer from 0 to 1000, found a string (\"abc\")"
    );
}

#[test]
fn an_unknown_name_under_a_kinds_header_is_a_kind_that_is_not_a_table() {
    let e = parse("[kinds]\nfoo = 4\n").unwrap_err();
    assert_eq!(
        e,
        "line 2: `kinds.foo` must be a table of that kind's policy (`[kinds.foo]` with `max_retries = 5` \
         below it), found an integer (4)"
    );
}

#[test]
fn a_duplicate_inside_a_table_named_like_the_key_points_at_its_twin_not_the_header() {
    let e = parse("[hooks]\nhooks = 1\nhooks = 2\n").unwrap_err();
    assert_eq!(
        e,
        "line 3, column 1: duplicate key `hooks`: first set at line 2; each key may be set once"
    );
}
