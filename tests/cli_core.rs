//! Black-box tests of the core CLI: init, enqueue and every refusal, list, show, logs, status,
//! dlq, config, recover, persistence, completions and help. Each test runs the built `queuectl`
//! binary in its own temporary home; a refusal is checked against a logical dump of the whole
//! database (`TestHome::db_snapshot`).

mod common;

use common::{bin, is_postgres, run_command, skipped_under_postgres, Run, TestHome};
use serde_json::Value;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// A `queuectl` command with no home chosen by the environment.
fn bare_command(args: &[&str], cwd: &Path) -> Command {
    let mut command = Command::new(bin());
    command
        .args(args)
        .env_remove("QUEUECTL_HOME")
        .env_remove("QUEUECTL_DB")
        .env("NO_COLOR", "1")
        .current_dir(cwd);
    command
}

/// The names of the entries of a directory (empty if it does not exist).
fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = match std::fs::read_dir(dir) {
        Ok(read) => read
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    };
    names.sort();
    names
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

/// Asserts a refusal: exit code 2, nothing on stdout, exactly one line on stderr containing
/// every needle, and the queue (jobs and config) unchanged.
#[track_caller]
fn assert_refused(home: &TestHome, args: &[&str], stdin: Option<&str>, needles: &[&str]) -> Run {
    common::refused_unchanged(home, &args.join(" "), needles, || match stdin {
        Some(input) => home.run_with_stdin(args, input),
        None => home.run(args),
    })
}

/// Asserts `text` looks like `2025-11-10T10:30:00.123Z` (RFC 3339, UTC, milliseconds).
#[track_caller]
fn assert_timestamp(text: &str) {
    let bytes = text.as_bytes();
    assert_eq!(
        bytes.len(),
        24,
        "not a timestamp like 2025-11-10T10:30:00.123Z: {text:?}"
    );
    for (i, &b) in bytes.iter().enumerate() {
        let ok = match i {
            4 | 7 => b == b'-',
            10 => b == b'T',
            13 | 16 => b == b':',
            19 => b == b'.',
            23 => b == b'Z',
            _ => b.is_ascii_digit(),
        };
        assert!(ok, "not a timestamp like 2025-11-10T10:30:00.123Z (byte {i}): {text:?}");
    }
}

/// Milliseconds since the epoch of an RFC 3339 timestamp.
fn millis(text: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("{text:?}: {e}"))
        .timestamp_millis()
}

fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Asserts `id` is a version-4 UUID in its usual text form.
#[track_caller]
fn assert_uuid_v4(id: &str) {
    let bytes = id.as_bytes();
    assert_eq!(bytes.len(), 36, "not a UUID: {id:?}");
    for (i, &b) in bytes.iter().enumerate() {
        let ok = match i {
            8 | 13 | 18 | 23 => b == b'-',
            14 => b == b'4',
            _ => b.is_ascii_hexdigit() && !b.is_ascii_uppercase(),
        };
        assert!(ok, "not a lowercase v4 UUID (byte {i}): {id:?}");
    }
}

/// The ids of `list --json --oldest-first`, in order.
fn listed_ids(home: &TestHome, args: &[&str]) -> Vec<String> {
    let mut full = vec!["list", "--json", "--oldest-first"];
    full.extend_from_slice(args);
    let run = home.run(&full).ok();
    run.json()
        .as_array()
        .expect("list --json is an array")
        .iter()
        .map(|j| j["id"].as_str().unwrap().to_string())
        .collect()
}

/// One entry of `config list --json`.
fn config_entry(home: &TestHome, key: &str) -> Value {
    let run = home.run(&["config", "list", "--json"]).ok();
    run.json()
        .as_array()
        .expect("config list --json is an array")
        .iter()
        .find(|e| e["key"] == key)
        .unwrap_or_else(|| panic!("config list has no {key}: {run:#?}"))
        .clone()
}

fn write_config(home: &TestHome, text: &str) {
    std::fs::write(home.path().join("config/queuectl.toml"), text).expect("write config");
}

/// Asserts the queue database exists; a SQLite file must be private (mode 0600).
#[track_caller]
fn assert_database_created(home: &TestHome) {
    assert!(home.database_exists(), "no queue database");
    if !is_postgres() {
        assert_eq!(mode(&home.path().join("queue.db")), 0o600, "queue.db must be private");
    }
}

fn read_config(home: &TestHome) -> String {
    std::fs::read_to_string(home.path().join("config/queuectl.toml")).expect("read config")
}

// ---------------------------------------------------------------------------------------------
// init and the queue home
// ---------------------------------------------------------------------------------------------

#[test]
fn init_creates_database_config_and_spool_with_private_modes() {
    let home = TestHome::empty();
    let run = home.run(&["init"]).ok();
    assert!(run.stdout.contains("initialised"), "{run:#?}");
    assert!(!run.stdout.contains("already"), "{run:#?}");
    let root = home.path();
    assert_database_created(&home);
    let config = read_config(&home);
    assert!(
        config.contains("max_retries"),
        "the config file documents the defaults: {config}"
    );
    assert!(
        config.lines().any(|l| l.trim_start().starts_with('#')),
        "the config file is documented: {config}"
    );
    for dir in ["spool", "spool/incoming", "spool/tmp", "spool/failed"] {
        let path = root.join(dir);
        assert!(path.is_dir(), "{dir} is missing");
        assert_eq!(mode(&path), 0o700, "{dir} must be private");
    }
    // The fresh queue is usable at once.
    assert_eq!(home.status()["jobs"]["pending"], 0);
}

