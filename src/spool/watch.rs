//! The long-running ingester: the ingest lock, file events as wake-up hints, polling when
//! events are unavailable, and re-arming the watch when `incoming/` is replaced.
//!
//! Measured with notify 8 (inotify): a callback that blocks loses events in a burst (a bounded
//! channel of 16 saw 16,401 of 50,000 renames plus one rescan flag). So the callback never
//! blocks: it `try_send`s on a channel of one slot (a full slot already means "re-list"), and
//! every wake re-lists the whole directory, which also covers the rescan (overflow) event.

use super::ingest::{check_permissions, forget_old_files, run_pass};
use super::read::Memory;
use super::{SpoolEvent, SpoolPaths};
use crate::config::Settings;
use crate::error::{Error, Result};
use crate::home::Home;
use crate::shutdown::Shutdown;
use crate::store::Store;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use notify::event::{AccessKind, AccessMode, ModifyKind};
use notify::{EventKind, RecursiveMode, Watcher};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::time::{Duration, Instant};

/// How often `incoming/` is listed when file events are unavailable.
pub(crate) const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// How often `incoming/` is listed even without events: a safety net, and the moment a
/// replaced `incoming/` is noticed when no event says so.
const TICK: Duration = Duration::from_secs(1);
/// How often a process that found the lock held tries again.
const LOCK_RETRY: Duration = Duration::from_secs(2);
/// The longest the loop waits before looking at the stop signal again.
const STOP_CHECK: Duration = Duration::from_millis(50);
/// The longest wait after failed passes (doubling from one second).
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How often identities of long-ingested files are forgotten.
const FORGET_EVERY: Duration = Duration::from_secs(3600);

/// The spool's ingest lock, held while the value lives (closing the file releases it).
#[derive(Debug)]
pub(crate) struct SpoolLock {
    _file: File,
}

/// Takes the spool's ingest lock, or returns `None` if another process (or another handle in
/// this one) holds it.
pub(crate) fn try_lock(paths: &SpoolPaths) -> Result<Option<SpoolLock>> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&paths.lock)
        .map_err(|e| Error::io(&paths.lock, e))?;
    // Called through the trait: std's File has inherent lock methods of the same names.
    match fs2::FileExt::try_lock_exclusive(&file) {
        Ok(()) => Ok(Some(SpoolLock { _file: file })),
        Err(e) if e.raw_os_error() == fs2::lock_contended_error().raw_os_error() => Ok(None),
        Err(e) => Err(Error::io(&paths.lock, e)),
    }
}

/// Starts [`watch`] on its own thread (with its own database connection) and returns its
/// handle; the thread ends once `shutdown` is requested.
pub fn spawn_watcher(
    home: Home,
    shutdown: Shutdown,
    on_event: Box<dyn Fn(&SpoolEvent) + Send>,
) -> std::thread::JoinHandle<Result<()>> {
    std::thread::Builder::new()
        .name("queuectl-spool".into())
        .spawn(move || watch(&home, &shutdown, &*on_event))
        .expect("the operating system refused to start the spool thread")
}

/// Ingests the spool until `shutdown` asks to stop: at once, on every file event, and on a
/// periodic tick (polling instead when file events are unavailable).
///
/// If another process holds the ingest lock, sends [`SpoolEvent::LockHeld`] once and tries
/// again every 2 s, so ingestion resumes here when the other ingester exits. Problems during
/// ingestion are reported as [`SpoolEvent::Warning`]s and retried with a growing delay; an
/// error is returned only when the queue cannot be opened or the spool directory cannot be
/// created or locked at all.
pub fn watch(home: &Home, shutdown: &Shutdown, on_event: &dyn Fn(&SpoolEvent)) -> Result<()> {
    let (mut store, mut settings) = crate::config::open_with_settings(home)?;
    let mut waited = false;
    while !shutdown.is_stopping() {
        let paths = SpoolPaths::new(&settings.spool_dir);
        super::create_layout(&paths.root)?;
        match try_lock(&paths)? {
            None => {
                if !waited {
                    on_event(&SpoolEvent::LockHeld {
                        dir: paths.root.clone(),
                    });
                    waited = true;
                }
                shutdown.wait_timeout(LOCK_RETRY);
                // The spool may have been moved meanwhile (`config set spool-dir`).
                if let Ok(newer) = crate::config::load_settings(home, store.as_ref()) {
                    settings = newer;
                }
            }
            Some(lock) => {
                if waited {
                    on_event(&SpoolEvent::LockAcquired {
                        dir: paths.root.clone(),
                    });
                    waited = false;
                }
                let mut ingester = Ingester::new(home, store.as_mut(), settings.clone(), paths, on_event);
                let changed = ingester.run(shutdown);
                drop(lock);
                match changed {
                    Some(newer) => settings = newer,
                    None => break,
                }
            }
        }
    }
    Ok(())
}

