//! `queuectl add` and `queuectl enqueue -- CMD`, black-box: the command exactly as typed, run
//! from where it was typed, with `--cwd`, `--env` and `--env-pass`; and every refusal (exit 2,
//! one line naming what was wrong, the queue unchanged). Jobs really run, in a worker started
//! with `--until-empty` behind a kill guard.

mod common;

use common::process::{Worker, SHORT};
use common::{run_command_within, Run, TestHome};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};
use queuectl::job::shell_command_from_words;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// Runs `queuectl ARGS` in `home` with `dir` as its current directory and `env` added to its
/// environment; killed and failed if it takes longer than [`SHORT`].
#[track_caller]
fn run_from(home: &TestHome, dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut command = home.command(args);
    command.current_dir(dir);
    for (name, value) in env {
        command.env(name, value);
    }
    run_command_within(command, SHORT)
}

/// Adds one job with `args` from the home and returns its id.
#[track_caller]
fn add(home: &TestHome, args: &[&str]) -> String {
    added_id(home.run(args))
}

/// The one id a successful add printed.
#[track_caller]
fn added_id(run: Run) -> String {
    let run = run.ok();
    let id = run.stdout.trim().to_string();
    assert!(!id.is_empty() && !id.contains('\n'), "one id expected: {run:#?}");
    id
}

/// Runs every job to the end with a worker that exits when the queue is empty.
fn run_all_jobs(home: &TestHome) {
    let mut worker = Worker::spawn(home, &["--until-empty"]);
    worker.wait_success(SHORT);
}

/// A finished job's captured stdout, after checking that it completed.
#[track_caller]
fn stdout_of(home: &TestHome, id: &str) -> String {
    let job = home.job(id);
    assert_eq!(job["state"], "completed", "{job:#}");
    home.run(&["logs", id]).ok().stdout
}

/// Asserts a refusal: exit code 2, nothing on stdout, one line on stderr containing every
/// needle, and the queue (jobs and config) unchanged.
#[track_caller]
fn assert_refused(home: &TestHome, args: &[&str], env: &[(&str, &str)], needles: &[&str]) {
    common::refused_unchanged(home, &args.join(" "), needles, || {
        run_from(home, home.path(), args, env)
    });
}

/// The directory as the kernel names it (symlinks resolved), as a job's `pwd` prints it.
fn real(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).expect("canonicalize")
}

/// Arguments that a shell would mangle if they were not quoted: spaces, both quotes, `$`,
/// backslashes, a newline, non-ASCII, glob and control characters, an empty word.
const AWKWARD: &[&str] = &[
    "a b",
    "it's",
    "say \"hi\"",
    "$HOME",
    "${PATH}",
    "back\\slash",
    "two\nlines",
    "naïve ✓ 日本",
    "*",
    "?",
    "[a-z]",
    "",
    ";",
    "&& false",
    "`id`",
    "$(id)",
    "~",
    "#not a comment",
    "  padded  ",
    "'",
    "--flag=value",
];

// ---------------------------------------------------------------------------------------------
// The command exactly as typed
// ---------------------------------------------------------------------------------------------

#[test]
fn several_words_run_exactly_as_typed() {
    let home = TestHome::new();
    for subcommand in [&["add"][..], &["add", "--"], &["enqueue", "--"]] {
        let mut args = subcommand.to_vec();
        args.extend(["printf", "%s|"]);
        args.extend_from_slice(AWKWARD);
        let id = add(&home, &args);
        run_all_jobs(&home);
        let expected: String = AWKWARD.iter().map(|word| format!("{word}|")).collect();
        assert_eq!(stdout_of(&home, &id), expected, "`queuectl {}`", subcommand.join(" "));
    }
}

#[test]
fn plain_words_are_stored_readably() {
    let home = TestHome::new();
    let id = add(&home, &["add", "--", "make", "-j4", "--jobs=4", "a b"]);
    assert_eq!(home.job(&id)["command"], "make -j4 --jobs=4 'a b'");
}

#[test]
fn one_word_is_a_shell_command_string_used_as_is() {
    let home = TestHome::new();
    let shell = add(&home, &["add", "--", "echo one && echo two | tr o 0"]);
    // The same text as two words is two arguments: no shell syntax happens.
    let words = add(&home, &["add", "--", "echo", "one && echo two | tr o 0"]);
    let variable = add(
        &home,
        &["add", "--env", "QX_WORD=from env", "--", "printf %s \"$QX_WORD\""],
    );
    run_all_jobs(&home);
    assert_eq!(stdout_of(&home, &shell), "one\ntw0\n");
    assert_eq!(stdout_of(&home, &words), "one && echo two | tr o 0\n");
    assert_eq!(stdout_of(&home, &variable), "from env");
}

