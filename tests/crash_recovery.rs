//! What holds after a worker is killed: a lost job never runs twice at the same time on this
//! host, what its run left behind is stopped before it runs again, a job's result is decided
//! when its shell exits, and `worker stop` signals only processes it can identify.
//!
//! Overlap is detected without comparing clocks: every job takes an exclusive `flock` on a file
//! of its own for its whole run (`flock -n`, inherited by everything it starts), and records
//! `OVERLAP` if the lock is already held, i.e. if an earlier run of the same job is still alive.

mod common;

use common::process::{process_gone, read_pid, KillOnDrop, Worker};
use common::{signal, wait_until, TestHome};
use serde_json::json;
use std::path::Path;
use std::time::Duration;

const SHORT: Duration = Duration::from_secs(20);

/// SIGKILLs a worker and reaps it.
fn kill(worker: &mut Worker) {
    worker.signal(libc::SIGKILL);
    worker.wait_exit(SHORT);
}

/// Waits for a worker's exit; its exit code and everything it printed.
fn finish(mut worker: Worker, timeout: Duration) -> (i32, String) {
    let status = worker.wait_exit(timeout);
    (status.code().unwrap_or(-1), worker.output())
}

fn enqueue(home: &TestHome, job: serde_json::Value) {
    home.run(&["enqueue", &job.to_string()]).ok();
}

fn read(path: impl AsRef<Path>) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// The job's command, wrapped so that a run starting while an earlier run of the same job is
/// alive records `OVERLAP` in `log` instead of running.
fn exclusive(id: &str, body: &str) -> String {
    format!(
        "exec 9>>locks/{id}; if ! flock -n 9; then echo \"OVERLAP {id}\" >> log; exit 3; fi; \
         echo \"start {id} $QUEUECTL_ATTEMPT\" >> log; {body}; echo \"end {id}\" >> log"
    )
}

fn states(home: &TestHome) -> serde_json::Value {
    home.status()["jobs"].clone()
}

