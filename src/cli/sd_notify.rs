//! `worker start` under systemd (`Type=notify`): tells the service manager when the worker is
//! ready, what it is doing, when it stops, and that it is still alive (the watchdog).
//!
//! - `READY=1` is sent from the pool's `Started` event, which the coordinator emits after the
//!   worker registered and before it claims anything: no job runs before systemd hears it.
//! - `STOPPING=1` is sent from the `Stopping` event (a graceful stop: SIGTERM, `worker stop`)
//!   or, when the pool ends on its own (`--until-idle`), from `Stopped`.
//! - `STATUS=` ("2 threads, 1 busy, 14 jobs run") follows job events, but a small thread sends
//!   it, at most once a second: a busy pool must not send a datagram per job.
//! - `WATCHDOG=1`: the pool emits events on job activity only, so an idle, healthy pool would
//!   go silent; pings therefore come from the same thread, every half of `WATCHDOG_USEC`.
//!   Pinging from a thread alone would prove only that the thread lives, so each ping is
//!   conditional on the worker's heartbeat in the database being fresh: the coordinator loop
//!   writes it (every `heartbeat_seconds`), so a wedged coordinator, or one that cannot reach
//!   its database, stops the pings and systemd restarts the worker after `WatchdogSec=`.
//!   Detection therefore takes up to `2 * heartbeat_seconds + 2s` plus `WatchdogSec=`.

use queuectl::notify::{watchdog_interval_from_env, Notifier};
use queuectl::store::{DbLocation, Store};
use queuectl::worker::WorkerEvent;
use queuectl::Home;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The least time between two `STATUS=` messages.
const STATUS_EVERY: Duration = Duration::from_secs(1);
/// How often the notify thread looks whether the status changed, without a watchdog.
const STATUS_CHECK: Duration = Duration::from_millis(250);

/// What `STATUS=` reports, kept up to date by the pool's events.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Counts {
    threads: usize,
    busy: usize,
    jobs_run: u64,
    stopping: bool,
}

impl Counts {
    fn text(&self) -> String {
        let jobs = if self.jobs_run == 1 { "job" } else { "jobs" };
        let threads = if self.threads == 1 { "thread" } else { "threads" };
        if self.stopping {
            format!(
                "stopping: waiting for {} running, {} {jobs} run",
                self.busy, self.jobs_run
            )
        } else {
            format!(
                "{} {threads}, {} busy, {} {jobs} run",
                self.threads, self.busy, self.jobs_run
            )
        }
    }

    /// Follows one event; true if the event ends a job's run on this worker.
    fn follow(&mut self, event: &WorkerEvent) {
        match event {
            WorkerEvent::Started { threads, .. } => self.threads = *threads,
            WorkerEvent::JobStarted { .. } => self.busy += 1,
            WorkerEvent::JobCompleted { .. }
            | WorkerEvent::JobRetrying { .. }
            | WorkerEvent::JobDead { .. }
            | WorkerEvent::JobReleased { .. }
            | WorkerEvent::ResultDiscarded { .. } => {
                self.busy = self.busy.saturating_sub(1);
                self.jobs_run += 1;
            }
            WorkerEvent::Stopping { .. } => self.stopping = true,
            WorkerEvent::Stopped { jobs_run } => {
                self.busy = 0;
                self.jobs_run = *jobs_run;
                self.stopping = true;
            }
            _ => {}
        }
    }
}

/// State shared by the pool's observer (coordinator thread) and the notify thread.
struct Shared {
    notifier: Notifier,
    counts: Mutex<Counts>,
    /// The last `STATUS=` sent and when: `READY=1` carries the first one.
    last_status: Mutex<Option<(String, Instant)>>,
    /// The worker's id once it registered: the watchdog looks up its heartbeat by it.
    worker_id: Mutex<Option<String>>,
    /// `READY=1` went out: STATUS and WATCHDOG may follow (never before it).
    ready: AtomicBool,
    /// `STOPPING=1` went out (it is sent once).
    stopping_sent: AtomicBool,
    /// The pool has stopped: no more pings.
    stopped: AtomicBool,
    /// A send failed and was reported: later failures stay quiet (the manager may be gone).
    send_failed: AtomicBool,
    pid: u32,
}