#[test]
fn options_go_before_the_command_and_later_flags_are_the_commands() {
    let home = TestHome::new();
    let id = add(&home, &["add", "--priority", "5", "echo", "--priority", "9", "--", "x"]);
    let job = home.job(&id);
    assert_eq!(job["priority"], 5, "{job:#}");
    run_all_jobs(&home);
    assert_eq!(stdout_of(&home, &id), "--priority 9 -- x\n");
}

#[test]
fn the_field_flags_apply_to_added_jobs() {
    let home = TestHome::new();
    let before = common::now_millis();
    let printed = home
        .run(&[
            "add",
            "--id",
            "named",
            "--max-retries",
            "7",
            "--timeout",
            "90s",
            "--delay",
            "2d",
            "--json",
            "--",
            "true",
        ])
        .ok()
        .json();
    let after = common::now_millis();
    assert_eq!(printed[0]["id"], "named");
    let job = home.job("named");
    assert_eq!(job["max_retries"], 7);
    assert_eq!(job["timeout_seconds"], 90);
    let delay = 2 * 86_400_000;
    assert!(
        (before + delay..=after + delay).contains(&common::millis(&job["run_at"])),
        "--delay 2d: {job:#}"
    );
}

/// Every generated argument list reaches the program unchanged through `sh -c`: the stored
/// command is checked against a real shell, for any text without NUL.
#[test]
fn quoting_round_trips_any_words_through_sh() {
    let seed: u64 = match std::env::var("QUEUECTL_PROPTEST_SEED") {
        Ok(text) => text.parse().expect("QUEUECTL_PROPTEST_SEED must be a number"),
        Err(_) => common::now_millis() as u64 ^ u64::from(std::process::id()).rotate_left(32),
    };
    eprintln!("quoting_round_trips_any_words_through_sh: seed {seed} (replay with QUEUECTL_PROPTEST_SEED={seed})");
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let config = Config {
        cases: 64,
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner = TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &bytes));
    // Mostly shell-significant characters, plus anything else (not NUL: argv cannot hold it).
    let word = prop_oneof!["[ a-z'\"$`\\\\*?\\[\\]{}();&|<>#~!=%,+@:\n\t-]{0,12}", "[^\u{0}]{0,12}",];
    runner
        .run(&vec(word, 1..6), |words| {
            let mut all: Vec<String> = ["sh", "-c", r#"for a in "$@"; do printf '%s\0' "$a"; done"#, "sh"]
                .iter()
                .map(|s| s.to_string())
                .collect();
            all.extend(words.iter().cloned());
            let command = shell_command_from_words(&all).expect("words given");
            let output = Command::new("sh")
                .arg("-c")
                .arg(&command)
                .stdin(Stdio::null())
                .output()
                .map_err(|e| TestCaseError::fail(format!("run sh: {e}")))?;
            let printed: Vec<String> = output
                .stdout
                .split(|b| *b == 0)
                .map(|part| String::from_utf8_lossy(part).into_owned())
                .collect();
            let expected: Vec<String> = words.iter().cloned().chain([String::new()]).collect();
            prop_assert_eq!(printed, expected, "command: {}", command);
            Ok(())
        })
        .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
}

// ---------------------------------------------------------------------------------------------
// Where the job runs
// ---------------------------------------------------------------------------------------------

