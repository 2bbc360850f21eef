//! Shared helpers for the black-box tests: a temporary queue home, running the built
//! `queuectl` binary in it, a logical dump of its database, and waiting on conditions with a
//! deadline (never a fixed sleep). Worker processes with kill guards live in [`process`], library
//! pools joined with a deadline in [`pool`].
#![allow(dead_code)]

pub mod old_schema;
pub mod pool;
pub mod process;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The path of the built `queuectl` binary.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_queuectl"))
}

/// A temporary queue home, removed when dropped.
pub struct TestHome {
    pub dir: tempfile::TempDir,
}

/// The longest any single `queuectl` command in a test may take: a command that hangs (a broken
/// shutdown, a lock never released) fails its test instead of hanging CI.
pub const COMMAND_DEADLINE: Duration = Duration::from_secs(120);

/// Waits for a started command with [`COMMAND_DEADLINE`]; SIGKILLs it and panics past that.
#[track_caller]
fn finish(child: Child, args: &[&str]) -> Run {
    let pid = child.id();
    let (sender, receiver) = std::sync::mpsc::channel();
    // The wait runs on a thread so this one can give up at the deadline.
    std::thread::spawn(move || {
        let _ = sender.send(child.wait_with_output());
    });
    match receiver.recv_timeout(COMMAND_DEADLINE) {
        Ok(output) => Run::from(output.expect("wait for queuectl")),
        Err(_) => {
            signal(pid, libc::SIGKILL);
            panic!(
                "`queuectl {}` still running after {COMMAND_DEADLINE:?}: killed",
                args.join(" ")
            );
        }
    }
}

/// The result of one `queuectl` run.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(output: Output) -> Run {
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Asserts exit code 0 and returns self.
    #[track_caller]
    pub fn ok(self) -> Run {
        assert_eq!(self.code, 0, "expected success, got {self:#?}");
        self
    }

    /// Asserts this exit code and returns self.
    #[track_caller]
    pub fn code(self, code: i32) -> Run {
        assert_eq!(self.code, code, "expected exit code {code}, got {self:#?}");
        self
    }

    /// Asserts a refusal: exit code 2, nothing on stdout, one line on stderr holding every
    /// needle.
    #[track_caller]
    pub fn assert_refusal(&self, needles: &[&str]) {
        assert_eq!(self.code, 2, "a refusal exits 2: {self:#?}");
        assert_eq!(self.stdout, "", "a refusal prints nothing on stdout: {self:#?}");
        assert_eq!(
            self.stderr.trim_end().lines().count(),
            1,
            "one line on stderr: {self:#?}"
        );
        for needle in needles {
            assert!(
                self.stderr.contains(needle),
                "stderr should contain {needle:?}: {self:#?}"
            );
        }
    }

    /// Parses stdout as JSON.
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:#?}"))
    }
}

impl TestHome {
    /// A new, uninitialised home.
    pub fn empty() -> TestHome {
        TestHome {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    /// A new home after `queuectl init`.
    pub fn new() -> TestHome {
        let home = TestHome::empty();
        home.run(&["init"]).ok();
        home
    }

    /// The home directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A `queuectl` command in this home, not yet started.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(bin());
        command
            .args(args)
            .env("QUEUECTL_HOME", self.path())
            .env_remove("QUEUECTL_DB")
            .env("NO_COLOR", "1")
            .current_dir(self.path())
            .stdin(Stdio::null());
        command
    }

    /// Runs `queuectl ARGS` in this home and waits for it (at most [`COMMAND_DEADLINE`]).
    pub fn run(&self, args: &[&str]) -> Run {
        let child = self
            .command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn queuectl");
        finish(child, args)
    }

    /// Runs `queuectl ARGS` with `input` on standard input.
    pub fn run_with_stdin(&self, args: &[&str], input: &str) -> Run {
        use std::io::Write;
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn queuectl");
        // The command may exit before reading its input (e.g. an uninitialised home): a broken
        // pipe here is not the test's failure.
        let _ = child.stdin.take().expect("stdin").write_all(input.as_bytes());
        finish(child, args)
    }

    /// Starts `queuectl ARGS` in the background with piped output.
    pub fn spawn(&self, args: &[&str]) -> Child {
        self.command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn queuectl")
    }

    /// `status --json`.
    pub fn status(&self) -> serde_json::Value {
        self.run(&["status", "--json"]).ok().json()
    }

    /// `show ID --json`.
    pub fn job(&self, id: &str) -> serde_json::Value {
        self.run(&["show", id, "--json"]).ok().json()
    }

    /// The queue database, opened directly (never created): for tests that must set up a state
    /// no command produces (a worker row from another host, an old schema version).
    pub fn db(&self) -> rusqlite::Connection {
        let path = self.path().join("queue.db");
        let conn = rusqlite::Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE)
            .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
        // A worker may hold the write lock for a moment; wait rather than fail.
        conn.busy_timeout(Duration::from_secs(10)).expect("busy timeout");
        conn
    }

