//! Many hosts, for real: three "hosts" (network + UTS namespaces on a private bridge, each with
//! its own host name, queue home, config file and spool) share one queue in a PostgreSQL server
//! the test starts itself, with one worker process per host.
//!
//! - `init` from every host (two at once) keeps the queue and its jobs;
//! - 2,000 jobs each run exactly once across the hosts, and every host runs some;
//! - each host's spool feeds the shared queue: every spooled job is ingested and run once;
//! - a host cut off the network (its link down, its processes running) is presumed dead after
//!   the lease: its jobs run again elsewhere (at least once), and when the link returns its
//!   stale results are discarded and its worker registers again;
//! - a host killed whole (every process in its namespace SIGKILLed) has its jobs recovered by
//!   the other hosts after the lease: 0 lost, 0 stuck, the killed runs show a `lost` attempt and
//!   ran again elsewhere, and no two runs of one job ever overlapped.
//!
//! Root only (namespaces, a server of its own): otherwise it prints one `skipped:` line.

#[path = "many_hosts/mod.rs"]
mod harness;

use harness::cluster::{Cluster, SetupError};
use harness::host::shown;
use harness::queue::*;
use harness::runs::{self, Record};
use harness::{run_output, wait_until};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// Jobs of the bulk phase.
const BULK_JOBS: usize = 2000;
/// Spool files each host drops (one by `spool submit`, one by tmp + rename) and jobs per file.
const SPOOL_JOBS_PER_FILE: usize = 10;
/// Jobs of the partition phase, and how long each sleeps: shorter than the 2 × lease the other
/// hosts wait, so the cut-off runs end before their jobs run again elsewhere.
const PARTITION_JOBS: usize = 12;
const PARTITION_SLEEP_SECONDS: u32 = 2;
/// Jobs of the host-loss phase, and how long each sleeps: long enough that the host is killed
/// mid-run, short enough that 2 surviving hosts (4 threads) finish them in seconds.
const LOSS_JOBS: usize = 20;
const LOSS_SLEEP_SECONDS: u32 = 2;
/// Threads per worker.
const THREADS: u32 = 2;

#[test]
fn three_hosts_share_one_postgres_queue_and_recover_a_cut_off_and_a_killed_host() {
    let tools = match harness::prerequisites() {
        Ok(tools) => tools,
        Err(reason) => {
            eprintln!("skipped: {reason}");
            return;
        }
    };
    let started = Instant::now();
    let cluster = match Cluster::build(&tools, 3) {
        Ok(cluster) => cluster,
        Err(SetupError::Unsupported(reason)) => {
            eprintln!("skipped: cannot make network namespaces or a bridge here: {reason}");
            return;
        }
        Err(SetupError::Failed(reason)) => panic!("setup failed: {reason}"),
    };
    let mut timings = Vec::new();
    let mut total = init_from_every_host(&cluster);
    start_workers(&cluster);
    assert_health(&cluster.hosts[2], 6, true);
    timings.push(("setup", started.elapsed()));

    let phase = Instant::now();
    total = bulk_jobs_run_once_each(&cluster, total);
    timings.push(("2,000 jobs", phase.elapsed()));

    let phase = Instant::now();
    total = every_host_spool_feeds_the_shared_queue(&cluster, total);
    timings.push(("spool", phase.elapsed()));

    let phase = Instant::now();
    let (partitioned, total) = a_partitioned_host_is_presumed_dead_and_rejoins(&cluster, total);
    timings.push(("partition", phase.elapsed()));

    let phase = Instant::now();
    a_killed_host_has_its_jobs_recovered(&cluster, total, &partitioned);
    timings.push(("host loss", phase.elapsed()));

    timings.push(("total", started.elapsed()));
    let shown: Vec<String> = timings
        .iter()
        .map(|(what, took)| format!("{what} {:.1}s", took.as_secs_f64()))
        .collect();
    eprintln!("many hosts: {}", shown.join(", "));
}

