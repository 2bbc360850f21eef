//! The built-in executor: runs a job's command with `sh -c` in its own process group.

use super::{signal_name, ExecContext, Executor, Outcome, TailBuffer};
use crate::job::Job;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long the job's output is still read after its shell exited, for what a background
/// process writes as it is being left behind; then the pipes are abandoned.
pub const DRAIN_AFTER_EXIT: Duration = Duration::from_millis(100);
/// How often the output loop looks whether the shell has exited while the pipes stay open.
const EXIT_CHECK: Duration = Duration::from_millis(20);

/// Runs `sh -c "<command>"` with stdin from /dev/null, the queue home (or the job's `cwd`) as
/// working directory, the inherited environment (without systemd's `NOTIFY_SOCKET`,
/// `WATCHDOG_USEC` and `WATCHDOG_PID`) plus `QUEUECTL_JOB_ID`, `QUEUECTL_ATTEMPT` and the job's
/// `env`. The process gets its own process group, so a timeout or a forced shutdown
/// reaches every process the command started. Output is captured with a byte cap (the tail).
///
/// The attempt's result is decided when the shell exits. Its output is read for a short drain
/// after that (100 ms), then whatever the command left running in its process
/// group is killed (SIGKILL), so a forgotten `server &` neither holds the job open nor outlives
/// it. A process that should outlive its job must leave the job's session (`setsid`) before
/// the job's shell exits, with its output redirected; it keeps running and is no longer the
/// job's.
///
/// If the worker dies, the job's processes run on until recovery stops them before the job runs
/// again (see `worker::orphans`). Every process of the job inherits `QUEUECTL_JOB_ID`,
/// `QUEUECTL_LEASE` (the claim's number) and `QUEUECTL_QUEUE` (the database's path), by which recovery recognises it. There is deliberately
/// no `pre_exec` hook (such as `PR_SET_PDEATHSIG`): any hook makes std fork instead of using
/// `posix_spawn`, which measured 1.7× slower for a queue of `true` jobs.
#[derive(Debug, Clone, Default)]
pub struct ShellExecutor;

impl Executor for ShellExecutor {
    fn execute(&self, job: &Job, context: &ExecContext) -> Outcome {
        let cwd = match &job.cwd {
            Some(cwd) if Path::new(cwd).is_absolute() => Path::new(cwd).to_path_buf(),
            Some(cwd) => context.home.join(cwd),
            None => context.home.clone(),
        };
        let mut command = Command::new("/bin/sh");
        // systemd supervises the worker, not its jobs: a job that runs `systemd-notify` must not
        // speak for the worker (a job's own `env` may still set these on purpose).
        for name in crate::notify::SUPERVISOR_VARIABLES {
            command.env_remove(name);
        }
        command
            .arg("-c")
            .arg(&job.command)
            .current_dir(&cwd)
            .env("QUEUECTL_JOB_ID", &job.id)
            .env("QUEUECTL_ATTEMPT", context.attempt.to_string())
            .envs(&job.env)
            // After the job's own env, so a job cannot hide its processes from recovery.
            .env(super::LEASE_VAR, job.lease.to_string())
            .env(super::JOB_VAR, &job.id)
            .env(super::QUEUE_VAR, &*context.queue)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        let mut child = match command.spawn() {
            Ok(child) => child,
            Err(e) => {
                let reason = if !cwd.is_dir() {
                    format!("failed to start: working directory {} does not exist", cwd.display())
                } else {
                    format!("failed to start: {e}")
                };
                return Outcome::failure(reason);
            }
        };
        context.set_process(child.id());
        // A forced shutdown may have fired between the claim and the spawn: honour it now.
        if context.is_cancelled() {
            super::signal_group(child.id(), libc::SIGKILL);
        }
        let limit = context.output_limit;
        let pid = child.id();
        let (stdout_tail, stderr_tail) = read_both(child.stdout.take(), child.stderr.take(), limit, pid);
        // The shell has exited (not yet reaped, so its PID and group id cannot be reused):
        // kill what it left behind in its group, then forget the PID and reap.
        exited_unreaped(pid, true);
        super::signal_group(pid, libc::SIGKILL);
        context.set_process(0);
        let status = child.wait();
        let (stdout, stderr) = (stdout_tail.into_text(), stderr_tail.into_text());
        let outcome = match status {
            Err(e) => Outcome::failure(format!("failed to wait for the process: {e}")),
            Ok(status) => {
                if context.is_timed_out() {
                    // Killed for its timeout: a timeout, whatever the shell made of the signal.
                    let seconds = context.timeout.map(|t| t.as_secs_f64()).unwrap_or(0.0);
                    let mut o = Outcome::failure(format!(
                        "timed out after {}",
                        crate::time::format_duration(std::time::Duration::from_secs_f64(seconds))
                    ));
                    o.exit_code = status.code();
                    o
                } else if let Some(code) = status.code() {
                    match code {
                        0 => Outcome::success().with_exit_code(0),
                        127 => Outcome::failure("command not found (exit 127)").with_exit_code(127),
                        126 => Outcome::failure("command not executable (exit 126)").with_exit_code(126),
                        code => Outcome::failure(format!("exit {code}")).with_exit_code(code),
                    }
                } else if let Some(signal) = status.signal() {
                    Outcome::failure(format!("killed by {}", signal_name(signal)))
                } else {
                    Outcome::failure("ended without an exit code")
                }
            }
        };
        outcome.with_output(stdout, stderr)
    }
}

