//! The built-in executor: runs a job's command with `sh -c` in its own process group.

use super::{signal_name, ExecContext, Executor, Outcome, TailBuffer};
use crate::job::Job;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Command, Stdio};

/// Runs `sh -c "<command>"` with stdin from /dev/null, the queue home (or the job's `cwd`) as
/// working directory, the inherited environment plus `QUEUECTL_JOB_ID`, `QUEUECTL_ATTEMPT` and
/// the job's `env`. The process gets its own process group, so a timeout or a forced shutdown
/// reaches every process the command started. Output is captured with a byte cap (the tail).
///
/// The attempt ends when the shell exits *and* its output pipes close, as with `cmd | cat`: a
/// command that leaves a background process writing to its output runs until that ends too
/// (or until its timeout kills the whole group).
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
        command
            .arg("-c")
            .arg(&job.command)
            .current_dir(&cwd)
            .env("QUEUECTL_JOB_ID", &job.id)
            .env("QUEUECTL_ATTEMPT", context.attempt.to_string())
            .envs(&job.env)
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
        // Stop reading when the job was killed (timeout, forced stop) and the shell is gone but
        // a descendant that left the process group (setsid) still holds the pipes.
        let abandon = || (context.is_timed_out() || context.is_cancelled()) && exited_unreaped(pid, false);
        let (stdout_tail, stderr_tail) = read_both(child.stdout.take(), child.stderr.take(), limit, &abandon);
        // Wait for the exit without reaping, forget the PID, then reap: a PID is only ever
        // signalled while it still names this job's process (a zombie keeps its PID reserved).
        exited_unreaped(pid, true);
        context.set_process(0);
        let status = child.wait();
        let (stdout, stderr) = (stdout_tail.into_text(), stderr_tail.into_text());
        let outcome = match status {
            Err(e) => Outcome::failure(format!("failed to wait for the process: {e}")),
            Ok(status) => {
                if status.code() == Some(0) {
                    // Exit 0 is success even if the deadline passed while it was exiting.
                    Outcome::success().with_exit_code(0)
                } else if context.is_timed_out() {
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

/// Reads stdout and stderr to their ends on this thread, keeping the tail of each. `poll(2)`
/// over both pipes avoids a reader thread per job (and the deadlock of reading one pipe to its
/// end while the child blocks writing the other).
fn read_both(
    stdout: Option<std::process::ChildStdout>,
    stderr: Option<std::process::ChildStderr>,
    limit: usize,
    abandon: &dyn Fn() -> bool,
) -> (TailBuffer, TailBuffer) {
    let mut tails = [TailBuffer::new(limit), TailBuffer::new(limit)];
    let mut readers: [Option<Box<dyn ReadFd>>; 2] = [
        stdout.map(|s| Box::new(s) as Box<dyn ReadFd>),
        stderr.map(|s| Box::new(s) as Box<dyn ReadFd>),
    ];
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
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
        let rc = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 200) };
        if rc == 0 {
            if abandon() {
                break;
            }
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