/// `init` on h1, a job enqueued, then `init` on the other hosts at once: every init succeeds and
/// the job is still there. Returns the number of jobs in the queue.
fn init_from_every_host(cluster: &Cluster) -> usize {
    let (first, rest) = cluster.hosts.split_first().expect("hosts");
    first.init().unwrap_or_else(|e| panic!("{e}"));
    let probe = runs::command(&cluster.runs, "init-probe", None);
    let enqueued = run_output(&mut first.inside(["enqueue", "--id", "init-probe", "--command", &probe]))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(enqueued.status.success(), "enqueue from h1: {}", shown(&enqueued));
    // Hosts booting together: their inits race on an existing schema.
    std::thread::scope(|scope| {
        let inits: Vec<_> = rest.iter().map(|host| scope.spawn(|| host.init())).collect();
        for init in inits {
            init.join().expect("init thread").unwrap_or_else(|e| panic!("{e}"));
        }
    });
    for host in &cluster.hosts {
        let job = host.job("init-probe");
        assert_eq!(job["state"], "pending", "{}: init kept the job: {job:#}", host.name);
    }
    1
}

/// Starts a worker on every host and waits until `status` lists all three, each on its host.
fn start_workers(cluster: &Cluster) {
    for host in &cluster.hosts {
        host.start_worker(THREADS).unwrap_or_else(|e| panic!("{e}"));
    }
    let names: Vec<String> = cluster.hosts.iter().map(|h| h.name.clone()).collect();
    wait_until(
        "a worker registered on every host",
        Duration::from_secs(30),
        POLL,
        || cluster.logs(),
        || {
            for host in &cluster.hosts {
                assert!(
                    host.worker_running(),
                    "{} worker exited:\n{}",
                    host.name,
                    host.log_tail()
                );
            }
            let seen = worker_hosts(&cluster.hosts[1].status());
            if seen == names {
                Ok(())
            } else {
                Err(format!("workers on {seen:?}"))
            }
        },
    );
}

/// 2,000 jobs enqueued from h2 run exactly once each, spread over all three hosts, and the
/// queue's record of each run (worker, attempts) matches what the job recorded.
fn bulk_jobs_run_once_each(cluster: &Cluster, before: usize) -> usize {
    let jobs: String = (1..=BULK_JOBS)
        .map(|i| {
            let id = format!("p1-{i:04}");
            let command = runs::command(&cluster.runs, &id, None);
            format!("{}\n", json!({ "id": id, "command": command }))
        })
        .collect();
    let file = cluster.scratch.join("bulk.ndjson");
    std::fs::write(&file, jobs).expect("write the jobs");
    let enqueue = run_output(&mut cluster.hosts[1].inside(["enqueue", "--file", &file.display().to_string()]))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(enqueue.status.success(), "enqueue from h2: {}", shown(&enqueue));
    let total = before + BULK_JOBS;
    wait_all_completed(cluster, &cluster.hosts[1], total, Duration::from_secs(180));

    let listed = jobs_by_id(&cluster.hosts[0]);
    let mut per_host: BTreeMap<String, usize> = BTreeMap::new();
    let tags = (1..=BULK_JOBS)
        .map(|i| format!("p1-{i:04}"))
        .chain(["init-probe".to_string()]);
    for tag in tags {
        let records = runs::records(&cluster.runs, &tag);
        let host = runs::single_complete_run(&records)
            .unwrap_or_else(|| panic!("{tag} did not run exactly once: {records:?}"));
        assert_eq!(records[0].job, tag, "{tag} ran as another job: {records:?}");
        assert_eq!(records[0].attempt, 1, "{tag}: {records:?}");
        let job = &listed[&tag];
        assert_eq!(job["state"], "completed", "{job:#}");
        assert_eq!(job["attempts"], 1, "{job:#}");
        assert_eq!(
            worker_host(job),
            host,
            "{tag}: the queue names another host than the run: {job:#}"
        );
        *per_host.entry(host.to_string()).or_default() += 1;
    }
    let hosts: Vec<&String> = per_host.keys().collect();
    assert_eq!(hosts, ["h1", "h2", "h3"], "every host ran some jobs: {per_host:?}");
    assert_eq!(runs::overlaps(&cluster.runs), Vec::<String>::new(), "runs overlapped");
    eprintln!(
        "many hosts: bulk jobs per host {per_host:?}; server connections by client {:?}",
        connections(cluster)
    );
    total
}

