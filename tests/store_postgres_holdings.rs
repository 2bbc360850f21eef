//! What the PostgreSQL store does about a worker's transactions lost with their connection (its
//! `holdings` module): a `finish_and_claim` whose commit reached the server but whose answer
//! never came back counts as applied when it is sent again, and the jobs it claimed go back to
//! `pending`; after any replaced connection, the worker's next `finish_and_claim` puts back to
//! `pending` every job the server says that worker holds and the store never handed out, while
//! without a replaced connection such a job is left alone.
//!
//! The store reaches the server through a small TCP proxy of the test's own (std threads, two
//! pumps per connection): the test can make it swallow everything the server sends (so a
//! commit reaches the server while its answer is lost), and cut every proxied connection at a
//! moment it chooses (both sockets shut down, so the client sees its connection end). What the
//! server really holds is read through an admin connection that bypasses the proxy. Every wait
//! polls with a deadline; the proxy's threads end (and are joined) when the proxy is dropped.
//!
//! Each test makes its own schema in the server named by `QUEUECTL_TEST_PG` (default
//! `postgres://postgres@127.0.0.1/test`) and drops it afterwards. Without a reachable server
//! each test prints one line and returns, unless `QUEUECTL_TEST_PG` is set or
//! `QUEUECTL_REQUIRE_PG=1`: then it fails.
#![cfg(feature = "postgres")]

mod store_postgres_support;

use queuectl::job::State;
use queuectl::store::conformance::{completed, job, T0};
use queuectl::store::{FinishedAttempt, Store, StoreErrorKind};
use queuectl::{Error, Job};
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;
use store_postgres_support::{poll, Scratch};

/// How long any wait of these tests may take before it counts as a failure.
const PATIENCE: Duration = Duration::from_secs(20);