impl Shared {
    fn send(&self, message: &str) {
        if let Err(e) = self.notifier.send(message) {
            if !self.send_failed.swap(true, Ordering::Relaxed) {
                super::worker_cmd::print_line(format!(
                    "[{}] warning: cannot notify the service manager at {}: {e}",
                    self.pid,
                    self.notifier.socket_name()
                ));
            }
        }
    }
}

/// Speaks sd_notify for one `worker start`, while `NOTIFY_SOCKET` is set.
pub struct ServiceNotifier {
    shared: Arc<Shared>,
    quit: Sender<()>,
    thread: Option<JoinHandle<()>>,
}

impl ServiceNotifier {
    /// Starts notifying when `NOTIFY_SOCKET` asks for it; `None` otherwise. A value that cannot
    /// be used is one warning line: the worker runs anyway (refusing to start would only make
    /// systemd restart it in a loop with the same environment).
    pub fn from_env(home: &Home, heartbeat_seconds: u64, pid: u32) -> Option<ServiceNotifier> {
        let notifier = match Notifier::from_env() {
            Ok(Some(notifier)) => notifier,
            Ok(None) => return None,
            Err(problem) => {
                super::worker_cmd::print_line(format!("[{pid}] warning: {problem}; not notifying systemd"));
                return None;
            }
        };
        let shared = Arc::new(Shared {
            notifier,
            counts: Mutex::new(Counts::default()),
            last_status: Mutex::new(None),
            worker_id: Mutex::new(None),
            ready: AtomicBool::new(false),
            stopping_sent: AtomicBool::new(false),
            stopped: AtomicBool::new(false),
            send_failed: AtomicBool::new(false),
            pid,
        });
        let (quit, quit_rx) = channel::<()>();
        let watchdog = watchdog_interval_from_env();
        let thread_shared = shared.clone();
        // The heartbeat may be at most this old for a ping: the coordinator writes it every
        // `heartbeat_seconds`; the rest is slack for a slow step (a busy database).
        let fresh = Duration::from_secs(heartbeat_seconds.max(1) * 2 + 2);
        let db = home.db().clone();
        let thread = std::thread::Builder::new()
            .name("queuectl-sd-notify".into())
            .spawn(move || notify_loop(&thread_shared, quit_rx, watchdog, fresh, &db))
            .map_err(|e| {
                super::worker_cmd::print_line(format!("[{pid}] warning: cannot start the systemd notify thread: {e}"))
            })
            .ok();
        Some(ServiceNotifier { shared, quit, thread })
    }

    /// A handle for the pool's observer, which must own what it uses.
    pub fn handle(&self) -> NotifyHandle {
        NotifyHandle {
            shared: self.shared.clone(),
        }
    }

