//! Black-box tests of `config/queuectl.toml`: file modes whatever the umask, strict types,
//! a generated file that takes appended lines, read-only commands that survive a broken file,
//! running workers that keep their last good settings, non-UTF-8 bytes, and arbitrary files
//! through the binary. Nothing sleeps to wait: every wait polls a condition with a deadline.

mod common;

use common::{bin, is_postgres, run_command, signal, skipped_under_postgres, wait_until, Run, TestHome};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use serde_json::Value;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const SHORT: Duration = Duration::from_secs(15);

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn config_path(home: &TestHome) -> PathBuf {
    home.path().join("config/queuectl.toml")
}

fn write_config(home: &TestHome, bytes: impl AsRef<[u8]>) {
    std::fs::write(config_path(home), bytes).expect("write config");
}

fn read_config(home: &TestHome) -> String {
    std::fs::read_to_string(config_path(home)).expect("read config")
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// Runs `queuectl ARGS` in `home` through `sh -c 'umask UMASK; exec queuectl ARGS'`.
fn run_with_umask(home: &TestHome, umask: &str, args: &[&str]) -> Run {
    let mut command = std::process::Command::new("/bin/sh");
    command
        .arg("-c")
        .arg(format!("umask {umask}; exec \"$0\" \"$@\""))
        .arg(bin())
        .args(args)
        .env("QUEUECTL_HOME", home.path())
        .current_dir(home.path())
        .stdin(Stdio::null());
    home.set_db_env(&mut command);
    run_command(command)
}

/// Every file and directory under `dir`, with its mode.
fn modes_under(dir: &Path) -> Vec<(PathBuf, u32)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read_dir") {
        let path = entry.expect("entry").path();
        found.push((path.clone(), mode(&path)));
        if path.is_dir() {
            found.extend(modes_under(&path));
        }
    }
    found
}

/// The jobs and stored settings, read by commands that work even when the file is broken.
fn queue_state(home: &TestHome) -> String {
    let jobs = home.run(&["list", "--json"]).ok().stdout;
    format!("{jobs}\n{}", home.db_dump())
}

/// The stored (`config set`) value of a key, read with a known-good config file in place.
fn stored_setting(home: &TestHome, key: &str) -> (String, String) {
    let list = home.run(&["config", "list", "--json"]).ok().json();
    let entry = list
        .as_array()
        .and_then(|a| a.iter().find(|e| e["key"] == key))
        .unwrap_or_else(|| panic!("no {key} in config list"))
        .clone();
    (
        entry["value"].as_str().unwrap_or("").to_string(),
        entry["source"].as_str().unwrap_or("").to_string(),
    )
}

/// Asserts a refusal: exit code 2, nothing on stdout, one line on stderr with every needle.
#[track_caller]
fn assert_refused(run: &Run, what: &str, needles: &[&str]) {
    assert!(run.code == 2, "{what} should exit 2: {run:#?}");
    run.assert_refusal(needles);
}

/// Asserts success with exactly one warning line on stderr holding every needle.
#[track_caller]
fn assert_warned_once(run: &Run, what: &str, needles: &[&str]) {
    assert_eq!(run.code, 0, "{what} should succeed: {run:#?}");
    let lines: Vec<&str> = run.stderr.trim_end().lines().collect();
    assert_eq!(lines.len(), 1, "{what}: one warning line on stderr: {run:#?}");
    assert!(lines[0].starts_with("queuectl: warning: "), "{what}: {run:#?}");
    for needle in needles {
        assert!(lines[0].contains(needle), "{what}: warning lacks {needle:?}: {run:#?}");
    }
}

