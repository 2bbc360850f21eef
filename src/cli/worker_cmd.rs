//! `queuectl worker start|stop`.

use super::{jobs, Verdict, EXIT_JOBS_DEAD};
use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use queuectl::error::Error;
use queuectl::time::{format_duration, parse_duration};
use queuectl::worker::registry;
use queuectl::worker::{PoolBuilder, WorkerEvent};
use queuectl::{Home, Queue, Shutdown, State};
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// `queuectl worker` subcommands.
#[derive(Debug, Subcommand)]
pub enum WorkerCommand {
    /// Run jobs: one process with N executor threads (foreground unless --detach)
    #[command(
        after_help = "Examples:\n  queuectl worker start --count 2\n  queuectl worker start --count 4 --detach\n  queuectl worker start --until-idle         # run what is due now, then exit (cron)\n  queuectl worker start --until-empty        # wait out scheduled jobs and retries too\n\nExit codes with --until-empty or --until-idle: 0 no job died during the run, 3 some job\nmoved to the DLQ during the run. With --detach the exit code only says whether the worker\nstarted; its log has the rest.\n\nSIGINT/SIGTERM: stop claiming, let running jobs finish, exit 0. A second signal kills\nrunning jobs and puts them back to pending without counting the attempt."
    )]
    Start(StartArgs),
    /// Stop every worker of this home gracefully and wait for them to exit
    #[command(
        after_help = "Example:\n  queuectl worker stop --timeout 30s\n\nAfter the timeout the workers are signalled again: running jobs are killed and put back\nto pending without counting the attempt."
    )]
    Stop(StopArgs),
}

/// Arguments of `queuectl worker start`.
#[derive(Debug, Args)]
pub struct StartArgs {
    /// Executor threads (default: config worker_count)
    #[arg(long, short = 'n', value_name = "N")]
    pub count: Option<usize>,

    /// `-c` was the short form of --count; it is --command elsewhere, so here it is refused
    /// with a hint instead of meaning something else
    #[arg(short = 'c', hide = true, value_name = "N", num_args = 0..=1)]
    pub old_count_flag: Option<Option<String>>,

    /// Run in the background; output goes to a log file in HOME/logs
    #[arg(long, short = 'd')]
    pub detach: bool,

    /// Exit once no job is left unfinished: none pending, failed (waiting for a retry) or
    /// processing, in any worker. Jobs scheduled for later and retries in their backoff keep
    /// the worker up until they have run
    #[arg(long, conflicts_with = "until_idle")]
    pub until_empty: bool,

    /// Exit once no job is due now and this worker runs none: jobs scheduled for later,
    /// retries in their backoff and jobs other workers run are left alone
    #[arg(long)]
    pub until_idle: bool,

    /// Do not ingest the spool directory in this worker
    #[arg(long)]
    pub no_spool: bool,

