//! `queuectl list` for people and scripts: order, limits, search, `--format`, local and UTC
//! times, the ATTEMPTS and NEXT columns, and `enqueue --json` printing whole jobs.

mod common;

use chrono::{DateTime, FixedOffset};
use common::{run_command, Run, TestHome};

/// A fixed zone with a half-hour offset and no daylight saving, as a POSIX TZ string (so no
/// tz database is needed): local times are then checkable exactly.
const TZ: &str = "IST-5:30";

fn enqueue(home: &TestHome, id: &str, command: &str) {
    home.run(&["enqueue", "--id", id, "--command", command]).ok();
}

/// Runs `queuectl ARGS` with `TZ` set (a read-only command: it cannot hang on a worker).
fn run_in_tz(home: &TestHome, args: &[&str]) -> Run {
    let mut command = home.command(args);
    command.env("TZ", TZ);
    run_command(command)
}

/// The `--format id` lines of `list ARGS`.
fn ids(home: &TestHome, args: &[&str]) -> Vec<String> {
    let mut full = vec!["list", "--format", "id"];
    full.extend_from_slice(args);
    home.run(&full).ok().stdout.lines().map(str::to_string).collect()
}

/// `rfc3339` (as `--json` prints it, UTC) in the test zone, as `--format` prints it.
fn in_test_zone(rfc3339: &str) -> DateTime<FixedOffset> {
    let offset = FixedOffset::east_opt(5 * 3600 + 30 * 60).expect("offset");
    DateTime::parse_from_rfc3339(rfc3339)
        .expect("an RFC 3339 time")
        .with_timezone(&offset)
}

#[test]
fn list_is_newest_first_unless_asked_for_oldest_first() {
    let home = TestHome::new();
    for id in ["first", "second", "third"] {
        enqueue(&home, id, "true");
    }
    assert_eq!(ids(&home, &[]), ["third", "second", "first"]);
    assert_eq!(ids(&home, &["--oldest-first"]), ["first", "second", "third"]);
    // --json follows the same order.
    let json = home.run(&["list", "--json"]).ok().json();
    let listed: Vec<&str> = json
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, ["third", "second", "first"]);
    let table = home.run(&["list"]).ok();
    let rows: Vec<&str> = table.stdout.lines().skip(1).collect();
    assert!(
        rows[0].starts_with("third") && rows[2].starts_with("first"),
        "{table:#?}"
    );
}

#[test]
fn limit_takes_the_newest_or_with_oldest_first_the_oldest() {
    let home = TestHome::new();
    for id in ["j1", "j2", "j3", "j4"] {
        enqueue(&home, id, "true");
    }
    assert_eq!(ids(&home, &["--limit", "2"]), ["j4", "j3"]);
    assert_eq!(ids(&home, &["-n", "2", "--oldest-first"]), ["j1", "j2"]);
    assert_eq!(ids(&home, &["--state", "pending", "--limit", "1"]), ["j4"]);
    assert_eq!(ids(&home, &["--limit", "0"]), Vec::<String>::new());
}

#[test]
fn search_matches_a_literal_case_sensitive_substring_of_the_command() {
    let home = TestHome::new();
    enqueue(&home, "percent", "echo 50% done");
    enqueue(&home, "five-oh", "echo 500 done");
    enqueue(&home, "under", "echo a_b");
    enqueue(&home, "axb", "echo axb");
    enqueue(&home, "upper", "make Backup");
    enqueue(&home, "lower", "make backup");
    assert_eq!(ids(&home, &["--search", "50%"]), ["percent"]);
    assert_eq!(ids(&home, &["--search", "a_b"]), ["under"]);
    assert_eq!(ids(&home, &["--search", "backup"]), ["lower"]);
    assert_eq!(ids(&home, &["--search", "Backup"]), ["upper"]);
    assert_eq!(ids(&home, &["--search", "make", "--oldest-first"]), ["upper", "lower"]);
    assert_eq!(ids(&home, &["--search", "nothing like this"]), Vec::<String>::new());
}

#[test]
fn format_prints_tab_separated_fields_without_a_header() {
    let home = TestHome::new();
    home.run(&[
        "enqueue",
        "--id",
        "tabby",
        "--command",
        "printf 'a\\tb'\necho two",
        "--priority",
        "7",
    ])
    .ok();
    let run = home
        .run(&["list", "--format", "id,state,attempts,priority,command,kind,source"])
        .ok();
    assert_eq!(
        run.stdout, "tabby\tpending\t0/4\t7\tprintf 'a\\\\tb'\\necho two\tshell\tcli\n",
        "one line a job, tabs and newlines escaped: {run:#?}"
    );
}

#[test]
fn format_refuses_unknown_or_empty_fields_and_json_together() {
    let home = TestHome::new();
    enqueue(&home, "a", "true");
    for (args, needle) in [
        (&["list", "--format", "id,colour"][..], "unknown field `colour`"),
        (&["list", "--format", "id,,state"], "empty field"),
        (&["list", "--search", ""], "--search needs some text"),
    ] {
        let before = home.db_snapshot();
        let run = home.run(args).code(2);
        assert_eq!(run.stdout, "", "{run:#?}");
        assert_eq!(run.stderr.trim_end().lines().count(), 1, "{run:#?}");
        assert!(
            run.stderr.starts_with("queuectl: error: ") && run.stderr.contains(needle),
            "{run:#?}"
        );
        assert_eq!(home.db_snapshot(), before);
    }
    let run = home.run(&["list", "--format", "id", "--json"]).code(2);
    assert!(
        run.stderr.starts_with("queuectl: error: ") && run.stderr.contains("--json"),
        "{run:#?}"
    );
}

