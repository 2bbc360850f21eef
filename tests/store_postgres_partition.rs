//! A PostgreSQL store behind a link that is cut mid-call (root only: a network namespace and a
//! private server from the three-host harness, `tests/many_hosts/`; otherwise one `skipped:`
//! line). The store runs on a thread that entered the host's network namespace, with an
//! unresponsive timeout of 1 s, and its call is waiting on the server (for a row lock another
//! session holds) when the link goes down: the call fails as `Unavailable` within a few seconds
//! instead of waiting for the server's answer (the lock timeout is 30 s, and the answer could
//! not arrive anyway); the server ends the session too, so what it held is released; and once
//! the link is back the store connects again on its next call. Measured and printed: how long
//! the call took to fail and the server to end the session.
#![cfg(feature = "postgres")]

#[path = "many_hosts/mod.rs"]
mod harness;

use harness::cluster::{Cluster, SetupError, SCHEMA};
use harness::wait_until;
use queuectl::store::{self, DbLocation, StoreErrorKind};
use queuectl::Error;
use std::os::fd::AsRawFd;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The unresponsive timeout the store runs with.
const TIMEOUT: Duration = Duration::from_secs(1);
/// The application name of the store's sessions.
const PROBE: &str = "partition-probe";

/// What the store's thread is asked to do, and what it answers.
enum Ask {
    /// Retry the DLQ job `held` (its row lock is taken first, so this waits for the holder).
    Retry,
    /// Count the jobs.
    Count,
    Stop,
}

/// Moves the calling thread into network namespace `name` (`ip netns` makes its handle).
fn enter_netns(name: &str) -> Result<(), String> {
    let path = ["/run/netns", "/var/run/netns"]
        .iter()
        .map(|dir| std::path::Path::new(dir).join(name))
        .find(|path| path.exists())
        .ok_or_else(|| format!("no handle for network namespace {name}"))?;
    let handle = std::fs::File::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    // SAFETY: setns on a namespace file we opened; it changes only this thread's namespace.
    match unsafe { libc::setns(handle.as_raw_fd(), libc::CLONE_NEWNET) } {
        0 => Ok(()),
        _ => Err(format!("setns {name}: {}", std::io::Error::last_os_error())),
    }
}

