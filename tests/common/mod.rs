//! Shared helpers for the black-box tests: a temporary queue home, running the built
//! `queuectl` binary in it, and waiting on conditions with a deadline (never a fixed sleep).
#![allow(dead_code)]

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

    /// Runs `queuectl ARGS` in this home and waits for it.
    pub fn run(&self, args: &[&str]) -> Run {
        Run::from(self.command(args).output().expect("run queuectl"))
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
        Run::from(child.wait_with_output().expect("wait queuectl"))
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

    /// A file's bytes, to prove a refused command changed nothing.
    pub fn db_snapshot(&self) -> String {
        let run = self.run(&["list", "--json"]).ok();
        let config = self.run(&["config", "list", "--json"]).ok();
        format!("{}\n{}", run.stdout, config.stdout)
    }
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
