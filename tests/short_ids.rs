//! Job ids on the command line: unique prefixes stand for whole ids, exact ids win, short
//! forms shown in tables are accepted back.

mod common;

use common::{Run, TestHome};

/// Asserts `args` is refused: exit 2, one `queuectl: error:` line naming each needle, nothing
/// on stdout, the database unchanged.
#[track_caller]
fn assert_refused(home: &TestHome, args: &[&str], needles: &[&str]) -> Run {
    let run = common::refused_unchanged(home, &args.join(" "), needles, || home.run(args));
    assert!(run.stderr.starts_with("queuectl: error: "), "{run:#?}");
    run
}

fn enqueue(home: &TestHome, id: &str, command: &str) {
    home.run(&["enqueue", "--id", id, "--command", command]).ok();
}

#[test]
fn a_unique_prefix_stands_for_the_whole_id_in_show_logs_and_wait() {
    let home = TestHome::new();
    let id = home
        .run(&["enqueue", "--command", "echo from-prefix"])
        .ok()
        .stdout
        .trim()
        .to_string();
    enqueue(&home, "other-job", "true");
    let prefix = &id[..6];
    let shown = home.run(&["show", prefix, "--json"]).ok().json();
    assert_eq!(shown["id"], id.as_str());
    home.run(&["worker", "start", "--until-empty", "--quiet"]).ok();
    let logs = home.run(&["logs", prefix]).ok();
    assert_eq!(logs.stdout, "from-prefix\n", "{logs:#?}");
    let waited = home.run(&["wait", prefix, "--timeout", "60s"]).ok();
    assert_eq!(
        waited.stdout,
        format!("{id} completed\n"),
        "wait reports the whole id: {waited:#?}"
    );
}

#[test]
fn dlq_retry_takes_prefixes_and_reports_whole_ids() {
    let home = TestHome::new();
    home.run(&[
        "enqueue",
        "--id",
        "nightly-backup",
        "--command",
        "false",
        "--max-retries",
        "0",
    ])
    .ok();
    home.run(&["worker", "start", "--until-empty", "--quiet"]).code(3);
    let run = home.run(&["dlq", "retry", "nigh"]).ok();
    assert_eq!(
        run.stdout, "nightly-backup: moved from the DLQ back to pending\n",
        "{run:#?}"
    );
    assert_eq!(home.job("nightly-backup")["state"], "pending");
}

#[test]
fn an_ambiguous_prefix_is_refused_listing_the_matches() {
    let home = TestHome::new();
    for id in ["ab12-first", "ab12-second", "ab12-third", "zz99"] {
        enqueue(&home, id, "true");
    }
    let run = assert_refused(
        &home,
        &["show", "ab12"],
        &["id prefix `ab12` matches 3 jobs: ab12-first, ab12-second, ab12-third"],
    );
    assert!(!run.stderr.contains("zz99"), "{run:#?}");
    for args in [&["logs", "ab12"][..], &["wait", "ab12"], &["dlq", "retry", "ab12-"]] {
        assert_refused(&home, args, &["matches 3 jobs"]);
    }
}

#[test]
fn an_ambiguous_prefix_lists_at_most_ten_matches() {
    let home = TestHome::new();
    for i in 0..12 {
        enqueue(&home, &format!("many-{i:02}"), "true");
    }
    let run = assert_refused(
        &home,
        &["show", "many"],
        &["matches more than 10 jobs", "many-00", "many-09", "…"],
    );
    assert!(!run.stderr.contains("many-10"), "{run:#?}");
}

#[test]
fn a_prefix_shorter_than_four_characters_is_refused_saying_the_minimum() {
    let home = TestHome::new();
    enqueue(&home, "abcdef", "true");
    assert_refused(&home, &["show", "abc"], &["`abc`", "at least 4 characters"]);
    assert_refused(&home, &["dlq", "retry", "ab"], &["at least 4 characters"]);
    // Four characters are enough.
    assert_eq!(home.run(&["show", "abcd", "--json"]).ok().json()["id"], "abcdef");
}

#[test]
fn an_exact_id_wins_over_longer_ids_it_is_a_prefix_of() {
    let home = TestHome::new();
    enqueue(&home, "job", "echo short");
    enqueue(&home, "job1", "echo one");
    enqueue(&home, "job12", "echo twelve");
    // `job` is shorter than the minimum prefix but an exact id.
    assert_eq!(
        home.run(&["show", "job", "--json"]).ok().json()["command"],
        "echo short"
    );
    assert_eq!(home.run(&["show", "job1", "--json"]).ok().json()["command"], "echo one");
    assert_refused(&home, &["show", "job1x"], &["no job with id `job1x`"]);
}

#[test]
fn an_unknown_prefix_is_not_found() {
    let home = TestHome::new();
    enqueue(&home, "present", "true");
    assert_refused(&home, &["show", "absent"], &["no job with id `absent`"]);
    // `%` and `_` are plain characters in ids, not wildcards.
    assert_refused(&home, &["show", "pre%"], &["no job with id `pre%`"]);
    assert_refused(&home, &["show", "pres_nt"], &["no job with id `pres_nt`"]);
}

#[test]
fn short_forms_in_tables_are_accepted_back_even_when_eight_characters_clash() {
    let home = TestHome::new();
    // Ids that look generated and share their first 8 characters (and 9, 10).
    let clashing = [
        "12345678-aaaa-4aaa-8aaa-aaaaaaaaaaaa",
        "12345678-abbb-4bbb-8bbb-bbbbbbbbbbbb",
    ];
    for id in clashing {
        enqueue(&home, id, &format!("echo {id}"));
    }
    let lone = home
        .run(&["enqueue", "--command", "echo lone"])
        .ok()
        .stdout
        .trim()
        .to_string();
    let shown = home.run(&["list", "--format", "id,short_id"]).ok();
    let mut pairs = 0;
    for line in shown.stdout.lines() {
        let (id, short) = line.split_once('\t').expect("two fields");
        let expected_len = if id == lone { 8 } else { 11 };
        assert_eq!(short.len(), expected_len, "{line}");
        assert!(id.starts_with(short), "{line}");
        assert_eq!(home.run(&["show", short, "--json"]).ok().json()["id"], id, "{short}");
        pairs += 1;
    }
    assert_eq!(pairs, 3, "{shown:#?}");
    // The table shows the same short forms.
    let table = home.run(&["list"]).ok();
    for prefix in ["12345678-aa ", "12345678-ab ", &format!("{} ", &lone[..8])] {
        assert!(
            table.stdout.lines().any(|l| l.starts_with(prefix)),
            "{prefix:?}: {table:#?}"
        );
    }
}

#[test]
fn user_given_ids_are_shown_whole() {
    let home = TestHome::new();
    enqueue(&home, "a-rather-long-user-given-job-id", "true");
    let table = home.run(&["list"]).ok();
    assert!(table.stdout.contains("a-rather-long-user-given-job-id"), "{table:#?}");
}