#[test]
fn init_again_keeps_jobs_and_config_and_says_already_initialised() {
    let home = TestHome::new();
    home.run(&["enqueue", r#"{"id":"job1","command":"echo hi"}"#]).ok();
    let edited = read_config(&home).replace("max_retries = 3", "max_retries = 7");
    assert_ne!(
        edited,
        read_config(&home),
        "the default config file sets max_retries = 3"
    );
    write_config(&home, &edited);
    let run = home.run(&["init"]).ok();
    assert!(run.stdout.contains("already initialised"), "{run:#?}");
    assert_eq!(listed_ids(&home, &[]), vec!["job1"]);
    assert_eq!(home.job("job1")["command"], "echo hi");
    assert_eq!(
        read_config(&home),
        edited,
        "init must not overwrite an existing config file"
    );
    assert_database_created(&home);
}

#[test]
fn commands_on_an_uninitialised_home_exit_2_say_run_init_and_create_nothing() {
    let home = TestHome::empty();
    let commands: &[&[&str]] = &[
        &["status"],
        &["status", "--json"],
        &["list"],
        &["list", "--json"],
        &["enqueue", r#"{"id":"job1","command":"echo hi"}"#],
        &["enqueue", "--command", "echo hi"],
        &["show", "job1"],
        &["logs", "job1"],
        &["config", "list"],
        &["config", "get", "max_retries"],
        &["config", "set", "max_retries", "5"],
        &["config", "unset", "max_retries"],
        &["dlq", "list"],
        &["dlq", "retry", "job1"],
        &["recover"],
        &["wait", "job1", "--timeout", "1s"],
    ];
    for args in commands {
        let run = home.run(args);
        assert_eq!(
            run.code,
            2,
            "`queuectl {}` on an uninitialised home: {run:#?}",
            args.join(" ")
        );
        assert!(
            run.stderr.contains("queuectl init"),
            "`queuectl {}` should say to run `queuectl init`: {run:#?}",
            args.join(" ")
        );
        assert_eq!(run.stdout, "", "{run:#?}");
        assert_eq!(
            entries(home.path()),
            Vec::<String>::new(),
            "`queuectl {}` created files",
            args.join(" ")
        );
        assert!(
            !home.database_exists(),
            "`queuectl {}` created the database",
            args.join(" ")
        );
    }
    // The command may exit before it reads standard input: a broken pipe is expected here.
    let run = home.run_with_stdin(&["enqueue", "-"], r#"{"command":"echo hi"}"#);
    assert_eq!(run.code, 2, "{run:#?}");
    assert!(run.stderr.contains("queuectl init"), "{run:#?}");
    assert_eq!(entries(home.path()), Vec::<String>::new());
    assert!(!home.database_exists());
}

#[test]
fn a_zero_byte_database_file_is_not_initialised_and_is_left_untouched() {
    if skipped_under_postgres("a zero-byte queue.db file") {
        return;
    }
    // What an interrupted `init` or a stray `touch queue.db` leaves behind.
    let home = TestHome::empty();
    let db = home.path().join("queue.db");
    std::fs::write(&db, b"").unwrap();
    let run = home.run(&["status"]);
    assert_eq!(run.code, 2, "{run:#?}");
    assert!(run.stderr.contains("queuectl init"), "{run:#?}");
    assert_eq!(entries(home.path()), vec!["queue.db"], "status created files");
    assert_eq!(
        std::fs::metadata(&db).unwrap().len(),
        0,
        "status wrote into a queue.db it refused as uninitialised"
    );
}

#[test]
fn home_is_chosen_by_flag_then_environment_then_current_directory() {
    // No database is named here, whatever the tests' backend: each home's jobs are in its own
    // queue.db, which shows which home a command chose.
    let by_cwd = TestHome::empty();
    let by_env = TestHome::empty();
    let by_flag = TestHome::empty();

    // The current directory, when nothing else is given.
    let run = run_command(bare_command(&["init"], by_cwd.path()));
    assert_eq!(run.code, 0, "{run:#?}");
    assert!(by_cwd.path().join("queue.db").is_file());
    assert!(by_cwd.path().join("config/queuectl.toml").is_file());
    assert!(by_cwd.path().join("spool/incoming").is_dir());

    // QUEUECTL_HOME beats the current directory.
    let mut command = bare_command(&["init"], by_cwd.path());
    command.env("QUEUECTL_HOME", by_env.path());
    assert_eq!(run_command(command).code, 0);
    assert!(by_env.path().join("queue.db").is_file());

    // --home beats QUEUECTL_HOME.
    let flag = by_flag.path().to_str().unwrap();
    let mut command = bare_command(&["--home", flag, "init"], by_cwd.path());
    command.env("QUEUECTL_HOME", by_env.path());
    assert_eq!(run_command(command).code, 0);
    assert!(by_flag.path().join("queue.db").is_file());

    // Each home holds its own jobs.
    let mut command = bare_command(
        &["--home", flag, "enqueue", r#"{"id":"in-flag","command":"true"}"#],
        by_cwd.path(),
    );
    command.env("QUEUECTL_HOME", by_env.path());
    assert_eq!(run_command(command).stdout, "in-flag\n");
    let mut command = bare_command(&["enqueue", r#"{"id":"in-env","command":"true"}"#], by_cwd.path());
    command.env("QUEUECTL_HOME", by_env.path());
    assert_eq!(run_command(command).stdout, "in-env\n");
    assert_eq!(
        run_command(bare_command(
            &["enqueue", r#"{"id":"in-cwd","command":"true"}"#],
            by_cwd.path()
        ))
        .stdout,
        "in-cwd\n"
    );

    // Listed the same way, each through --home alone.
    let ids_in = |home: &TestHome| -> Vec<String> {
        let path = home.path().to_str().unwrap();
        let run = run_command(bare_command(&["--home", path, "list", "--json"], by_cwd.path()));
        assert_eq!(run.code, 0, "{run:#?}");
        run.json()
            .as_array()
            .expect("list --json is an array")
            .iter()
            .map(|j| j["id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(ids_in(&by_flag), vec!["in-flag"]);
    assert_eq!(ids_in(&by_env), vec!["in-env"]);
    assert_eq!(ids_in(&by_cwd), vec!["in-cwd"]);

    // `--home` may also come after the subcommand.
    let run = run_command(bare_command(&["list", "--json", "--home", flag], by_cwd.path()));
    assert_eq!(run.code, 0, "{run:#?}");
    assert!(run.stdout.contains("in-flag"), "{run:#?}");
}

/// A PostgreSQL server that cannot be reached is an error naming the queue and the cause
/// (nothing listens on port 1), exit 1, and no stack of empty causes.
#[test]
fn an_unreachable_postgresql_server_is_an_error_naming_the_queue_and_the_cause() {
    let home = TestHome::empty();
    let run = home.run(&["--db", "postgres://postgres@127.0.0.1:1/test?schema=nowhere", "list"]);
    assert_eq!(run.code, 1, "{run:#?}");
    assert_eq!(run.stdout, "");
    assert_eq!(
        run.stderr,
        "queuectl: error: database error: could not connect to postgres://postgres@127.0.0.1:1/test \
         (schema nowhere): error connecting to server: Connection refused (os error 111)\n"
    );
}

#[test]
fn db_flag_and_queuectl_db_override_the_database_file() {
    let home = TestHome::empty();
    let elsewhere = TestHome::empty();
    let db = elsewhere.path().join("sub/other.db");
    let db_arg = db.to_str().unwrap();

    home.run(&["--db", db_arg, "init"]).ok();
    assert!(db.is_file(), "--db should create the database there");
    assert_eq!(mode(&db), 0o600);
    assert!(
        !home.path().join("queue.db").exists(),
        "--db must not create HOME/queue.db"
    );
    assert!(
        home.path().join("config/queuectl.toml").is_file(),
        "the config still lives in the home"
    );
    assert!(
        home.path().join("spool/incoming").is_dir(),
        "the spool still lives in the home"
    );

    assert_eq!(
        home.run(&["--db", db_arg, "enqueue", "--id", "j", "--command", "true"])
            .ok()
            .stdout,
        "j\n"
    );
    let run = home.run(&["--db", db_arg, "list", "--json"]).ok();
    assert_eq!(run.json()[0]["id"], "j");

    // Without --db the home's own (absent) queue.db is used.
    let run = home.run(&["list"]);
    assert_eq!(run.code, 2, "{run:#?}");
    assert!(run.stderr.contains("queuectl init"), "{run:#?}");

    // QUEUECTL_DB does the same, and a relative path is relative to the current directory.
    let mut command = home.command(&["show", "j", "--json"]);
    command.env("QUEUECTL_DB", &db);
    let run = run_command(command);
    assert_eq!(run.code, 0, "{run:#?}");
    assert_eq!(run.json()["id"], "j");
    let mut command = home.command(&["list", "--json", "--db", "sub/other.db"]);
    command.current_dir(elsewhere.path());
    let run = run_command(command);
    assert_eq!(run.code, 0, "{run:#?}");
    assert_eq!(run.json()[0]["id"], "j");
}

// ---------------------------------------------------------------------------------------------
// enqueue: accepted input
// ---------------------------------------------------------------------------------------------

#[test]
fn enqueue_the_spec_example_prints_the_id() {
    let home = TestHome::new();
    let run = home.run(&["enqueue", r#"{"id":"job1","command":"echo hi"}"#]).ok();
    assert_eq!(run.stdout, "job1\n");
    let job = home.job("job1");
    assert_eq!(job["id"], "job1");
    assert_eq!(job["command"], "echo hi");
    assert_eq!(job["state"], "pending");
}

#[test]
fn enqueue_dash_reads_standard_input() {
    let home = TestHome::new();
    let run = home
        .run_with_stdin(
            &["enqueue", "-"],
            "{\"id\":\"from-stdin\",\"command\":\"echo stdin\"}\n",
        )
        .ok();
    assert_eq!(run.stdout, "from-stdin\n");
    assert_eq!(home.job("from-stdin")["command"], "echo stdin");
}

#[test]
fn enqueue_file_reads_objects_arrays_and_ndjson() {
    let home = TestHome::new();
    let one = home.path().join("one.json");
    std::fs::write(&one, r#"{"id":"f1","command":"echo one"}"#).unwrap();
    assert_eq!(
        home.run(&["enqueue", "--file", one.to_str().unwrap()]).ok().stdout,
        "f1\n"
    );

    let array = home.path().join("jobs.json");
    std::fs::write(
        &array,
        r#"[{"id":"f2","command":"echo two"},{"id":"f3","command":"echo three"}]"#,
    )
    .unwrap();
    assert_eq!(home.run(&["enqueue", "-f", "jobs.json"]).ok().stdout, "f2\nf3\n");

    let ndjson = home.path().join("jobs.ndjson");
    std::fs::write(
        &ndjson,
        "{\"id\":\"f4\",\"command\":\"echo four\"}\n\n{\"id\":\"f5\",\"command\":\"echo five\"}\n",
    )
    .unwrap();
    assert_eq!(
        home.run(&["enqueue", "--file", ndjson.to_str().unwrap()]).ok().stdout,
        "f4\nf5\n"
    );

    assert_eq!(listed_ids(&home, &[]), vec!["f1", "f2", "f3", "f4", "f5"]);
    assert_eq!(home.job("f5")["command"], "echo five");
}

#[test]
fn enqueue_a_missing_file_is_an_error_naming_the_file() {
    let home = TestHome::new();
    let before = home.db_snapshot();
    let run = home.run(&["enqueue", "--file", "no-such-file.json"]);
    // An I/O error: exit code 1 as documented (README, "Exit codes"), not a crash (101).
    assert_eq!(run.code, 1, "{run:#?}");
    assert!(run.stderr.contains("no-such-file.json"), "{run:#?}");
    assert_eq!(run.stderr.trim_end().lines().count(), 1, "{run:#?}");
    assert_eq!(home.db_snapshot(), before);
}

#[test]
fn enqueue_array_and_ndjson_print_each_id_in_order() {
    let home = TestHome::new();
    let run = home
        .run(&[
            "enqueue",
            r#"[{"id":"a1","command":"echo a1"},{"command":"echo gen"},{"id":"a3","command":"echo a3"}]"#,
        ])
        .ok();
    let ids: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(ids.len(), 3, "{run:#?}");
    assert_eq!(ids[0], "a1");
    assert_uuid_v4(ids[1]);
    assert_eq!(ids[2], "a3");

    let run = home
        .run_with_stdin(
            &["enqueue", "-"],
            "{\"id\":\"n1\",\"command\":\"echo n1\"}\n{\"id\":\"n2\",\"command\":\"echo n2\"}\n",
        )
        .ok();
    assert_eq!(run.stdout, "n1\nn2\n");
    let listed = listed_ids(&home, &[]);
    assert_eq!(listed, vec!["a1", ids[1], "a3", "n1", "n2"]);
}

#[test]
fn enqueue_flags_set_every_field() {
    let home = TestHome::new();
    let before = now_millis();
    let run = home
        .run(&[
            "enqueue",
            "--command",
            "make backup",
            "--id",
            "flagged",
            "--max-retries",
            "5",
            "--priority",
            "-7",
            "--delay",
            "30s",
            "--timeout",
            "60s",
        ])
        .ok();
    assert_eq!(run.stdout, "flagged\n");
    let job = home.job("flagged");
    assert_eq!(job["id"], "flagged");
    assert_eq!(job["command"], "make backup");
    assert_eq!(job["state"], "pending");
    assert_eq!(job["attempts"], 0);
    assert_eq!(job["max_retries"], 5);
    assert_eq!(job["priority"], -7);
    assert_eq!(job["timeout_seconds"], 60);
    assert_eq!(job["source"], "cli");
    let created = millis(job["created_at"].as_str().unwrap());
    let run_at = millis(job["run_at"].as_str().unwrap());
    assert!(
        created >= before - 1000,
        "created_at {created} is before the command ran ({before})"
    );
    let delay = run_at - created;
    assert!(
        (29_000..=30_500).contains(&delay),
        "--delay 30s: run_at is {delay} ms after created_at: {job:#}"
    );

    // --run-at with an offset is stored and shown in UTC with milliseconds.
    home.run(&[
        "enqueue",
        "-c",
        "echo later",
        "--id",
        "at",
        "--run-at",
        "2031-05-06T07:08:09.5+02:00",
        "--timeout",
        "1m",
    ])
    .ok();
    let job = home.job("at");
    assert_eq!(job["run_at"], "2031-05-06T05:08:09.500Z");
    assert_eq!(job["timeout_seconds"], 60);
    assert_eq!(job["priority"], 0);
    assert_eq!(
        job["max_retries"], 3,
        "without --max-retries the config default applies"
    );
}

#[test]
fn enqueue_generates_a_uuid_when_the_id_is_missing() {
    let home = TestHome::new();
    let first = home
        .run(&["enqueue", r#"{"command":"echo one"}"#])
        .ok()
        .stdout
        .trim()
        .to_string();
    let second = home
        .run(&["enqueue", "--command", "echo two"])
        .ok()
        .stdout
        .trim()
        .to_string();
    assert_uuid_v4(&first);
    assert_uuid_v4(&second);
    assert_ne!(first, second);
    assert_eq!(home.job(&first)["command"], "echo one");
    assert_eq!(home.job(&second)["command"], "echo two");
}

#[test]
fn enqueue_json_output_lists_the_added_jobs() {
    let home = TestHome::new();
    let run = home
        .run(&[
            "enqueue",
            "--json",
            r#"[{"id":"j1","command":"true"},{"id":"j2","command":"true"}]"#,
        ])
        .ok();
    let value = run.json();
    let items = value.as_array().expect("enqueue --json prints an array");
    let ids: Vec<&str> = items.iter().map(|i| i["id"].as_str().unwrap()).collect();
    assert_eq!(ids, vec!["j1", "j2"]);
    let run = home.run(&["enqueue", "--json", "--command", "true"]).ok();
    let value = run.json();
    assert_eq!(value.as_array().map(|a| a.len()), Some(1), "{run:#?}");
    assert_uuid_v4(value[0]["id"].as_str().unwrap());
}

#[test]
fn enqueue_persists_the_spec_fields() {
    let home = TestHome::new();
    let before = now_millis();
    home.run(&["enqueue", r#"{"id":"job1","command":"echo hi"}"#]).ok();
    let after = now_millis();
    let job = home.job("job1");
    assert_eq!(job["id"], "job1");
    assert_eq!(job["command"], "echo hi");
    assert_eq!(job["state"], "pending");
    assert_eq!(job["attempts"], 0);
    assert_eq!(job["max_retries"], 3);
    assert_eq!(job["priority"], 0);
    assert_eq!(job["source"], "cli");
    for field in ["created_at", "updated_at", "run_at"] {
        assert_timestamp(
            job[field]
                .as_str()
                .unwrap_or_else(|| panic!("{field} missing: {job:#}")),
        );
    }
    let created = millis(job["created_at"].as_str().unwrap());
    assert!(
        before - 1000 <= created && created <= after + 1000,
        "created_at {created} not within [{before}, {after}]"
    );
    assert_eq!(job["created_at"], job["updated_at"]);
    assert!(
        millis(job["run_at"].as_str().unwrap()) <= created,
        "a job without a delay is due at once: {job:#}"
    );
}

#[test]
fn enqueue_json_accepts_every_optional_field() {
    let home = TestHome::new();
    home.run(&[
        "enqueue",
        r#"{"id":"full","command":"env","max_retries":0,"priority":1000000,"timeout_seconds":2592000,"cwd":"work","env":{"A":"1","B":"two"},"delay_seconds":3600}"#,
    ])
    .ok();
    let job = home.job("full");
    assert_eq!(job["max_retries"], 0);
    assert_eq!(job["priority"], 1_000_000);
    assert_eq!(job["timeout_seconds"], 2_592_000);
    assert_eq!(job["cwd"], "work");
    assert_eq!(job["env"], serde_json::json!({"A": "1", "B": "two"}));
    let delay = millis(job["run_at"].as_str().unwrap()) - millis(job["created_at"].as_str().unwrap());
    assert!(
        (3_599_000..=3_600_500).contains(&delay),
        "delay_seconds 3600 gave {delay} ms"
    );

    home.run(&[
        "enqueue",
        r#"{"id":"at","command":"true","run_at":"2030-01-02T03:04:05Z","priority":-1000000}"#,
    ])
    .ok();
    let job = home.job("at");
    assert_eq!(job["run_at"], "2030-01-02T03:04:05.000Z");
    assert_eq!(job["priority"], -1_000_000);
}

#[test]
fn enqueue_accepts_values_exactly_at_the_limits() {
    let home = TestHome::new();
    let id = "i".repeat(200);
    let command = format!("echo {}", "x".repeat(64 * 1024 - 5));
    assert_eq!(command.len(), 64 * 1024);
    let job = serde_json::json!({"id": id, "command": command, "max_retries": 1000});
    assert_eq!(
        home.run_with_stdin(&["enqueue", "-"], &job.to_string()).ok().stdout,
        format!("{id}\n")
    );
    let shown = home.job(&id);
    assert_eq!(shown["command"].as_str().unwrap().len(), 64 * 1024);
    assert_eq!(shown["max_retries"], 1000);
    // A multi-byte id of exactly 200 bytes.
    let wide = "é".repeat(100);
    assert_eq!(wide.len(), 200);
    home.run(&["enqueue", "--id", &wide, "--command", "true"]).ok();
    assert_eq!(home.job(&wide)["id"], wide.as_str());
}

#[test]
fn enqueue_accepts_a_pretty_printed_object() {
    let home = TestHome::new();
    let run = home
        .run_with_stdin(
            &["enqueue", "-"],
            "{\n  \"id\": \"pretty\",\n  \"command\": \"echo hi\"\n}\n",
        )
        .ok();
    assert_eq!(run.stdout, "pretty\n");
}

// ---------------------------------------------------------------------------------------------
// enqueue: every refusal (exit 2, one line naming the field, nothing written)
// ---------------------------------------------------------------------------------------------

#[test]
fn enqueue_refuses_malformed_json() {
    let home = TestHome::new();
    assert_refused(
        &home,
        &["enqueue", r#"{"id":"x","command":"#],
        None,
        &["malformed JSON"],
    );
    assert_refused(&home, &["enqueue", "not json"], None, &["malformed JSON"]);
    assert_refused(
        &home,
        &["enqueue", "-"],
        Some("{\"command\": \"a\",}"),
        &["malformed JSON"],
    );
    assert_refused(&home, &["enqueue", r#""just a string""#], None, &["object"]);
}

#[test]
fn enqueue_refuses_a_pretty_printed_object_naming_the_line_of_the_error() {
    // The error (a trailing comma) is on line 3 of a multi-line object.
    let home = TestHome::new();
    let run = assert_refused(
        &home,
        &["enqueue", "-"],
        Some("{\n  \"command\": \"x\",\n}\n"),
        &["malformed JSON"],
    );
    assert!(
        run.stderr.contains("line 3"),
        "the message should point at line 3, where the error is: {run:#?}"
    );
}

#[test]
fn enqueue_refuses_a_missing_command() {
    let home = TestHome::new();
    assert_refused(&home, &["enqueue", r#"{"id":"x"}"#], None, &["`command`", "missing"]);
}

#[test]
fn enqueue_refuses_an_empty_command() {
    let home = TestHome::new();
    assert_refused(&home, &["enqueue", r#"{"id":"x","command":""}"#], None, &["`command`"]);
    assert_refused(
        &home,
        &["enqueue", r#"{"id":"x","command":"   "}"#],
        None,
        &["`command`"],
    );
    assert_refused(&home, &["enqueue", "--command", ""], None, &["`command`"]);
}

#[test]
fn enqueue_refuses_wrong_types() {
    let home = TestHome::new();
    assert_refused(
        &home,
        &["enqueue", r#"{"command":"a","max_retries":"3"}"#],
        None,
        &["`max_retries`", "integer", "string"],
    );
    assert_refused(
        &home,
        &["enqueue", r#"{"command":"a","priority":"high"}"#],
        None,
        &["`priority`", "integer", "string"],
    );
    assert_refused(
        &home,
        &["enqueue", r#"{"command":"a","env":"A=1"}"#],
        None,
        &["`env`", "object"],
    );
    assert_refused(
        &home,
        &["enqueue", r#"{"command":"a","env":["A=1"]}"#],
        None,
        &["`env`", "object"],
    );
    assert_refused(
        &home,
        &["enqueue", r#"{"command":"a","env":{"A":1}}"#],
        None,
        &["`env`", "string"],
    );
    assert_refused(&home, &["enqueue", r#"{"command":42}"#], None, &["`command`", "string"]);
    assert_refused(
        &home,
        &["enqueue", r#"{"id":7,"command":"a"}"#],
        None,
        &["`id`", "string"],
    );
    assert_refused(
        &home,
        &["enqueue", r#"{"command":"a","timeout_seconds":"60"}"#],
        None,
        &["`timeout_seconds`"],
    );
    assert_refused(
        &home,
        &["enqueue", r#"{"command":"a","max_retries":2.5}"#],
        None,
        &["`max_retries`"],
    );
    assert_refused(
        &home,
        &["enqueue", r#"{"command":"a","run_at":"tomorrow"}"#],
        None,
        &["`run_at`"],
    );
}

#[test]
fn enqueue_refuses_negative_max_retries() {
    let home = TestHome::new();
    assert_refused(
        &home,
        &["enqueue", r#"{"command":"a","max_retries":-1}"#],
        None,
        &["`max_retries`", "-1"],
    );
    // As a flag the value cannot even be parsed.
    let before = home.db_snapshot();
    let run = home.run(&["enqueue", "--command", "a", "--max-retries", "-1"]);
    assert_eq!(run.code, 2, "{run:#?}");
    assert_eq!(home.db_snapshot(), before);
}

#[test]
fn enqueue_refuses_absurd_numbers() {
    let home = TestHome::new();
    assert_refused(
        &home,
        &["enqueue", r#"{"command":"a","max_retries":1000000}"#],
        None,
        &["`max_retries`", "1000000"],
    );
    assert_refused(
        &home,
        &["enqueue", r#"{"command":"a","priority":1000000000000}"#],
        None,
        &["`priority`", "1000000000000"],
    );
    assert_refused(
        &home,
        &["enqueue", r#"{"command":"a","timeout_seconds":0}"#],
        None,
        &["`timeout_seconds`", "0"],
    );
    assert_refused(
        &home,
        &["enqueue", r#"{"command":"a","max_retries":1e300}"#],
        None,
        &["`max_retries`"],
    );
    assert_refused(
        &home,
        &["enqueue", r#"{"command":"a","delay_seconds":-5}"#],
        None,
        &["`delay_seconds`"],
    );
    assert_refused(
        &home,
        &["enqueue", r#"{"command":"a","delay_seconds":1e12}"#],
        None,
        &["`delay_seconds`"],
    );
    // The same limits through the flags.
    assert_refused(
        &home,
        &["enqueue", "--command", "a", "--max-retries", "1000000"],
        None,
        &["max_retries", "1000000"],
    );
    assert_refused(
        &home,
        &["enqueue", "--command", "a", "--priority", "1000000000000"],
        None,
        &["priority", "1000000000000"],
    );
    assert_refused(
        &home,
        &["enqueue", "--command", "a", "--timeout", "0s"],
        None,
        &["timeout"],
    );
}

#[test]
fn enqueue_refuses_bad_flag_values_and_usage() {
    let home = TestHome::new();
    assert_refused(
        &home,
        &["enqueue", "--command", "a", "--delay", "soon"],
        None,
        &["--delay", "soon"],
    );
    assert_refused(
        &home,
        &["enqueue", "--command", "a", "--run-at", "someday"],
        None,
        &["--run-at", "someday"],
    );
    assert_refused(
        &home,
        &["enqueue", "--command", "a", "--timeout", "forever"],
        None,
        &["--timeout", "forever"],
    );
    assert_refused(&home, &["enqueue"], None, &["nothing to enqueue"]);
    // clap usage errors: exit 2, nothing written.
    for args in [
        &["enqueue", "--id", "x"][..],
        &[
            "enqueue",
            "--command",
            "a",
            "--delay",
            "1s",
            "--run-at",
            "2030-01-01T00:00:00Z",
        ],
        &["enqueue", r#"{"command":"a"}"#, "--command", "b"],
        &["enqueue", "--bogus"],
    ] {
        let before = home.db_snapshot();
        let run = home.run(args);
        assert_eq!(run.code, 2, "`queuectl {}`: {run:#?}", args.join(" "));
        assert_eq!(run.stdout, "");
        assert_eq!(home.db_snapshot(), before);
    }
}

#[test]
fn absurd_durations_are_refused_with_a_message_not_a_panic() {
    let home = TestHome::new();
    for args in [
        &["wait", "--timeout", "1e300"][..],
        &["wait", "--timeout", "1e19"],
        &["worker", "stop", "--timeout", "1e300"],
        &["enqueue", "--command", "true", "--delay", "1e300"],
        &["enqueue", "--command", "true", "--timeout", "99999999999h"],
    ] {
        assert_refused(&home, args, None, &["100 years"]);
    }
}

#[test]
fn enqueue_refuses_an_unknown_field_listing_the_known_ones() {
    let home = TestHome::new();
    let run = assert_refused(
        &home,
        &["enqueue", r#"{"command":"a","colour":"red"}"#],
        None,
        &["colour", "known fields"],
    );
    for field in [
        "id",
        "command",
        "max_retries",
        "priority",
        "run_at",
        "delay_seconds",
        "timeout_seconds",
        "cwd",
        "env",
    ] {
        assert!(
            run.stderr.contains(field),
            "the known fields should include {field}: {run:#?}"
        );
    }
}

#[test]
fn enqueue_refuses_a_duplicate_of_an_existing_id() {
    let home = TestHome::new();
    home.run(&["enqueue", r#"{"id":"job1","command":"echo first"}"#]).ok();
    assert_refused(
        &home,
        &["enqueue", r#"{"id":"job1","command":"echo second"}"#],
        None,
        &["job1", "already exists"],
    );
    assert_refused(
        &home,
        &["enqueue", "--id", "job1", "--command", "echo third"],
        None,
        &["job1", "already exists"],
    );
    assert_eq!(home.job("job1")["command"], "echo first");
}

#[test]
fn enqueue_refuses_an_id_twice_in_one_batch() {
    let home = TestHome::new();
    assert_refused(
        &home,
        &[
            "enqueue",
            r#"[{"id":"a","command":"true"},{"id":"b","command":"true"},{"id":"a","command":"false"}]"#,
        ],
        None,
        &["`id`", "index 2", "`a`"],
    );
    assert_refused(
        &home,
        &["enqueue", "-"],
        Some("{\"id\":\"a\",\"command\":\"true\"}\n{\"id\":\"a\",\"command\":\"false\"}\n"),
        &["`id`", "line 2", "`a`"],
    );
    assert_eq!(listed_ids(&home, &[]), Vec::<String>::new());
}

#[test]
fn enqueue_refuses_an_id_with_a_control_character() {
    let home = TestHome::new();
    assert_refused(
        &home,
        &["enqueue", r#"{"id":"a\u0001b","command":"true"}"#],
        None,
        &["`id`", "control"],
    );
    assert_refused(
        &home,
        &["enqueue", r#"{"id":"a\nb","command":"true"}"#],
        None,
        &["`id`", "control"],
    );
    assert_refused(
        &home,
        &["enqueue", "--id", "tab\there", "--command", "true"],
        None,
        &["`id`", "control"],
    );
    assert_refused(&home, &["enqueue", r#"{"id":"","command":"true"}"#], None, &["`id`"]);
}

#[test]
fn enqueue_refuses_an_id_over_200_bytes() {
    let home = TestHome::new();
    let id = "i".repeat(201);
    let job = serde_json::json!({"id": id, "command": "true"}).to_string();
    assert_refused(&home, &["enqueue", &job], None, &["`id`", "201", "200"]);
    let wide = format!("{}x", "é".repeat(100)); // 101 characters, 201 bytes
    assert_refused(
        &home,
        &["enqueue", "--id", &wide, "--command", "true"],
        None,
        &["`id`", "201", "200"],
    );
}

#[test]
fn enqueue_refuses_a_command_over_64_kib() {
    let home = TestHome::new();
    let command = "x".repeat(64 * 1024 + 1);
    let job = serde_json::json!({"id": "big", "command": command}).to_string();
    assert_refused(&home, &["enqueue", "-"], Some(&job), &["`command`", "65537", "64 KiB"]);
    assert_refused(
        &home,
        &["enqueue", "--command", &command],
        None,
        &["`command`", "65537"],
    );
}

#[test]
fn enqueue_refuses_an_empty_batch() {
    let home = TestHome::new();
    assert_refused(&home, &["enqueue", "[]"], None, &["empty batch"]);
    assert_refused(&home, &["enqueue", "-"], Some("[ ]\n"), &["empty batch"]);
}

#[test]
fn enqueue_refuses_empty_input() {
    let home = TestHome::new();
    assert_refused(&home, &["enqueue", "-"], Some(""), &["empty"]);
    assert_refused(&home, &["enqueue", "-"], Some("\n  \n"), &["empty"]);
    assert_refused(&home, &["enqueue", ""], None, &["empty"]);
    std::fs::write(home.path().join("empty.ndjson"), "").unwrap();
    assert_refused(&home, &["enqueue", "--file", "empty.ndjson"], None, &["empty"]);
}

#[test]
fn enqueue_ndjson_with_one_bad_line_names_the_line() {
    let home = TestHome::new();
    // A line that is valid JSON but not a valid job.
    let input = "{\"id\":\"n1\",\"command\":\"true\"}\n{\"id\":\"n2\",\"command\":\"true\"}\n{\"id\":\"n3\",\"command\":\"\"}\n";
    assert_refused(&home, &["enqueue", "-"], Some(input), &["line 3", "`command`"]);
    // A line that is not JSON at all; blank lines still count.
    let input =
        "{\"id\":\"n1\",\"command\":\"true\"}\n\n{\"id\":\"n2\",\"command\":\n{\"id\":\"n3\",\"command\":\"true\"}\n";
    assert_refused(&home, &["enqueue", "-"], Some(input), &["line 3", "malformed JSON"]);
    // A wrong type on line 2.
    let input = "{\"id\":\"n1\",\"command\":\"true\"}\n{\"id\":\"n2\",\"command\":\"true\",\"priority\":\"hi\"}\n";
    assert_refused(&home, &["enqueue", "-"], Some(input), &["line 2", "`priority`"]);
    // The same from a file.
    std::fs::write(
        home.path().join("bad.ndjson"),
        "{\"command\":\"true\"}\n{\"command\":\"true\",\"colour\":1}\n",
    )
    .unwrap();
    assert_refused(&home, &["enqueue", "--file", "bad.ndjson"], None, &["line 2", "colour"]);
    assert_eq!(
        listed_ids(&home, &[]),
        Vec::<String>::new(),
        "no job of a refused batch may be added"
    );
}

#[test]
fn enqueue_array_with_a_bad_item_names_the_index() {
    let home = TestHome::new();
    assert_refused(
        &home,
        &[
            "enqueue",
            r#"[{"id":"a","command":"true"},{"id":"b","command":"true","max_retries":-3}]"#,
        ],
        None,
        &["index 1", "`max_retries`"],
    );
    assert_refused(
        &home,
        &["enqueue", r#"[{"id":"a","command":"true"},5]"#],
        None,
        &["index 1", "object"],
    );
    assert_refused(
        &home,
        &["enqueue", r#"[{"command":"true"},{"command":"true"},{"id":"c"}]"#],
        None,
        &["index 2", "`command`"],
    );
    assert_eq!(listed_ids(&home, &[]), Vec::<String>::new());
}

#[test]
fn enqueue_batch_is_all_or_nothing() {
    let home = TestHome::new();
    home.run(&["enqueue", r#"{"id":"job1","command":"echo hi"}"#]).ok();
    assert_refused(
        &home,
        &[
            "enqueue",
            r#"[{"id":"x1","command":"true"},{"id":"x2","command":"true"},{"id":"job1","command":"true"}]"#,
        ],
        None,
        &["job1", "already exists", "index 2"],
    );
    assert_refused(
        &home,
        &["enqueue", "-"],
        Some("{\"id\":\"y1\",\"command\":\"true\"}\n{\"command\":\"true\"}\n{\"id\":\"job1\",\"command\":\"true\"}\n"),
        &["job1", "already exists", "line 3"],
    );
    assert_eq!(listed_ids(&home, &[]), vec!["job1"]);
    for id in ["x1", "x2", "y1"] {
        let run = home.run(&["show", id]);
        assert_eq!(run.code, 2, "{id} must not exist: {run:#?}");
    }
    assert_eq!(home.status()["jobs"]["pending"], 1);
}

// ---------------------------------------------------------------------------------------------
// list
// ---------------------------------------------------------------------------------------------

#[test]
fn list_prints_a_table_with_a_header() {
    let home = TestHome::new();
    home.run(&["enqueue", r#"{"id":"job1","command":"echo hi"}"#]).ok();
    home.run(&[
        "enqueue",
        "--id",
        "job2",
        "--command",
        "echo two",
        "--max-retries",
        "5",
        "--priority",
        "9",
    ])
    .ok();
    let run = home.run(&["list", "--oldest-first", "--utc"]).ok();
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "a header and one row a job: {run:#?}");
    for column in ["ID", "STATE", "ATTEMPTS", "PRIO", "CREATED", "NEXT", "COMMAND"] {
        assert!(lines[0].contains(column), "header lacks {column}: {run:#?}");
    }
    // ATTEMPTS is runs so far / most runs (max_retries + 1).
    assert!(
        lines[1].starts_with("job1") && lines[1].contains("pending") && lines[1].contains("0/4"),
        "{run:#?}"
    );
    assert!(lines[1].contains("echo hi"), "{run:#?}");
    assert!(
        lines[2].starts_with("job2") && lines[2].contains("0/6") && lines[2].contains(" 9 "),
        "{run:#?}"
    );
    let created = home.job("job1")["created_at"].as_str().unwrap().to_string();
    let shown = format!("{}Z", created[..19].replace('T', " "));
    assert!(lines[1].contains(&shown), "the row shows created_at {shown}: {run:#?}");
}

#[test]
fn list_cuts_long_commands_to_fit() {
    let home = TestHome::new();
    let long = format!("echo {}", "word ".repeat(200));
    home.run(&["enqueue", "--id", "long", "--command", &long]).ok();
    home.run(&["enqueue", "--id", "multi", "--command", "echo one\necho two"])
        .ok();
    let mut command = home.command(&["list", "--oldest-first"]);
    command.env("COLUMNS", "80");
    let run = run_command(command);
    assert_eq!(run.code, 0, "{run:#?}");
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "a command with a newline still takes one row: {run:#?}");
    for line in &lines {
        assert!(line.chars().count() <= 80, "line wider than COLUMNS=80: {line:?}");
    }
    assert!(
        lines[1].starts_with("long") && lines[1].contains("echo word"),
        "{run:#?}"
    );
}

#[test]
fn list_filters_by_state_and_limits() {
    let home = TestHome::new();
    for id in ["a", "b", "c"] {
        home.run(&["enqueue", "--id", id, "--command", "true"]).ok();
    }
    assert_eq!(listed_ids(&home, &["--state", "pending"]), vec!["a", "b", "c"]);
    assert_eq!(listed_ids(&home, &["-s", "pending", "--limit", "2"]), vec!["a", "b"]);
    assert_eq!(listed_ids(&home, &["--limit", "1"]), vec!["a"]);
    assert_eq!(listed_ids(&home, &["-n", "0"]), Vec::<String>::new());
    for state in ["processing", "completed", "failed", "dead"] {
        assert_eq!(listed_ids(&home, &["--state", state]), Vec::<String>::new(), "{state}");
    }
    // An empty table prints nothing on stdout.
    let run = home.run(&["list", "--state", "dead"]).ok();
    assert_eq!(run.stdout, "", "{run:#?}");
}

#[test]
fn list_refuses_an_unknown_state_listing_the_valid_ones() {
    let home = TestHome::new();
    home.run(&["enqueue", "--id", "a", "--command", "true"]).ok();
    assert_refused(
        &home,
        &["list", "--state", "running"],
        None,
        &["running", "pending", "processing", "completed", "failed", "dead"],
    );
    assert_refused(
        &home,
        &["list", "--state", "Pending", "--json"],
        None,
        &["Pending", "dead"],
    );
}

#[test]
fn list_json_carries_the_spec_field_names_in_enqueue_order() {
    let home = TestHome::new();
    assert_eq!(home.run(&["list", "--json"]).ok().json(), serde_json::json!([]));
    for id in ["zeta", "alpha", "mid"] {
        home.run(&["enqueue", "--id", id, "--command", &format!("echo {id}")])
            .ok();
    }
    home.run(&["enqueue", "--id", "urgent", "--command", "true", "--priority", "100"])
        .ok();
    let run = home.run(&["list", "--json", "--oldest-first"]).ok();
    let jobs = run.json();
    let jobs = jobs.as_array().expect("an array");
    let ids: Vec<&str> = jobs.iter().map(|j| j["id"].as_str().unwrap()).collect();
    assert_eq!(
        ids,
        vec!["zeta", "alpha", "mid", "urgent"],
        "list --oldest-first is in enqueue order"
    );
    for job in jobs {
        for field in [
            "id",
            "command",
            "state",
            "attempts",
            "max_retries",
            "created_at",
            "updated_at",
        ] {
            assert!(job.get(field).is_some(), "list --json item lacks {field}: {job:#}");
        }
        assert_eq!(job["state"], "pending");
        assert_eq!(job["attempts"], 0);
        assert_eq!(job["max_retries"], 3);
        assert_timestamp(job["created_at"].as_str().unwrap());
        assert_timestamp(job["updated_at"].as_str().unwrap());
    }
    assert_eq!(jobs[0]["command"], "echo zeta");
}

// ---------------------------------------------------------------------------------------------
// show and logs
// ---------------------------------------------------------------------------------------------

#[test]
fn show_prints_every_field_and_the_history() {
    let home = TestHome::new();
    home.run(&[
        "enqueue",
        r#"{"id":"job1","command":"echo hi","max_retries":2,"priority":4,"timeout_seconds":30,"cwd":"sub","env":{"GREETING":"hello"}}"#,
    ])
    .ok();
    let run = home.run(&["show", "job1"]).ok();
    let job = home.job("job1");
    for label in [
        "id:",
        "state:",
        "command:",
        "attempts:",
        "max_retries",
        "priority:",
        "run_at:",
        "timeout:",
        "cwd:",
        "env:",
        "source:",
        "created_at:",
        "updated_at:",
        "started_at:",
        "finished_at:",
        "worker:",
        "exit_code:",
        "last_error:",
        "history",
    ] {
        assert!(run.stdout.contains(label), "show lacks {label}: {run:#?}");
    }
    for value in [
        "job1",
        "pending",
        "echo hi",
        "GREETING=hello",
        "sub",
        "cli",
        job["created_at"].as_str().unwrap(),
    ] {
        assert!(run.stdout.contains(value), "show lacks {value}: {run:#?}");
    }
    assert!(run.stdout.contains("max_retries 2"), "{run:#?}");
}

#[test]
fn show_json_has_every_field_and_an_empty_history() {
    let home = TestHome::new();
    home.run(&["enqueue", r#"{"id":"job1","command":"echo hi"}"#]).ok();
    let job = home.job("job1");
    for field in [
        "id",
        "command",
        "state",
        "attempts",
        "max_retries",
        "created_at",
        "updated_at",
        "priority",
        "run_at",
        "timeout_seconds",
        "last_error",
        "exit_code",
        "started_at",
        "finished_at",
        "worker",
        "source",
        "history",
    ] {
        assert!(job.get(field).is_some(), "show --json lacks {field}: {job:#}");
    }
    assert_eq!(job["history"], serde_json::json!([]));
    assert_eq!(job["last_error"], Value::Null);
    assert_eq!(job["exit_code"], Value::Null);
    assert_eq!(job["started_at"], Value::Null);
}

#[test]
fn show_an_unknown_id_exits_2() {
    let home = TestHome::new();
    home.run(&["enqueue", r#"{"id":"job1","command":"echo hi"}"#]).ok();
    assert_refused(&home, &["show", "nope"], None, &["nope"]);
    assert_refused(&home, &["show", "nope", "--json"], None, &["nope"]);
    assert_refused(&home, &["logs", "nope"], None, &["nope"]);
    let before = home.db_snapshot();
    let run = home.run(&["show"]);
    assert_eq!(run.code, 2, "show without an id is a usage error: {run:#?}");
    assert_eq!(home.db_snapshot(), before);
}

#[test]
fn logs_of_a_job_without_output() {
    let home = TestHome::new();
    home.run(&["enqueue", r#"{"id":"job1","command":"echo hi"}"#]).ok();
    let run = home.run(&["logs", "job1"]).ok();
    assert_eq!(run.stdout, "", "{run:#?}");
    assert!(
        run.stderr.contains("job1") && run.stderr.contains("no captured output"),
        "{run:#?}"
    );
}

// ---------------------------------------------------------------------------------------------
// status
// ---------------------------------------------------------------------------------------------

#[test]
fn status_of_a_fresh_queue_shows_zero_for_every_state() {
    let home = TestHome::new();
    let run = home.run(&["status"]).ok();
    for state in ["pending", "processing", "completed", "failed", "dead"] {
        let line = run.stdout.lines().find(|l| l.split_whitespace().next() == Some(state));
        let line = line.unwrap_or_else(|| panic!("status lacks {state}: {run:#?}"));
        assert_eq!(
            line.split_whitespace().nth(1),
            Some("0"),
            "{state} should be 0: {run:#?}"
        );
    }
    assert!(run.stdout.contains("workers"), "{run:#?}");

    let status = home.status();
    assert_eq!(
        status["jobs"],
        serde_json::json!({"pending": 0, "processing": 0, "completed": 0, "failed": 0, "dead": 0})
    );
    assert_eq!(status["workers"], serde_json::json!([]));
    assert_eq!(status["due_now"], 0);
    assert_eq!(status["scheduled"], 0);
}

#[test]
fn status_splits_due_now_from_scheduled() {
    let home = TestHome::new();
    home.run(&["enqueue", "--id", "now", "--command", "true"]).ok();
    home.run(&["enqueue", "--id", "later", "--command", "true", "--delay", "1h"])
        .ok();
    home.run(&[
        "enqueue",
        "--id",
        "past",
        "--command",
        "true",
        "--run-at",
        "2020-01-01T00:00:00Z",
    ])
    .ok();
    home.run(&[
        "enqueue",
        "--id",
        "future",
        "--command",
        "true",
        "--run-at",
        "2099-01-01T00:00:00Z",
    ])
    .ok();
    let status = home.status();
    assert_eq!(status["jobs"]["pending"], 4);
    assert_eq!(status["jobs"]["processing"], 0);
    assert_eq!(status["due_now"], 2, "{status:#}");
    assert_eq!(status["scheduled"], 2, "{status:#}");
    let run = home.run(&["status"]).ok();
    assert!(
        run.stdout.contains("2 due now") && run.stdout.contains("2 scheduled"),
        "{run:#?}"
    );
    let later = home.job("later");
    assert!(
        millis(later["run_at"].as_str().unwrap()) > now_millis() + 3_500_000,
        "{later:#}"
    );
}

// ---------------------------------------------------------------------------------------------
// dlq
// ---------------------------------------------------------------------------------------------

#[test]
fn dlq_list_of_an_empty_queue() {
    let home = TestHome::new();
    home.run(&["enqueue", "--id", "alive", "--command", "true"]).ok();
    let run = home.run(&["dlq", "list"]).ok();
    assert_eq!(run.stdout, "", "{run:#?}");
    assert!(run.stderr.contains("empty"), "{run:#?}");
    assert_eq!(home.run(&["dlq", "list", "--json"]).ok().json(), serde_json::json!([]));
}

#[test]
fn dlq_retry_refuses_a_job_that_is_not_dead() {
    let home = TestHome::new();
    home.run(&["enqueue", "--id", "job1", "--command", "true"]).ok();
    let run = assert_refused(&home, &["dlq", "retry", "job1"], None, &["job1", "not dead"]);
    assert!(
        run.stderr.contains("pending"),
        "the message names the job's state: {run:#?}"
    );
    assert_eq!(home.job("job1")["state"], "pending");
}

#[test]
fn dlq_retry_refuses_an_unknown_id() {
    let home = TestHome::new();
    home.run(&["enqueue", "--id", "job1", "--command", "true"]).ok();
    assert_refused(&home, &["dlq", "retry", "ghost"], None, &["ghost"]);
    assert_refused(&home, &["dlq", "retry", "job1", "ghost"], None, &["job1"]);
    assert_refused(&home, &["dlq", "retry", "job1", "job1"], None, &["more than once"]);
}

#[test]
fn dlq_retry_without_an_id_is_a_usage_error() {
    let home = TestHome::new();
    home.run(&["enqueue", "--id", "job1", "--command", "true"]).ok();
    for args in [&["dlq", "retry"][..], &["dlq", "retry", "--all", "job1"], &["dlq"]] {
        let before = home.db_snapshot();
        let run = home.run(args);
        assert_eq!(run.code, 2, "`queuectl {}`: {run:#?}", args.join(" "));
        assert_eq!(run.stdout, "");
        assert!(run.stderr.contains("Usage"), "{run:#?}");
        assert_eq!(home.db_snapshot(), before);
    }
    // --all with nothing dead moves nothing.
    let before = home.db_snapshot();
    let run = home.run(&["dlq", "retry", "--all"]).ok();
    assert_eq!(run.stdout, "moved 0 jobs from the DLQ back to pending\n", "{run:#?}");
    assert_eq!(home.db_snapshot(), before);
}

/// Moves jobs to the DLQ the way a worker would, without running one: `dead` with attempts.
fn make_dead(home: &TestHome, id: &str, attempts: u32) {
    let changed = home.sql().execute(
        "UPDATE {jobs} SET state = 'dead', attempts = ?2, last_error = 'exit 1' WHERE id = ?1",
        &[id.into(), attempts.into()],
    );
    assert_eq!(changed, 1, "no job {id}");
}

#[test]
fn dlq_retry_all_moves_every_dead_job_back_to_pending_and_nothing_else() {
    let home = TestHome::new();
    for id in ["dead1", "dead2", "dead3", "alive", "done"] {
        home.run(&["enqueue", "--id", id, "--command", "true"]).ok();
    }
    for id in ["dead1", "dead2", "dead3"] {
        make_dead(&home, id, 4);
    }
    home.sql().execute(
        "UPDATE {jobs} SET state = 'completed', attempts = 1 WHERE id = 'done'",
        &[],
    );
    let run = home.run(&["dlq", "retry", "--all"]).ok();
    assert_eq!(run.stdout, "moved 3 jobs from the DLQ back to pending\n", "{run:#?}");
    for id in ["dead1", "dead2", "dead3"] {
        let job = home.job(id);
        assert_eq!(
            (job["state"].as_str(), job["attempts"].as_u64()),
            (Some("pending"), Some(0)),
            "{job:#}"
        );
    }
    assert_eq!(home.job("alive")["state"], "pending");
    assert_eq!(home.job("alive")["attempts"], 0);
    assert_eq!(home.job("done")["state"], "completed");
    assert_eq!(home.job("done")["attempts"], 1);
    let status = home.status();
    assert_eq!(status["jobs"]["dead"], 0, "{status:#}");
    assert_eq!(status["jobs"]["pending"], 4, "{status:#}");
    assert_eq!(home.run(&["dlq", "list", "--json"]).ok().json(), serde_json::json!([]));

    // One dead job: the message is in the singular.
    make_dead(&home, "alive", 1);
    let run = home.run(&["dlq", "retry", "--all"]).ok();
    assert_eq!(run.stdout, "moved 1 job from the DLQ back to pending\n", "{run:#?}");
}

// ---------------------------------------------------------------------------------------------
// config
// ---------------------------------------------------------------------------------------------

#[test]
fn config_set_and_get_accept_dashes_and_underscores() {
    let home = TestHome::new();
    assert_eq!(home.run(&["config", "get", "max_retries"]).ok().stdout, "3\n");
    let run = home.run(&["config", "set", "max-retries", "5"]).ok();
    assert_eq!(run.stdout, "max_retries = 5\n", "{run:#?}");
    assert_eq!(home.run(&["config", "get", "max_retries"]).ok().stdout, "5\n");
    assert_eq!(home.run(&["config", "get", "max-retries"]).ok().stdout, "5\n");
    home.run(&["config", "set", "max_retries", "6"]).ok();
    assert_eq!(home.run(&["config", "get", "max-retries"]).ok().stdout, "6\n");
    home.run(&["config", "set", "backoff-base", "3"]).ok();
    assert_eq!(home.run(&["config", "get", "backoff_base"]).ok().stdout, "3\n");
    home.run(&["config", "set", "backoff_base", "1.5"]).ok();
    assert_eq!(home.run(&["config", "get", "backoff-base"]).ok().stdout, "1.5\n");
    home.run(&["config", "set", "backoff-max-seconds", "60"]).ok();
    assert_eq!(home.run(&["config", "get", "backoff_max_seconds"]).ok().stdout, "60\n");
    home.run(&["config", "set", "job_timeout_seconds", "600"]).ok();
    assert_eq!(home.run(&["config", "get", "job-timeout-seconds"]).ok().stdout, "600\n");
    // The config max_retries applies to jobs without their own.
    home.run(&["enqueue", "--id", "j", "--command", "true"]).ok();
    assert_eq!(home.job("j")["max_retries"], 6);
}

#[test]
fn config_list_shows_each_value_and_its_source() {
    let home = TestHome::new();
    let run = home.run(&["config", "list"]).ok();
    for column in ["KEY", "VALUE", "SOURCE"] {
        assert!(run.stdout.lines().next().unwrap_or("").contains(column), "{run:#?}");
    }
    for key in [
        "max_retries",
        "backoff_base",
        "backoff_max_seconds",
        "job_timeout_seconds",
    ] {
        assert!(run.stdout.contains(key), "config list lacks {key}: {run:#?}");
    }
    // init writes max_retries, backoff_base and backoff_max_seconds into the file.
    let entry = config_entry(&home, "max_retries");
    assert_eq!(
        (entry["value"].as_str(), entry["source"].as_str()),
        (Some("3"), Some("file")),
        "{entry:#}"
    );
    let entry = config_entry(&home, "backoff_base");
    assert_eq!(
        (entry["value"].as_str(), entry["source"].as_str()),
        (Some("2"), Some("file")),
        "{entry:#}"
    );
    let entry = config_entry(&home, "backoff_max_seconds");
    assert_eq!(
        (entry["value"].as_str(), entry["source"].as_str()),
        (Some("3600"), Some("file")),
        "{entry:#}"
    );
    let entry = config_entry(&home, "job_timeout_seconds");
    assert_eq!(entry["source"], "default", "{entry:#}");
    home.run(&["config", "set", "backoff-base", "3"]).ok();
    let entry = config_entry(&home, "backoff_base");
    assert_eq!(
        (entry["value"].as_str(), entry["source"].as_str()),
        (Some("3"), Some("set")),
        "{entry:#}"
    );
    // Without a config file every value is the default.
    std::fs::remove_file(home.path().join("config/queuectl.toml")).unwrap();
    let entry = config_entry(&home, "max_retries");
    assert_eq!(
        (entry["value"].as_str(), entry["source"].as_str()),
        (Some("3"), Some("default")),
        "{entry:#}"
    );
    let entry = config_entry(&home, "backoff_base");
    assert_eq!(entry["source"], "set");
}

#[test]
fn config_precedence_default_file_set_unset() {
    let home = TestHome::new();
    let edited = read_config(&home).replace("max_retries = 3", "max_retries = 7");
    write_config(&home, &edited);
    assert_eq!(home.run(&["config", "get", "max_retries"]).ok().stdout, "7\n");
    assert_eq!(config_entry(&home, "max_retries")["source"], "file");

    home.run(&["config", "set", "max_retries", "9"]).ok();
    assert_eq!(home.run(&["config", "get", "max_retries"]).ok().stdout, "9\n");
    let entry = config_entry(&home, "max_retries");
    assert_eq!(
        (entry["value"].as_str(), entry["source"].as_str()),
        (Some("9"), Some("set")),
        "{entry:#}"
    );

    let run = home.run(&["config", "unset", "max_retries"]).ok();
    assert_eq!(
        run.stdout, "max_retries unset; now 7 (from file)\n",
        "unset says what applies now: {run:#?}"
    );
    assert_eq!(home.run(&["config", "get", "max_retries"]).ok().stdout, "7\n");
    let entry = config_entry(&home, "max_retries");
    assert_eq!(
        (entry["value"].as_str(), entry["source"].as_str()),
        (Some("7"), Some("file")),
        "{entry:#}"
    );

    // Unsetting again is harmless; dashes work.
    let run = home.run(&["config", "unset", "max-retries"]).ok();
    assert_eq!(run.stdout, "max_retries was not set; it is 7 (from file)\n", "{run:#?}");

    // The file is read by every command: editing it is enough.
    write_config(&home, "max_retries = 4\n");
    assert_eq!(home.run(&["config", "get", "max_retries"]).ok().stdout, "4\n");
    let entry = config_entry(&home, "backoff_base");
    assert_eq!(
        (entry["value"].as_str(), entry["source"].as_str()),
        (Some("2"), Some("default")),
        "{entry:#}"
    );
}

#[test]
fn config_a_jobs_own_field_beats_config() {
    let home = TestHome::new();
    home.run(&["config", "set", "max_retries", "5"]).ok();
    home.run(&["enqueue", r#"{"id":"own","command":"true","max_retries":1}"#])
        .ok();
    home.run(&["enqueue", r#"{"id":"zero","command":"true","max_retries":0}"#])
        .ok();
    home.run(&["enqueue", r#"{"id":"inherits","command":"true"}"#]).ok();
    assert_eq!(home.job("own")["max_retries"], 1);
    assert_eq!(home.job("zero")["max_retries"], 0);
    assert_eq!(home.job("inherits")["max_retries"], 5);
    home.run(&["config", "set", "max_retries", "2"]).ok();
    assert_eq!(home.job("own")["max_retries"], 1);
    assert_eq!(
        home.job("inherits")["max_retries"],
        2,
        "a job without its own value follows config"
    );
}

#[test]
fn config_refuses_an_unknown_key_listing_the_keys() {
    let home = TestHome::new();
    home.run(&["config", "set", "max_retries", "5"]).ok();
    for args in [
        &["config", "set", "colour", "red"][..],
        &["config", "get", "colour"],
        &["config", "unset", "colour"],
    ] {
        let run = assert_refused(&home, args, None, &["colour", "known keys"]);
        for key in [
            "max_retries",
            "backoff_base",
            "backoff_max_seconds",
            "job_timeout_seconds",
        ] {
            assert!(run.stderr.contains(key), "the key list lacks {key}: {run:#?}");
        }
    }
    assert_eq!(home.run(&["config", "get", "max_retries"]).ok().stdout, "5\n");
}

#[test]
fn config_refuses_invalid_values() {
    let home = TestHome::new();
    home.run(&["config", "set", "max_retries", "5"]).ok();
    home.run(&["config", "set", "backoff_base", "3"]).ok();
    assert_refused(
        &home,
        &["config", "set", "max_retries", "abc"],
        None,
        &["max_retries", "abc"],
    );
    assert_refused(
        &home,
        &["config", "set", "max_retries", "2.5"],
        None,
        &["max_retries", "2.5"],
    );
    assert_refused(
        &home,
        &["config", "set", "max_retries", "1001"],
        None,
        &["max_retries", "1001"],
    );
    assert_refused(
        &home,
        &["config", "set", "backoff_base", "0.5"],
        None,
        &["backoff_base", "0.5"],
    );
    assert_refused(
        &home,
        &["config", "set", "backoff-base", "abc"],
        None,
        &["backoff_base", "abc"],
    );
    assert_refused(
        &home,
        &["config", "set", "backoff_max_seconds", "0"],
        None,
        &["backoff_max_seconds"],
    );
    assert_refused(
        &home,
        &["config", "set", "job_timeout_seconds", "0"],
        None,
        &["job_timeout_seconds"],
    );
    assert_eq!(home.run(&["config", "get", "max_retries"]).ok().stdout, "5\n");
    assert_eq!(home.run(&["config", "get", "backoff_base"]).ok().stdout, "3\n");
}

#[test]
fn config_refuses_a_negative_max_retries_naming_the_key() {
    let home = TestHome::new();
    home.run(&["config", "set", "max_retries", "5"]).ok();
    // `-1` is a value here, not an option: it must reach validation and be refused by it.
    assert_refused(
        &home,
        &["config", "set", "max_retries", "-1"],
        None,
        &["max_retries", "-1"],
    );
    assert_refused(
        &home,
        &["config", "set", "max_retries", "--", "-1"],
        None,
        &["max_retries", "-1"],
    );
    assert_eq!(home.run(&["config", "get", "max_retries"]).ok().stdout, "5\n");
}

#[test]
fn config_refuses_a_lease_shorter_than_three_heartbeats() {
    // Such a lease would make live workers on other hosts look dead between two heartbeats.
    let home = TestHome::new();
    assert_refused(
        &home,
        &["config", "set", "heartbeat-seconds", "30"],
        None,
        &["`lease_seconds` (15) must be at least 3 times `heartbeat_seconds` (30)"],
    );
    assert_refused(
        &home,
        &["config", "set", "lease-seconds", "2"],
        None,
        &["lease_seconds"],
    );
    assert_eq!(home.run(&["config", "get", "heartbeat_seconds"]).ok().stdout, "1\n");
    // The same rule for the file: a worker, which runs by these settings, refuses to start.
    let before = home.db_snapshot();
    let good = read_config(&home);
    write_config(&home, "heartbeat_seconds = 10\nlease_seconds = 20\n");
    let run = home.run(&["worker", "start", "--until-empty", "--no-spool"]);
    assert_eq!(run.code, 2, "{run:#?}");
    assert!(
        run.stderr
            .contains("`lease_seconds` (20) must be at least 3 times `heartbeat_seconds` (10)"),
        "{run:#?}"
    );
    assert_eq!(run.stderr.trim_end().lines().count(), 1, "{run:#?}");
    write_config(&home, &good);
    assert_eq!(home.db_snapshot(), before, "a refused command changed the queue");
}

#[test]
fn config_malformed_toml_names_line_and_column_in_every_refusal_and_warning() {
    let home = TestHome::new();
    home.run(&["enqueue", "--id", "job1", "--command", "true"]).ok();
    home.run(&["config", "set", "backoff_base", "3"]).ok();
    let before = home.db_snapshot();
    let good = read_config(&home);
    write_config(&home, "max_retries = 4\nbackoff_base = = 2\n");
    // Commands that only read the queue go on with one warning line (tests/config_file.rs).
    let readers: &[&[&str]] = &[
        &["status"],
        &["status", "--json"],
        &["list"],
        &["list", "--json"],
        &["show", "job1"],
        &["show", "job1", "--json"],
        &["dlq", "list", "--json"],
        &["recover"],
    ];
    for args in readers {
        let run = home.run(args);
        assert_eq!(run.code, 0, "`queuectl {}`: {run:#?}", args.join(" "));
        assert!(
            run.stderr.contains("warning") && run.stderr.contains("line 2") && run.stderr.contains("queuectl.toml"),
            "`queuectl {}` should warn naming the file and line 2: {run:#?}",
            args.join(" ")
        );
        assert_eq!(run.stderr.trim_end().lines().count(), 1, "{run:#?}");
    }
    let commands: &[&[&str]] = &[
        &["config", "list"],
        &["config", "list", "--json"],
        &["config", "get", "max_retries"],
        &["config", "set", "max_retries", "5"],
        &["enqueue", "--command", "true"],
        &["init"],
    ];
    for args in commands {
        let run = home.run(args);
        assert_eq!(
            run.code,
            2,
            "`queuectl {}` with a malformed config file: {run:#?}",
            args.join(" ")
        );
        assert!(
            run.stderr.contains("line 2") && run.stderr.contains("column") && run.stderr.contains("queuectl.toml"),
            "`queuectl {}` should name the file, line 2 and the column: {run:#?}",
            args.join(" ")
        );
        assert_eq!(run.stderr.trim_end().lines().count(), 1, "{run:#?}");
    }
    write_config(&home, &good);
    assert_eq!(
        home.db_snapshot(),
        before,
        "commands refused for a malformed config file changed the queue"
    );
}

#[test]
fn config_unset_with_a_malformed_toml_file_changes_nothing() {
    let home = TestHome::new();
    home.run(&["config", "set", "max_retries", "9"]).ok();
    let good = read_config(&home);
    let before = home.db_snapshot();
    write_config(&home, "max_retries = = 7\n");
    let run = home.run(&["config", "unset", "max_retries"]);
    assert_eq!(run.code, 2, "{run:#?}");
    assert!(
        run.stderr.contains("line 1") && run.stderr.contains("column"),
        "{run:#?}"
    );
    write_config(&home, &good);
    assert_eq!(home.db_snapshot(), before, "a refused `config unset` changed the queue");
    let entry = config_entry(&home, "max_retries");
    assert_eq!(
        (entry["value"].as_str(), entry["source"].as_str()),
        (Some("9"), Some("set")),
        "a refused `config unset` removed the stored value"
    );
}

#[test]
fn config_file_with_an_unknown_key_or_a_bad_value_is_refused() {
    let home = TestHome::new();
    home.run(&["enqueue", "--id", "job1", "--command", "true"]).ok();
    let before = home.db_snapshot();
    let good = read_config(&home);

    write_config(&home, "max_retries = 3\ncolour = \"red\"\n");
    for args in [
        &["enqueue", "--command", "true"][..],
        &["config", "list"],
        &["config", "get", "max_retries"],
        &["config", "set", "max_retries", "4"],
    ] {
        let run = home.run(args);
        assert_eq!(run.code, 2, "{run:#?}");
        assert!(
            run.stderr.contains("colour") && run.stderr.contains("max_retries"),
            "names the key and lists the known ones: {run:#?}"
        );
    }
    write_config(&home, "max_retries = \"lots\"\n");
    let run = home.run(&["config", "get", "max_retries"]);
    assert_eq!(run.code, 2, "{run:#?}");
    assert!(
        run.stderr.contains("lots") && run.stderr.contains("max_retries"),
        "{run:#?}"
    );
    write_config(&home, "max_retries = -1\n");
    let run = home.run(&["config", "list"]);
    assert_eq!(run.code, 2, "{run:#?}");
    assert!(run.stderr.contains("max_retries"), "{run:#?}");
    write_config(&home, "backoff_base = 0.5\n");
    let run = home.run(&["config", "list"]);
    assert_eq!(run.code, 2, "{run:#?}");
    assert!(run.stderr.contains("backoff_base"), "{run:#?}");

    write_config(&home, &good);
    assert_eq!(home.db_snapshot(), before);
}

// ---------------------------------------------------------------------------------------------
// recover, persistence
// ---------------------------------------------------------------------------------------------

#[test]
fn recover_on_an_empty_queue_recovers_nothing() {
    let home = TestHome::new();
    let run = home.run(&["recover"]).ok();
    assert!(run.stdout.contains("recovered 0 jobs"), "{run:#?}");
    home.run(&["enqueue", "--id", "waiting", "--command", "true"]).ok();
    let run = home.run(&["recover"]).ok();
    assert!(
        run.stdout.contains("recovered 0 jobs"),
        "a pending job is not stuck: {run:#?}"
    );
    assert_eq!(home.job("waiting")["state"], "pending");
    assert_eq!(home.job("waiting")["attempts"], 0);
}

#[test]
fn jobs_persist_across_processes() {
    let home = TestHome::new();
    assert_eq!(
        home.run(&["enqueue", r#"{"id":"job1","command":"echo hi"}"#])
            .ok()
            .stdout,
        "job1\n"
    );
    let created = home.job("job1")["created_at"].clone();
    // Separate processes, each opening the database afresh.
    assert_eq!(listed_ids(&home, &[]), vec!["job1"]);
    assert_eq!(home.status()["jobs"]["pending"], 1);
    home.run(&["init"]).ok();
    let job = home.job("job1");
    assert_eq!(job["command"], "echo hi");
    assert_eq!(job["created_at"], created);
    // Config set in one process is seen by the next.
    home.run(&["config", "set", "max_retries", "8"]).ok();
    assert_eq!(home.job("job1")["max_retries"], 8);
    // The same home opened through --home from elsewhere sees the job.
    let other = TestHome::empty();
    let mut command = bare_command(
        &["--home", home.path().to_str().unwrap(), "show", "job1", "--json"],
        other.path(),
    );
    if let Some(location) = home.db_location() {
        command.env("QUEUECTL_DB", location);
    }
    let run = run_command(command);
    assert_eq!(run.code, 0, "{run:#?}");
    assert_eq!(run.json()["id"], "job1");
}

// ---------------------------------------------------------------------------------------------
// completions and help
// ---------------------------------------------------------------------------------------------

#[test]
fn completions_print_a_script() {
    let home = TestHome::empty();
    let run = home.run(&["completions", "bash"]).ok();
    assert!(
        run.stdout.contains("_queuectl") && run.stdout.contains("complete"),
        "{run:#?}"
    );
    assert!(run.stdout.contains("enqueue"), "{run:#?}");
    for shell in ["zsh", "fish"] {
        let run = home.run(&["completions", shell]).ok();
        assert!(run.stdout.contains("queuectl"), "{shell}: {run:#?}");
    }
    let run = home.run(&["completions", "cmd.exe"]);
    assert_eq!(run.code, 2, "{run:#?}");
    assert_eq!(
        entries(home.path()),
        Vec::<String>::new(),
        "completions need no queue and create nothing"
    );
}

/// The subcommands named in the `Commands:` section of a help text (without `help`).
fn subcommands(help: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut inside = false;
    for line in help.lines() {
        if line.starts_with("Commands:") {
            inside = true;
            continue;
        }
        if inside {
            if !line.starts_with("  ") {
                break;
            }
            if let Some(name) = line.split_whitespace().next() {
                if name != "help" && !line.starts_with("   ") {
                    names.push(name.to_string());
                }
            }
        }
    }
    names
}

/// Every command path below `queuectl` (e.g. `["dlq", "retry"]`), with whether it has
/// subcommands of its own, and its help text.
fn command_tree(home: &TestHome) -> Vec<(Vec<String>, bool, Run)> {
    let mut out = Vec::new();
    let mut queue: Vec<Vec<String>> = vec![vec![]];
    while let Some(path) = queue.pop() {
        let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
        args.push("--help");
        let run = home.run(&args);
        let children = subcommands(&run.stdout);
        for child in &children {
            let mut next = path.clone();
            next.push(child.clone());
            queue.push(next);
        }
        out.push((path, !children.is_empty(), run));
    }
    out
}

#[test]
fn every_command_help_exits_0_and_has_an_example() {
    let home = TestHome::empty();
    let tree = command_tree(&home);
    let names: Vec<String> = tree.iter().map(|(p, _, _)| p.join(" ")).collect();
    for core in [
        "init",
        "enqueue",
        "list",
        "show",
        "logs",
        "status",
        "dlq list",
        "dlq retry",
        "config set",
        "config get",
        "config unset",
        "config list",
        "recover",
        "completions",
    ] {
        assert!(
            names.iter().any(|n| n == core),
            "`queuectl {core}` missing from the help tree: {names:?}"
        );
    }
    let mut missing = Vec::new();
    for (path, has_children, run) in &tree {
        assert_eq!(run.code, 0, "`queuectl {} --help`: {run:#?}", path.join(" "));
        if !has_children && !run.stdout.contains("Example") {
            missing.push(path.join(" "));
        }
    }
    assert!(missing.is_empty(), "--help without an example: {missing:?}");
}

#[test]
fn every_command_group_help_has_an_example() {
    // `queuectl dlq --help`, `queuectl config --help`, ... are commands too.
    let home = TestHome::empty();
    let missing: Vec<String> = command_tree(&home)
        .into_iter()
        .filter(|(path, has_children, run)| *has_children && !path.is_empty() && !run.stdout.contains("Example"))
        .map(|(path, _, _)| path.join(" "))
        .collect();
    assert!(missing.is_empty(), "group --help without an example: {missing:?}");
}

#[test]
fn usage_errors_exit_2_and_help_and_version_exit_0() {
    let home = TestHome::empty();
    let run = home.run(&[]);
    assert_eq!(run.code, 2, "no subcommand is a usage error: {run:#?}");
    let run = home.run(&["frobnicate"]);
    assert_eq!(run.code, 2, "{run:#?}");
    let run = home.run(&["--help"]).ok();
    assert!(
        run.stdout.contains("Example") && run.stdout.contains("Exit codes"),
        "{run:#?}"
    );
    let run = home.run(&["--version"]).ok();
    assert!(run.stdout.starts_with("queuectl "), "{run:#?}");
    assert_eq!(entries(home.path()), Vec::<String>::new());
}
