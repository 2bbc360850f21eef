//! Shared helpers for the black-box tests: a temporary queue home, running the built
//! `queuectl` binary in it, a logical dump of its database, and waiting on conditions with a
//! deadline (never a fixed sleep). Which database the homes use (SQLite, or a schema each in
//! PostgreSQL) is chosen by the environment, see [`backend`]; direct SQL on either is in
//! [`sql`], database dumps in [`dump`]. Worker processes with kill guards live in [`process`],
//! library pools joined with a deadline in [`pool`].
#![allow(dead_code)]

pub mod backend;
pub mod dump;
pub mod old_schema;
pub mod pool;
pub mod process;
pub mod sql;

#[allow(unused_imports)]
pub use backend::{is_postgres, skipped_under_postgres};
pub use dump::dump_database;

use backend::{Backend, PgSchema};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The path of the built `queuectl` binary.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_queuectl"))
}

/// A temporary queue home, removed when dropped; under PostgreSQL with a schema of its own,
/// dropped with it.
pub struct TestHome {
    pub dir: tempfile::TempDir,
    /// The home's schema when the tests run against PostgreSQL.
    pg: Option<PgSchema>,
}

/// The longest any single `queuectl` command in a test may take: a command that hangs (a broken
/// shutdown, a lock never released) fails its test instead of hanging CI.
pub const COMMAND_DEADLINE: Duration = Duration::from_secs(120);

/// Waits for a started command with [`COMMAND_DEADLINE`]; SIGKILLs it and panics past that.
#[track_caller]
fn finish(child: Child, args: &[&str]) -> Run {
    finish_within(child, args, COMMAND_DEADLINE)
}

/// Waits for a started command for at most `deadline`; SIGKILLs it and panics past that.
#[track_caller]
fn finish_within(child: Child, args: &[&str], deadline: Duration) -> Run {
    let pid = child.id();
    let (sender, receiver) = std::sync::mpsc::channel();
    // The wait runs on a thread so this one can give up at the deadline.
    std::thread::spawn(move || {
        let _ = sender.send(child.wait_with_output());
    });
    match receiver.recv_timeout(deadline) {
        Ok(output) => Run::from(output.expect("wait for queuectl")),
        Err(_) => {
            signal(pid, libc::SIGKILL);
            panic!("`queuectl {}` still running after {deadline:?}: killed", args.join(" "));
        }
    }
}

/// Runs a command built by the test (another working directory, a shell around `queuectl`)
/// to its end, with null input and [`COMMAND_DEADLINE`], like [`TestHome::run`].
#[track_caller]
pub fn run_command(command: Command) -> Run {
    run_command_within(command, COMMAND_DEADLINE)
}

/// [`run_command`] with a deadline of the test's own.
#[track_caller]
pub fn run_command_within(mut command: Command, deadline: Duration) -> Run {
    let what: Vec<String> = command.get_args().map(|a| a.to_string_lossy().into_owned()).collect();
    let what: Vec<&str> = what.iter().map(String::as_str).collect();
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the command");
    finish_within(child, &what, deadline)
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
    /// A new, uninitialised home (under PostgreSQL: a schema name of its own, not created yet).
    pub fn empty() -> TestHome {
        backend::announce();
        let pg = match backend::backend() {
            Backend::Sqlite => None,
            Backend::Postgres { url } => Some(PgSchema::new(url)),
        };
        TestHome {
            dir: tempfile::tempdir().expect("temp dir"),
            pg,
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

    /// The database location `queuectl` is given for this home (`QUEUECTL_DB`) when it is not
    /// the default `HOME/queue.db`: under PostgreSQL, the server URL with the home's schema.
    pub fn db_location(&self) -> Option<String> {
        self.pg.as_ref().map(PgSchema::location)
    }

    /// The home's PostgreSQL schema name, under PostgreSQL.
    pub fn pg_schema(&self) -> Option<&str> {
        self.pg.as_ref().map(|pg| pg.name.as_str())
    }

    /// This home for the library: `Home::new(dir)`, with its database where the tests' backend
    /// puts it.
    pub fn lib_home(&self) -> queuectl::Home {
        let home = queuectl::Home::new(self.path());
        match self.db_location() {
            Some(location) => home.with_db(queuectl::store::DbLocation::parse(&location).expect("a test location")),
            None => home,
        }
    }

    /// True if the queue database exists (`queue.db`, or the home's schema).
    pub fn database_exists(&self) -> bool {
        match &self.pg {
            None => self.path().join("queue.db").exists(),
            Some(pg) => pg
                .client()
                .query_opt("SELECT 1 FROM pg_namespace WHERE nspname = $1", &[&pg.name])
                .expect("look for the schema")
                .is_some(),
        }
    }

    /// A `queuectl` command in this home, not yet started.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(bin());
        command
            .args(args)
            .env("QUEUECTL_HOME", self.path())
            .env("NO_COLOR", "1")
            .current_dir(self.path())
            .stdin(Stdio::null());
        self.set_db_env(&mut command);
        command
    }

    /// Points a command made elsewhere at this home's database: `QUEUECTL_DB` under
    /// PostgreSQL, none (the home's own `queue.db`) under SQLite.
    pub fn set_db_env(&self, command: &mut Command) {
        match self.db_location() {
            Some(location) => command.env("QUEUECTL_DB", location),
            None => command.env_remove("QUEUECTL_DB"),
        };
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

    /// The SQLite file `queue.db`, opened directly (never created): for tests about SQLite
    /// itself. Anything else goes through [`TestHome::sql`], which works on either backend.
    #[track_caller]
    pub fn db(&self) -> rusqlite::Connection {
        assert!(
            self.pg.is_none(),
            "TestHome::db() opens queue.db, which a PostgreSQL test home does not have: use \
             TestHome::sql(), or skip the test with skipped_under_postgres(reason)"
        );
        sql::open_sqlite(&self.path().join("queue.db"))
    }

    /// A direct connection to the queue database on either backend: for tests that must set
    /// up a state no command produces (a worker row from another host, a held lock).
    pub fn sql(&self) -> sql::Sql {
        match &self.pg {
            None => sql::Sql::Sqlite(sql::open_sqlite(&self.path().join("queue.db"))),
            Some(pg) => sql::Sql::Postgres {
                client: pg.client(),
                schema: pg.name.clone(),
            },
        }
    }

    /// A logical dump of the queue database alone (see [`TestHome::db_snapshot`]).
    pub fn db_dump(&self) -> String {
        match &self.pg {
            None => {
                let db = self.path().join("queue.db");
                if db.exists() {
                    dump_database(&self.db())
                } else {
                    "(no queue.db)\n".to_string()
                }
            }
            Some(pg) => dump::dump_pg_schema(&mut pg.client(), &pg.name),
        }
    }

    /// Everything a refused command must leave alone, as text: a logical dump of the queue
    /// database (SQLite: `user_version`, the schema and every row of every table; PostgreSQL:
    /// the schema's tables, columns, indexes, triggers and rows) and the config file's bytes.
    /// Rows are sorted so the dump does not depend on the order the database returns them in.
    pub fn db_snapshot(&self) -> String {
        let mut out = self.db_dump();
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