fn outcomes(job: &serde_json::Value) -> Vec<String> {
    job["history"]
        .as_array()
        .map(|h| {
            h.iter()
                .map(|a| a["outcome"].as_str().unwrap_or("").to_string())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_killed_workers_job_never_overlaps_its_rerun() {
    let home = TestHome::new();
    std::fs::create_dir(home.path().join("locks")).unwrap();
    // The body leaves a child in the job's process group that would outlive the killed shell.
    enqueue(
        &home,
        json!({"id": "long", "command": exclusive("long", "sleep 6 & echo $! > child.pid; wait"), "max_retries": 2}),
    );
    let mut first = Worker::spawn(&home, &["--count", "1"]);
    let child = read_pid(home.path().join("child.pid"));
    let _guard = KillOnDrop(vec![child]);
    kill(&mut first);

    let second = Worker::spawn(&home, &["--count", "1", "--until-empty"]);
    let (code, output) = finish(second, Duration::from_secs(40));
    assert_eq!(code, 0, "{output}");
    let log = read(home.path().join("log"));
    assert!(
        !log.contains("OVERLAP"),
        "a rerun started while the first run lived:\n{log}\n{output}"
    );
    assert_eq!(log.matches("start long").count(), 2, "{log}");
    assert!(process_gone(child), "the first run's child outlived recovery");
    let job = home.job("long");
    assert_eq!(job["state"], "completed", "{job:#}");
    assert_eq!(outcomes(&job), ["lost", "completed"], "{job:#}");
}

#[test]
fn recover_stops_a_lost_runs_leftovers_before_the_job_can_run_again() {
    let home = TestHome::new();
    enqueue(
        &home,
        json!({"id": "orphan", "command": "sleep 30 & echo $! > child.pid; wait", "max_retries": 1}),
    );
    let mut worker = Worker::spawn(&home, &["--count", "1"]);
    let child = read_pid(home.path().join("child.pid"));
    let _guard = KillOnDrop(vec![child]);
    assert_eq!(home.status()["lost_jobs"], json!([]), "a live worker's job is not lost");
    kill(&mut worker);
    assert!(!process_gone(child), "the child runs on after its worker died");
    let status = home.status();
    let lost = &status["lost_jobs"];
    assert_eq!(lost[0]["id"], "orphan", "{status:#}");
    // On this host, with its run's child still alive: said so, not "presumed dead elsewhere".
    let reason = lost[0]["reason"].as_str().expect("a reason");
    assert!(reason.starts_with("worker lost; "), "{status:#}");
    assert_ne!(
        reason,
        "worker lost; recovered at the next reap (or run `queuectl recover`)"
    );

    let recover = home.run(&["recover"]).ok();
    assert!(
        recover.stdout.contains("orphan: worker lost, now failed"),
        "{recover:?}"
    );
    assert!(process_gone(child), "recover left the lost run's child running");
    assert_eq!(home.status()["lost_jobs"], json!([]));
}

#[test]
fn a_leftover_that_cannot_be_confirmed_holds_the_job_and_status_says_why() {
    let home = TestHome::new();
    // `env -i` clears the markers; once the job's shell has exited (after its worker died),
    // nothing ties the sleep to the job but its process group number, which is not proof
    // enough to signal it.
    enqueue(
        &home,
        json!({"id": "anon", "command": "echo $$ > shell.pid; env -i sh -c 'echo $$ > child.pid; exec sleep 60' & \
              until [ -e release ]; do sleep 0.02; done", "max_retries": 1}),
    );
    let mut worker = Worker::spawn(&home, &["--count", "1"]);
    let child = read_pid(home.path().join("child.pid"));
    let shell = read_pid(home.path().join("shell.pid"));
    let _guard = KillOnDrop(vec![child, shell]);
    // Recovery can only find the group if the worker recorded its leader: wait for that.
    wait_until("the worker row records the job's process", SHORT, || {
        home.status()["workers"][0]["running"][0]["pid_start"].is_u64()
    });
    kill(&mut worker);
    std::fs::write(home.path().join("release"), "").unwrap();
    wait_until("the orphaned shell to exit", SHORT, || process_gone(shell));

    let recover = home.run(&["recover"]).ok();
    assert!(recover.stdout.contains("anon: not recovered"), "{recover:?}");
    assert!(recover.stdout.contains("cannot be confirmed"), "{recover:?}");
    assert!(!process_gone(child), "an unconfirmed process was signalled");
    assert_eq!(home.job("anon")["state"], "processing");
    let status = home.run(&["status"]).ok();
    assert!(status.stdout.contains("job anon: worker lost;"), "{status:?}");
    assert!(status.stdout.contains(&child.to_string()), "{status:?}");

    // Once it ends, the job is recovered.
    signal(child, libc::SIGKILL);
    wait_until("the leftover to exit", SHORT, || process_gone(child));
    let recover = home.run(&["recover"]).ok();
    assert!(recover.stdout.contains("anon: worker lost, now failed"), "{recover:?}");
}

#[test]
fn a_job_ends_when_its_shell_exits_and_its_leftovers_are_killed() {
    let home = TestHome::new();
    // The background child holds the job's stdout open for a minute.
    enqueue(
        &home,
        json!({"id": "bg", "command": "sh -c 'echo $$ > child.pid; exec sleep 60' & echo hi"}),
    );
    let worker = Worker::spawn(&home, &["--count", "1", "--until-empty"]);
    let child = read_pid(home.path().join("child.pid"));
    let _guard = KillOnDrop(vec![child]);
    let (code, output) = finish(worker, SHORT);
    assert_eq!(code, 0, "{output}");
    let job = home.job("bg");
    assert_eq!(job["state"], "completed", "{job:#}");
    assert_eq!(job["stdout"].as_str().unwrap_or("").trim(), "hi", "{job:#}");
    wait_until("the leftover child to be killed", SHORT, || process_gone(child));
}

#[test]
fn a_process_that_left_the_session_outlives_its_job() {
    let home = TestHome::new();
    enqueue(
        &home,
        // It must have left the job's session before the job's shell exits (as a daemon
        // that forks twice and reports ready would have): wait for its pid file.
        json!({"id": "daemon", "command": "setsid sh -c 'echo $$ > child.pid; exec sleep 60' >/dev/null 2>&1 & \
              until [ -s child.pid ]; do sleep 0.01; done; echo started"}),
    );
    let worker = Worker::spawn(&home, &["--count", "1", "--until-empty"]);
    let child = read_pid(home.path().join("child.pid"));
    let _guard = KillOnDrop(vec![child]);
    let (code, output) = finish(worker, SHORT);
    assert_eq!(code, 0, "{output}");
    assert_eq!(home.job("daemon")["state"], "completed");
    assert!(!process_gone(child), "a detached process was killed with its job");
}

#[test]
fn a_timed_out_job_is_recorded_as_timed_out_even_if_its_shell_exits_zero() {
    let home = TestHome::new();
    enqueue(
        &home,
        json!({"id": "slow", "command": "trap 'exit 0' TERM; sleep 30 & wait", "timeout_seconds": 1, "max_retries": 0}),
    );
    let worker = Worker::spawn(&home, &["--count", "1", "--until-empty"]);
    let (_, output) = finish(worker, SHORT);
    let job = home.job("slow");
    assert_eq!(job["state"], "dead", "{job:#}\n{output}");
    assert!(
        job["last_error"]
            .as_str()
            .unwrap_or("")
            .starts_with("timed out after 1s"),
        "{job:#}"
    );
}

#[test]
fn a_reported_duration_excludes_time_spent_waiting_to_record_it() {
    let home = TestHome::new();
    enqueue(
        &home,
        json!({"id": "quick", "command": "touch began; until [ -e go ]; do sleep 0.05; done"}),
    );
    let worker = Worker::spawn(&home, &["--count", "1", "--until-empty"]);
    wait_until("the job to start", SHORT, || home.path().join("began").exists());
    // Hold the database's write lock while the job finishes, well past the worker's 5 s busy
    // timeout, so recording the result has to wait.
    let mut db = home.sql();
    db.take_write_lock();
    std::fs::write(home.path().join("go"), "").unwrap();
    std::thread::sleep(Duration::from_secs(7)); // the condition under test: a long-held lock
    db.release_write_lock();
    let (code, output) = finish(worker, SHORT);
    assert_eq!(code, 0, "{output}");
    let job = home.job("quick");
    let started = chrono::DateTime::parse_from_rfc3339(job["started_at"].as_str().unwrap()).unwrap();
    let finished = chrono::DateTime::parse_from_rfc3339(job["finished_at"].as_str().unwrap()).unwrap();
    let recorded = (finished - started).num_milliseconds();
    assert!(
        recorded < 4000,
        "recorded {recorded} ms for a job that ran well under a second\n{job:#}"
    );
    assert!(
        output.contains("database error"),
        "the lock did not delay the record:\n{output}"
    );
}

#[test]
fn worker_stop_never_signals_a_pid_it_cannot_identify() {
    let home = TestHome::new();
    let mut stranger = std::process::Command::new("sleep").arg("60").spawn().unwrap();
    let _guard = KillOnDrop(vec![stranger.id()]);
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    home.sql().execute(
        "INSERT INTO {workers} (id, pid, host, proc_start, started_at, heartbeat_at, threads, kinds, version) \
         VALUES ('old', ?1, ?2, NULL, 0, 0, 1, '[\"shell\"]', '0.1.0')",
        &[stranger.id().into(), host.trim().into()],
    );
    let stop = home.run(&["worker", "stop", "--timeout", "1s"]).ok();
    assert!(stop.stderr.contains("not signalled"), "{stop:?}");
    assert!(
        matches!(stranger.try_wait(), Ok(None)),
        "worker stop signalled an unidentified PID"
    );
}

#[test]
fn worker_stop_reaches_a_worker_that_is_still_starting() {
    let home = TestHome::new();
    for _ in 0..3 {
        let worker = Worker::spawn(&home, &["--count", "1"]);
        // No wait for registration: the stop may run before the worker is in the registry.
        home.run(&["worker", "stop", "--timeout", "5s"]).ok();
        let (code, output) = finish(worker, SHORT);
        assert_eq!(code, 0, "{output}");
    }
}

#[test]
fn worker_stop_also_stops_what_a_lost_worker_left_running() {
    let home = TestHome::new();
    enqueue(
        &home,
        json!({"id": "left", "command": "sleep 30 & echo $! > child.pid; wait", "max_retries": 1}),
    );
    let mut worker = Worker::spawn(&home, &["--count", "1"]);
    let child = read_pid(home.path().join("child.pid"));
    let _guard = KillOnDrop(vec![child]);
    kill(&mut worker);
    let stop = home.run(&["worker", "stop"]).ok();
    assert!(stop.stdout.contains("Job left: its worker was lost"), "{stop:?}");
    assert!(process_gone(child), "worker stop left the lost run running");
}

/// Several worker processes, killed and restarted at random while a few hundred jobs run: no
/// job is lost or stuck, every extra run is explained by a `lost` attempt, and no two runs of a
/// job overlap.
#[test]
fn chaos_kills_lose_nothing_and_never_overlap_a_job() {
    let seed: u64 = std::env::var("QUEUECTL_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    println!("chaos seed: {seed} (rerun with QUEUECTL_CHAOS_SEED={seed})");
    let mut rng = seed;
    let mut next = move |n: u64| {
        // xorshift64*: enough randomness for choosing victims and delays.
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n
    };
    let home = TestHome::new();
    home.run(&["config", "set", "backoff_base", "1"]).ok();
    home.run(&["config", "set", "max_retries", "20"]).ok();
    std::fs::create_dir(home.path().join("locks")).unwrap();
    let jobs = 300;
    let batch: String = (0..jobs)
        .map(|i| {
            let id = format!("c{i}");
            // One job in ten runs long enough to outlive a kill and the 1 s retry delay, and
            // goes first when due, so its rerun would meet its first run's leftovers.
            let (body, priority) = if i % 10 == 0 {
                ("sleep 3".to_string(), 1)
            } else {
                (format!("sleep 0.0{}", i % 10), 0)
            };
            let command = exclusive(&id, &body);
            format!("{}\n", json!({"id": id, "command": command, "priority": priority}))
        })
        .collect();
    home.run_with_stdin(&["enqueue", "-"], &batch).ok();

    let mut workers: Vec<Worker> = (0..3).map(|_| Worker::spawn(&home, &["--count", "2"])).collect();
    let mut kills = 0;
    for _ in 0..12 {
        let done_before = states(&home)["completed"].as_u64().unwrap_or(0);
        wait_until("progress between kills", Duration::from_secs(60), || {
            states(&home)["completed"].as_u64().unwrap_or(0) >= (done_before + 5).min(jobs)
        });
        let victim = next(workers.len() as u64) as usize;
        kill(&mut workers[victim]);
        kills += 1;
        workers[victim] = Worker::spawn(&home, &["--count", "2"]);
    }
    wait_until("every job completed", Duration::from_secs(120), || {
        states(&home)["completed"].as_u64() == Some(jobs)
    });
    drop(workers);

    let log = read(home.path().join("log"));
    assert!(
        !log.contains("OVERLAP"),
        "runs overlapped (seed {seed}):\n{}",
        log.lines()
            .filter(|l| l.starts_with("OVERLAP"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let list = home.run(&["list", "--json"]).ok().json();
    assert_eq!(list.as_array().unwrap().len() as u64, jobs);
    for i in 0..jobs {
        let id = format!("c{i}");
        let starts = log
            .lines()
            .filter(|l| l.split(' ').nth(1) == Some(id.as_str()) && l.starts_with("start"))
            .count();
        let job = home.job(&id);
        let history = outcomes(&job);
        let lost = history.iter().filter(|o| *o == "lost").count();
        assert_eq!(job["state"], "completed", "{job:#} (seed {seed})");
        assert!(starts >= 1, "{id} never ran (seed {seed})");
        assert!(
            starts <= 1 + lost,
            "{id} ran {starts} times with {lost} lost attempts (seed {seed}): {history:?}\n{job:#}"
        );
    }
    let total_lost: usize = (0..jobs)
        .map(|i| {
            outcomes(&home.job(&format!("c{i}")))
                .iter()
                .filter(|o| *o == "lost")
                .count()
        })
        .sum();
    println!("lost attempts: {total_lost}; log lines {}", log.lines().count());
    println!("chaos: {jobs} jobs, {kills} worker kills, seed {seed}");
}

#[test]
fn recovery_in_one_queue_never_stops_a_run_of_the_same_job_in_another() {
    // Two queues on one host, each with a job `twin` at its first claim (the same id and lease).
    let ours = TestHome::new();
    let theirs = TestHome::new();
    let job = json!({"id": "twin", "command": "sleep 60 & echo $! > child.pid; wait", "max_retries": 1});
    enqueue(&ours, job.clone());
    enqueue(&theirs, job);
    let mut lost = Worker::spawn(&ours, &["--count", "1"]);
    let live = Worker::spawn(&theirs, &["--count", "1"]);
    let our_child = read_pid(ours.path().join("child.pid"));
    let their_child = read_pid(theirs.path().join("child.pid"));
    let _guard = KillOnDrop(vec![our_child, their_child]);
    kill(&mut lost);

    let recover = ours.run(&["recover"]).ok();
    assert!(recover.stdout.contains("twin: worker lost, now failed"), "{recover:?}");
    assert!(process_gone(our_child), "recover left our lost run running");
    assert!(!process_gone(their_child), "recover stopped the other queue's live run");
    assert_eq!(theirs.job("twin")["state"], "processing");
    drop(live);
}

/// The worker process exists but has not run any of its own code when `worker stop` runs (a
/// shell that waits for a release file, then execs it, keeps its PID and start time): the stop
/// finds nothing registered, and the worker stops itself once it has registered.
#[test]
fn worker_stop_reaches_a_worker_spawned_but_not_yet_running() {
    let home = TestHome::new();
    let release = home.path().join("release");
    let start = home.command(&["worker", "start", "--no-spool", "--count", "1"]);
    let mut gated = std::process::Command::new("sh");
    gated
        .arg("-c")
        .arg(r#"release=$1; shift; while [ ! -f "$release" ]; do sleep 0.01; done; exec "$@""#)
        .arg("sh")
        .arg(&release)
        .arg(start.get_program())
        .args(start.get_args())
        .stdout(std::process::Stdio::piped());
    for (key, value) in start.get_envs() {
        match value {
            Some(value) => gated.env(key, value),
            None => gated.env_remove(key),
        };
    }
    let mut child = gated.spawn().expect("spawn the gated worker");
    let _guard = KillOnDrop(vec![child.id()]);
    let stop = home.run(&["worker", "stop", "--timeout", "5s"]).ok();
    assert!(stop.stdout.contains("no workers running"), "{stop:?}");
    std::fs::write(&release, "").unwrap();
    let deadline = std::time::Instant::now() + SHORT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(std::time::Instant::now() < deadline, "the worker did not stop itself");
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut output = String::new();
    std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut output).unwrap();
    assert_eq!(status.code(), Some(0), "{output}");
    assert!(
        output.contains("ran while this worker was starting: stopping"),
        "{output}"
    );
}