    /// Print less: only failures, DLQ moves and warnings
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

/// Arguments of `queuectl worker stop`.
#[derive(Debug, Args)]
pub struct StopArgs {
    /// How long running jobs may take to finish before they are killed, e.g. 30s
    #[arg(long, default_value = "30s", value_name = "DURATION")]
    pub timeout: String,
}

/// Runs `queuectl worker ...`.
pub fn run(home: &Home, command: &WorkerCommand) -> Result<()> {
    match command {
        WorkerCommand::Start(args) => start(home, args),
        WorkerCommand::Stop(args) => stop(home, args),
    }
}

fn print_line(line: String) {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Formats one pool event in the spirit of the spec's sample output.
pub fn event_line(pid: u32, event: &WorkerEvent, quiet: bool) -> Option<String> {
    let cut = |c: &str| super::output::cut(c, 100);
    Some(match event {
        WorkerEvent::Started { threads, kinds, .. } => {
            let kinds = if kinds.len() == 1 && kinds[0] == "shell" {
                String::new()
            } else {
                format!(", kinds: {}", kinds.join(", "))
            };
            format!(
                "Started {threads} worker{} (PID {pid}{kinds})",
                if *threads == 1 { "" } else { "s" }
            )
        }
        WorkerEvent::JobStarted { thread, job, attempt } if !quiet => {
            let retry = if *attempt > 1 {
                format!(" (attempt {attempt})")
            } else {
                String::new()
            };
            format!(
                "[{pid}/{thread}] Executing job {}{retry}: {}",
                job.id,
                cut(&job.command)
            )
        }
        WorkerEvent::JobCompleted {
            thread, job, duration, ..
        } if !quiet => {
            format!(
                "[{pid}/{thread}] Job {} completed ({})",
                job.id,
                format_duration(*duration)
            )
        }
        WorkerEvent::JobRetrying {
            thread,
            job,
            attempt,
            max_runs,
            delay,
            outcome,
        } => format!(
            "[{pid}/{thread}] Job {} failed (attempt {attempt} of {max_runs}, {}), retrying in {}",
            job.id,
            outcome.error.as_deref().unwrap_or("failed"),
            format_duration(*delay)
        ),
        WorkerEvent::JobDead {
            thread,
            job,
            attempts,
            outcome,
        } => format!(
            "[{pid}/{thread}] Job {} moved to DLQ after {attempts} attempt{}: {}",
            job.id,
            if *attempts == 1 { "" } else { "s" },
            outcome.error.as_deref().unwrap_or("failed")
        ),
        WorkerEvent::JobReleased { thread, job } => {
            format!(
                "[{pid}/{thread}] Job {} killed by forced shutdown, back to pending (attempt not counted)",
                job.id
            )
        }
        WorkerEvent::ResultDiscarded { thread, job } => {
            format!(
                "[{pid}/{thread}] Job {}: result discarded, another worker recovered the job",
                job.id
            )
        }
        WorkerEvent::JobTimedOut { thread, job_id, signal } => {
            format!("[{pid}/{thread}] Job {job_id} timed out: sent {signal} to its process group")
        }
        WorkerEvent::Recovered { jobs } => {
            let list: Vec<String> = jobs.iter().map(|(id, state)| format!("{id} -> {state}")).collect();
            format!(
                "[{pid}] Recovered {} job{} of a lost worker: {}",
                jobs.len(),
                if jobs.len() == 1 { "" } else { "s" },
                list.join(", ")
            )
        }
        WorkerEvent::Stopping { forced: false, running } => {
            format!(
                "[{pid}] Stopping: waiting for {running} running job{} to finish (signal again to kill them)",
                if *running == 1 { "" } else { "s" }
            )
        }
        WorkerEvent::Stopping { forced: true, running } => {
            format!(
                "[{pid}] Forced stop: killing {running} running job{} and putting them back to pending",
                if *running == 1 { "" } else { "s" }
            )
        }
        WorkerEvent::Stopped { jobs_run } => format!(
            "[{pid}] Worker stopped after {jobs_run} job{}",
            if *jobs_run == 1 { "" } else { "s" }
        ),
        WorkerEvent::Warning(message) => format!("[{pid}] warning: {message}"),
        _ => return None,
    })
}

fn start(home: &Home, args: &StartArgs) -> Result<()> {
    if args.old_count_flag.is_some() {
        return Err(Error::InvalidArgument(
            "`worker start` has no -c (it is --command in `enqueue`): use -n N or --count N for the number of threads"
                .into(),
        )
        .into());
    }
    // Taken first: a `worker stop` that counts a request after this point is meant for us, even
    // if it ran before we registered and so could not see us (see `stop`).
    let stop_requests_at_start = stop_requests(home);
    // Fail early, in the foreground, if the home is not initialised or the config is broken.
    let queue = Queue::open(home)?;
    let settings = queue.settings()?;
    drop(queue);
    let count = args.count.unwrap_or(settings.worker_count);
    if count == 0 || count > 1024 {
        return Err(Error::InvalidArgument(format!("--count must be from 1 to 1024, got {count}")).into());
    }
    if args.detach {
        return detach(home, args, count);
    }
    let shutdown = Shutdown::new();
    let handler_shutdown = shutdown.clone();
    ctrlc::set_handler(move || handler_shutdown.escalate()).context("installing the signal handler")?;
    let pid = std::process::id();
    let quiet = args.quiet;
    let spool_thread = if args.no_spool {
        None
    } else {
        start_ingester(home, &shutdown, args.until_empty || args.until_idle, pid)?
    };
    let (stop_home, stop_shutdown) = (home.clone(), shutdown.clone());
    let died = Arc::new(AtomicU64::new(0));
    let died_seen = died.clone();
    let pool = PoolBuilder::new(home)
        .threads(count)
        .until_empty(args.until_empty)
        .until_idle(args.until_idle)
        .observer(move |event: &WorkerEvent| {
            died_seen.fetch_add(jobs_died(event), Ordering::Relaxed);
            if let Some(line) = event_line(pid, event, quiet) {
                print_line(line);
            }
            // Registered now, so a later `worker stop` sees us; one that ran while we were
            // starting left its count behind instead.
            if matches!(event, WorkerEvent::Started { .. }) && stop_requests(&stop_home) != stop_requests_at_start {
                print_line(format!(
                    "[{pid}] `queuectl worker stop` ran while this worker was starting: stopping"
                ));
                stop_shutdown.request_stop();
            }
        });
    let result = pool.run(&shutdown);
    // The pool may have ended on its own (--until-empty): stop the ingester too.
    shutdown.request_stop();
    if let Some(handle) = spool_thread {
        if handle.join().is_err() {
            eprintln!("queuectl: warning: the spool ingester panicked");
        }
    }
    result?;
    let died = died.load(Ordering::Relaxed);
    if (args.until_empty || args.until_idle) && died > 0 {
        // A cron job or script running the queue dry needs to know that something failed for
        // good without parsing the log.
        return Err(Verdict {
            code: EXIT_JOBS_DEAD,
            message: format!("{} moved to the DLQ during this run", jobs(died)),
        }
        .into());
    }
    Ok(())
}

/// How many jobs an event moves to the DLQ: a job of this worker, or jobs of a lost worker
/// this worker recovered straight into the DLQ (their last retry was the lost attempt).
fn jobs_died(event: &WorkerEvent) -> u64 {
    match event {
        WorkerEvent::JobDead { .. } => 1,
        WorkerEvent::Recovered { jobs } => jobs.iter().filter(|(_, state)| *state == State::Dead).count() as u64,
        _ => 0,
    }
}

fn detach(home: &Home, args: &StartArgs, count: usize) -> Result<()> {
    use std::os::unix::process::CommandExt;
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ");
    let (log_path, log) = home.create_log_file(&format!("worker-{stamp}.log"))?;
    let log_err = log.try_clone().map_err(|e| Error::io(&log_path, e))?;
    let exe = std::env::current_exe().context("finding the queuectl executable")?;
    let mut command = std::process::Command::new(exe);
    command.arg("--home").arg(home.root()).arg("--db").arg(home.db_path());
    command.args(["worker", "start", "--count", &count.to_string()]);
    if args.until_empty {
        command.arg("--until-empty");
    }
    if args.until_idle {
        command.arg("--until-idle");
    }
    if args.no_spool {
        command.arg("--no-spool");
    }
    if args.quiet {
        command.arg("--quiet");
    }
    // A new process group: the terminal's Ctrl-C must not reach the background worker.
    command
        .stdin(std::process::Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .process_group(0);
    let mut child = command.spawn().context("starting the background worker")?;
    let pid = child.id();
    // Wait until it has registered, so a mistake shows here rather than only in the log.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut finished = None;
    loop {
        if let Some(status) = child.try_wait().context("checking the background worker")? {
            let log_text = std::fs::read_to_string(&log_path).unwrap_or_default();
            let last = log_text.lines().last().unwrap_or("").to_string();
            // A worker that drained a small queue may be done before we see it registered:
            // that is a worker that started and did its job, not a failure to start.
            let until = args.until_empty || args.until_idle;
            let ran = status.success() || (until && status.code() == Some(EXIT_JOBS_DEAD));
            if !ran {
                anyhow::bail!(
                    "background worker exited at once ({status}): {last} (log: {})",
                    log_path.display()
                );
            }
            finished = Some(last);
            break;
        }
        let mut queue = Queue::open(home)?;
        if queue.status()?.workers.iter().any(|w| w.pid == pid) {
            break;
        }
        if Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    println!(
        "Started {count} worker{} in the background (PID {pid})",
        if count == 1 { "" } else { "s" }
    );
    if let Some(last) = finished {
        println!("finished already: {last}");
    }
    println!("log: {}", log_path.display());
    Ok(())
}

/// Where `worker stop` counts its requests, for workers that were still starting.
fn stop_request_path(home: &Home) -> std::path::PathBuf {
    home.root().join("run").join("stop-requests")
}

/// How many `worker stop`s have run on this home (0 when none).
fn stop_requests(home: &Home) -> u64 {
    std::fs::read_to_string(stop_request_path(home))
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(0)
}

/// Counts one more stop request (write to a temporary file, then rename: readers never see a
/// half-written count). Concurrent stops may count once between them, which is enough: any
/// change tells a starting worker to stop.
fn count_stop_request(home: &Home) -> Result<()> {
    let path = stop_request_path(home);
    let dir = path.parent().unwrap_or(home.root());
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let temp = dir.join(format!(".stop-requests.{}", std::process::id()));
    std::fs::write(&temp, format!("{}\n", stop_requests(home) + 1)).map_err(|e| Error::io(&temp, e))?;
    std::fs::rename(&temp, &path).map_err(|e| Error::io(&path, e))?;
    Ok(())
}

fn stop(home: &Home, args: &StopArgs) -> Result<()> {
    let timeout = parse_duration(&args.timeout).map_err(|e| Error::InvalidArgument(format!("--timeout: {e}")))?;
    let mut queue = super::open_for_reading(home)?;
    // Counted before the registry is read: a worker still starting (not registered yet) sees
    // the count change once it has registered, and stops.
    count_stop_request(home)?;
    // What lost workers left running is stopped too (their jobs are recovered).
    let recovered = queue.recover()?;
    for (id, state) in &recovered.recovered {
        println!("Job {id}: its worker was lost; stopped what its run left running, now {state}");
    }
    for (id, reason) in &recovered.held {
        println!("Job {id}: its worker was lost; not recovered: {reason}");
    }
    let status = queue.status()?;
    let host = registry::host_name();
    let mut local = Vec::new();
    for w in status.workers.iter().filter(|w| w.host == host) {
        // Never signal a PID whose identity cannot be confirmed: without a recorded start time
        // the PID may belong to an unrelated process by now.
        if w.proc_start.is_none() {
            eprintln!(
                "queuectl: warning: worker PID {} has no recorded process start time, so it cannot be told from \
                 another process with the same PID: not signalled",
                w.pid
            );
        } else {
            local.push(w.clone());
        }
    }
    for w in status.workers.iter().filter(|w| w.host != host) {
        eprintln!("worker PID {} runs on host {}: stop it there", w.pid, w.host);
    }
    if local.is_empty() {
        println!("no workers running");
        return Ok(());
    }
    for w in &local {
        send(w, libc::SIGTERM);
        println!(
            "Stopping worker PID {} ({} thread{}, {} busy)",
            w.pid,
            w.threads,
            if w.threads == 1 { "" } else { "s" },
            w.slots.as_array().map(|s| s.len()).unwrap_or(0)
        );
    }
    let alive = |w: &queuectl::store::WorkerRecord| registry::process_alive(w.pid, w.proc_start);
    let mut remaining = wait_for_exit(&local, timeout, alive);
    if !remaining.is_empty() {
        for w in &remaining {
            println!(
                "Worker PID {} still running after {}: killing its jobs (they go back to pending)",
                w.pid,
                format_duration(timeout)
            );
            send(w, libc::SIGTERM);
        }
        remaining = wait_for_exit(&remaining, Duration::from_secs(15), alive);
    }
    if remaining.is_empty() {
        Ok(())
    } else {
        let pids: Vec<String> = remaining.iter().map(|w| w.pid.to_string()).collect();
        anyhow::bail!("workers still running: PID {}", pids.join(", "))
    }
}

/// Signals a worker, only while its PID still names the recorded process (same start time).
fn send(worker: &queuectl::store::WorkerRecord, signal: libc::c_int) {
    if worker.proc_start.is_none() || !registry::process_alive(worker.pid, worker.proc_start) {
        return;
    }
    // SAFETY: kill(2) on a worker PID just confirmed by its start time; no memory is involved.
    unsafe {
        libc::kill(worker.pid as libc::pid_t, signal);
    }
}

fn wait_for_exit(
    workers: &[queuectl::store::WorkerRecord],
    timeout: Duration,
    alive: impl Fn(&queuectl::store::WorkerRecord) -> bool,
) -> Vec<queuectl::store::WorkerRecord> {
    let deadline = Instant::now() + timeout;
    let mut remaining: Vec<_> = workers.to_vec();
    loop {
        remaining.retain(|w| {
            if alive(w) {
                true
            } else {
                println!("Worker PID {} exited", w.pid);
                false
            }
        });
        if remaining.is_empty() || Instant::now() >= deadline {
            return remaining;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Starts the spool ingester beside the pool. With `--until-empty` or `--until-idle`, one pass
/// runs first so a backlog of spool files counts as work before the pool decides it is done.
fn start_ingester(
    home: &Home,
    shutdown: &Shutdown,
    until_empty: bool,
    pid: u32,
) -> Result<Option<std::thread::JoinHandle<queuectl::Result<()>>>> {
    let print = move |event: &queuectl::spool::SpoolEvent| print_line(format!("[{pid}] {event}"));
    if until_empty {
        queuectl::spool::ingest_once(home, &print)?;
    }
    let (home, shutdown) = (home.clone(), shutdown.clone());
    let handle = std::thread::Builder::new()
        .name("queuectl-spool".into())
        .spawn(move || {
            let result = queuectl::spool::watch(&home, &shutdown, &print);
            if let Err(e) = &result {
                // Say so at once: the worker goes on running jobs, but nothing is ingested.
                print_line(format!("[{pid}] warning: spool ingestion stopped: {e}"));
            }
            result
        })
        .context("starting the spool ingester")?;
    Ok(Some(handle))
}