/// Reads stdout and stderr on this thread, keeping the tail of each, until both close or the
/// shell `pid` has exited and [`DRAIN_AFTER_EXIT`] has passed (a process it left behind may
/// hold the pipes open for ever). `poll(2)` over both pipes avoids a reader thread per job
/// (and the deadlock of reading one pipe to its end while the child blocks writing the other).
fn read_both(
    stdout: Option<std::process::ChildStdout>,
    stderr: Option<std::process::ChildStderr>,
    limit: usize,
    pid: u32,
) -> (TailBuffer, TailBuffer) {
    let mut tails = [TailBuffer::new(limit), TailBuffer::new(limit)];
    let mut readers: [Option<Box<dyn ReadFd>>; 2] = [
        stdout.map(|s| Box::new(s) as Box<dyn ReadFd>),
        stderr.map(|s| Box::new(s) as Box<dyn ReadFd>),
    ];
    let mut chunk = vec![0u8; 64 * 1024];
    let mut last_exit_check = Instant::now();
    let mut drain_until: Option<Instant> = None;
    loop {
        let now = Instant::now();
        match drain_until {
            Some(until) if now >= until => break,
            None if now.duration_since(last_exit_check) >= EXIT_CHECK => {
                last_exit_check = now;
                if exited_unreaped(pid, false) {
                    drain_until = Some(now + DRAIN_AFTER_EXIT);
                }
            }
            _ => {}
        }
        let mut fds: Vec<libc::pollfd> = Vec::with_capacity(2);
        let mut which = Vec::with_capacity(2);
        for (index, reader) in readers.iter().enumerate() {
            if let Some(reader) = reader {
                fds.push(libc::pollfd {
                    fd: reader.raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                });
                which.push(index);
            }
        }
        if fds.is_empty() {
            break;
        }
        // SAFETY: `fds` is a valid array of pollfd for its length; the fds stay open while
        // `readers` owns them.
        let rc = unsafe {
            libc::poll(
                fds.as_mut_ptr(),
                fds.len() as libc::nfds_t,
                EXIT_CHECK.as_millis() as i32,
            )
        };
        if rc == 0 {
            continue;
        }
        if rc < 0 {
            if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            break;
        }
        for (pollfd, &index) in fds.iter().zip(&which) {
            if pollfd.revents == 0 {
                continue;
            }
            let Some(reader) = readers[index].as_mut() else {
                continue;
            };
            match reader.read(&mut chunk) {
                Ok(0) => readers[index] = None,
                Ok(n) => tails[index].push(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => readers[index] = None,
            }
        }
    }
    let [out, err] = tails;
    (out, err)
}

/// A pipe we can both read and poll.
trait ReadFd: std::io::Read {
    fn raw_fd(&self) -> i32;
}

impl ReadFd for std::process::ChildStdout {
    fn raw_fd(&self) -> i32 {
        std::os::fd::AsRawFd::as_raw_fd(self)
    }
}

impl ReadFd for std::process::ChildStderr {
    fn raw_fd(&self) -> i32 {
        std::os::fd::AsRawFd::as_raw_fd(self)
    }
}

/// True once process `pid` (our child) has exited; the exit status is left for `wait` to reap.
/// With `block`, waits for the exit.
fn exited_unreaped(pid: u32, block: bool) -> bool {
    // SAFETY: waitid(2) fills a siginfo_t we own; WNOWAIT leaves the child reapable.
    unsafe {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        let flags = libc::WEXITED | libc::WNOWAIT | if block { 0 } else { libc::WNOHANG };
        loop {
            let rc = libc::waitid(libc::P_PID, pid as libc::id_t, &mut info, flags);
            if rc == 0 {
                return info.si_pid() != 0;
            }
            if std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
                return false;
            }
        }
    }
}