/// Each host drops two files into its own spool while the workers run: one with `spool
/// submit`, one written to `spool/tmp/` and renamed into `incoming/`. Every job of every file is
/// ingested once and runs once, and the spools end empty.
fn every_host_spool_feeds_the_shared_queue(cluster: &Cluster, before: usize) -> usize {
    let mut tags = Vec::new();
    for host in &cluster.hosts {
        let mut file_jobs = |file: &str| -> Vec<Value> {
            (1..=SPOOL_JOBS_PER_FILE)
                .map(|i| {
                    let tag = format!("s-{}-{file}-{i:02}", host.name);
                    let command = runs::command(&cluster.runs, &tag, None);
                    tags.push(tag);
                    // No ids: the ingester derives them from the file's identity.
                    json!({ "command": command })
                })
                .collect()
        };
        let submitted: String = file_jobs("a").iter().map(|job| format!("{job}\n")).collect();
        let file = cluster.scratch.join(format!("spool-{}.ndjson", host.name));
        std::fs::write(&file, submitted).expect("write the spool jobs");
        let submit = run_output(&mut host.inside(["spool", "submit", "--file", &file.display().to_string()]))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            submit.status.success(),
            "{}: spool submit: {}",
            host.name,
            shown(&submit)
        );

        let renamed = Value::Array(file_jobs("b")).to_string();
        let name = format!("{}-renamed.json", host.name);
        let scratch = host.home.join("spool/tmp").join(&name);
        std::fs::write(&scratch, renamed).expect("write into spool/tmp");
        std::fs::rename(&scratch, host.incoming().join(&name)).expect("rename into spool/incoming");
    }
    let total = before + tags.len();
    wait_all_completed(cluster, &cluster.hosts[1], total, Duration::from_secs(60));

    let listed = jobs_by_id(&cluster.hosts[2]);
    let mut ids = BTreeSet::new();
    for tag in &tags {
        let records = runs::records(&cluster.runs, tag);
        runs::single_complete_run(&records).unwrap_or_else(|| panic!("{tag} did not run exactly once: {records:?}"));
        let job = &listed[&records[0].job];
        assert!(
            job["source"].as_str().unwrap_or("").starts_with("spool:"),
            "{tag} came from the spool: {job:#}"
        );
        assert_eq!(job["attempts"], 1, "{job:#}");
        assert!(
            ids.insert(records[0].job.clone()),
            "{tag}: one job for two spool entries"
        );
    }
    let spooled = listed
        .values()
        .filter(|job| job["source"].as_str().unwrap_or("").starts_with("spool:"))
        .count();
    assert_eq!(spooled, tags.len(), "one job per spool entry, none added twice");
    for host in &cluster.hosts {
        for sub in ["incoming", "failed"] {
            let dir = host.home.join("spool").join(sub);
            let left: Vec<String> = std::fs::read_dir(&dir)
                .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|name| !name.starts_with('.'))
                .collect();
            assert!(left.is_empty(), "{}: spool/{sub} still holds {left:?}", host.name);
        }
    }
    assert_eq!(runs::overlaps(&cluster.runs), Vec::<String>::new(), "runs overlapped");
    total
}