/// Joins `handle`, failing the test if the thread has not ended within `timeout`.
fn join_within<T>(handle: JoinHandle<T>, timeout: Duration, what: &str) -> T {
    assert!(
        poll(timeout, || handle.is_finished()),
        "{what} did not end within {timeout:?}"
    );
    match handle.join() {
        Ok(value) => value,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// What the proxy's threads share.
#[derive(Default)]
struct ProxyShared {
    /// Discard what the server sends instead of passing it on.
    swallow: AtomicBool,
    /// Set when the proxy is dropped: the accepting thread ends.
    stop: AtomicBool,
    /// Both sockets of every proxied connection so far (to cut them).
    sockets: Mutex<Vec<TcpStream>>,
    /// The pumping threads started so far.
    pumps: Mutex<Vec<JoinHandle<()>>>,
}

/// A TCP proxy to the server: every connection made to `addr` is passed on to the server, one
/// thread per direction; see [`Proxy::swallow`] and [`Proxy::cut`].
struct Proxy {
    addr: SocketAddr,
    shared: Arc<ProxyShared>,
    acceptor: Option<JoinHandle<()>>,
}

impl Proxy {
    fn start(server: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        listener.set_nonblocking(true).expect("nonblocking accept");
        let addr = listener.local_addr().expect("proxy address");
        let shared = Arc::new(ProxyShared::default());
        let acceptor = {
            let shared = shared.clone();
            std::thread::spawn(move || {
                // Accepting polls the stop flag between attempts: the thread ends with the proxy.
                while !shared.stop.load(Ordering::Acquire) {
                    match listener.accept() {
                        Ok((client, _)) => Proxy::pass_on(&shared, client, server),
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            std::thread::sleep(Duration::from_millis(5));
                        }
                        Err(e) => panic!("proxy accept: {e}"),
                    }
                }
            })
        };
        Proxy {
            addr,
            shared,
            acceptor: Some(acceptor),
        }
    }

    /// Connects `client` to the server: a pumping thread each way.
    fn pass_on(shared: &Arc<ProxyShared>, client: TcpStream, server: SocketAddr) {
        client.set_nonblocking(false).expect("blocking client socket");
        let Ok(upstream) = TcpStream::connect(server) else {
            let _ = client.shutdown(Shutdown::Both);
            return;
        };
        let _ = client.set_nodelay(true);
        let _ = upstream.set_nodelay(true);
        let clone = |s: &TcpStream| s.try_clone().expect("clone a proxied socket");
        shared
            .sockets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend([clone(&client), clone(&upstream)]);
        let up = {
            let (from, to) = (clone(&client), clone(&upstream));
            let swallow = Arc::new(AtomicBool::new(false));
            std::thread::spawn(move || pump(from, to, &swallow))
        };
        let down = {
            let shared = shared.clone();
            std::thread::spawn(move || pump(upstream, client, &shared.swallow))
        };
        shared
            .pumps
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend([up, down]);
    }

    /// From now on, what the server sends is discarded (`true`) or passed on (`false`).
    fn swallow(&self, swallow: bool) {
        self.shared.swallow.store(swallow, Ordering::Release);
    }

    /// Shuts down both sockets of every proxied connection so far: each client sees its
    /// connection end, the server sees its session's client go away.
    fn cut(&self) {
        let sockets = std::mem::take(&mut *self.shared.sockets.lock().unwrap_or_else(PoisonError::into_inner));
        for socket in sockets {
            let _ = socket.shutdown(Shutdown::Both);
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        self.cut();
        let panicking = std::thread::panicking();
        if let Some(acceptor) = self.acceptor.take() {
            if poll(PATIENCE, || acceptor.is_finished()) {
                let _ = acceptor.join();
            } else if !panicking {
                panic!("the proxy's accepting thread did not end");
            }
        }
        // The accepting thread has ended: no pump starts any more; every socket is shut down.
        let pumps = std::mem::take(&mut *self.shared.pumps.lock().unwrap_or_else(PoisonError::into_inner));
        for handle in pumps {
            if poll(PATIENCE, || handle.is_finished()) {
                let _ = handle.join();
            } else if !panicking {
                panic!("a proxy pump did not end");
            }
        }
    }
}

/// Copies `from` to `to` (or discards it while `swallow` is set) until either side ends, then
/// ends both.
fn pump(mut from: TcpStream, mut to: TcpStream, swallow: &AtomicBool) {
    let mut buffer = [0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if swallow.load(Ordering::Acquire) {
            continue;
        }
        if to.write_all(&buffer[..n]).is_err() {
            break;
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}

/// A job with this id and priority, due at [`T0`].
fn inserted(store: &mut dyn Store, ids_and_priorities: &[(&str, i64)]) {
    let jobs: Vec<_> = ids_and_priorities
        .iter()
        .map(|&(id, priority)| {
            let mut new = job(id);
            new.priority = priority;
            new
        })
        .collect();
    store.insert_jobs(&jobs, false).expect("insert");
}

/// The job as the server has it (state, worker, attempts, lease), read through `admin`.
fn on_server(admin: &mut postgres::Client, id: &str) -> (State, Option<String>, u32, i64) {
    let row = admin
        .query_one("SELECT state, worker, attempts, lease FROM jobs WHERE id = $1", &[&id])
        .expect("read a job");
    let state: String = row.get(0);
    let attempts: i64 = row.get(2);
    (
        state.parse().expect("a state"),
        row.get(1),
        u32::try_from(attempts).expect("attempts"),
        row.get(3),
    )
}

/// Makes `id` `processing` under `worker` behind the store's back, as a claim whose answer was
/// lost leaves it (a new lease, attempts unchanged).
fn hand_over_behind_the_stores_back(admin: &mut postgres::Client, id: &str, worker: &str) {
    let changed = admin
        .execute(
            "UPDATE jobs SET state = 'processing', worker = $2, started_at = $3, updated_at = $3, \
             lease = lease + 1 WHERE id = $1 AND state = 'pending'",
            &[&id, &worker, &T0],
        )
        .expect("hand a job over");
    assert_eq!(changed, 1, "{id} was pending");
}

/// The history rows of job `id`: (attempt, outcome, worker).
fn history(store: &dyn Store, id: &str) -> Vec<(u32, String, Option<String>)> {
    let job = store.get_job(id).expect("get").expect("exists");
    store
        .attempts(job.seq)
        .expect("attempts")
        .into_iter()
        .map(|a| (a.attempt, a.outcome.as_str().to_string(), a.worker))
        .collect()
}

fn ids(jobs: &[Job]) -> Vec<&str> {
    jobs.iter().map(|j| j.id.as_str()).collect()
}

#[track_caller]
fn assert_unavailable(result: &Result<impl std::fmt::Debug, Error>, what: &str) {
    match result {
        Err(Error::Storage(e)) => assert_eq!(e.kind, StoreErrorKind::Unavailable, "{what}: {e:?}"),
        other => panic!("{what}: expected an Unavailable storage error, got {other:?}"),
    }
}

/// Runs `finish_and_claim("w", finished, limit, [], now)` on a thread while the proxy swallows
/// the server's answers, waits until `committed` says the server committed it, then cuts the
/// connections: the call must fail as Unavailable. Returns the store. The statement the call
/// runs must be prepared already (preparing takes a round trip whose answer would be lost).
fn call_losing_its_answer(
    proxy: &Proxy,
    mut store: Box<dyn Store>,
    finished: &[FinishedAttempt],
    limit: usize,
    now: i64,
    mut committed: impl FnMut() -> bool,
) -> Box<dyn Store> {
    proxy.swallow(true);
    let (sender, answer) = mpsc::channel();
    let call = {
        let finished = finished.to_vec();
        std::thread::spawn(move || {
            let result = store.finish_and_claim("w", &finished, limit, &[], now);
            let _ = sender.send(result);
            store
        })
    };
    assert!(poll(PATIENCE, &mut committed), "the server never committed the call");
    assert!(
        answer.try_recv().is_err(),
        "the call returned although the server's answer was swallowed"
    );
    proxy.cut();
    let result = answer.recv_timeout(PATIENCE).expect("the lost call returns once cut");
    assert_unavailable(&result, "the call whose answer was lost");
    let store = join_within(call, PATIENCE, "the calling thread");
    proxy.swallow(false);
    store
}

/// The server commits a finish of `a` (and a claim of `c`) but its answer is lost with the
/// connection: the call fails as Unavailable. Sent again on a new connection, the same finish
/// counts as applied (its history row is the lost call's, the only one), and `c`, claimed for
/// the worker by the lost call but never received by it, is back to `pending` (lease as the
/// lost claim left it, no attempt counted), while `b`, which the worker did receive, stays
/// `processing` under it.
#[test]
fn a_finish_whose_answer_was_lost_counts_as_applied_when_sent_again() {
    let Some(scratch) = Scratch::new("lost_answer") else {
        return;
    };
    let proxy = Proxy::start(scratch.server_addr());
    let mut store = scratch.store_via(proxy.addr);
    let mut admin = scratch.admin_in_schema();
    inserted(store.as_mut(), &[("a", 3), ("b", 2), ("c", 1)]);
    // One job a call, so the statement the lost call runs is prepared already: preparing
    // takes a round trip, whose answer the proxy would swallow before anything ran.
    let (_, claimed) = store.finish_and_claim("w", &[], 1, &[], T0).expect("claim a");
    assert_eq!(ids(&claimed), ["a"]);
    let a = claimed[0].clone();
    let (_, claimed) = store.finish_and_claim("w", &[], 1, &[], T0).expect("claim b");
    assert_eq!(ids(&claimed), ["b"]);
    let b_lease = claimed[0].lease;
    let done: FinishedAttempt = completed(&a, T0 + 1_000);

    let mut store = call_losing_its_answer(&proxy, store, std::slice::from_ref(&done), 1, T0 + 1_000, || {
        if on_server(&mut admin, "a").0 != State::Completed {
            return false;
        }
        // The same statement claimed c for w; the worker has not heard of it.
        assert_eq!(
            on_server(&mut admin, "c"),
            (State::Processing, Some("w".to_string()), 0, 1),
            "c as the lost call left it"
        );
        true
    });

    let (applied, claimed) = store
        .finish_and_claim("w", std::slice::from_ref(&done), 0, &[], T0 + 2_000)
        .expect("the finish sent again");
    assert_eq!(applied, [true], "recorded by the lost call: applied");
    assert!(claimed.is_empty(), "{:?}", ids(&claimed));
    assert_eq!(
        on_server(&mut admin, "a"),
        (State::Completed, Some("w".to_string()), 1, 1)
    );
    assert_eq!(
        history(store.as_ref(), "a"),
        [(1, "completed".to_string(), Some("w".to_string()))],
        "one attempt: the lost call's"
    );
    assert_eq!(
        on_server(&mut admin, "c"),
        (State::Pending, None, 0, 1),
        "claimed by the lost call, never received: back to pending"
    );
    assert!(history(store.as_ref(), "c").is_empty());
    assert_eq!(
        on_server(&mut admin, "b"),
        (State::Processing, Some("w".to_string()), 0, b_lease),
        "received by the worker: still its own"
    );
}

/// A job `processing` under worker `w` that the store never handed out (as a claim whose answer
/// was lost leaves it) is left alone while the store's connection lasts; once the connection
/// was replaced, `w`'s next `finish_and_claim` puts it back to `pending` (no worker, attempts
/// unchanged) and applies its finish. The call after that trusts the server again.
#[test]
fn after_a_reconnect_jobs_the_worker_never_received_go_back_to_pending() {
    let Some(scratch) = Scratch::new("reconnect") else {
        return;
    };
    let proxy = Proxy::start(scratch.server_addr());
    let mut store = scratch.store_via(proxy.addr);
    let mut admin = scratch.admin_in_schema();
    inserted(store.as_mut(), &[("a", 3), ("d", 2), ("b", 1)]);
    let (_, claimed) = store.finish_and_claim("w", &[], 2, &[], T0).expect("claim");
    assert_eq!(ids(&claimed), ["a", "d"]);
    let (a, d) = (claimed[0].clone(), claimed[1].clone());
    hand_over_behind_the_stores_back(&mut admin, "b", "w");
    let b_before = on_server(&mut admin, "b");
    assert_eq!(b_before, (State::Processing, Some("w".to_string()), 0, 1));

    // The same connection: the server's view is trusted, b left alone.
    let (applied, _) = store
        .finish_and_claim("w", &[completed(&d, T0 + 500)], 0, &[], T0 + 500)
        .expect("finish d");
    assert_eq!(applied, [true]);
    assert_eq!(on_server(&mut admin, "b"), b_before, "no reconnect: b left alone");
    assert_eq!(on_server(&mut admin, "a").0, State::Processing);

    // The connection is cut: the next call fails with it, the one after connects again.
    proxy.cut();
    assert_unavailable(&store.get_job("a"), "the first call after the cut");
    assert_eq!(
        store.get_job("a").expect("connected again").expect("a").state,
        State::Processing
    );

    let (applied, claimed) = store
        .finish_and_claim("w", &[completed(&a, T0 + 1_000)], 0, &[], T0 + 1_000)
        .expect("finish a after the reconnect");
    assert_eq!(applied, [true]);
    assert!(claimed.is_empty());
    assert_eq!(
        on_server(&mut admin, "b"),
        (State::Pending, None, 0, 1),
        "never received by w: back to pending"
    );
    assert!(history(store.as_ref(), "b").is_empty(), "no attempt counted");
    assert_eq!(
        on_server(&mut admin, "a"),
        (State::Completed, Some("w".to_string()), 1, 1)
    );
    assert_eq!(
        history(store.as_ref(), "a"),
        [(1, "completed".to_string(), Some("w".to_string()))]
    );

    // Settled: the server's view is trusted again.
    inserted(store.as_mut(), &[("e", 0)]);
    hand_over_behind_the_stores_back(&mut admin, "b", "w");
    let b_before = on_server(&mut admin, "b");
    let (_, claimed) = store.finish_and_claim("w", &[], 1, &[], T0 + 2_000).expect("claim e");
    assert_eq!(ids(&claimed), ["e"]);
    assert_eq!(on_server(&mut admin, "b"), b_before, "trusted again: b left alone");
}

/// After a lost call that finished `q`, the worker sends again the finish of `p`, which an
/// earlier call applied and answered (same worker, same lease number, same end time as `q`'s):
/// its guard fails and no lost call carried it, so it is discarded (`false`), while `q`'s
/// counts as applied. Only the very attempt a lost call carried counts as recorded.
#[test]
fn a_finish_the_lost_call_did_not_carry_is_still_discarded_when_sent_again() {
    let Some(scratch) = Scratch::new("not_carried") else {
        return;
    };
    let proxy = Proxy::start(scratch.server_addr());
    let mut store = scratch.store_via(proxy.addr);
    let mut admin = scratch.admin_in_schema();
    inserted(store.as_mut(), &[("p", 2), ("q", 1)]);
    let (_, claimed) = store.finish_and_claim("w", &[], 1, &[], T0).expect("claim p");
    assert_eq!(ids(&claimed), ["p"]);
    let p = completed(&claimed[0], T0 + 1_000);
    let (_, claimed) = store.finish_and_claim("w", &[], 1, &[], T0).expect("claim q");
    assert_eq!(ids(&claimed), ["q"]);
    let q = completed(&claimed[0], T0 + 1_000);
    assert_eq!((p.lease, p.finished_at), (q.lease, q.finished_at));
    let (applied, _) = store
        .finish_and_claim("w", std::slice::from_ref(&p), 1, &[], T0 + 1_000)
        .expect("finish p");
    assert_eq!(applied, [true]);

    let mut store = call_losing_its_answer(&proxy, store, std::slice::from_ref(&q), 1, T0 + 1_000, || {
        on_server(&mut admin, "q").0 == State::Completed
    });

    let (applied, claimed) = store
        .finish_and_claim("w", &[p, q], 0, &[], T0 + 2_000)
        .expect("both sent again");
    assert_eq!(
        applied,
        [false, true],
        "p: answered before, not carried by the lost call"
    );
    assert!(claimed.is_empty());
    for id in ["p", "q"] {
        assert_eq!(
            history(store.as_ref(), id),
            [(1, "completed".to_string(), Some("w".to_string()))],
            "{id}"
        );
    }
}
