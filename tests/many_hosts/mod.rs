//! The three-host harness: "hosts" made of network + UTS namespaces on a private bridge, a
//! throwaway PostgreSQL server listening on the bridge, one queue home and one worker per host,
//! and jobs that record where and how often they ran. Everything is torn down by `Drop` guards,
//! in order, even when the test fails: the processes in each namespace, the server, the
//! namespaces, the bridge, the temporary directory.
//!
//! - [`net`]: the bridge and the namespaces, and killing every process of a namespace;
//! - [`postgres`]: `initdb` + `pg_ctl` as the `postgres` user, listening on the bridge address;
//! - [`host`]: one queue home per host, `queuectl` run inside its namespace, its worker;
//! - [`runs`]: the job command that records its runs, and reading those records back.
#![allow(dead_code)]

pub mod cluster;
pub mod host;
pub mod net;
pub mod postgres;
pub mod queue;
pub mod runs;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The longest any one helper command (`ip`, `pg_ctl`, a `queuectl` run) may take.
pub const COMMAND_DEADLINE: Duration = Duration::from_secs(60);

/// What the harness needs from the machine.
pub struct Tools {
    /// The directory holding `initdb`, `pg_ctl` and `postgres`.
    pub pg_bin: PathBuf,
}

/// Checks what the three-host test needs; `Err` is the reason to skip, for one printed line.
pub fn prerequisites() -> Result<Tools, String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err("network namespaces and a private PostgreSQL need root (run the suite as root)".into());
    }
    for tool in ["ip", "unshare", "flock", "runuser"] {
        if find_in_path(tool).is_none() {
            return Err(format!("`{tool}` is not installed"));
        }
    }
    let pg_bin = find_pg_bin().ok_or("no PostgreSQL server binaries (`initdb` in /usr/lib/postgresql/*/bin)")?;
    let id = run_output(Command::new("id").args(["-u", "postgres"]))?;
    if !id.status.success() {
        return Err("there is no `postgres` user to run initdb as (it refuses to run as root)".into());
    }
    Ok(Tools { pg_bin })
}

/// `name` in a directory of `$PATH`, or `/sbin`, `/usr/sbin` (not always in root's `PATH`).
pub fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/sbin", "/usr/sbin", "/bin", "/usr/bin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// The newest `/usr/lib/postgresql/VERSION/bin` with an `initdb`.
fn find_pg_bin() -> Option<PathBuf> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|entry| entry.ok())
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.split('.').next()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin)
}

/// Runs a command to its end with [`COMMAND_DEADLINE`] (killed past it); `Err` if it could not
/// start or ran too long.
pub fn run_output(command: &mut Command) -> Result<Output, String> {
    let shown = describe(command);
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("`{shown}` did not start: {e}"))?;
    let pid = child.id();
    let (sender, receiver) = std::sync::mpsc::channel();
    // The wait runs on a thread so this one can give up at the deadline.
    std::thread::spawn(move || {
        let _ = sender.send(child.wait_with_output());
    });
    match receiver.recv_timeout(COMMAND_DEADLINE) {
        Ok(output) => output.map_err(|e| format!("`{shown}`: {e}")),
        Err(_) => {
            kill(pid, libc::SIGKILL);
            Err(format!("`{shown}` still running after {COMMAND_DEADLINE:?}: killed"))
        }
    }
}

/// Runs a command that must succeed; `Err` names it with its exit status and stderr.
pub fn run_ok(command: &mut Command) -> Result<String, String> {
    let shown = describe(command);
    let output = run_output(command)?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(format!(
            "`{shown}` failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// `program ARGS` as a [`Command`].
pub fn cmd<I, S>(program: impl AsRef<OsStr>, args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut command = Command::new(program);
    command.args(args);
    command
}

/// A command line as text, for messages.
pub fn describe(command: &Command) -> String {
    std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(|part| part.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Sends a signal to a process.
pub fn kill(pid: u32, signal: libc::c_int) {
    // SAFETY: kill(2) on a PID we found; a PID that has gone is harmless (ESRCH).
    unsafe {
        libc::kill(pid as libc::pid_t, signal);
    }
}

/// Polls `check` every `every` until it returns `Ok`, or panics once `timeout` has passed with
/// `what`, the last `Err` (the state seen) and `context()` (e.g. the workers' logs).
#[track_caller]
pub fn wait_until(
    what: &str,
    timeout: Duration,
    every: Duration,
    context: impl Fn() -> String,
    mut check: impl FnMut() -> Result<(), String>,
) {
    let deadline = Instant::now() + timeout;
    loop {
        let seen = match check() {
            Ok(()) => return,
            Err(seen) => seen,
        };
        if Instant::now() >= deadline {
            panic!(
                "timed out after {timeout:?} waiting for: {what}\nlast seen: {seen}\n{}",
                context()
            );
        }
        std::thread::sleep(every);
    }
}

/// The last `lines` lines of a file, for failure messages.
pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| format!("({}: {e})", path.display()));
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