/// Jobs that sleep are spread over the hosts; once h3 runs some, its link is cut (its worker and
/// runs go on, unreachable). The other hosts presume it dead after 2 × lease and run its jobs
/// again: everything completes, and each job h3 had runs twice, never at once (its runs end
/// before the lease runs out). When the link returns, h3's worker learns it was presumed dead,
/// its late results are discarded (the jobs' histories keep the `lost` attempt and the
/// completed run elsewhere), and it registers again. Returns the jobs that ran twice and the
/// number of jobs in the queue.
fn a_partitioned_host_is_presumed_dead_and_rejoins(cluster: &Cluster, before: usize) -> (BTreeSet<String>, usize) {
    let tags: Vec<String> = (1..=PARTITION_JOBS).map(|i| format!("p2-{i:02}")).collect();
    enqueue_sleepers(cluster, &cluster.hosts[1], &tags, PARTITION_SLEEP_SECONDS);
    let total = before + tags.len();
    let h3 = cluster.netns(2);
    wait_until(
        "h3 to run some of the sleeping jobs",
        Duration::from_secs(30),
        Duration::from_millis(20),
        || cluster.logs(),
        || match started_on(cluster, &tags, "h3").is_empty() {
            true => Err("no run on h3 yet".into()),
            false => Ok(()),
        },
    );
    h3.set_link(false).unwrap_or_else(|e| panic!("{e}"));
    // Restore the link even if an assertion below fails, so the teardown sees a normal host.
    struct Restore<'a>(&'a harness::net::Netns);
    impl Drop for Restore<'_> {
        fn drop(&mut self) {
            let _ = self.0.set_link(true);
        }
    }
    let restore = Restore(h3);
    wait_all_completed(cluster, &cluster.hosts[0], total, Duration::from_secs(90));
    // The jobs h3 could not report: the queue ran them again (a second attempt). While cut off,
    // h3 ran them to their end: all it could not do is report them.
    let listed = jobs_by_id(&cluster.hosts[0]);
    let cut_off: Vec<String> = tags
        .iter()
        .filter(|tag| listed[*tag]["attempts"] != 1)
        .cloned()
        .collect();
    assert!(
        !cut_off.is_empty(),
        "h3 was cut off mid-run, so some of its jobs ran again"
    );
    for tag in &cut_off {
        let records = runs::records(&cluster.runs, tag);
        assert!(
            records.iter().any(|r| r.host == "h3" && r.event == "end"),
            "{tag}: h3's run went on while cut off: {records:?}"
        );
    }
    drop(restore);

    // Back on the network, h3's worker reports its runs: each is discarded, since the jobs were
    // recovered (the claim's lease moved on), and the worker registers again.
    let h3_log = || std::fs::read_to_string(&cluster.hosts[2].log).unwrap_or_default();
    wait_until(
        "h3's worker to learn it was presumed dead and register again",
        Duration::from_secs(60),
        POLL,
        || cluster.logs(),
        || {
            let log = h3_log();
            let pending: Vec<&String> = cut_off
                .iter()
                .filter(|tag| !log.contains(&format!("Job {tag}: result discarded")))
                .collect();
            let hosts = worker_hosts(&cluster.hosts[0].status());
            match (log.contains("presumed dead"), pending.is_empty(), hosts == ["h1", "h2", "h3"]) {
                (true, true, true) => Ok(()),
                state => Err(format!("presumed dead, results reported, registered: {state:?}; waiting on {pending:?}, workers on {hosts:?}")),
            }
        },
    );
    assert!(
        cluster.hosts[2].worker_running(),
        "h3's worker lives on:\n{}",
        cluster.hosts[2].log_tail()
    );

    let listed = jobs_by_id(&cluster.hosts[0]);
    for tag in &tags {
        let records = runs::records(&cluster.runs, tag);
        let job = &listed[tag];
        assert_eq!(job["state"], "completed", "{job:#}");
        if !cut_off.contains(tag) {
            let host = runs::single_complete_run(&records).unwrap_or_else(|| panic!("{tag}: {records:?}"));
            assert_eq!(job["attempts"], 1, "{job:#}");
            assert_eq!(
                worker_host(job),
                host,
                "{tag}: the queue names the host that ran it: {job:#}"
            );
            continue;
        }
        // At least once: the cut-off run and one elsewhere, each whole, one after the other.
        let hosts: Vec<(&str, &str, u32)> = records
            .iter()
            .map(|r| (r.host.as_str(), r.event.as_str(), r.attempt))
            .collect();
        assert!(
            matches!(hosts[..], [("h3", "start", 1), ("h3", "end", 1), (other, "start", 2), (again, "end", 2)] if other == again && other != "h3"),
            "{tag}: ran on h3, then once elsewhere: {records:?}"
        );
        let history = cluster.hosts[0].job(tag)["history"].clone();
        let outcomes: Vec<(&str, &str)> = history
            .as_array()
            .expect("history")
            .iter()
            .map(|a| (a["outcome"].as_str().unwrap_or("?"), attempt_host(a)))
            .collect();
        assert_eq!(
            outcomes,
            [("lost", "h3"), ("completed", hosts[2].0)],
            "{tag}: h3's late result changed nothing"
        );
    }
    assert_eq!(runs::overlaps(&cluster.runs), Vec::<String>::new(), "runs overlapped");
    eprintln!("many hosts: h3 was cut off running {cut_off:?}; each ran again elsewhere, h3's results discarded");
    (cut_off.into_iter().collect(), total)
}