    /// Everything a refused command must leave alone, as text: a logical dump of `queue.db`
    /// (`user_version`, the schema, and every row of every table) and the config file's bytes.
    /// Rows are sorted so the dump does not depend on the order SQLite happens to return them.
    pub fn db_snapshot(&self) -> String {
        let mut out = String::new();
        let db = self.path().join("queue.db");
        if db.exists() {
            out.push_str(&dump_database(&self.db()));
        } else {
            out.push_str("(no queue.db)\n");
        }
        match std::fs::read(self.path().join("config/queuectl.toml")) {
            Ok(bytes) => {
                out.push_str("-- config/queuectl.toml\n");
                out.push_str(&String::from_utf8_lossy(&bytes));
            }
            Err(_) => out.push_str("(no config/queuectl.toml)\n"),
        }
        out
    }
}

/// A logical dump of a SQLite database: `user_version`, every schema entry, then every table's
/// rows (each as the debug form of its values, sorted).
pub fn dump_database(conn: &rusqlite::Connection) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .expect("user_version");
    writeln!(out, "user_version {version}").unwrap();
    let mut schema = conn
        .prepare("SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name")
        .expect("read the schema");
    let entries: Vec<(String, String, String, Option<String>)> = schema
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .expect("read the schema")
        .collect::<rusqlite::Result<_>>()
        .expect("read the schema");
    for (kind, name, table, sql) in &entries {
        writeln!(out, "{kind} {name} on {table}: {}", sql.as_deref().unwrap_or("-")).unwrap();
    }
    for (_, table, _, _) in entries.iter().filter(|(kind, ..)| kind == "table") {
        writeln!(out, "-- table {table}").unwrap();
        let mut select = conn
            .prepare(&format!("SELECT * FROM \"{}\"", table.replace('"', "\"\"")))
            .expect("select a table");
        let columns = select.column_count();
        let mut rows: Vec<String> = select
            .query_map([], |row| {
                let values: Vec<String> = (0..columns)
                    .map(|i| row.get_ref(i).map(show_value))
                    .collect::<rusqlite::Result<_>>()?;
                Ok(values.join(" | "))
            })
            .expect("read a table")
            .collect::<rusqlite::Result<_>>()
            .expect("read a table");
        rows.sort();
        for row in rows {
            writeln!(out, "{row}").unwrap();
        }
    }
    out
}

/// One SQLite value as text that tells the types apart: `NULL`, `42`, `1.5`, `"text"`, `x'00ff'`.
fn show_value(value: rusqlite::types::ValueRef<'_>) -> String {
    use rusqlite::types::ValueRef;
    match value {
        ValueRef::Null => "NULL".to_string(),
        ValueRef::Integer(i) => i.to_string(),
        ValueRef::Real(f) => format!("{f:?}"),
        ValueRef::Text(t) => format!("{:?}", String::from_utf8_lossy(t)),
        ValueRef::Blob(b) => format!("x'{}'", b.iter().map(|byte| format!("{byte:02x}")).collect::<String>()),
    }
}

/// Milliseconds since the Unix epoch, now.
pub fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as i64
}

/// Milliseconds since the epoch of an RFC 3339 time as the CLI prints it.
#[track_caller]
pub fn millis(value: &serde_json::Value) -> i64 {
    let text = value.as_str().unwrap_or_else(|| panic!("not a time: {value}"));
    chrono::DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("bad time {text:?}: {e}"))
        .timestamp_millis()
}

/// Polls `condition` every 10 ms until it holds or `timeout` passes; panics with `what` then.
#[track_caller]
pub fn wait_until(what: &str, timeout: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for: {what}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Sends a signal to a process.
pub fn signal(pid: u32, signal: libc::c_int) {
    // SAFETY: kill(2) with a pid we started.
    unsafe {
        libc::kill(pid as libc::pid_t, signal);
    }
}

/// Runs `command` (a `queuectl` run in `home`) and asserts it is a refusal (see
/// [`Run::refusal`]) that left the database exactly as it was.
#[track_caller]
pub fn refused_unchanged(home: &TestHome, what: &str, needles: &[&str], command: impl FnOnce() -> Run) -> Run {
    let before = home.db_snapshot();
    let run = command();
    run.assert_refusal(needles);
    assert_eq!(home.db_snapshot(), before, "a refused `{what}` changed the queue");
    run
}
