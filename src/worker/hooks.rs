//! Shell hooks: commands from the config file's `[hooks]` table, run on job life-cycle events.
//!
//! ```toml
//! [hooks]
//! on_dead = "notify-send \"job $QUEUECTL_JOB_ID died: $QUEUECTL_JOB_ERROR\""
//! ```
//!
//! Each hook runs with `sh -c` on a thread of its own, with the job's id, command, state,
//! attempts, exit code and error in `QUEUECTL_JOB_*` variables. A hook that fails or runs past
//! `hooks.timeout_seconds` (killed with its process group) is reported as a warning and never
//! affects the job or the worker. Library users get the same events as Rust callbacks through
//! [`crate::worker::Observer`].

use super::{Observer, WorkerEvent};
use crate::config::HookCommands;
use crate::home::Home;
use crate::job::Job;
use crossbeam_channel::{Receiver, Sender};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The observer that runs the config file's `[hooks]`.
pub struct ShellHooks {
    home: Home,
    /// The commands in effect. The pool pushes new ones whenever it re-reads its settings, so
    /// hooks follow config changes without a database read of their own.
    commands: Mutex<HookCommands>,
    warnings: Sender<String>,
    warnings_rx: Receiver<String>,
    /// Hook runs still going; the pool waits for them before it exits, so a hook fired by the
    /// last job of `--until-empty` is not cut off (each is bounded by its timeout).
    running: Mutex<Vec<std::thread::JoinHandle<()>>>,
}

impl std::fmt::Debug for ShellHooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShellHooks").field("home", &self.home).finish()
    }
}

impl ShellHooks {
    /// Hooks for the queue in `home` (their working directory) running `commands`.
    pub fn new(home: &Home, commands: HookCommands) -> ShellHooks {
        let (warnings, warnings_rx) = crossbeam_channel::unbounded();
        ShellHooks {
            home: home.clone(),
            commands: Mutex::new(commands),
            warnings,
            warnings_rx,
            running: Mutex::new(Vec::new()),
        }
    }

    /// Replaces the commands (after a config change).
    pub fn set_commands(&self, commands: HookCommands) {
        *self.commands.lock().unwrap_or_else(|e| e.into_inner()) = commands;
    }

    /// Waits for every hook run still going (each is bounded by `hooks.timeout_seconds`).
    pub fn wait_idle(&self) {
        let handles: Vec<_> = std::mem::take(&mut *self.running.lock().unwrap_or_else(|e| e.into_inner()));
        for handle in handles {
            let _ = handle.join();
        }
    }

    /// Warnings from hooks that failed or timed out since the last call.
    pub fn take_warnings(&self) -> Vec<String> {
        self.warnings_rx.try_iter().collect()
    }

    fn commands(&self) -> HookCommands {
        self.commands.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn fire(
        &self,
        name: &'static str,
        command: Option<String>,
        timeout: u64,
        job: &Job,
        vars: Vec<(&'static str, String)>,
    ) {
        let Some(command) = command else { return };
        let mut env = vec![
            ("QUEUECTL_HOOK", name.to_string()),
            ("QUEUECTL_JOB_ID", job.id.clone()),
            ("QUEUECTL_JOB_COMMAND", job.command.clone()),
            ("QUEUECTL_JOB_KIND", job.kind.clone()),
        ];
        env.extend(vars);
        let warnings = self.warnings.clone();
        let cwd = self.home.root().to_path_buf();
        let spawned = std::thread::Builder::new()
            .name(format!("queuectl-hook-{name}"))
            .spawn(move || {
                if let Err(message) = run_hook(&command, &env, &cwd, Duration::from_secs(timeout)) {
                    let job = env
                        .iter()
                        .find(|(k, _)| *k == "QUEUECTL_JOB_ID")
                        .map(|(_, v)| v.clone())
                        .unwrap_or_default();
                    let _ = warnings.send(format!("hook {name} for job {job}: {message}"));
                }
            });
        match spawned {
            Ok(handle) => {
                let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
                running.retain(|h| !h.is_finished());
                running.push(handle);
            }
            Err(e) => {
                let _ = self
                    .warnings
                    .send(format!("hook {name}: could not start a thread: {e}"));
            }
        }
    }
}

fn run_hook(
    command: &str,
    env: &[(&'static str, String)],
    cwd: &std::path::Path,
    timeout: Duration,
) -> Result<(), String> {
    let mut shell = Command::new("/bin/sh");
    // Like jobs, hooks must not talk to systemd as the worker.
    for name in crate::notify::SUPERVISOR_VARIABLES {
        shell.env_remove(name);
    }
    let mut child = shell
        .arg("-c")
        .arg(command)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .map_err(|e| format!("failed to start: {e}"))?;
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(1);
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => return Err(format!("failed ({status})")),
            Ok(None) if Instant::now() >= deadline => {
                crate::executor::signal_group(child.id(), libc::SIGKILL);
                let _ = child.wait();
                return Err(format!("timed out after {}s and was killed", timeout.as_secs()));
            }
            Ok(None) => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(50));
            }
            Err(e) => return Err(format!("failed to wait: {e}")),
        }
    }
}

fn outcome_vars(state: &str, attempts: u32, outcome: &crate::executor::Outcome) -> Vec<(&'static str, String)> {
    vec![
        ("QUEUECTL_JOB_STATE", state.to_string()),
        ("QUEUECTL_JOB_ATTEMPTS", attempts.to_string()),
        (
            "QUEUECTL_JOB_EXIT_CODE",
            outcome.exit_code.map(|c| c.to_string()).unwrap_or_default(),
        ),
        ("QUEUECTL_JOB_ERROR", outcome.error.clone().unwrap_or_default()),
    ]
}

impl Observer for ShellHooks {
    fn on_event(&self, event: &WorkerEvent) {
        let hooks = self.commands();
        let timeout = hooks.timeout_seconds;
        match event {
            WorkerEvent::JobStarted { job, attempt, .. } => {
                let vars = vec![
                    ("QUEUECTL_JOB_STATE", "processing".to_string()),
                    ("QUEUECTL_JOB_ATTEMPTS", job.attempts.to_string()),
                    ("QUEUECTL_ATTEMPT", attempt.to_string()),
                    ("QUEUECTL_JOB_EXIT_CODE", String::new()),
                    ("QUEUECTL_JOB_ERROR", String::new()),
                ];
                self.fire("on_started", hooks.on_started, timeout, job, vars);
            }
            WorkerEvent::JobCompleted { job, outcome, .. } => {
                self.fire(
                    "on_completed",
                    hooks.on_completed,
                    timeout,
                    job,
                    outcome_vars("completed", job.attempts + 1, outcome),
                );
            }
            WorkerEvent::JobRetrying {
                job, attempt, outcome, ..
            } => {
                self.fire(
                    "on_failed",
                    hooks.on_failed,
                    timeout,
                    job,
                    outcome_vars("failed", *attempt, outcome),
                );
            }
            WorkerEvent::JobDead {
                job, attempts, outcome, ..
            } => {
                self.fire(
                    "on_dead",
                    hooks.on_dead,
                    timeout,
                    job,
                    outcome_vars("dead", *attempts, outcome),
                );
            }
            _ => {}
        }
    }
}
