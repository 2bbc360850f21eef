//! The coordinator's side of its executor threads: handing a claimed job to an idle thread,
//! enforcing timeouts, and stopping what runs (forced stop, fencing).

use super::coordinator::Coordinator;
use super::thread::{Assignment, Done};
use crate::executor::{signal_group, CancelToken, ExecContext, SlotState};
use crate::job::{Job, SHELL_KIND};
use crate::shutdown::Shutdown;
use crate::time::{now_ms, Millis};
use crate::worker::events::WorkerEvent;
use crossbeam_channel::Sender;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The coordinator's view of one executor thread.
pub(super) struct Slot {
    pub(super) sender: Sender<Assignment>,
    /// The running attempt's shared state (a new one per attempt).
    pub(super) state: Arc<SlotState>,
    pub(super) handle: Option<std::thread::JoinHandle<()>>,
    pub(super) running: Option<Running>,
}

pub(super) struct Running {
    pub(super) job: Job,
    pub(super) started_at: Millis,
    pub(super) deadline: Option<Instant>,
    pub(super) term_sent_at: Option<Instant>,
    pub(super) kill_sent: bool,
}

impl Coordinator {
    pub(super) fn busy(&self) -> usize {
        self.slots.iter().filter(|s| s.running.is_some()).count()
    }

    /// Self-fencing for a queue shared across hosts: workers on other hosts presume this one dead
    /// once its heartbeat is `2 * lease_seconds` old and run its jobs again. When the database
    /// has been out of reach (a partition, a server restart) for one lease, this worker stops
    /// its running jobs, so no job runs twice at the same time however the partition ends;
    /// their results could not be recorded anyway. On one host (SQLite) the process table
    /// decides liveness and a slow database never costs running jobs.
    pub(super) fn fence_if_unreachable(&mut self, inbox: &[Done]) {
        let lease = Duration::from_secs(self.settings.lease_seconds.max(1));
        if self.fenced || !self.store.location().is_postgres() || self.last_heartbeat_ok.elapsed() < lease {
            return;
        }
        self.fenced = true;
        if self.busy() > inbox.len() {
            self.kill_running(inbox);
            self.emit(&WorkerEvent::Warning(format!(
                "the database has been out of reach for {}s (lease_seconds): stopped the running jobs, \
                 which workers on other hosts may recover",
                lease.as_secs()
            )));
        }
    }

    /// Cancels every running attempt and SIGKILLs its process group. Slots whose result is
    /// already in `inbox` are left alone: their process has been reaped and its PID may be
    /// someone else's by now.
    pub(super) fn kill_running(&self, inbox: &[Done]) {
        for (index, slot) in self.slots.iter().enumerate() {
            if slot.running.is_none() || inbox.iter().any(|d| d.thread == index + 1) {
                continue;
            }
            slot.state.cancel();
            if let Some(pid) = slot.state.pid() {
                signal_group(pid, libc::SIGKILL);
            }
        }
    }

    /// Hands `job` to an idle thread with a fresh cancellation token, which a forced stop of
    /// `shutdown` fires directly.
    pub(super) fn dispatch(&mut self, job: Job, shutdown: &Shutdown) {
        let index = match self.slots.iter().position(|s| s.running.is_none()) {
            Some(index) => index,
            None => return, // cannot happen: we never claim more than the idle threads
        };
        let timeout = self.settings.timeout_for(&job);
        let token = CancelToken::new();
        shutdown.cancel_on_force(&token);
        let slot = &mut self.slots[index];
        slot.state = Arc::new(SlotState::with_token(token));
        let context = ExecContext {
            attempt: job.attempts + 1,
            home: self.home.root().to_path_buf(),
            timeout,
            output_limit: self.settings.output_limit_bytes,
            slot: slot.state.clone(),
            queue: self.queue_id.clone(),
        };
        let started = Instant::now();
        slot.running = Some(Running {
            job: job.clone(),
            started_at: job.started_at.unwrap_or_else(now_ms),
            deadline: timeout.and_then(|t| started.checked_add(t)),
            term_sent_at: None,
            kill_sent: false,
        });
        self.slots_dirty = true;
        let attempt = job.attempts + 1;
        let event = WorkerEvent::JobStarted {
            thread: index + 1,
            job: job.clone(),
            attempt,
        };
        // The channel has room: the slot was idle, so its single buffer place is free.
        let _ = slot.sender.send(Assignment { job, context });
        self.emit(&event);
    }

    /// At a running attempt's deadline: fires its token (what a Rust executor watches), and for
    /// a process SIGTERMs its group, then SIGKILLs it after the grace period.
    pub(super) fn enforce_timeouts(&mut self) {
        let grace = Duration::from_secs(self.settings.stop_grace_seconds);
        let mut events = Vec::new();
        for (index, slot) in self.slots.iter_mut().enumerate() {
            let Some(running) = slot.running.as_mut() else { continue };
            let Some(deadline) = running.deadline else { continue };
            let now = Instant::now();
            if now < deadline {
                continue;
            }
            let Some(pid) = slot.state.pid() else {
                // A Rust executor has no process to signal: its token fires, and whatever it
                // returns from now on is recorded as a timeout.
                if !slot.state.is_timed_out() {
                    slot.state.mark_timed_out();
                    events.push(WorkerEvent::JobTimedOut {
                        thread: index + 1,
                        job_id: running.job.id.clone(),
                        signal: "none (custom executor)",
                    });
                }
                continue;
            };
            match running.term_sent_at {
                None => {
                    slot.state.mark_timed_out();
                    signal_group(pid, libc::SIGTERM);
                    running.term_sent_at = Some(now);
                    events.push(WorkerEvent::JobTimedOut {
                        thread: index + 1,
                        job_id: running.job.id.clone(),
                        signal: "SIGTERM",
                    });
                }
                Some(sent) if !running.kill_sent && now.duration_since(sent) >= grace => {
                    signal_group(pid, libc::SIGKILL);
                    running.kill_sent = true;
                    events.push(WorkerEvent::JobTimedOut {
                        thread: index + 1,
                        job_id: running.job.id.clone(),
                        signal: "SIGKILL",
                    });
                }
                Some(_) => {}
            }
        }
        for event in events {
            self.emit(&event);
        }
    }

    pub(super) fn slots_json(&self) -> serde_json::Value {
        let slots: Vec<serde_json::Value> = self
            .slots
            .iter()
            .enumerate()
            .filter_map(|(index, slot)| {
                slot.running.as_ref().map(|running| {
                    serde_json::json!({
                        "thread": index + 1,
                        "job": running.job.id,
                        "kind": running.job.kind,
                        "command": running.job.command,
                        "pid": slot.state.pid(),
                        "pid_start": slot.state.pid_start(),
                        "started_at": running.started_at,
                    })
                })
            })
            .collect();
        serde_json::Value::Array(slots)
    }

    /// True while a shell job has been handed out but its process is not recorded yet.
    pub(super) fn shell_without_pid(&self) -> bool {
        self.slots.iter().any(|slot| {
            slot.running.as_ref().map(|r| r.job.kind == SHELL_KIND).unwrap_or(false) && slot.state.pid().is_none()
        })
    }
}