/// A foreground `queuectl worker start --no-spool`, its output collected, killed if the test
/// ends while it runs.
struct Worker {
    child: Child,
    output: Arc<Mutex<String>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

impl Worker {
    fn start(home: &TestHome) -> Worker {
        let mut child = home
            .command(&["worker", "start", "--no-spool"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn worker");
        let output = Arc::new(Mutex::new(String::new()));
        let mut readers = Vec::new();
        let streams: Vec<Box<dyn Read + Send>> = vec![
            Box::new(child.stdout.take().expect("stdout")),
            Box::new(child.stderr.take().expect("stderr")),
        ];
        for mut stream in streams {
            let output = output.clone();
            readers.push(std::thread::spawn(move || {
                let mut buffer = [0u8; 4096];
                while let Ok(n @ 1..) = stream.read(&mut buffer) {
                    output.lock().unwrap().push_str(&String::from_utf8_lossy(&buffer[..n]));
                }
            }));
        }
        Worker { child, output, readers }
    }

    fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    /// SIGTERM, then waits for the exit and the end of its output.
    fn stop(&mut self) -> String {
        signal(self.child.id(), libc::SIGTERM);
        let child = &mut self.child;
        wait_until("the worker to exit", SHORT, || matches!(child.try_wait(), Ok(Some(_))));
        for reader in std::mem::take(&mut self.readers) {
            let _ = reader.join();
        }
        self.output()
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            signal(self.child.id(), libc::SIGKILL);
            let _ = self.child.wait();
        }
    }
}

/// Kills a detached worker (not our child) when the test ends, if it still runs.
struct KillOnDrop(u32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let alive = std::fs::read_to_string(format!("/proc/{}/stat", self.0))
            .map(|stat| !stat.rsplit(')').next().unwrap_or("").trim_start().starts_with('Z'))
            .unwrap_or(false);
        if alive {
            signal(self.0, libc::SIGKILL);
        }
    }
}

fn job_state(home: &TestHome, id: &str) -> String {
    let run = home.run(&["show", id, "--json"]);
    assert_eq!(run.code, 0, "{run:#?}");
    serde_json::from_str::<Value>(&run.stdout).expect("show --json")["state"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

// ---------------------------------------------------------------------------------------------
// 1. File modes whatever the umask, and a warning for a config file others can write
// ---------------------------------------------------------------------------------------------

#[test]
fn init_under_umask_000_leaves_nothing_in_the_home_writable_by_others() {
    let home = TestHome::empty();
    let run = run_with_umask(&home, "000", &["init"]);
    assert_eq!(run.code, 0, "{run:#?}");
    assert_eq!(run.stderr, "", "no warning about files init just made: {run:#?}");
    assert_eq!(mode(&config_path(&home)), 0o600, "config/queuectl.toml");
    assert_eq!(mode(&home.path().join("config")), 0o700, "config/");
    if !is_postgres() {
        assert_eq!(mode(&home.path().join("queue.db")), 0o600, "queue.db");
    }
    for (path, mode) in modes_under(home.path()) {
        assert_eq!(mode & 0o022, 0, "{} is writable by others: {mode:o}", path.display());
    }
}

#[test]
fn detached_worker_logs_are_private_whatever_the_umask() {
    for umask in ["000", "022"] {
        let home = TestHome::new();
        let run = run_with_umask(&home, umask, &["worker", "start", "--detach", "--no-spool"]);
        assert_eq!(run.code, 0, "umask {umask}: {run:#?}");
        let pid: u32 = run
            .stdout
            .split("(PID ")
            .nth(1)
            .and_then(|rest| rest.split(')').next())
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no PID in {run:#?}"));
        let _guard = KillOnDrop(pid);
        let log = run
            .stdout
            .lines()
            .find_map(|l| l.strip_prefix("log: "))
            .unwrap_or_else(|| panic!("no log path in {run:#?}"))
            .to_string();
        assert_eq!(mode(Path::new(&log)), 0o600, "umask {umask}: the worker log");
        assert_eq!(mode(&home.path().join("logs")), 0o700, "umask {umask}: logs/");
        home.run(&["worker", "stop", "--timeout", "10s"]).ok();
    }
}

#[test]
fn a_config_file_others_can_write_is_warned_about() {
    let home = TestHome::new();
    let config = config_path(&home);
    chmod(&config, 0o666);
    let run = home.run(&["status"]);
    assert_warned_once(
        &run,
        "status with a world-writable config",
        &["queuectl.toml", "world-writable (mode 0666)", "hooks", "chmod 600"],
    );
    chmod(&config, 0o620);
    let run = home.run(&["config", "get", "max_retries"]);
    assert_warned_once(&run, "config get", &["group-writable (mode 0620)"]);
    assert_eq!(run.stdout, "3\n");
    // init keeps an existing file, and still says it is loose.
    let run = home.run(&["init"]);
    assert_warned_once(&run, "init", &["group-writable (mode 0620)"]);
    // A worker is where the hooks run: it says so before it starts.
    let run = home.run(&["worker", "start", "--until-empty", "--no-spool"]);
    assert_eq!(run.code, 0, "{run:#?}");
    assert!(run.stderr.contains("group-writable (mode 0620)"), "{run:#?}");

    chmod(&config, 0o600);
    chmod(&home.path().join("config"), 0o777);
    let run = home.run(&["status"]);
    assert_warned_once(
        &run,
        "status with a world-writable config dir",
        &["config is world-writable", "chmod 700"],
    );
    chmod(&home.path().join("config"), 0o700);
    let run = home.run(&["status"]).ok();
    assert_eq!(run.stderr, "", "a private config file is not warned about: {run:#?}");
}

// ---------------------------------------------------------------------------------------------
// 2. Wrong types and empty strings are errors naming key, line and expected type
// ---------------------------------------------------------------------------------------------

#[test]
fn wrong_typed_config_values_are_errors_naming_key_line_and_expected_type() {
    let home = TestHome::new();
    home.run(&["enqueue", "--id", "job1", "--command", "true"]).ok();
    let good = read_config(&home);
    let before = queue_state(&home);
    let cases: &[(&str, &[&str])] = &[
        (
            "[hooks]\non_dead = 5\n",
            &["`hooks.on_dead`", "line 2", "must be a string", "found an integer (5)"],
        ),
        (
            "spool_dir = 5\n",
            &[
                "`spool_dir`",
                "line 1",
                "must be a non-empty string",
                "found an integer",
            ],
        ),
        (
            "# retries\nmax_retries = \"5\"\n",
            &[
                "`max_retries`",
                "line 2",
                "must be an integer from 0 to 1000",
                "found a string",
            ],
        ),
        (
            "spool_keep_ingested = \"yes\"\n",
            &["`spool_keep_ingested`", "line 1", "must be true or false"],
        ),
        (
            "backoff_base = true\n",
            &[
                "`backoff_base`",
                "line 1",
                "must be a number from 1 to 1000",
                "found a boolean",
            ],
        ),
        (
            "spool_allowed_uids = \"1000\"\n",
            &["`spool_allowed_uids`", "line 1", "must be an array of uids"],
        ),
        ("spool_dir = \"\"\n", &["`spool_dir`", "line 1", "must not be empty"]),
    ];
    for (text, needles) in cases {
        write_config(&home, text);
        let mut with_file: Vec<&str> = needles.to_vec();
        with_file.push("queuectl.toml");
        for args in [
            &["config", "get", "max_retries"][..],
            &["config", "list"],
            &["enqueue", "--id", "job2", "--command", "true"],
            &["worker", "start", "--until-empty", "--no-spool"],
        ] {
            let run = home.run(args);
            assert_refused(&run, &format!("`{}` with {text:?}", args.join(" ")), &with_file);
        }
    }
    write_config(&home, &good);
    assert_eq!(queue_state(&home), before, "a refused command changed the queue");
}

#[test]
fn config_set_refuses_an_empty_spool_dir_and_keeps_the_old_one() {
    let home = TestHome::new();
    home.run(&["config", "set", "spool_dir", "inbox"]).ok();
    for empty in ["", "   "] {
        let run = home.run(&["config", "set", "spool_dir", empty]);
        assert_refused(&run, "config set spool_dir ''", &["spool_dir", "must not be empty"]);
    }
    assert_eq!(stored_setting(&home, "spool_dir"), ("inbox".into(), "set".into()));
    // An empty hook is meaningful: it switches off a hook the file sets.
    write_config(&home, format!("{}hooks.on_dead = \"echo dead\"\n", read_config(&home)));
    home.run(&["config", "set", "hooks.on_dead", ""]).ok();
    assert_eq!(stored_setting(&home, "hooks.on_dead"), ("".into(), "set".into()));
}

// ---------------------------------------------------------------------------------------------
// 3. The generated file takes appended lines; unknown keys get the nearest one suggested
// ---------------------------------------------------------------------------------------------

/// Appends a line the way a person would: `echo LINE >> config/queuectl.toml`.
fn append_line(home: &TestHome, line: &str) {
    let status = std::process::Command::new("/bin/sh")
        .arg("-c")
        .arg("echo \"$1\" >> config/queuectl.toml")
        .arg("sh")
        .arg(line)
        .current_dir(home.path())
        .status()
        .expect("sh");
    assert!(status.success());
}

#[test]
fn keys_appended_to_the_generated_file_stay_top_level() {
    let home = TestHome::new();
    append_line(&home, "job_timeout_seconds = 60");
    append_line(&home, "hooks.on_dead = \"echo dead\"");
    append_line(&home, "worker-count = 2");
    assert_eq!(
        stored_setting(&home, "job_timeout_seconds"),
        ("60".into(), "file".into())
    );
    assert_eq!(
        stored_setting(&home, "hooks.on_dead"),
        ("echo dead".into(), "file".into())
    );
    assert_eq!(stored_setting(&home, "worker_count"), ("2".into(), "file".into()));
    for args in [
        &["status"][..],
        &["list"],
        &["recover"],
        &["worker", "stop"],
        &["config", "list"],
    ] {
        let run = home.run(args).ok();
        assert!(
            !run.stderr.contains("warning") && !run.stderr.contains("error"),
            "`{}`: {run:#?}",
            args.join(" ")
        );
    }
}

#[test]
fn appending_a_key_the_file_already_sets_names_both_lines() {
    let home = TestHome::new();
    let first = read_config(&home)
        .lines()
        .position(|l| l.starts_with("max_retries = "))
        .expect("the generated file sets max_retries")
        + 1;
    append_line(&home, "max_retries = 5");
    let last = read_config(&home).lines().count();
    let run = home.run(&["config", "get", "max_retries"]);
    assert_refused(
        &run,
        "config get",
        &[
            &format!("line {last}"),
            "duplicate key `max_retries`",
            &format!("first set at line {first}"),
        ],
    );
    // Looking at the queue still works meanwhile.
    assert_warned_once(&home.run(&["status"]), "status", &["duplicate key `max_retries`"]);
}

#[test]
fn a_key_appended_under_an_old_style_hooks_table_says_where_it_landed() {
    let home = TestHome::new();
    // The file earlier versions generated ended with a `[hooks]` table.
    home.run(&["enqueue", "--id", "job1", "--command", "true"]).ok();
    write_config(&home, "max_retries = 3\n\n[hooks]\n# on_dead = \"notify-send dead\"\n");
    let run = home.run(&["config", "get", "max_retries"]).ok();
    assert_eq!(run.stdout, "3\n", "the [hooks] table form is still read");
    append_line(&home, "backoff_base = 5");
    let run = home.run(&["config", "get", "backoff_base"]);
    assert_refused(
        &run,
        "config get",
        &[
            "`backoff_base` at line 5 is inside the `[hooks]` table that starts at line 3",
            "move it above",
        ],
    );
    for args in [&["status"][..], &["list"], &["worker", "stop"], &["recover"]] {
        assert_warned_once(&home.run(args), &args.join(" "), &["inside the `[hooks]` table"]);
    }
}

#[test]
fn an_unknown_key_suggests_the_nearest_one() {
    let home = TestHome::new();
    write_config(&home, "backoff_base = 2\n\nmax_retry = 5\n");
    let run = home.run(&["config", "get", "backoff_base"]);
    assert_refused(
        &run,
        "config get",
        &["unknown key `max_retry` at line 3; did you mean `max_retries`?"],
    );
    write_config(&home, "[hooks]\nondead = \"echo\"\n");
    let run = home.run(&["enqueue", "--command", "true"]);
    assert_refused(
        &run,
        "enqueue",
        &["unknown key `hooks.ondead` at line 2; did you mean `hooks.on_dead`?"],
    );
    // `config set` suggests too.
    write_config(&home, "");
    let run = home.run(&["config", "set", "max-retry", "5"]);
    assert_refused(
        &run,
        "config set",
        &["unknown config key `max-retry`; did you mean `max_retries`?"],
    );
}

// ---------------------------------------------------------------------------------------------
// 4. Read-only commands survive a broken file; commands that need settings refuse it
// ---------------------------------------------------------------------------------------------

/// Broken files, each with what the message must say.
const BROKEN: &[(&[u8], &str)] = &[
    (
        b"max_retries = 4\nbackoff_base = = 2\n",
        "queuectl.toml: line 2, column",
    ),
    (
        b"max_retries = 4\ncolour = 1\n",
        "queuectl.toml: unknown key `colour` at line 2",
    ),
    (
        b"[hooks]\non_dead = 5\n",
        "queuectl.toml: line 2: `hooks.on_dead` must be a string",
    ),
    (
        b"lease_seconds = 3\nheartbeat_seconds = 2\n",
        "`lease_seconds` (3) must be at least 3 times `heartbeat_seconds` (2) (lease_seconds from ",
    ),
    (
        b"max_retries = 4\n# caf\xe9\n",
        "queuectl.toml: not valid UTF-8 at byte 21 (line 2)",
    ),
];

#[test]
fn read_only_commands_work_with_a_one_line_warning_when_the_config_file_is_broken() {
    let home = TestHome::new();
    home.run(&["config", "set", "max_retries", "6"]).ok();
    home.run(&["enqueue", "--id", "job1", "--command", "true"]).ok();
    home.run(&["enqueue", "--id", "job2", "--command", "true", "--max-retries", "1"])
        .ok();
    for (bytes, problem) in BROKEN {
        write_config(&home, bytes);
        for args in [
            &["status"][..],
            &["status", "--json"],
            &["list"],
            &["list", "--json"],
            &["show", "job1"],
            &["show", "job1", "--json"],
            &["dlq", "list", "--json"],
            &["recover"],
            &["worker", "stop"],
        ] {
            let what = format!("`{}` with {:?}", args.join(" "), String::from_utf8_lossy(bytes));
            let run = home.run(args);
            assert_warned_once(&run, &what, &[problem, "ignoring the config file"]);
            if args.contains(&"--json") {
                serde_json::from_str::<Value>(&run.stdout)
                    .unwrap_or_else(|e| panic!("{what}: stdout is not JSON ({e}): {run:#?}"));
            }
        }
        // The stored value still applies; the file's does not.
        let job = home.run(&["show", "job1", "--json"]).ok().json();
        assert_eq!(job["max_retries"], 6, "{job:#}");
        // `logs` and `wait` never read the settings: they work as ever, without a word.
        let logs = home.run(&["logs", "job1"]).ok();
        assert!(!logs.stderr.contains("warning"), "{logs:#?}");
        let wait = home.run(&["wait", "job1", "--timeout", "1ms"]).code(1);
        assert!(!wait.stderr.contains("warning"), "{wait:#?}");
    }
}

#[test]
fn commands_that_need_settings_refuse_a_broken_config_file_and_change_nothing() {
    let home = TestHome::new();
    home.run(&["enqueue", "--id", "job1", "--command", "true"]).ok();
    home.run(&["config", "set", "max_retries", "6"]).ok();
    let good = read_config(&home);
    let before = queue_state(&home);
    for (bytes, problem) in BROKEN {
        write_config(&home, bytes);
        for args in [
            &["enqueue", "--id", "job2", "--command", "true"][..],
            &["enqueue", "--spool", "--command", "true"],
            &["worker", "start", "--until-empty", "--no-spool"],
            &["config", "get", "max_retries"],
            &["config", "set", "max_retries", "2"],
            &["config", "unset", "max_retries"],
            &["config", "list"],
            &["spool", "ingest"],
            &["init"],
        ] {
            let run = home.run(args);
            let what = format!("`{}` with {:?}", args.join(" "), String::from_utf8_lossy(bytes));
            assert_refused(&run, &what, &[problem]);
        }
        assert_eq!(queue_state(&home), before, "{:?}", String::from_utf8_lossy(bytes));
        assert!(
            std::fs::read_dir(home.path().join("spool/incoming"))
                .unwrap()
                .next()
                .is_none(),
            "a refused `enqueue --spool` wrote a file"
        );
    }
    write_config(&home, &good);
    assert_eq!(stored_setting(&home, "max_retries"), ("6".into(), "set".into()));
}

#[test]
fn init_refuses_a_broken_config_file_before_creating_anything() {
    for (bytes, problem) in BROKEN.iter().filter(|(_, p)| p.contains("queuectl.toml")) {
        let home = TestHome::empty();
        std::fs::create_dir(home.path().join("config")).expect("mkdir config");
        write_config(&home, bytes);
        let run = home.run(&["init"]);
        assert_refused(&run, "init", &[problem]);
        let mut left: Vec<String> = std::fs::read_dir(home.path())
            .expect("read_dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, vec!["config"], "a refused init created files");
        assert_eq!(
            std::fs::read(config_path(&home)).expect("read"),
            *bytes,
            "init rewrote the file"
        );
    }
}

#[test]
fn a_running_worker_keeps_its_last_good_settings_and_says_so_once() {
    let home = TestHome::new();
    // No retries: a failed job dies at once. With the defaults (3 retries) it would not.
    write_config(&home, "max_retries = 0\n");
    // The job breaks the file, then fails: the worker re-reads the settings right then.
    home.run(&[
        "enqueue",
        "--id",
        "breaker",
        "--command",
        "printf 'max_retries = = 1\\n' > config/queuectl.toml; exit 3",
    ])
    .ok();
    let mut worker = Worker::start(&home);
    wait_until("the job to be dead", SHORT, || job_state(&home, "breaker") == "dead");
    let job = home.run(&["show", "breaker", "--json"]).ok().json();
    assert_eq!(job["attempts"], 1, "the previous max_retries = 0 applied: {job:#}");
    wait_until("the warning", SHORT, || {
        worker.output().contains("keeping the previous settings")
    });

    // Several heartbeats later (each one re-reads the file) it has still said so only once.
    let heartbeat = || -> String {
        let status = home.run(&["status", "--json"]).ok().json();
        status["workers"][0]["heartbeat_at"].as_str().unwrap_or("").to_string()
    };
    let mut seen = vec![heartbeat()];
    wait_until("three more heartbeats", SHORT, || {
        let now = heartbeat();
        if seen.last() != Some(&now) {
            seen.push(now);
        }
        seen.len() > 3
    });
    // Mended, the file applies again: a failing job now gets its retries.
    write_config(&home, "max_retries = 2\n");
    home.run(&["enqueue", "--id", "retried", "--command", "exit 4"]).ok();
    wait_until("a retry to be scheduled", SHORT, || {
        worker.output().contains("Job retried failed (attempt 1 of 3")
    });
    let output = worker.stop();
    let warnings: Vec<&str> = output
        .lines()
        .filter(|l| l.contains("keeping the previous settings"))
        .collect();
    assert_eq!(warnings.len(), 1, "said once, not every heartbeat:\n{output}");
    assert!(
        warnings[0].contains("warning") && warnings[0].contains("queuectl.toml: line 1, column"),
        "names the file and the line:\n{output}"
    );
}

// ---------------------------------------------------------------------------------------------
// 5. A file that is not UTF-8
// ---------------------------------------------------------------------------------------------

/// A config file that cannot be read (here a directory at its path) is not taken for a missing
/// one: commands that need settings stop naming it, read-only ones warn and go on.
#[test]
fn an_unreadable_config_file_is_not_taken_for_a_missing_one() {
    let home = TestHome::new();
    std::fs::remove_file(config_path(&home)).expect("remove the file");
    std::fs::create_dir(config_path(&home)).expect("a directory in its place");
    let before = home.db_snapshot();
    let run = home.run(&["enqueue", "--command", "true"]);
    assert_eq!(run.code, 1, "{run:#?}");
    assert_eq!(
        run.stderr,
        format!(
            "queuectl: error: {}: Is a directory (os error 21)\n",
            config_path(&home).display()
        )
    );
    assert_eq!(home.db_snapshot(), before);
    let list = home.run(&["list", "--json"]).ok();
    assert_warned_once(
        &list,
        "list",
        &["queuectl.toml: Is a directory", "ignoring the config file"],
    );
    assert_eq!(list.stdout, "[]\n");
}

/// `db_url` in the config file moves the database; a relative path is taken against the home,
/// wherever the command runs from, and `--db` / `QUEUECTL_DB` still win over it.
#[test]
fn a_relative_db_url_is_taken_against_the_home_not_the_working_directory() {
    if skipped_under_postgres("where a SQLite file named by db_url goes (QUEUECTL_DB names every home's schema)") {
        return;
    }
    let home = TestHome::empty();
    std::fs::create_dir_all(home.path().join("config")).unwrap();
    write_config(&home, "db_url = \"jobs.db\"\n");
    let elsewhere = tempfile::tempdir().unwrap();
    let run_elsewhere = |args: &[&str]| {
        let mut command = home.command(args);
        command.current_dir(elsewhere.path());
        run_command(command)
    };

    let init = run_elsewhere(&["init"]);
    assert_eq!(init.code, 0, "{init:#?}");
    assert!(home.path().join("jobs.db").is_file(), "{init:#?}");
    assert!(!home.path().join("queue.db").exists());
    assert!(!elsewhere.path().join("jobs.db").exists());
    assert_eq!(run_elsewhere(&["enqueue", "--id", "j", "--command", "true"]).code, 0);
    let list = run_elsewhere(&["list", "--json"]);
    assert_eq!(list.json()[0]["id"], "j", "{list:#?}");

    // QUEUECTL_DB wins over the file: that database was never initialised.
    let other = elsewhere.path().join("other.db");
    let mut command = home.command(&["list"]);
    command.env("QUEUECTL_DB", &other);
    let run = run_command(command);
    assert_eq!(run.code, 2, "{run:#?}");
    assert!(run.stderr.contains("other.db"), "{run:#?}");
    let run = home.run(&["--db", other.to_str().unwrap(), "list"]);
    assert_eq!(run.code, 2, "{run:#?}");
    assert!(run.stderr.contains("other.db"), "{run:#?}");
}

/// A `db_url` that is no database location is refused naming the file and the key.
#[test]
fn a_db_url_with_an_unknown_scheme_is_refused_naming_the_file() {
    if skipped_under_postgres("the file's db_url is not read when QUEUECTL_DB is set") {
        return;
    }
    let home = TestHome::new();
    append_line(&home, "db_url = \"mysql://db.example/jobs\"");
    let before = home.db_snapshot();
    let run = home.run(&["list"]);
    run.assert_refusal(&["queuectl.toml", "db_url", "mysql"]);
    assert_eq!(home.db_snapshot(), before);
}

#[test]
fn a_config_file_that_is_not_utf8_exits_2_naming_the_file_and_byte() {
    let home = TestHome::new();
    write_config(&home, b"max_retries = 3\n# caf\xe9\n");
    for args in [&["config", "get", "max_retries"][..], &["enqueue", "--command", "true"]] {
        let run = home.run(args);
        assert_refused(
            &run,
            &args.join(" "),
            &[
                &config_path(&home).display().to_string(),
                "not valid UTF-8 at byte 21 (line 2)",
            ],
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 6. Arbitrary files through the binary
// ---------------------------------------------------------------------------------------------

fn seeded_runner(name: &str, cases: u32) -> TestRunner {
    let seed: u64 = std::env::var("QUEUECTL_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        });
    eprintln!("{name}: seed {seed} (replay with QUEUECTL_TEST_SEED={seed})");
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let config = Config {
        cases,
        failure_persistence: None,
        // Each case runs the binary a few times; shrinking a failure should stay quick.
        max_shrink_iters: 64,
        ..Config::default()
    };
    TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &bytes))
}

/// Config files: raw bytes, or lines that look like settings (valid and not).
fn config_file_bytes() -> impl Strategy<Value = Vec<u8>> {
    let line = prop_oneof![
        proptest::sample::select(vec![
            "max_retries = 4",
            "max_retries = -1",
            "max-retries = 5",
            "backoff_base = 1.5",
            "backoff_base = \"x\"",
            "spool_dir = \"\"",
            "spool_dir = 5",
            "hooks.on_dead = \"true\"",
            "hooks.on_dead = 5",
            "[hooks]",
            "timeout_seconds = 3",
            "lease_seconds = 3",
            "heartbeat_seconds = 2",
            "max_retry = 1",
            "= =",
            "# comment",
            "",
        ])
        .prop_map(|s| s.as_bytes().to_vec()),
        proptest::collection::vec(any::<u8>(), 0..12),
    ];
    proptest::collection::vec(line, 0..8).prop_map(|lines| lines.join(&b'\n'))
}

#[test]
fn arbitrary_config_files_never_crash_a_command_and_a_refusal_changes_nothing() {
    let home = TestHome::new();
    let good = read_config(&home);
    let counter = std::cell::Cell::new(0u32);
    let result = seeded_runner("config files through the binary", 24).run(&config_file_bytes(), |bytes| {
        counter.set(counter.get() + 1);
        let id = format!("case-{}", counter.get());
        write_config(&home, &good);
        home.run(&["config", "unset", "max_retries"]).ok();
        write_config(&home, &bytes);

        let set = home.run(&["config", "set", "max_retries", "7"]);
        let enqueue = home.run(&["enqueue", "--id", &id, "--command", "true"]);
        for (what, run) in [("config set", &set), ("enqueue", &enqueue)] {
            prop_assert!(
                run.code == 0 || run.code == 2,
                "{} exited {}: {:#?}",
                what,
                run.code,
                run
            );
            if run.code == 2 {
                prop_assert_eq!(run.stdout.as_str(), "", "{}", what);
                prop_assert_eq!(run.stderr.trim_end().lines().count(), 1, "{}: {:#?}", what, run);
                prop_assert!(run.stderr.contains("queuectl.toml"), "{}: {:#?}", what, run);
            }
        }
        let status = home.run(&["status", "--json"]);
        prop_assert_eq!(status.code, 0, "status must survive any config file: {:#?}", status);
        prop_assert!(serde_json::from_str::<Value>(&status.stdout).is_ok(), "{:#?}", status);

        write_config(&home, &good);
        let stored = stored_setting(&home, "max_retries");
        if set.code == 0 {
            prop_assert_eq!(stored, ("7".to_string(), "set".to_string()));
        } else {
            prop_assert_eq!(
                stored,
                ("3".to_string(), "file".to_string()),
                "a refused set stored something"
            );
        }
        let listed = home.run(&["show", &id]).code;
        prop_assert_eq!(
            listed == 0,
            enqueue.code == 0,
            "a refused enqueue added a job, or an accepted one did not"
        );
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

#[test]
fn kind_tables_show_in_config_list_and_a_bad_one_is_refused_naming_its_line() {
    let home = TestHome::new();
    let mut text = read_config(&home);
    text.push_str("\n[kinds.resize]\nmax_retries = 5\ntimeout_seconds = 120\n");
    write_config(&home, &text);
    let list = home.run(&["config", "list"]).ok().stdout;
    let row = list
        .lines()
        .find(|l| l.starts_with("kinds.resize.max_retries"))
        .unwrap_or_else(|| panic!("no kind row in {list}"));
    assert_eq!(
        row.split_whitespace().take(3).collect::<Vec<_>>(),
        ["kinds.resize.max_retries", "5", "file"]
    );
    let json = home.run(&["config", "list", "--json"]).ok().json();
    let timeout = json
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["key"] == "kinds.resize.timeout_seconds")
        .expect("the kind's timeout in config list --json");
    assert_eq!(timeout["value"], "120");

    // `config set` cannot store one: it points at the file.
    home.run(&["config", "set", "kinds.resize.max_retries", "6"])
        .assert_refusal(&[
            "`kinds.resize.max_retries` is a per-kind policy",
            "`[kinds.resize]` table",
        ]);

    // A bad value is refused by every command that reads settings, naming the line.
    let lines = text.lines().count();
    text.push_str("max_retries = 1001\n");
    write_config(&home, &text);
    let run = home.run(&["enqueue", "--command", "true"]);
    run.assert_refusal(&[&format!(
        "line {}, column 1: duplicate key `max_retries`: first set at line {}; each key may be set once",
        lines + 1,
        lines - 1
    )]);
    text.truncate(text.len() - "max_retries = 1001\n".len());
    text.push_str("backoff_base = 0.5\n");
    write_config(&home, &text);
    home.run(&["enqueue", "--command", "true"]).assert_refusal(&[&format!(
        "line {}: invalid value `0.5` for `kinds.resize.backoff_base`: must be a number from 1 to 1000",
        lines + 1
    )]);
    assert_eq!(
        home.run(&["list", "--json"]).ok().json(),
        serde_json::json!([]),
        "nothing was added"
    );
}