/// What the notify callback tells the ingester beside waking it: whether a name is being
/// written in place (opened for writing and not closed yet).
#[derive(Debug)]
struct Hint {
    name: String,
    writing: bool,
}

fn hint_of(kind: &EventKind) -> Option<bool> {
    match kind {
        EventKind::Create(_) | EventKind::Modify(ModifyKind::Data(_)) => Some(true),
        EventKind::Access(AccessKind::Close(AccessMode::Write))
        | EventKind::Modify(ModifyKind::Name(_))
        | EventKind::Remove(_) => Some(false),
        _ => None,
    }
}

/// True for events our own reading causes (open, close after reading): they never mean a
/// new file, and waking on them would only cost an empty pass after every pass.
fn is_read_access(kind: &EventKind) -> bool {
    matches!(kind, EventKind::Access(access) if *access != AccessKind::Close(AccessMode::Write))
}

/// The watch on one `incoming/` directory, and which directory (device, inode) it is on.
struct Armed {
    watcher: Option<notify::RecommendedWatcher>,
    identity: Option<(u64, u64)>,
}

fn dir_identity(paths: &SpoolPaths) -> Option<(u64, u64)> {
    std::fs::symlink_metadata(&paths.incoming)
        .ok()
        .filter(|m| m.is_dir())
        .map(|m| (m.dev(), m.ino()))
}

struct Ingester<'a> {
    home: &'a Home,
    store: &'a mut dyn Store,
    settings: Settings,
    paths: SpoolPaths,
    on_event: &'a dyn Fn(&SpoolEvent),
    wake_tx: Sender<()>,
    wake_rx: Receiver<()>,
    hint_tx: Sender<Hint>,
    hint_rx: Receiver<Hint>,
    memory: Memory,
    armed: Armed,
    /// Skips file events as if they were unavailable: lets tests exercise the polling fallback.
    force_polling: bool,
}

