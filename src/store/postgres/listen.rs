//! The "something changed" signal of a PostgreSQL queue.
//!
//! Every transaction that adds jobs or moves one out of `processing` sends a `NOTIFY` on the
//! queue's channel ([`channel_name`](super::schema::channel_name)), from the triggers that keep
//! the counts, so no statement can forget it. A store that is asked for
//! its [`token`](Listener::token) starts listening: a second connection, owned by a background
//! thread that waits on it (`timeout_iter`) and bumps a shared counter on every notification
//! another session sent. Reading the token is then one atomic load, cheap enough to poll every
//! few milliseconds, and a notification reaches the counter as soon as the server sends it.
//!
//! The thread checks a stop flag between waits of [`POLL`], and the store joins it when
//! dropped: a long-lived process that opens and drops stores leaks no threads. If its
//! connection is lost, the thread bumps the counter (waiters look again instead of trusting a
//! count that may have missed notifications) and connects again with a growing pause, bumping
//! the counter after every attempt, so waiters fall back to polling at that pace meanwhile.
//!
//! When the store's connection settings change (see [`Listener::set_target`]), the thread
//! connects again with the new ones, as after a lost connection.
//!
//! Commands that never wait (status, list, enqueue) never listen and open one connection.

use super::connection::Target;
use crate::error::Result;
use crate::store::DbLocation;
use postgres::fallible_iterator::FallibleIterator;
use postgres::Client;
use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long the listening thread waits for a notification before checking its stop flag
/// (and so the longest a dropped store waits for it).
const POLL: Duration = Duration::from_millis(25);

/// The longest pause between two attempts to connect again.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// What the store and its listening thread share.
struct Shared {
    /// How to connect.
    target: Mutex<Target>,
    /// Bumped when `target` changes.
    generation: AtomicU64,
    /// Notifications from other sessions, plus one per lost connection or failed reconnect.
    token: AtomicI64,
    /// Set when the store is dropped.
    stop: AtomicBool,
    /// The server process of the store's own connection: its notifications are not changes
    /// made by *another* connection.
    own_pid: AtomicI32,
}

impl Shared {
    /// The current target and its generation.
    fn target(&self) -> (Target, u64) {
        let target = self.target.lock().unwrap_or_else(PoisonError::into_inner);
        (target.clone(), self.generation.load(Ordering::Acquire))
    }
}

/// The listening side of one store.
pub(super) struct Listener {
    channel: String,
    location: DbLocation,
    shared: Arc<Shared>,
    thread: RefCell<Option<JoinHandle<()>>>,
}

impl Listener {
    /// A listener for `channel`, not listening yet.
    pub(super) fn new(channel: String, target: Target, location: DbLocation) -> Listener {
        Listener {
            channel,
            location,
            shared: Arc::new(Shared {
                target: Mutex::new(target),
                generation: AtomicU64::new(0),
                token: AtomicI64::new(0),
                stop: AtomicBool::new(false),
                own_pid: AtomicI32::new(0),
            }),
            thread: RefCell::new(None),
        }
    }

    /// Connects with `target` from now on: a listening thread connects again with it.
    pub(super) fn set_target(&self, target: Target) {
        let mut current = self.shared.target.lock().unwrap_or_else(PoisonError::into_inner);
        *current = target;
        self.shared.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Records the server process of the store's (new) connection.
    pub(super) fn set_own_pid(&self, pid: i32) {
        self.shared.own_pid.store(pid, Ordering::Relaxed);
    }

    /// The current token. The first call starts listening and returns once `LISTEN` is in
    /// effect, so no change committed after it is missed.
    pub(super) fn token(&self) -> Result<i64> {
        let mut thread = self.thread.borrow_mut();
        if thread.is_none() {
            let (target, generation) = self.shared.target();
            let client = listen(&target, &self.location, &self.channel)?;
            let shared = self.shared.clone();
            let (location, channel) = (self.location.clone(), self.channel.clone());
            let handle = std::thread::Builder::new()
                .name("queuectl-pg-listen".into())
                .spawn(move || run(client, generation, &shared, &location, &channel))
                .map_err(|e| crate::Error::Other(format!("could not start the listening thread: {e}")))?;
            *thread = Some(handle);
        }
        Ok(self.shared.token.load(Ordering::Acquire))
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        if let Some(handle) = self.thread.get_mut().take() {
            let _ = handle.join();
        }
    }
}

/// A new connection listening on `channel` (watched by the server as `target` says).
fn listen(target: &Target, location: &DbLocation, channel: &str) -> Result<Client> {
    let mut client = target.connect(location)?;
    let keepalives = target.server_keepalives();
    if !keepalives.is_empty() {
        client.batch_execute(&keepalives)?;
    }
    client.batch_execute(&format!("LISTEN {channel}"))?;
    Ok(client)
}

/// The listening thread: counts notifications until told to stop, reconnecting when the
/// connection is lost or the target changed (`generation`: the target's the client was made
/// with).
fn run(mut client: Client, mut generation: u64, shared: &Shared, location: &DbLocation, channel: &str) {
    let bump = || {
        shared.token.fetch_add(1, Ordering::AcqRel);
    };
    loop {
        if shared.stop.load(Ordering::Acquire) {
            return;
        }
        let lost = {
            let mut notifications = client.notifications();
            let mut waiting = notifications.timeout_iter(POLL);
            loop {
                match waiting.next() {
                    Ok(Some(notification)) => {
                        if notification.process_id() != shared.own_pid.load(Ordering::Relaxed) {
                            bump();
                        }
                        if shared.stop.load(Ordering::Acquire) {
                            return;
                        }
                    }
                    Ok(None) => break false,
                    Err(_) => break true,
                }
            }
        };
        let retarget = shared.generation.load(Ordering::Acquire) != generation;
        if !lost && !retarget && !client.is_closed() {
            continue;
        }
        drop(client);
        // Lost, or replaced by one with new settings: what was sent meanwhile is unknown.
        bump();
        let mut pause = Duration::from_millis(100);
        client = loop {
            if !sleep_unless_stopped(shared, pause) {
                return;
            }
            let (target, current) = shared.target();
            match listen(&target, location, channel) {
                Ok(client) => {
                    generation = current;
                    break client;
                }
                Err(_) => {
                    // Waiters poll at this pace until the server is back.
                    bump();
                    pause = (pause * 2).min(MAX_BACKOFF);
                }
            }
        };
        // Changes committed while nobody listened.
        bump();
    }
}

/// Sleeps for `pause`, checking the stop flag every [`POLL`]; false if it was set.
fn sleep_unless_stopped(shared: &Shared, pause: Duration) -> bool {
    let deadline = Instant::now() + pause;
    loop {
        if shared.stop.load(Ordering::Acquire) {
            return false;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return true;
        }
        std::thread::sleep(left.min(POLL));
    }
}