#[test]
fn a_call_waiting_on_the_server_fails_soon_after_the_link_is_cut_and_the_store_reconnects() {
    let tools = match harness::prerequisites() {
        Ok(tools) => tools,
        Err(reason) => {
            eprintln!("skipped: {reason}");
            return;
        }
    };
    let cluster = match Cluster::build(&tools, 1) {
        Ok(cluster) => cluster,
        Err(SetupError::Unsupported(reason)) => {
            eprintln!("skipped: cannot make network namespaces or a bridge here: {reason}");
            return;
        }
        Err(SetupError::Failed(reason)) => panic!("setup failed: {reason}"),
    };
    let host = &cluster.hosts[0];
    host.init().unwrap_or_else(|e| panic!("{e}"));
    let enqueued = harness::run_output(&mut host.inside(["enqueue", "--id", "held", "--command", "true"]))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(enqueued.status.success(), "{}", harness::host::shown(&enqueued));
    let url = cluster.postgres.url(SCHEMA);
    let location = DbLocation::parse(&url.replacen('?', &format!("?application_name={PROBE}&"), 1)).expect("location");

    // The store on a thread inside the host's namespace.
    let netns = cluster.netns(0).name.clone();
    let (ask, asked) = mpsc::channel::<Ask>();
    let (answer, answers) = mpsc::channel::<(Instant, Result<usize, Error>)>();
    let thread = std::thread::spawn(move || {
        if let Err(e) = enter_netns(&netns) {
            let _ = answer.send((Instant::now(), Err(Error::Other(e))));
            return;
        }
        let mut store = match store::open(&location) {
            Ok(store) => store,
            Err(e) => {
                let _ = answer.send((Instant::now(), Err(e)));
                return;
            }
        };
        let set = store.set_unresponsive_timeout(TIMEOUT).map(|()| 0);
        let _ = answer.send((Instant::now(), set));
        for request in asked {
            let result = match request {
                Ask::Retry => store.dlq_retry(&["held".to_string()]),
                Ask::Count => store.counts().map(|c| c.pending as usize),
                Ask::Stop => return,
            };
            let _ = answer.send((Instant::now(), result));
        }
    });
    let (_, ready) = answers
        .recv_timeout(Duration::from_secs(30))
        .expect("the store's thread");
    ready.unwrap_or_else(|e| panic!("the store in the namespace: {e}"));

    // Another session holds the job's row; the store's call waits for it on the server.
    let holder = cluster
        .postgres
        .open_session(
            "partition-holder",
            &format!("BEGIN; SELECT id FROM {SCHEMA}.jobs WHERE id = 'held' FOR UPDATE;"),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let session_state = |name: &str| {
        cluster
            .postgres
            .query(&format!(
                "SELECT coalesce(wait_event_type, '') || ':' || state FROM pg_stat_activity WHERE application_name = '{name}'"
            ))
            .unwrap_or_else(|e| panic!("{e}"))
            .trim()
            .to_string()
    };
    wait_until(
        "the holder to hold the row",
        Duration::from_secs(10),
        Duration::from_millis(20),
        String::new,
        || match session_state("partition-holder").ends_with("idle in transaction") {
            true => Ok(()),
            false => Err(session_state("partition-holder")),
        },
    );
    ask.send(Ask::Retry).expect("ask");
    wait_until(
        "the store's call to wait for the row lock",
        Duration::from_secs(10),
        Duration::from_millis(20),
        String::new,
        || match session_state(PROBE).as_str() {
            "Lock:active" => Ok(()),
            other => Err(other.to_string()),
        },
    );

    let cut_at = Instant::now();
    cluster.netns(0).set_link(false).unwrap_or_else(|e| panic!("{e}"));
    let (failed_at, result) = answers
        .recv_timeout(Duration::from_secs(60))
        .expect("the call returned within a minute");
    let failed_after = failed_at.duration_since(cut_at);
    match result {
        Err(Error::Storage(e)) => assert_eq!(e.kind, StoreErrorKind::Unavailable, "{e}"),
        other => panic!("the call in progress at the cut: {other:?}"),
    }
    // Far below the 30 s the server would wait for the lock (and the unanswerable 60 s of the
    // default tcp_user_timeout): the keepalives gave up.
    assert!(
        failed_after < Duration::from_secs(10),
        "the call failed {failed_after:?} after the cut"
    );
    // The server noticed the vanished client too, while its statement waited for the lock.
    wait_until(
        "the server to end the cut-off session",
        Duration::from_secs(20),
        Duration::from_millis(50),
        String::new,
        || match session_state(PROBE).as_str() {
            "" => Ok(()),
            other => Err(other.to_string()),
        },
    );
    let ended_after = cut_at.elapsed();
    drop(holder);

    // The link returns: the store's next call connects again.
    cluster.netns(0).set_link(true).unwrap_or_else(|e| panic!("{e}"));
    let deadline = Instant::now() + Duration::from_secs(30);
    let pending = loop {
        ask.send(Ask::Count).expect("ask");
        let (_, result) = answers.recv_timeout(Duration::from_secs(60)).expect("an answer");
        match result {
            Ok(pending) => break pending,
            Err(Error::Storage(e)) if e.kind == StoreErrorKind::Unavailable && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => panic!("after the link returned: {e}"),
        }
    };
    assert_eq!(pending, 1, "the job is still there, pending");
    ask.send(Ask::Stop).expect("ask");
    thread.join().expect("the store's thread");
    eprintln!(
        "partition: a call waiting on the server failed {:.1}s after the cut (unresponsive timeout {TIMEOUT:?}); \
         the server ended the session {:.1}s after the cut",
        failed_after.as_secs_f64(),
        ended_after.as_secs_f64()
    );
}