#[test]
fn an_added_job_runs_in_the_directory_it_was_added_from() {
    let home = TestHome::new();
    let sub = home.path().join("project/sub dir");
    std::fs::create_dir_all(&sub).unwrap();
    let added = added_id(run_from(&home, &sub, &["add", "pwd"], &[]));
    let enqueued = added_id(run_from(&home, &sub, &["enqueue", "--", "pwd"], &[]));
    // --command and JSON keep their old default, the queue home.
    let by_flag = added_id(run_from(&home, &sub, &["enqueue", "--command", "pwd"], &[]));
    let by_json = added_id(run_from(&home, &sub, &["enqueue", r#"{"command":"pwd"}"#], &[]));
    let expected = real(&sub).to_str().unwrap().to_string();
    for id in [&added, &enqueued] {
        assert_eq!(home.job(id)["cwd"], expected.as_str(), "stored absolute");
    }
    for id in [&by_flag, &by_json] {
        assert_eq!(home.job(id)["cwd"], serde_json::Value::Null);
    }
    run_all_jobs(&home);
    for id in [&added, &enqueued] {
        assert_eq!(stdout_of(&home, id), format!("{expected}\n"));
    }
    let home_dir = real(home.path()).to_str().unwrap().to_string();
    for id in [&by_flag, &by_json] {
        assert_eq!(stdout_of(&home, id), format!("{home_dir}\n"));
    }
}

#[test]
fn cwd_flag_sets_the_directory_absolute_for_every_form() {
    let home = TestHome::new();
    let other = home.path().join("other");
    let elsewhere = home.path().join("elsewhere");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::create_dir_all(&elsewhere).unwrap();
    // Relative to where the command runs (here: `elsewhere`), stored absolute.
    let added = added_id(run_from(&home, &elsewhere, &["add", "--cwd", "../other", "pwd"], &[]));
    let by_flag = add(&home, &["enqueue", "--cwd", "other", "--command", "pwd"]);
    let by_json = home
        .run(&["enqueue", "--cwd", "other", r#"[{"command":"pwd"},{"command":"pwd"}]"#])
        .ok()
        .stdout;
    let expected = real(&other).to_str().unwrap().to_string();
    for id in [&added, &by_flag] {
        assert_eq!(home.job(id)["cwd"], expected.as_str());
    }
    let by_json: Vec<&str> = by_json.lines().collect();
    assert_eq!(by_json.len(), 2);
    run_all_jobs(&home);
    for id in [added.as_str(), by_flag.as_str(), by_json[0], by_json[1]] {
        assert_eq!(stdout_of(&home, id), format!("{expected}\n"));
    }
}

#[test]
fn a_spooled_add_keeps_its_directory() {
    let home = TestHome::new();
    let sub = home.path().join("sub");
    std::fs::create_dir_all(&sub).unwrap();
    let id = added_id(run_from(
        &home,
        &sub,
        &["add", "--spool", "--id", "spooled", "pwd"],
        &[],
    ));
    assert_eq!(id, "spooled");
    home.run(&["spool", "ingest"]).ok();
    run_all_jobs(&home);
    assert_eq!(stdout_of(&home, "spooled"), format!("{}\n", real(&sub).display()));
}

// ---------------------------------------------------------------------------------------------
// Environment
// ---------------------------------------------------------------------------------------------

#[test]
fn env_and_env_pass_reach_the_job() {
    let home = TestHome::new();
    let id = added_id(run_from(
        &home,
        home.path(),
        &[
            "add",
            "--env",
            "QX_GREETING=hello world",
            "--env",
            "QX_EQUALS=a=b",
            "--env",
            "QX_EMPTY=",
            "--env-pass",
            "QX_PASSED",
            "--",
            "sh",
            "-c",
            r#"printf '%s|%s|%s|%s' "$QX_GREETING" "$QX_EQUALS" "${QX_EMPTY-unset}" "$QX_PASSED""#,
        ],
        &[("QX_PASSED", "from the adding shell $x")],
    ));
    let env = &home.job(&id)["env"];
    assert_eq!(env["QX_PASSED"], "from the adding shell $x", "{env:#}");
    // The worker's own environment does not have the variable: the job's value is the copy.
    run_all_jobs(&home);
    assert_eq!(stdout_of(&home, &id), "hello world|a=b||from the adding shell $x");
}

#[test]
fn env_flags_apply_to_every_json_job() {
    let home = TestHome::new();
    let ids = home
        .run(&[
            "enqueue",
            "--env",
            "QX_A=1",
            "{\"command\":\"printf $QX_A\"}\n{\"command\":\"printf $QX_A$QX_A\"}",
        ])
        .ok()
        .stdout;
    run_all_jobs(&home);
    let ids: Vec<&str> = ids.lines().collect();
    assert_eq!(stdout_of(&home, ids[0]), "1");
    assert_eq!(stdout_of(&home, ids[1]), "11");
}

// ---------------------------------------------------------------------------------------------
// Refusals
// ---------------------------------------------------------------------------------------------

#[test]
fn bad_directories_are_refused_naming_them() {
    let home = TestHome::new();
    std::fs::write(home.path().join("a-file"), "x").unwrap();
    assert_refused(
        &home,
        &["add", "--cwd", "no-such-dir", "true"],
        &[],
        &["--cwd", "`no-such-dir`", "no such directory"],
    );
    assert_refused(
        &home,
        &["add", "--cwd", "a-file", "true"],
        &[],
        &["--cwd", "`a-file`", "not a directory"],
    );
    assert_refused(
        &home,
        &["enqueue", "--cwd", "no-such-dir", "--command", "true"],
        &[],
        &["`no-such-dir`"],
    );
    assert_refused(
        &home,
        &["enqueue", "--cwd", ".", r#"{"command":"true","cwd":"/"}"#],
        &[],
        &["--cwd conflicts with the job's own `cwd` field"],
    );
}

#[test]
fn bad_environment_flags_are_refused_naming_the_variable() {
    let home = TestHome::new();
    assert_refused(
        &home,
        &["add", "--env", "1X=y", "true"],
        &[],
        &["--env", "`1X`", "not a valid variable name"],
    );
    assert_refused(&home, &["add", "--env", "A-B=y", "true"], &[], &["`A-B`"]);
    assert_refused(
        &home,
        &["add", "--env", "=y", "true"],
        &[],
        &["--env", "not a valid variable name"],
    );
    assert_refused(
        &home,
        &["add", "--env", "QX_NOVALUE", "true"],
        &[],
        &["--env", "`QX_NOVALUE`", "NAME=VALUE"],
    );
    assert_refused(
        &home,
        &["add", "--env-pass", "QX_SURELY_UNSET", "true"],
        &[],
        &["--env-pass", "`QX_SURELY_UNSET`", "not set"],
    );
    assert_refused(
        &home,
        &["add", "--env-pass", "bad-name", "true"],
        &[("bad-name", "x")],
        &["--env-pass", "`bad-name`"],
    );
    assert_refused(
        &home,
        &["add", "--env", "QX_A=1", "--env", "QX_A=2", "true"],
        &[],
        &["`QX_A`", "twice"],
    );
    assert_refused(
        &home,
        &["add", "--env", "QX_A=1", "--env-pass", "QX_A", "true"],
        &[("QX_A", "x")],
        &["`QX_A`", "twice"],
    );
    assert_refused(
        &home,
        &["enqueue", "--env", "QX_A=1", r#"{"command":"true","env":{}}"#],
        &[],
        &["--env conflicts with the job's own `env` field"],
    );
    assert_refused(
        &home,
        &["enqueue", "--env-pass", "HOME", r#"{"command":"true","env":{"B":"c"}}"#],
        &[],
        &["--env-pass conflicts with the job's own `env` field"],
    );
}

#[test]
fn a_command_given_to_enqueue_as_its_argument_hints_at_add() {
    let home = TestHome::new();
    assert_refused(
        &home,
        &["enqueue", "echo hi"],
        &[],
        &["JSON", "did you mean `queuectl add -- echo hi`?"],
    );
    assert_refused(
        &home,
        &["enqueue", "cd x && make"],
        &[],
        &["did you mean `queuectl add -- 'cd x && make'`?"],
    );
    // Broken JSON is a JSON mistake: no hint.
    let before = home.db_snapshot();
    let run = home.run(&["enqueue", r#"{"command": "#]).code(2);
    assert!(!run.stderr.contains("did you mean"), "{run:#?}");
    assert_eq!(home.db_snapshot(), before);
}

#[test]
fn bad_times_and_commands_are_refused() {
    let home = TestHome::new();
    assert_refused(
        &home,
        &["add", "--run-at", "someday", "true"],
        &[],
        &["--run-at", "`someday`", "tomorrow [TIME]"],
    );
    assert_refused(
        &home,
        &["add", "--delay", "soon", "true"],
        &[],
        &["--delay", "`soon`", "1h30m"],
    );
    assert_refused(&home, &["add", "--", ""], &[], &["command"]);
    assert_refused(&home, &["add", "   "], &[], &["command"]);
    // Usage errors (clap's own several-line message): exit 2, nothing written.
    for args in [
        &["add"][..],
        &["add", "--"],
        &["enqueue", r#"{"command":"a"}"#, "--", "b"],
        &["enqueue", "--command", "a", "--", "b"],
        &["add", "--delay", "1s", "--run-at", "now", "true"],
        // A mistyped option before the command is an error, never the start of a command.
        &["add", "--prio", "3", "echo"],
        &["add", "-x", "echo"],
    ] {
        let before = home.db_snapshot();
        let run = home.run(args);
        assert_eq!(run.code, 2, "`queuectl {}`: {run:#?}", args.join(" "));
        assert_eq!(run.stdout, "");
        assert_eq!(home.db_snapshot(), before);
    }
}