/// Jobs that sleep are spread over the hosts; once h1 runs some, every process in h1's
/// namespace is SIGKILLed. The other hosts recover its jobs after the lease and run them:
/// everything completes, nothing stays processing or pending, each run h1 lost shows a `lost`
/// attempt by h1 followed by a completed one elsewhere, no other job lost an attempt, and no two
/// runs of one job overlapped.
fn a_killed_host_has_its_jobs_recovered(cluster: &Cluster, before: usize, retried_before: &BTreeSet<String>) {
    let tags: Vec<String> = (1..=LOSS_JOBS).map(|i| format!("p3-{i:02}")).collect();
    enqueue_sleepers(cluster, &cluster.hosts[2], &tags, LOSS_SLEEP_SECONDS);
    let total = before + LOSS_JOBS;
    let started_on = |host: &str| started_on(cluster, &tags, host);
    wait_until(
        "h1 to run some of the sleeping jobs",
        Duration::from_secs(30),
        Duration::from_millis(20),
        || cluster.logs(),
        || match started_on("h1").is_empty() {
            true => Err("no run on h1 yet".into()),
            false => Ok(()),
        },
    );
    let killed_at_least = started_on("h1");
    let killed_at = Instant::now();
    assert!(
        cluster.netns(0).kill_everything(),
        "processes in h1's namespace survived SIGKILL: {:?}",
        cluster.netns(0).pids()
    );
    let status = cluster.hosts[0].reap_worker(Duration::from_secs(10));
    assert!(status.is_some(), "h1's worker still runs after SIGKILL");

    // Measured, not asserted: how long until no job is left processing under h1's worker
    // (presumed dead after 2 × lease, then recovered by the next reap on h2 or h3).
    wait_until(
        "h1's jobs to be recovered",
        Duration::from_secs(60),
        Duration::from_millis(50),
        || cluster.logs(),
        || {
            let workers = cluster.hosts[1].query(&["list", "--state", "processing", "--format", "id,worker"]);
            let held: Vec<&str> = workers.lines().filter(|line| line.contains("\th1:")).collect();
            match held.is_empty() {
                true => Ok(()),
                false => Err(format!("still processing on h1: {held:?}")),
            }
        },
    );
    let recovered_after = killed_at.elapsed();

    wait_all_completed(cluster, &cluster.hosts[1], total, Duration::from_secs(90));

    // The jobs h1 was running when it died: an h1 start with no h1 end.
    let killed: BTreeSet<String> = tags
        .iter()
        .filter(|tag| {
            let records = runs::records(&cluster.runs, tag);
            let on_h1 = |event: &str| records.iter().any(|r| r.host == "h1" && r.event == event);
            on_h1("start") && !on_h1("end")
        })
        .cloned()
        .collect();
    for tag in &killed_at_least {
        let records = runs::records(&cluster.runs, tag);
        let finished_on_h1 = records.iter().any(|r| r.host == "h1" && r.event == "end");
        assert!(
            killed.contains(tag) || finished_on_h1,
            "{tag} started on h1 but neither finished there nor was cut off: {records:?}"
        );
    }
    assert!(!killed.is_empty(), "h1 was killed mid-run, so some runs were cut off");
    for tag in &tags {
        let records = runs::records(&cluster.runs, tag);
        let ends: Vec<&Record> = records.iter().filter(|r| r.event == "end").collect();
        assert_eq!(ends.len(), 1, "{tag} completed exactly once: {records:?}");
        if killed.contains(tag) {
            let end = ends[0];
            assert_ne!(end.host, "h1", "{tag}: rerun on a live host: {records:?}");
            assert!(end.attempt >= 2, "{tag}: the rerun is a new attempt: {records:?}");
        } else {
            assert!(runs::single_complete_run(&records).is_some(), "{tag}: {records:?}");
        }
    }

    // The queue's side: only h1's jobs lost an attempt, each once, and then completed elsewhere.
    let listed = jobs_by_id(&cluster.hosts[1]);
    let counts = &cluster.hosts[1].status()["jobs"];
    assert_eq!(
        counts,
        &json!({ "pending": 0, "processing": 0, "completed": total, "failed": 0, "dead": 0 }),
        "0 lost, 0 stuck"
    );
    assert_eq!(listed.len(), total, "no job lost or added");
    let retried: BTreeSet<String> = listed
        .iter()
        .filter(|(_, job)| job["attempts"] != 1)
        .map(|(id, _)| id.clone())
        .collect();
    assert!(
        killed.is_subset(&retried),
        "every cut-off run counted as an attempt: killed {killed:?}, retried {retried:?}"
    );
    for id in retried.difference(retried_before) {
        assert!(
            id.starts_with("p3-"),
            "{id} lost an attempt though its host lived: {:#}",
            listed[id]
        );
        let job = cluster.hosts[1].job(id);
        let history = job["history"].as_array().expect("history");
        let outcomes: Vec<(&str, &str)> = history
            .iter()
            .map(|a| (a["outcome"].as_str().unwrap_or("?"), attempt_host(a)))
            .collect();
        let (last, earlier) = outcomes.split_last().expect("attempts");
        assert!(
            earlier.iter().all(|&(outcome, host)| outcome == "lost" && host == "h1") && !earlier.is_empty(),
            "{id}: only h1's runs were lost: {outcomes:?}"
        );
        assert!(
            last.0 == "completed" && last.1 != "h1",
            "{id}: completed on a live host: {outcomes:?}"
        );
        if let Some(end) = runs::records(&cluster.runs, id).iter().find(|r| r.event == "end") {
            assert_eq!(end.host, last.1, "{id}: the queue names the host that ran it");
        }
    }
    assert_eq!(runs::overlaps(&cluster.runs), Vec::<String>::new(), "runs overlapped");

    // h1's worker row is gone with its jobs, and nothing is reported lost.
    wait_until(
        "h1's worker to be removed from the registry",
        Duration::from_secs(15),
        POLL,
        String::new,
        || {
            let status = cluster.hosts[1].status();
            match (worker_hosts(&status) == ["h2", "h3"], status["lost_jobs"] == json!([])) {
                (true, true) => Ok(()),
                _ => Err(format!("{status:#}")),
            }
        },
    );
    // h1's connections to the server closed with its processes.
    let h1 = cluster.netns(0).address.to_string();
    wait_until(
        "h1's connections to close",
        Duration::from_secs(15),
        POLL,
        String::new,
        || match connections(cluster).get(&h1) {
            None => Ok(()),
            Some(n) => Err(format!("{n} connections from {h1}")),
        },
    );
    // Monitoring sees the lost host as missing worker threads.
    assert_health(&cluster.hosts[2], 6, false);
    assert_health(&cluster.hosts[2], 4, true);
    eprintln!(
        "many hosts: h1 was killed running {} job(s) {killed:?}; {} lost an attempt, recovered {:.1}s after the kill",
        killed.len(),
        retried.len() - retried_before.len(),
        recovered_after.as_secs_f64()
    );
}

