//! Worker liveness and what happens to the jobs of a worker presumed dead: on this host the
//! process table decides (PID and its start time), on another host the heartbeat's age against
//! twice `lease_seconds`; a result that comes back after its job was recovered is discarded; a
//! worker that finds its registry row gone stops its running jobs.
//!
//! States no command produces (a worker row from another host, an ancient heartbeat) are set up
//! by writing the queue database directly (`TestHome::sql`, on either backend), with timestamps
//! far from every threshold, so no assertion depends on how fast the machine is.

mod common;

use common::pool::PoolThread;
use common::process::{process_gone, read_pid, worker_pids, KillListedOnDrop, KillOnDrop, Worker, SHORT};
use common::{millis, now_millis, wait_until, TestHome};
use queuectl::store::WorkerRecord;
use queuectl::worker::registry::{host_name, process_start_time, worker_alive, worker_id_host};
use queuectl::{ExecContext, Job, JobSpec, Outcome, PoolBuilder, Queue, Shutdown, State, WorkerEvent};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A pool on another host that was silent this long is presumed dead with `lease_seconds` 60.
const LEASE_SECONDS: i64 = 60;

fn record(host: &str, pid: u32, proc_start: Option<u64>, heartbeat_at: i64) -> WorkerRecord {
    WorkerRecord {
        id: format!("{host}:{pid}:1"),
        pid,
        host: host.to_string(),
        proc_start,
        started_at: 1,
        heartbeat_at,
        threads: 1,
        kinds: vec!["shell".to_string()],
        slots: serde_json::json!([]),
        stopping: false,
        version: "test".to_string(),
    }
}

/// A PID no process can have (above Linux's largest `pid_max`).
const NO_SUCH_PID: u32 = 4_194_304 + 7;

// ---------------------------------------------------------------------------------------------
// The liveness rule itself (a pure function of the record, the time and the host)
// ---------------------------------------------------------------------------------------------

#[test]
fn another_hosts_worker_is_alive_until_twice_the_lease_has_passed_since_its_heartbeat() {
    let now = 10_000_000_000;
    let lease = 15;
    let here = "this-host";
    let there = |age_ms: i64| record("other-host", NO_SUCH_PID, None, now - age_ms);
    assert!(worker_alive(&there(0), now, lease, here));
    // Past one lease is not enough: clock skew and a slow disk get a margin.
    assert!(worker_alive(&there(15_001), now, lease, here));
    assert!(
        worker_alive(&there(30_000), now, lease, here),
        "exactly twice the lease"
    );
    assert!(!worker_alive(&there(30_001), now, lease, here));
    assert!(!worker_alive(&there(now), now, lease, here));
    // The PID means nothing on another host: one alive here does not keep it alive.
    let mine = record("other-host", std::process::id(), None, now - 30_001);
    assert!(!worker_alive(&mine, now, lease, here));
}

#[test]
fn on_this_host_the_pid_and_its_start_time_decide_whatever_the_heartbeat() {
    let here = host_name();
    let pid = std::process::id();
    let start = process_start_time(pid).expect("the start time of this process");
    let now = now_millis();
    // Alive with a heartbeat from 1970: a paused worker still owns the processes of its jobs.
    assert!(worker_alive(&record(&here, pid, Some(start), 0), now, 15, &here));
    // The same PID with another start time is another process (the PID was reused): dead,
    // however fresh the heartbeat.
    assert!(!worker_alive(&record(&here, pid, Some(start + 1), now), now, 15, &here));
    assert!(!worker_alive(&record(&here, NO_SUCH_PID, None, now), now, 15, &here));
}

/// Workers record the machine's host name (what other hosts see in `status`, and what decides
/// whether the process table or the heartbeat judges a worker).
#[test]
fn this_host_is_the_machines_host_name() {
    let kernel = std::fs::read_to_string("/proc/sys/kernel/hostname").expect("the kernel's host name");
    assert_eq!(host_name(), kernel.trim_end());
    assert!(!host_name().is_empty());
}

/// A job whose worker row is gone is judged by the host in its worker id (`HOST:PID:STARTED`),
/// which may itself hold colons.
#[test]
fn the_host_of_a_worker_id_is_everything_before_its_last_two_fields() {
    assert_eq!(worker_id_host("db-1.example:4242:1700000000000"), Some("db-1.example"));
    assert_eq!(worker_id_host("fe80::1:4242:1700000000000"), Some("fe80::1"));
    assert_eq!(worker_id_host("4242:1700000000000"), None);
}