#[test]
fn times_are_local_with_tz_and_utc_with_the_flag() {
    let home = TestHome::new();
    home.run(&[
        "enqueue",
        "--id",
        "later",
        "--command",
        "true",
        "--run-at",
        "2031-01-02T03:04:05Z",
    ])
    .ok();
    let created = home.job("later")["created_at"].as_str().unwrap().to_string();
    let local = run_in_tz(&home, &["list", "--format", "run_at,created"]).ok();
    assert_eq!(
        local.stdout,
        format!(
            "2031-01-02T08:34:05.000+05:30\t{}\n",
            in_test_zone(&created).to_rfc3339_opts(chrono::SecondsFormat::Millis, false)
        )
    );
    let utc = run_in_tz(&home, &["list", "--format", "run_at,created", "--utc"]).ok();
    assert_eq!(utc.stdout, format!("2031-01-02T03:04:05.000Z\t{created}\n"));
    // The table: local time to the second; with --utc the same instant marked `Z`.
    let table = run_in_tz(&home, &["list"]).ok();
    let local_created = in_test_zone(&created).format("%Y-%m-%d %H:%M:%S").to_string();
    assert!(table.stdout.contains(&local_created), "{local_created}: {table:#?}");
    let table = run_in_tz(&home, &["list", "--utc"]).ok();
    let utc_created = format!("{}Z", created[..19].replace('T', " "));
    assert!(table.stdout.contains(&utc_created), "{utc_created}: {table:#?}");
    // --json stays RFC 3339 UTC whatever the zone.
    let json = run_in_tz(&home, &["list", "--json"]).ok().json();
    assert_eq!(json[0]["run_at"], "2031-01-02T03:04:05.000Z");
}

#[test]
fn next_says_when_a_waiting_job_runs_and_when_a_finished_one_ended() {
    let home = TestHome::new();
    enqueue(&home, "done", "true");
    home.run(&["worker", "start", "--until-empty", "--quiet"]).ok();
    home.run(&["enqueue", "--id", "soon", "--command", "true", "--delay", "2h"])
        .ok();
    enqueue(&home, "due", "true");
    let table = run_in_tz(&home, &["list", "--oldest-first"]).ok();
    let lines: Vec<&str> = table.stdout.lines().collect();
    let header = lines[0];
    let next_at = header.find("NEXT").expect("a NEXT column");
    let next = |row: &str| row[next_at..].split("  ").next().unwrap_or("").to_string();
    let finished = home.job("done")["finished_at"].as_str().unwrap().to_string();
    assert_eq!(
        next(lines[1]),
        in_test_zone(&finished).format("%Y-%m-%d %H:%M:%S").to_string(),
        "{table:#?}"
    );
    // Rounded down, so a 2h delay shows as 1h 59m once a moment has passed (or 2h).
    let soon = next(lines[2]);
    assert!(soon == "in 2h" || soon == "in 1h 59m", "{soon:?}: {table:#?}");
    assert_eq!(next(lines[3]), "now", "{table:#?}");
    let fields = home
        .run(&["list", "--format", "id,next", "--oldest-first", "--utc"])
        .ok();
    let soon_run_at = home.job("soon")["run_at"].as_str().unwrap().to_string();
    assert!(fields.stdout.contains(&format!("done\t{finished}\n")), "{fields:#?}");
    assert!(fields.stdout.contains(&format!("soon\t{soon_run_at}\n")), "{fields:#?}");
}

#[test]
fn attempts_show_runs_over_most_runs_allowed() {
    let home = TestHome::new();
    // One-second backoffs keep the three retries quick.
    home.run(&["config", "set", "backoff_base", "1"]).ok();
    home.run(&["enqueue", "--id", "doomed", "--command", "false", "--max-retries", "3"])
        .ok();
    enqueue(&home, "fine", "true");
    home.run(&["worker", "start", "--until-empty", "--quiet"]).code(3);
    let run = home.run(&["list", "--format", "id,state,attempts,runs,max_runs"]).ok();
    assert_eq!(
        run.stdout, "fine\tcompleted\t1/4\t1\t4\ndoomed\tdead\t4/4\t4\t4\n",
        "{run:#?}"
    );
    let table = home.run(&["list"]).ok();
    assert!(
        table
            .stdout
            .lines()
            .any(|l| l.starts_with("doomed") && l.contains(" 4/4 ")),
        "{table:#?}"
    );
    let dlq = home.run(&["dlq", "list"]).ok();
    assert!(
        dlq.stdout
            .lines()
            .any(|l| l.starts_with("doomed") && l.contains(" 4/4 ")),
        "{dlq:#?}"
    );
}

#[test]
fn enqueue_json_prints_the_created_jobs_whole() {
    let home = TestHome::new();
    let run = home
        .run(&["enqueue", "--command", "echo hi", "--priority", "3", "--json"])
        .ok();
    let printed = run.json();
    let printed = printed.as_array().expect("an array");
    assert_eq!(printed.len(), 1, "{run:#?}");
    let id = printed[0]["id"].as_str().expect("an id");
    assert_eq!(
        printed[0],
        home.job(id)
            .as_object()
            .map(|o| {
                let mut o = o.clone();
                o.remove("history");
                serde_json::Value::Object(o)
            })
            .unwrap()
    );
    assert_eq!(printed[0]["priority"], 3);
    assert_eq!(printed[0]["state"], "pending");
}