/// A session holding the row of one lost job (as a host that died mid-transaction leaves it
/// until the server notices the connection is gone, by default after hours) delays the recovery
/// of that job only: the dead host's other jobs are recovered as usual, and the live workers,
/// which must not wait on that lock for long, are never presumed dead themselves.
#[test]
#[ignore = "bug: the PostgreSQL reap (src/store/postgres/jobs.rs, reap_workers) recovers every lost job in one transaction and waits on a row another session holds (lock_timeout 5 s); the whole reap fails and is retried, so no lost job is recovered while the lock lasts, and the coordinators blocked in it miss heartbeats until other hosts presume them dead"]
fn a_session_holding_one_lost_jobs_row_delays_only_that_job() {
    let tools = match harness::prerequisites() {
        Ok(tools) => tools,
        Err(reason) => {
            eprintln!("skipped: {reason}");
            return;
        }
    };
    let cluster = match Cluster::build(&tools, 3) {
        Ok(cluster) => cluster,
        Err(SetupError::Unsupported(reason)) => {
            eprintln!("skipped: cannot make network namespaces or a bridge here: {reason}");
            return;
        }
        Err(SetupError::Failed(reason)) => panic!("setup failed: {reason}"),
    };
    let total = init_from_every_host(&cluster) + LOSS_JOBS;
    start_workers(&cluster);
    let tags: Vec<String> = (1..=LOSS_JOBS).map(|i| format!("p9-{i:02}")).collect();
    // Long enough that h1's runs are still going when it is killed.
    enqueue_sleepers(&cluster, &cluster.hosts[1], &tags, 5);
    let on_h1 = || -> Vec<String> {
        let list = cluster.hosts[1].query(&["list", "--state", "processing", "--format", "id,worker"]);
        list.lines()
            .filter(|line| line.contains("\th1:"))
            .map(|line| line.split('\t').next().unwrap_or("").to_string())
            .collect()
    };
    let mut running = Vec::new();
    wait_until(
        "h1 to run two jobs",
        Duration::from_secs(30),
        Duration::from_millis(20),
        || cluster.logs(),
        || {
            running = on_h1();
            match running.len() {
                2 => Ok(()),
                _ => Err(format!("h1 runs {running:?}")),
            }
        },
    );
    let (held, other) = (&running[0], &running[1]);
    let session = cluster
        .postgres
        .open_session(
            "stuck-session",
            &format!(
                "BEGIN; SELECT id FROM {}.jobs WHERE id = '{held}' FOR UPDATE;",
                harness::cluster::SCHEMA
            ),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    wait_until(
        "the session to hold the row",
        Duration::from_secs(10),
        POLL,
        String::new,
        || {
            let state = cluster
                .postgres
                .query("SELECT state FROM pg_stat_activity WHERE application_name = 'stuck-session'")
                .unwrap_or_else(|e| panic!("{e}"));
            match state.trim() {
                "idle in transaction" => Ok(()),
                other => Err(format!("session state {other:?}")),
            }
        },
    );
    assert!(cluster.netns(0).kill_everything(), "h1 survived SIGKILL");

    wait_until(
        "h1's job whose row is free to be recovered",
        Duration::from_secs(30),
        POLL,
        || cluster.logs(),
        || match on_h1() {
            left if left == [held.clone()] => Ok(()),
            left => Err(format!(
                "still processing on h1: {left:?} (only {held} is held; {other} is free)"
            )),
        },
    );
    let presumed_dead = |cluster: &Cluster| -> Vec<String> {
        cluster.hosts[1..]
            .iter()
            .filter(|host| {
                std::fs::read_to_string(&host.log)
                    .unwrap_or_default()
                    .contains("presumed dead")
            })
            .map(|host| host.name.clone())
            .collect()
    };
    assert_eq!(
        presumed_dead(&cluster),
        Vec::<String>::new(),
        "live workers were presumed dead\n{}",
        cluster.logs()
    );
    drop(session);
    wait_all_completed(&cluster, &cluster.hosts[1], total, Duration::from_secs(60));
    assert_eq!(
        presumed_dead(&cluster),
        Vec::<String>::new(),
        "live workers were presumed dead\n{}",
        cluster.logs()
    );
}