// ---------------------------------------------------------------------------------------------
// recover, against worker rows set up in the database
// ---------------------------------------------------------------------------------------------

/// Inserts a worker row and moves the (pending) job `job` to `processing` under it.
fn hold_job(home: &TestHome, worker: &WorkerRecord, job: &str) {
    let mut db = home.sql();
    db.execute(
        "INSERT INTO {workers} (id, pid, host, proc_start, started_at, heartbeat_at, threads, kinds, slots, \
         stopping, version) VALUES (?1, ?2, ?3, ?4, ?5, ?6, 1, '[\"shell\"]', '[]', '0', 'test')",
        &[
            worker.id.as_str().into(),
            worker.pid.into(),
            worker.host.as_str().into(),
            worker.proc_start.map(|s| s as i64).into(),
            worker.started_at.into(),
            worker.heartbeat_at.into(),
        ],
    );
    let changed = db.execute(
        "UPDATE {jobs} SET state = 'processing', worker = ?1, started_at = ?2, lease = lease + 1 \
         WHERE id = ?3 AND state = 'pending'",
        &[worker.id.as_str().into(), worker.heartbeat_at.max(1).into(), job.into()],
    );
    assert_eq!(changed, 1, "{job} was not pending");
}

fn worker_ids(home: &TestHome) -> Vec<String> {
    home.sql()
        .query("SELECT id FROM {workers} ORDER BY id", &[])
        .into_iter()
        .map(|row| row[0].text().to_string())
        .collect()
}