impl<'a> Ingester<'a> {
    fn new(
        home: &'a Home,
        store: &'a mut dyn Store,
        settings: Settings,
        paths: SpoolPaths,
        on_event: &'a dyn Fn(&SpoolEvent),
    ) -> Ingester<'a> {
        let (wake_tx, wake_rx) = crossbeam_channel::bounded(1);
        // Unbounded so the callback never waits; it carries only in-place-write hints and is
        // drained at every pass.
        let (hint_tx, hint_rx) = crossbeam_channel::unbounded();
        Ingester {
            home,
            store,
            settings,
            paths,
            on_event,
            wake_tx,
            wake_rx,
            hint_tx,
            hint_rx,
            memory: Memory::default(),
            armed: Armed {
                watcher: None,
                identity: None,
            },
            force_polling: false,
        }
    }

    /// Sets up the watch on `incoming/` as it is now; on failure, says so and polls.
    fn arm(&mut self) {
        self.armed = Armed {
            watcher: None,
            identity: dir_identity(&self.paths),
        };
        let wake_tx = self.wake_tx.clone();
        let hint_tx = self.hint_tx.clone();
        let callback = move |result: notify::Result<notify::Event>| {
            if let Ok(event) = &result {
                if let Some(writing) = hint_of(&event.kind) {
                    for path in &event.paths {
                        if let Some(name) = path.file_name().and_then(|n| n.to_str()) {
                            if super::identity::format_of(name).is_some() {
                                let _ = hint_tx.send(Hint {
                                    name: name.to_string(),
                                    writing,
                                });
                            }
                        }
                    }
                }
                if is_read_access(&event.kind) && !event.need_rescan() {
                    return;
                }
            }
            // Errors and rescans wake too: a full re-list is the answer to every doubt. A full
            // slot means a wake is pending already, which covers this event.
            let _ = wake_tx.try_send(());
        };
        let started = if self.force_polling {
            Err(notify::Error::generic("file events disabled"))
        } else {
            notify::recommended_watcher(callback).and_then(|mut watcher| {
                watcher
                    .watch(&self.paths.incoming, RecursiveMode::NonRecursive)
                    .map(|_| watcher)
            })
        };
        let polling = match started {
            Ok(watcher) => {
                self.armed.watcher = Some(watcher);
                false
            }
            Err(e) => {
                (self.on_event)(&SpoolEvent::Warning(format!(
                    "file events are unavailable for {} ({e}); polling instead",
                    self.paths.incoming.display()
                )));
                true
            }
        };
        (self.on_event)(&SpoolEvent::Watching {
            dir: self.paths.incoming.clone(),
            polling,
        });
    }

    /// Re-arms the watch if `incoming/` was deleted or replaced (a watch on the old directory
    /// silently ends), recreating it if it is gone.
    fn rearm_if_replaced(&mut self) {
        let now = dir_identity(&self.paths);
        if now.is_some() && now == self.armed.identity {
            return;
        }
        if std::fs::symlink_metadata(&self.paths.incoming).is_err() {
            match super::create_layout(&self.paths.root) {
                Ok(()) => (self.on_event)(&SpoolEvent::Warning(format!(
                    "{} disappeared; created it again",
                    self.paths.incoming.display()
                ))),
                Err(e) => (self.on_event)(&SpoolEvent::Warning(format!("cannot recreate the spool: {e}"))),
            }
        } else if now.is_some() {
            (self.on_event)(&SpoolEvent::Warning(format!(
                "{} was replaced; watching the new directory",
                self.paths.incoming.display()
            )));
        }
        if dir_identity(&self.paths).is_some() {
            check_permissions(&self.paths, self.on_event);
            self.arm();
        }
    }

    /// Ingests until a stop is requested (returns `None`) or `spool_dir` changes (returns the
    /// new settings, for the caller to lock and watch the new spool).
    fn run(&mut self, shutdown: &Shutdown) -> Option<Settings> {
        check_permissions(&self.paths, self.on_event);
        self.arm();
        let mut next_pass = Instant::now();
        let mut failures: u32 = 0;
        let mut next_forget = Instant::now();
        let mut settings_error: Option<String> = None;
        loop {
            if shutdown.is_stopping() {
                return None;
            }
            let now = Instant::now();
            if now < next_pass {
                match self.wake_rx.recv_timeout((next_pass - now).min(STOP_CHECK)) {
                    // An event: pass now, unless backing off after failures.
                    Ok(()) if failures == 0 => {}
                    Ok(()) | Err(RecvTimeoutError::Timeout) => continue,
                    // Cannot happen (this struct holds a sender); polling is the safe reading.
                    Err(RecvTimeoutError::Disconnected) => {}
                }
            }
            match crate::config::load_settings(self.home, &*self.store) {
                Ok(settings) => {
                    settings_error = None;
                    if settings.spool_dir != self.paths.root {
                        (self.on_event)(&SpoolEvent::Warning(format!(
                            "spool_dir changed from {} to {}; moving over",
                            self.paths.root.display(),
                            settings.spool_dir.display()
                        )));
                        return Some(settings);
                    }
                    self.settings = settings;
                }
                Err(e) => {
                    // Keep ingesting with the last good settings; say so once per new problem.
                    let text = e.to_string();
                    if settings_error.as_deref() != Some(text.as_str()) {
                        (self.on_event)(&SpoolEvent::Warning(format!(
                            "cannot read the settings ({text}); keeping the previous ones"
                        )));
                        settings_error = Some(text);
                    }
                }
            }
            self.rearm_if_replaced();
            for hint in self.hint_rx.try_iter() {
                if hint.writing {
                    self.memory.writing.insert(hint.name);
                } else {
                    self.memory.writing.remove(&hint.name);
                }
            }
            let interval = if self.armed.watcher.is_some() {
                TICK
            } else {
                POLL_INTERVAL
            };
            let started = Instant::now();
            match run_pass(
                &mut *self.store,
                &self.settings,
                &self.paths,
                &mut self.memory,
                self.on_event,
            ) {
                Ok(outcome) => {
                    failures = 0;
                    next_pass = started + outcome.retry_in.map_or(interval, |r| r.min(interval));
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    let backoff = Duration::from_secs(1u64 << (failures - 1).min(5)).min(MAX_BACKOFF);
                    (self.on_event)(&SpoolEvent::Warning(format!(
                        "ingestion pass failed: {e}; trying again in {} s",
                        backoff.as_secs()
                    )));
                    next_pass = started + backoff;
                }
            }
            if started >= next_forget {
                forget_old_files(&*self.store);
                next_forget = started + FORGET_EVERY;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::Queue;
    use notify::event::{CreateKind, DataChange, RenameMode};

    #[test]
    fn hints_and_wakes() {
        assert_eq!(hint_of(&EventKind::Create(CreateKind::File)), Some(true));
        assert_eq!(
            hint_of(&EventKind::Modify(ModifyKind::Data(DataChange::Any))),
            Some(true)
        );
        assert_eq!(
            hint_of(&EventKind::Access(AccessKind::Close(AccessMode::Write))),
            Some(false)
        );
        assert_eq!(
            hint_of(&EventKind::Modify(ModifyKind::Name(RenameMode::To))),
            Some(false)
        );
        assert_eq!(hint_of(&EventKind::Access(AccessKind::Open(AccessMode::Any))), None);
        assert!(is_read_access(&EventKind::Access(AccessKind::Close(AccessMode::Read))));
        assert!(!is_read_access(&EventKind::Access(AccessKind::Close(
            AccessMode::Write
        ))));
        assert!(!is_read_access(&EventKind::Modify(ModifyKind::Name(RenameMode::To))));
    }

    /// Runs an ingester (polling or watching) on a new queue until `check` holds.
    fn ingest_until(
        force_polling: bool,
        setup: impl FnOnce(&SpoolPaths),
        check: impl Fn(&Queue) -> bool,
    ) -> Vec<String> {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::new(dir.path());
        Queue::init(&home).unwrap();
        let events = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let shutdown = Shutdown::new();
        let thread = {
            let (home, shutdown, events) = (home.clone(), shutdown.clone(), events.clone());
            std::thread::spawn(move || {
                let (mut store, settings) = crate::config::open_with_settings(&home).unwrap();
                let paths = SpoolPaths::new(&settings.spool_dir);
                let on_event = |e: &SpoolEvent| events.lock().unwrap().push(e.to_string());
                let mut ingester = Ingester::new(&home, store.as_mut(), settings, paths, &on_event);
                ingester.force_polling = force_polling;
                ingester.run(&shutdown)
            })
        };
        let paths = SpoolPaths::new(&dir.path().join("spool"));
        let started = Instant::now();
        while !events.lock().unwrap().iter().any(|e| e.contains("spool: ")) {
            assert!(started.elapsed() < Duration::from_secs(10));
            std::thread::sleep(Duration::from_millis(5));
        }
        setup(&paths);
        let queue = Queue::open(&home).unwrap();
        while !check(&queue) {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "{:?}",
                events.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        shutdown.request_stop();
        assert!(thread.join().unwrap().is_none());
        let events = events.lock().unwrap().clone();
        events
    }

    #[test]
    fn polls_when_file_events_are_unavailable() {
        let events = ingest_until(
            true,
            |paths| std::fs::write(paths.incoming.join("a.json"), r#"{"id":"a","command":"x"}"#).unwrap(),
            |queue| queue.get("a").is_ok(),
        );
        assert!(
            events[0].contains("file events are unavailable") && events[0].contains("polling instead"),
            "{events:?}"
        );
        assert!(
            events[1].starts_with("spool: polling ") && events[1].ends_with("every 100 ms"),
            "{events:?}"
        );
    }

    #[test]
    fn rearms_when_incoming_is_replaced() {
        let events = ingest_until(
            false,
            |paths| {
                // Deleting and re-creating the watched directory silently ends an inotify watch.
                // Replaced atomically (rename over the empty directory), so the ingester never
                // finds it missing and re-creates it itself.
                let new = paths.root.join("incoming.new");
                std::fs::create_dir(&new).unwrap();
                std::fs::rename(&new, &paths.incoming).unwrap();
                std::fs::write(paths.incoming.join("b.json"), r#"{"id":"b","command":"x"}"#).unwrap();
            },
            |queue| queue.get("b").is_ok(),
        );
        assert!(
            events
                .iter()
                .any(|e| e.contains("was replaced; watching the new directory")),
            "{events:?}"
        );
    }

    #[test]
    fn one_lock_holder() {
        let dir = tempfile::tempdir().unwrap();
        let paths = SpoolPaths::new(dir.path());
        let first = try_lock(&paths).unwrap();
        assert!(first.is_some());
        assert!(try_lock(&paths).unwrap().is_none());
        drop(first);
        assert!(try_lock(&paths).unwrap().is_some());
    }
}
