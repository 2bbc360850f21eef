//! Black-box tests of `QUEUECTL_<KEY>` environment variables: they beat the config file,
//! `config set` beats them, `config list`/`config get --json` show the source `env`, a bad value
//! is refused naming the variable (exit 2, nothing changed), workers run with them, and the
//! variables a job inherits (`QUEUECTL_JOB_ID`, `QUEUECTL_LEASE`, ...) are never read as settings.

mod common;

use common::process::{Worker, SHORT};
use common::{bin, signal, Run, TestHome, COMMAND_DEADLINE};
use serde_json::Value;
use std::process::Stdio;

/// Runs `queuectl ARGS` in `home` with extra environment variables, with the usual deadline.
#[track_caller]
fn run_env(home: &TestHome, args: &[&str], vars: &[(&str, &str)]) -> Run {
    let mut command = home.command(args);
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    for (name, value) in vars {
        command.env(name, value);
    }
    let child = command.spawn().expect("spawn queuectl");
    let pid = child.id();
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = sender.send(child.wait_with_output());
    });
    let output = match receiver.recv_timeout(COMMAND_DEADLINE) {
        Ok(output) => output.expect("wait for queuectl"),
        Err(_) => {
            signal(pid, libc::SIGKILL);
            panic!(
                "`queuectl {}` still running after {COMMAND_DEADLINE:?}: killed",
                args.join(" ")
            );
        }
    };
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn append_config(home: &TestHome, line: &str) {
    use std::io::Write;
    let path = home.path().join("config/queuectl.toml");
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .expect("open config");
    writeln!(file, "{line}").expect("append to config");
}

/// The default file sets `max_retries = 3`; make it say `value` instead.
fn set_file_max_retries(home: &TestHome, value: u32) {
    let path = home.path().join("config/queuectl.toml");
    let text = std::fs::read_to_string(&path).expect("read config");
    assert!(
        text.contains("\nmax_retries = 3\n"),
        "the default file sets max_retries:\n{text}"
    );
    std::fs::write(
        &path,
        text.replace("\nmax_retries = 3\n", &format!("\nmax_retries = {value}\n")),
    )
    .expect("write");
}

fn entry<'a>(list: &'a Value, key: &str) -> &'a Value {
    list.as_array()
        .expect("config list --json is an array")
        .iter()
        .find(|e| e["key"] == key)
        .unwrap_or_else(|| panic!("no {key} in {list}"))
}

#[test]
fn the_environment_overrides_the_file_and_list_shows_the_source_env() {
    let home = TestHome::new();
    set_file_max_retries(&home, 5);
    append_config(&home, "hooks.on_dead = \"echo from-file\"");
    let vars = [
        ("QUEUECTL_MAX_RETRIES", "7"),
        ("QUEUECTL_HOOKS_ON_DEAD", "echo from-env"),
    ];

    let get = run_env(&home, &["config", "get", "max-retries", "--json"], &vars)
        .ok()
        .json();
    assert_eq!(get["value"], "7");
    assert_eq!(get["source"], "env");
    assert_eq!(get["env"], "QUEUECTL_MAX_RETRIES");

    let list = run_env(&home, &["config", "list", "--json"], &vars).ok().json();
    assert_eq!(entry(&list, "max_retries")["source"], "env");
    assert_eq!(entry(&list, "hooks.on_dead")["value"], "echo from-env");
    assert_eq!(entry(&list, "hooks.on_dead")["env"], "QUEUECTL_HOOKS_ON_DEAD");
    assert_eq!(entry(&list, "backoff_base")["source"], "file");
    assert_eq!(entry(&list, "backoff_max_seconds")["source"], "file");
    assert_eq!(entry(&list, "worker_count")["source"], "default");

    let table = run_env(&home, &["config", "list"], &vars).ok().stdout;
    let row = table
        .lines()
        .find(|l| l.starts_with("max_retries "))
        .unwrap_or_else(|| panic!("no max_retries row:\n{table}"));
    let columns: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(&columns[..3], ["max_retries", "7", "env"], "{row}");

    // Without the variable the file applies again: nothing was stored.
    let get = home.run(&["config", "get", "max_retries", "--json"]).ok().json();
    assert_eq!(
        (get["value"].as_str(), get["source"].as_str()),
        (Some("5"), Some("file"))
    );
}