fn outcomes(home: &TestHome, id: &str) -> Vec<String> {
    home.job(id)["history"]
        .as_array()
        .expect("history")
        .iter()
        .map(|a| a["outcome"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn recover_presumes_a_silent_worker_on_another_host_dead_only_after_twice_the_lease() {
    let home = TestHome::new();
    home.run(&["config", "set", "lease-seconds", &LEASE_SECONDS.to_string()])
        .ok();
    for id in ["j-fresh", "j-past-lease", "j-silent"] {
        home.run(&["enqueue", "--id", id, "--command", "true"]).ok();
    }
    let now = now_millis();
    let lease_ms = LEASE_SECONDS * 1000;
    // Far on each side of the 120 s threshold: 5 s, 90 s (past one lease, within two), 300 s.
    // The PIDs are meaningless on another host: the silent one carries this test's own (alive
    // here), the others one that cannot exist.
    let fresh = WorkerRecord {
        id: "other-host:1:fresh".into(),
        ..record("other-host", NO_SUCH_PID, None, now - 5_000)
    };
    let past_lease = WorkerRecord {
        id: "other-host:2:past-lease".into(),
        ..record("other-host", NO_SUCH_PID, None, now - lease_ms - 30_000)
    };
    let silent = WorkerRecord {
        id: "other-host:3:silent".into(),
        ..record("other-host", std::process::id(), None, now - 5 * lease_ms)
    };
    hold_job(&home, &fresh, "j-fresh");
    hold_job(&home, &past_lease, "j-past-lease");
    hold_job(&home, &silent, "j-silent");

    let run = home.run(&["recover"]).ok();
    assert_eq!(
        run.stdout, "j-silent: worker lost, now failed\nrecovered 1 job\n",
        "{run:#?}"
    );
    assert!(run.stderr.contains("worker other-host:3:silent"), "{run:#?}");
    assert_eq!(
        worker_ids(&home),
        ["other-host:1:fresh", "other-host:2:past-lease"],
        "only the silent worker's row is removed"
    );
    assert_eq!(home.job("j-fresh")["state"], "processing");
    assert_eq!(home.job("j-past-lease")["state"], "processing");
    let lost = home.job("j-silent");
    assert_eq!(lost["state"], "failed", "{lost:#}");
    assert_eq!(lost["attempts"], 1);
    assert_eq!(lost["last_error"], "worker lost (other-host:3:silent)");
    assert_eq!(outcomes(&home, "j-silent"), ["lost"]);
    // The lost attempt keeps when the run started.
    assert_eq!(
        millis(&lost["history"][0]["started_at"]),
        silent.heartbeat_at,
        "{lost:#}"
    );

    // Recovering again finds nothing more: the others are still within twice their lease.
    let again = home.run(&["recover"]).ok();
    assert_eq!(again.stdout, "recovered 0 jobs\n", "{again:#?}");
}

/// Each half of a reap stands alone: a job under a worker that has no row at all is recovered
/// though no dead worker is found, and a dead worker's row is removed though it held no job.
#[test]
fn recover_takes_jobs_of_a_vanished_worker_and_removes_rows_of_dead_idle_ones() {
    let home = TestHome::new();
    home.run(&["enqueue", "--id", "j-orphan", "--command", "true"]).ok();
    let vanished = WorkerRecord {
        id: "gone-host:7:vanished".into(),
        ..record("gone-host", NO_SUCH_PID, None, now_millis())
    };
    hold_job(&home, &vanished, "j-orphan");
    home.sql()
        .execute("DELETE FROM {workers} WHERE id = ?1", &[vanished.id.as_str().into()]);
    let run = home.run(&["recover"]).ok();
    assert_eq!(
        run.stdout, "j-orphan: worker lost, now failed\nrecovered 1 job\n",
        "{run:#?}"
    );

    let idle = WorkerRecord {
        id: "gone-host:8:idle".into(),
        ..record("gone-host", NO_SUCH_PID, None, 1)
    };
    home.sql().execute(
        "INSERT INTO {workers} (id, pid, host, proc_start, started_at, heartbeat_at, threads, kinds, slots, \
         stopping, version) VALUES (?1, ?2, ?3, NULL, 1, 1, 1, '[\"shell\"]', '[]', '0', 'test')",
        &[idle.id.as_str().into(), idle.pid.into(), idle.host.as_str().into()],
    );
    assert_eq!(worker_ids(&home), ["gone-host:8:idle"]);
    let run = home.run(&["recover"]).ok();
    assert_eq!(run.stdout, "recovered 0 jobs\n", "{run:#?}");
    assert!(worker_ids(&home).is_empty(), "the dead idle worker's row is removed");
}

#[test]
fn recover_takes_the_job_of_a_reused_pid_on_this_host_and_leaves_a_live_pid_alone() {
    let home = TestHome::new();
    for id in ["j-live", "j-reused"] {
        home.run(&["enqueue", "--id", id, "--command", "true"]).ok();
    }
    let here = host_name();
    let pid = std::process::id();
    let start = process_start_time(pid).expect("the start time of this process");
    let now = now_millis();
    // This test process stands in for a worker: alive with the recorded start time even with a
    // heartbeat from 1970, and "someone else" under another start time even with a fresh one.
    let live = WorkerRecord {
        id: format!("{here}:{pid}:live"),
        ..record(&here, pid, Some(start), 1)
    };
    let reused = WorkerRecord {
        id: format!("{here}:{pid}:reused"),
        ..record(&here, pid, Some(start + 1), now)
    };
    hold_job(&home, &live, "j-live");
    hold_job(&home, &reused, "j-reused");
    let run = home.run(&["recover"]).ok();
    assert_eq!(
        run.stdout, "j-reused: worker lost, now failed\nrecovered 1 job\n",
        "{run:#?}"
    );
    assert_eq!(worker_ids(&home), [live.id]);
    assert_eq!(home.job("j-live")["state"], "processing");
}

// ---------------------------------------------------------------------------------------------
// Real workers
// ---------------------------------------------------------------------------------------------

#[test]
fn a_paused_worker_keeps_its_job_however_old_its_heartbeat() {
    let home = TestHome::new();
    home.run(&["config", "set", "lease-seconds", "3"]).ok();
    let mut worker = Worker::start(&home, &["--count", "1"]);
    home.run(&[
        "enqueue",
        "--id",
        "j1",
        "--command",
        "echo $$ > j1.pid; echo start >> runs.txt; while [ ! -f release ]; do sleep 0.05; done; echo end >> runs.txt",
    ])
    .ok();
    let job_pid = read_pid(home.path().join("j1.pid"));
    let _cleanup = KillOnDrop(vec![job_pid]);
    worker.signal(libc::SIGSTOP);
    // Paused, it cannot heartbeat: make its last heartbeat ancient, far past the 3 s lease.
    let changed = home.sql().execute(
        "UPDATE {workers} SET heartbeat_at = 1 WHERE pid = ?1",
        &[worker.pid.into()],
    );
    assert_eq!(changed, 1);
    let recover = home.run(&["recover"]).ok();
    assert_eq!(recover.stdout, "recovered 0 jobs\n", "{recover:#?}");
    assert_eq!(home.job("j1")["state"], "processing");
    assert_eq!(worker_pids(&home), [worker.pid]);

    worker.signal(libc::SIGCONT);
    std::fs::write(home.path().join("release"), "").unwrap();
    home.run(&["wait", "j1", "--timeout", "30s"]).ok();
    assert_eq!(home.job("j1")["state"], "completed");
    assert_eq!(outcomes(&home, "j1"), ["completed"]);
    let runs = std::fs::read_to_string(home.path().join("runs.txt")).unwrap();
    assert_eq!(runs, "start\nend\n", "the job ran exactly once");
    worker.signal(libc::SIGTERM);
    worker.wait_success(SHORT);
}

#[test]
fn a_worker_whose_row_is_gone_kills_its_running_job_before_registering_again() {
    let home = TestHome::new();
    // A long lease keeps the worker's own periodic recovery out of the way: only its heartbeat
    // (every second) notices the missing row.
    home.run(&["config", "set", "lease-seconds", "60"]).ok();
    let mut worker = Worker::start(&home, &["--count", "1"]);
    let _cleanup = KillListedOnDrop(home.path().join("pids"));
    // Each run records its shell's PID and checks that no earlier run's shell still exists;
    // the first run then waits on a child in its process group, a later one just succeeds.
    let command =
        "for p in $(cat shells 2>/dev/null); do kill -0 $p 2>/dev/null && echo \"overlaps $p\" >> overlap; done; \
                   echo $$ >> shells; echo $$ >> pids; \
                   [ $(wc -l < shells) -ge 2 ] && exit 0; \
                   sleep 300 & echo $! >> pids; echo $! > child.pid; wait";
    home.run(&["enqueue", "--id", "orphaned", "--command", command]).ok();
    let child = read_pid(home.path().join("child.pid"));
    let shell: u32 = std::fs::read_to_string(home.path().join("shells"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();

    let changed = home
        .sql()
        .execute("DELETE FROM {workers} WHERE pid = ?1", &[worker.pid.into()]);
    assert_eq!(changed, 1);
    wait_until("the first run's process group to be killed", SHORT, || {
        process_gone(shell) && process_gone(child)
    });
    worker.wait_for_output("presumed dead", SHORT);
    home.run(&["wait", "orphaned", "--timeout", "30s"]).ok();
    let shells = std::fs::read_to_string(home.path().join("shells")).unwrap();
    assert_eq!(shells.lines().count(), 2, "{shells}");
    assert!(
        !home.path().join("overlap").exists(),
        "the job ran twice at once: {}",
        std::fs::read_to_string(home.path().join("overlap")).unwrap_or_default()
    );
    assert_eq!(home.job("orphaned")["state"], "completed");
    assert_eq!(
        outcomes(&home, "orphaned").last().map(String::as_str),
        Some("completed")
    );
    // It registered again and goes on working.
    assert!(worker.is_running(), "{}", worker.output());
    wait_until("the worker to register again", SHORT, || {
        worker_pids(&home) == [worker.pid]
    });
    worker.signal(libc::SIGTERM);
    worker.wait_success(SHORT);
}

// ---------------------------------------------------------------------------------------------
// A stale result, through the library
// ---------------------------------------------------------------------------------------------

#[test]
fn a_result_that_comes_back_after_its_job_was_recovered_and_run_again_is_discarded() {
    let home = TestHome::new();
    let queue_home = home.lib_home();
    let queue = Queue::open(&queue_home).unwrap();
    // Heartbeats 20 s apart: once the first pool has written which job it runs, it does not
    // touch its row again during the test, so the row rewritten below stays as written.
    queue.config_set("lease-seconds", "60").unwrap();
    queue.config_set("heartbeat-seconds", "20").unwrap();
    queue.config_set("backoff-base", "1").unwrap();
    queue
        .enqueue(
            JobSpec::kind("task", serde_json::json!(null))
                .with_id("j")
                .with_max_retries(1),
        )
        .unwrap();

    // The first pool's executor reports that it started, then blocks until released.
    let (started_tx, started_rx) = mpsc::channel::<()>();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let started_tx = Mutex::new(started_tx);
    let release_rx = Mutex::new(release_rx);
    let events = Arc::new(Mutex::new(Vec::new()));
    let record_events = events.clone();
    let first = PoolBuilder::new(&queue_home)
        .without_shell()
        .threads(1)
        .shell_hooks(false)
        .executor("task", move |_: &Job, _: &ExecContext| {
            let _ = started_tx.lock().unwrap().send(());
            let _ = release_rx.lock().unwrap().recv_timeout(Duration::from_secs(60));
            Outcome::failure("stale result").with_output("from the first run", "")
        })
        .observer(move |event: &WorkerEvent| {
            let line = match event {
                WorkerEvent::ResultDiscarded { job, .. } => format!("discarded {}", job.id),
                WorkerEvent::JobCompleted { job, .. } => format!("completed {}", job.id),
                WorkerEvent::JobRetrying { job, .. } => format!("retrying {}", job.id),
                WorkerEvent::JobDead { job, .. } => format!("dead {}", job.id),
                _ => return,
            };
            record_events.lock().unwrap().push(line);
        });
    let first_shutdown = Shutdown::new();
    let first = PoolThread::spawn(first, &first_shutdown);
    started_rx.recv_timeout(SHORT).expect("the first pool to start the job");
    wait_until("the first pool's row to list its running job", SHORT, || {
        let slots = home.sql().query_value("SELECT slots FROM {workers}", &[]);
        slots.is_some_and(|slots| slots.text().contains("\"j\""))
    });

    // Make it look like a worker on another host, silent for ten leases: presumed dead.
    home.sql().execute(
        "UPDATE {workers} SET host = 'another-host.example', heartbeat_at = ?1",
        &[(now_millis() - 10 * 60_000).into()],
    );
    let report = queue.recover().unwrap();
    assert_eq!(report.recovered, [("j".to_string(), State::Failed)]);
    assert_eq!(queue.get("j").unwrap().attempts, 1);

    // A second pool runs the job again; its executor also waits to be released.
    let (second_started_tx, second_started_rx) = mpsc::channel::<()>();
    let (second_release_tx, second_release_rx) = mpsc::channel::<()>();
    let second_started_tx = Mutex::new(second_started_tx);
    let second_release_rx = Mutex::new(second_release_rx);
    let second = PoolBuilder::new(&queue_home)
        .without_shell()
        .threads(1)
        .shell_hooks(false)
        .until_empty(true)
        .executor("task", move |_: &Job, _: &ExecContext| {
            let _ = second_started_tx.lock().unwrap().send(());
            let _ = second_release_rx.lock().unwrap().recv_timeout(Duration::from_secs(60));
            Outcome::success().with_output("from the second run", "")
        });
    let second = PoolThread::spawn(second, &Shutdown::new());
    second_started_rx
        .recv_timeout(SHORT)
        .expect("the second pool to start the job");
    let rerun = queue.get("j").unwrap();
    assert_eq!((rerun.state, rerun.attempts), (State::Processing, 1));

    // Now the first run's result arrives while the job is `processing` again, under the second
    // pool's claim: it must not be applied.
    release_tx.send(()).unwrap();
    wait_until("the first pool to report the discarded result", SHORT, || {
        !events.lock().unwrap().is_empty()
    });
    assert_eq!(*events.lock().unwrap(), ["discarded j"]);
    let job = queue.get("j").unwrap();
    assert_eq!((job.state, job.attempts), (State::Processing, 1), "{job:#?}");
    assert_eq!(job.worker, rerun.worker);

    // The second run ends and is the one recorded.
    second_release_tx.send(()).unwrap();
    assert_eq!(second.join(Duration::from_secs(30)).unwrap(), 1);
    let job = queue.get("j").unwrap();
    assert_eq!((job.state, job.attempts), (State::Completed, 2), "{job:#?}");
    assert_eq!(job.stdout.as_deref(), Some("from the second run"));
    let history = queue.history(&job.id).unwrap();
    assert_eq!(
        history
            .iter()
            .map(|a| (a.attempt, a.outcome.as_str(), a.stdout_tail.as_deref()))
            .collect::<Vec<_>>(),
        [(1, "lost", None), (2, "completed", Some("from the second run"))]
    );

    first_shutdown.request_stop();
    first.join(SHORT).unwrap();
}