    /// Stops the notify thread (after the pool returned).
    pub fn finish(mut self) {
        self.shared.stopped.store(true, Ordering::SeqCst);
        let _ = self.quit.send(());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The observer's side of a [`ServiceNotifier`].
pub struct NotifyHandle {
    shared: Arc<Shared>,
}

impl NotifyHandle {
    /// Follows one pool event (called on the coordinator thread: only a datagram send at most).
    pub fn observe(&self, event: &WorkerEvent) {
        let shared = &self.shared;
        let text = {
            let mut counts = shared.counts.lock().unwrap_or_else(|e| e.into_inner());
            counts.follow(event);
            counts.text()
        };
        match event {
            WorkerEvent::Started { worker_id, .. } => {
                *shared.worker_id.lock().unwrap_or_else(|e| e.into_inner()) = Some(worker_id.clone());
                shared.send(&format!("READY=1\nSTATUS={text}"));
                *shared.last_status.lock().unwrap_or_else(|e| e.into_inner()) = Some((text, Instant::now()));
                shared.ready.store(true, Ordering::SeqCst);
            }
            WorkerEvent::Stopping { .. } | WorkerEvent::Stopped { .. } => {
                if event_is_stopped(event) {
                    shared.stopped.store(true, Ordering::SeqCst);
                }
                if !shared.stopping_sent.swap(true, Ordering::SeqCst) {
                    shared.send(&format!("STOPPING=1\nSTATUS={text}"));
                }
            }
            _ => {}
        }
    }
}

fn event_is_stopped(event: &WorkerEvent) -> bool {
    matches!(event, WorkerEvent::Stopped { .. })
}

/// The notify thread: STATUS when it changed (at most every [`STATUS_EVERY`]) and WATCHDOG
/// every `watchdog` while the worker's heartbeat is fresh.
fn notify_loop(
    shared: &Shared,
    quit: std::sync::mpsc::Receiver<()>,
    watchdog: Option<Duration>,
    fresh: Duration,
    db: &DbLocation,
) {
    let tick = watchdog.map(|w| w.min(STATUS_CHECK)).unwrap_or(STATUS_CHECK);
    let mut next_ping = Instant::now();
    let mut store: Option<Box<dyn Store>> = None;
    loop {
        match quit.recv_timeout(tick) {
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
            Err(RecvTimeoutError::Timeout) => {}
        }
        if !shared.ready.load(Ordering::SeqCst) {
            continue;
        }
        if shared.stopped.load(Ordering::SeqCst) {
            return;
        }
        let text = shared.counts.lock().unwrap_or_else(|e| e.into_inner()).text();
        {
            let mut last = shared.last_status.lock().unwrap_or_else(|e| e.into_inner());
            let changed = last.as_ref().is_none_or(|(sent, _)| *sent != text);
            let due = last.as_ref().is_none_or(|(_, at)| at.elapsed() >= STATUS_EVERY);
            if changed && due {
                shared.send(&format!("STATUS={text}"));
                *last = Some((text, Instant::now()));
            }
        }
        if let Some(every) = watchdog {
            if Instant::now() >= next_ping {
                next_ping = Instant::now() + every;
                if heartbeat_is_fresh(shared, &mut store, db, fresh) {
                    shared.send("WATCHDOG=1");
                }
            }
        }
    }
}

/// True if the worker's row in the database was heartbeated within `fresh`: the coordinator
/// loop is alive and reaches its database.
fn heartbeat_is_fresh(shared: &Shared, store: &mut Option<Box<dyn Store>>, db: &DbLocation, fresh: Duration) -> bool {
    let Some(id) = shared.worker_id.lock().unwrap_or_else(|e| e.into_inner()).clone() else {
        return false;
    };
    if store.is_none() {
        *store = queuectl::store::open(db).ok();
    }
    let Some(open) = store.as_ref() else {
        return false;
    };
    let workers = match open.workers() {
        Ok(workers) => workers,
        Err(_) => {
            // Reopen next time: the file may have been replaced (a restore).
            *store = None;
            return false;
        }
    };
    let now = chrono::Utc::now().timestamp_millis();
    workers
        .iter()
        .find(|w| w.id == id)
        .is_some_and(|w| now - w.heartbeat_at <= fresh.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_counts_follow_job_events() {
        let mut counts = Counts::default();
        counts.follow(&WorkerEvent::Started {
            worker_id: "h:1:2".into(),
            pid: 1,
            threads: 2,
            kinds: vec!["shell".into()],
        });
        assert_eq!(counts.text(), "2 threads, 0 busy, 0 jobs run");
        counts.follow(&WorkerEvent::Stopping {
            forced: false,
            running: 0,
        });
        assert_eq!(counts.text(), "stopping: waiting for 0 running, 0 jobs run");
        counts.follow(&WorkerEvent::Stopped { jobs_run: 1 });
        assert_eq!(counts.text(), "stopping: waiting for 0 running, 1 job run");
    }
}