#[test]
fn config_set_beats_the_environment_and_unset_hands_the_key_back() {
    let home = TestHome::new();
    let vars = [("QUEUECTL_MAX_RETRIES", "7")];
    run_env(&home, &["config", "set", "max_retries", "9"], &vars).ok();
    let get = run_env(&home, &["config", "get", "max_retries", "--json"], &vars)
        .ok()
        .json();
    assert_eq!(
        (get["value"].as_str(), get["source"].as_str()),
        (Some("9"), Some("set"))
    );

    let unset = run_env(&home, &["config", "unset", "max_retries"], &vars).ok();
    assert_eq!(unset.stdout.trim(), "max_retries unset; now 7 (from env)");
}

#[test]
fn a_bad_environment_value_is_refused_naming_the_variable_and_the_type() {
    let home = TestHome::new();
    home.run(&["enqueue", "--command", "true", "--id", "before"]).ok();
    let before = home.db_snapshot();
    let cases: [(&str, &str, &str); 4] = [
        ("QUEUECTL_MAX_RETRIES", "lots", "must be an integer from 0 to 1000"),
        ("QUEUECTL_BACKOFF_BASE", "0.5", "must be a number from 1 to 1000"),
        ("QUEUECTL_SPOOL_KEEP_INGESTED", "maybe", "must be true or false"),
        ("QUEUECTL_SPOOL_DIR", "", "must not be empty"),
    ];
    for (name, value, expected) in cases {
        for args in [
            &["enqueue", "--command", "true", "--id", "refused"][..],
            &["config", "list"][..],
            &["config", "set", "worker_count", "2"][..],
            &["worker", "start", "--until-idle", "--no-spool"][..],
        ] {
            let run = run_env(&home, args, &[(name, value)]).code(2);
            let line = run.stderr.trim();
            assert!(!line.contains('\n'), "one line: {line}");
            assert!(
                line.contains(&format!("environment variable `{name}`")) && line.ends_with(expected),
                "`{}` with {name}={value:?}: {line}",
                args.join(" ")
            );
        }
    }
    assert_eq!(home.db_snapshot(), before, "a refused command changed nothing");
}

#[test]
fn the_environment_rule_between_keys_names_the_variable() {
    let home = TestHome::new();
    let run = run_env(&home, &["config", "list"], &[("QUEUECTL_HEARTBEAT_SECONDS", "10")]).code(2);
    assert!(
        run.stderr
            .contains("heartbeat_seconds from `QUEUECTL_HEARTBEAT_SECONDS`"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_worker_runs_with_the_settings_its_environment_gives() {
    let home = TestHome::new();
    home.run(&["enqueue", "--command", "exit 1", "--id", "fails"]).ok();
    // max_retries 0 from the environment beats the file's 3: one run, then the DLQ.
    let run = run_env(
        &home,
        &["worker", "start", "--until-empty", "--no-spool"],
        &[("QUEUECTL_MAX_RETRIES", "0")],
    )
    .code(3);
    assert!(
        run.stdout.contains("Job fails moved to DLQ after 1 attempt: exit 1"),
        "{}",
        run.stdout
    );
    assert_eq!(home.job("fails")["attempts"], 1);
}

#[test]
fn variables_a_job_inherits_are_not_read_as_settings() {
    let home = TestHome::new();
    // The job runs `queuectl config list --json` with the job variables (QUEUECTL_JOB_ID,
    // QUEUECTL_ATTEMPT, QUEUECTL_LEASE) and QUEUECTL_HOME in its environment.
    let job = serde_json::json!({
        "id": "inner",
        "command": "\"$QUEUECTL_BIN\" config list --json",
        "env": {"QUEUECTL_BIN": bin().display().to_string(), "QUEUECTL_JOB_STATE": "x"},
    });
    home.run(&["enqueue", &job.to_string()]).ok();
    let mut worker = Worker::spawn(&home, &["--until-empty"]);
    worker.wait_success(SHORT);
    let shown = home.job("inner");
    assert_eq!(shown["state"], "completed", "{shown}");
    let list: Value = serde_json::from_str(shown["stdout"].as_str().expect("stdout")).expect("json");
    for entry in list.as_array().expect("array") {
        assert_ne!(entry["source"], "env", "{entry}");
    }
}
