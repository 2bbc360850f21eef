//! `queuectl worker start|stop`.

use super::sd_notify::ServiceNotifier;
use super::single_instance::{self, Instance};
use super::{jobs, Verdict, EXIT_JOBS_DEAD};
use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use queuectl::error::Error;
use queuectl::time::{format_duration, parse_duration};
use queuectl::worker::registry;
use queuectl::worker::{PoolBuilder, ReloadRequest, WorkerEvent};
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
        after_help = "Examples:\n  queuectl worker start --count 2\n  queuectl worker start --count 4 --detach\n  queuectl worker start --until-idle         # run what is due now, then exit (cron)\n  queuectl worker start --until-empty        # wait out scheduled jobs and retries too\n\nExit codes with --until-empty or --until-idle: 0 no job died during the run, 3 some job\nmoved to the DLQ during the run. With --detach the exit code only says whether the worker\nstarted; its log has the rest.\n\nSIGINT/SIGTERM: stop claiming, let running jobs finish, exit 0. A second signal kills\nrunning jobs and puts them back to pending without counting the attempt. SIGHUP: reload\nconfig/queuectl.toml and `config set` values now and print what changed; the worker goes\non (the environment is read once, at start)."
    )]
    Start(StartArgs),
    /// Stop every worker of this home (or one, with --pid) gracefully and wait for them to exit
    #[command(
        after_help = "Examples:\n  queuectl worker stop --timeout 30s\n  queuectl worker stop --pid 9704     # only that worker; the others go on\n\nAfter the timeout the workers are signalled again: running jobs are killed and put back\nto pending without counting the attempt."
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

    /// Print less: only failures, DLQ moves and warnings (and the start and stop lines around
    /// them); a run with nothing to report prints nothing
    #[arg(long, short = 'q')]
    pub quiet: bool,

    /// Exit at once (code 0) if another `--single-instance` worker runs on this home: for cron
    #[arg(long)]
    pub single_instance: bool,
}

/// Arguments of `queuectl worker stop`.
#[derive(Debug, Args)]
pub struct StopArgs {
    /// How long running jobs may take to finish before they are killed, e.g. 30s
    #[arg(long, default_value = "30s", value_name = "DURATION")]
    pub timeout: String,

    /// Stop only the worker with this PID (as `status` lists it); the others keep running
    #[arg(long, value_name = "PID")]
    pub pid: Option<u32>,
}

/// Runs `queuectl worker ...`.
pub fn run(home: &Home, command: &WorkerCommand) -> Result<()> {
    match command {
        WorkerCommand::Start(args) => start(home, args),
        WorkerCommand::Stop(args) => stop(home, args),
    }
}

pub fn print_line(line: String) {
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
        WorkerEvent::SettingsReloaded {
            requested,
            changes,
            error,
        } => match error {
            Some(error) => format!("[{pid}] reload failed, keeping the previous settings: {error}"),
            None if changes.is_empty() => format!("[{pid}] reloaded config: no changes"),
            None => {
                let what: Vec<String> = changes
                    .iter()
                    .map(|change| {
                        // The threads are started once: say so rather than let the line
                        // suggest the worker now runs a different number of them.
                        if change.key == "worker_count" {
                            format!("{change} (for workers started from now on)")
                        } else {
                            change.to_string()
                        }
                    })
                    .collect();
                let verb = if *requested {
                    "reloaded config"
                } else {
                    "config changed"
                };
                format!("[{pid}] {verb}: {}", what.join(", "))
            }
        },
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
    // Fail early, in the foreground, if the home is not initialised or the config is broken.
    // A worker is started after installing a new queuectl, so it takes an older schema up
    // (backup first), like `queuectl migrate`.
    let (queue, migrated) = Queue::migrate(home)?;
    if migrated.backup.is_some() {
        for line in super::migrate::migrated_lines(home, &migrated) {
            eprintln!("{line}");
        }
    }
    let settings = queue.settings()?;
    drop(queue);
    let count = args.count.unwrap_or(settings.worker_count);
    if count == 0 || count > 1024 {
        return Err(Error::InvalidArgument(format!("--count must be from 1 to 1024, got {count}")).into());
    }
    // Taken before detaching too, so a crontab line with --detach says at once that it has
    // nothing to do; the detached child takes the lock itself.
    let instance = if args.single_instance {
        match single_instance::try_lock(home)? {
            Instance::Held(file) => Some(file),
            Instance::Busy(path) => {
                // Exit 0: for cron, a worker already on the job is success, not a failure to mail.
                if !args.quiet {
                    print_line(single_instance::busy_message(&path));
                }
                return Ok(());
            }
        }
    } else {
        None
    };
    if args.detach {
        drop(instance);
        return detach(home, args, count);
    }
    let shutdown = Shutdown::new();
    let reload = ReloadRequest::new();
    // Before any other thread starts: the signal mask it sets is inherited by every thread.
    handle_signals(&shutdown, &reload)?;
    let pid = std::process::id();
    let quiet = args.quiet;
    let spool_thread = if args.no_spool {
        None
    } else {
        start_ingester(home, &shutdown, args.until_empty || args.until_idle, pid, quiet)?
    };
    // systemd (Type=notify): READY/STATUS/STOPPING/WATCHDOG while NOTIFY_SOCKET is set.
    let service = ServiceNotifier::from_env(home, settings.heartbeat_seconds, pid);
    let notify = service.as_ref().map(ServiceNotifier::handle);
    let (stop_home, stop_shutdown) = (home.clone(), shutdown.clone());
    let died = Arc::new(AtomicU64::new(0));
    let died_seen = died.clone();
    let quiet_report = QuietReport::default();
    let pool = PoolBuilder::new(home)
        .threads(count)
        .reload_on(reload)
        .until_empty(args.until_empty)
        .until_idle(args.until_idle)
        .observer(move |event: &WorkerEvent| {
            if let Some(notify) = &notify {
                notify.observe(event);
            }
            died_seen.fetch_add(jobs_died(event), Ordering::Relaxed);
            if let Some(line) = event_line(pid, event, quiet) {
                if !quiet {
                    print_line(line);
                } else if let Some(line) = quiet_report.line(event, line) {
                    print_line(line);
                }
            }
            // Registered now, so a later `worker stop` sees us; one that ran after this process
            // started but before it registered left its request behind instead.
            if matches!(event, WorkerEvent::Started { .. }) && stopped_while_starting(&stop_home) {
                print_line(format!(
                    "[{pid}] `queuectl worker stop` ran while this worker was starting: stopping"
                ));
                stop_shutdown.request_stop();
            }
        });
    let result = pool.run(&shutdown);
    if let Some(service) = service {
        service.finish();
    }
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

/// SIGINT and SIGTERM escalate `shutdown` (graceful, then forced); SIGHUP requests a reload.
///
/// The `ctrlc` crate cannot be used here: with its `termination` feature it treats SIGHUP as
/// one more termination signal. Instead the three signals are blocked in this thread, so every
/// thread started later inherits the mask, and one dedicated thread takes them with
/// `sigwait(2)`: no code runs in signal-handler context, so it may lock and notify freely. Must
/// be called before any other thread exists (a thread started earlier would still get SIGHUP's
/// default action, which ends the process). Job processes do not inherit the mask: Rust's
/// `Command` resets the signal mask of every child it spawns.
fn handle_signals(shutdown: &Shutdown, reload: &ReloadRequest) -> Result<()> {
    // SAFETY: `set` is a local sigset_t initialised by sigemptyset before use; the calls only
    // read and write it and this thread's signal mask.
    let set = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            libc::sigaddset(&mut set, signal);
        }
        let rc = libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        if rc != 0 {
            anyhow::bail!(
                "blocking signals for the signal thread: {}",
                std::io::Error::from_raw_os_error(rc)
            );
        }
        set
    };
    let (shutdown, reload) = (shutdown.clone(), reload.clone());
    std::thread::Builder::new()
        .name("queuectl-signals".into())
        .spawn(move || loop {
            let mut signal: libc::c_int = 0;
            // SAFETY: sigwait reads the initialised set and writes the signal number into a
            // local; the signals in the set are blocked in every thread of the process.
            let rc = unsafe { libc::sigwait(&set, &mut signal) };
            if rc != 0 {
                continue;
            }
            if signal == libc::SIGHUP {
                reload.request();
            } else {
                shutdown.escalate();
            }
        })
        .context("starting the signal thread")?;
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
    // The database goes through the environment: a PostgreSQL URL may hold a password, which
    // a command line would show to every user of the host.
    command
        .arg("--home")
        .arg(home.root())
        .env("QUEUECTL_DB", home.db().to_text());
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
    if args.single_instance {
        command.arg("--single-instance");
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

/// Where `worker stop` records its latest request, for workers that were still starting.
fn stop_request_path(home: &Home) -> std::path::PathBuf {
    home.root().join("run").join("stop-requests")
}

/// The boot-clock time (clock ticks since boot, the unit of a process's start time in
/// `/proc/PID/stat`) of the latest `worker stop` on this home, if any.
fn last_stop_request(home: &Home) -> Option<u64> {
    std::fs::read_to_string(stop_request_path(home))
        .ok()
        .and_then(|text| text.trim().parse().ok())
}

/// Now on the boot clock, in clock ticks: the clock `/proc/PID/stat` start times are read on,
/// so a request and a process start compare without any wall clock (which may step).
fn boot_clock_ticks() -> Option<u64> {
    let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes one timespec we own; sysconf reads a constant.
    let (rc, ticks_per_second) = unsafe {
        (
            libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut now),
            libc::sysconf(libc::_SC_CLK_TCK),
        )
    };
    if rc != 0 || ticks_per_second <= 0 {
        return None;
    }
    let ticks_per_second = ticks_per_second as u64;
    Some(now.tv_sec as u64 * ticks_per_second + now.tv_nsec as u64 * ticks_per_second / 1_000_000_000)
}

/// True if a `worker stop` ran on this home after this process started: the stop could not
/// see a worker that was not registered yet, so the worker stops itself once registered. The
/// process start is the kernel's record of the fork, so a stop that ran while this process was
/// spawned but not yet running counts too.
fn stopped_while_starting(home: &Home) -> bool {
    match (
        last_stop_request(home),
        registry::process_start_time(std::process::id()),
    ) {
        (Some(request), Some(started)) => request >= started,
        _ => false,
    }
}

/// Records a stop request at the current boot-clock time (write to a temporary file, then
/// rename: readers never see a half-written value).
fn record_stop_request(home: &Home) -> Result<()> {
    let Some(now) = boot_clock_ticks() else {
        return Ok(());
    };
    let path = stop_request_path(home);
    let dir = path.parent().unwrap_or(home.root());
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let temp = dir.join(format!(".stop-requests.{}", std::process::id()));
    std::fs::write(&temp, format!("{now}\n")).map_err(|e| Error::io(&temp, e))?;
    std::fs::rename(&temp, &path).map_err(|e| Error::io(&path, e))?;
    Ok(())
}

fn stop(home: &Home, args: &StopArgs) -> Result<()> {
    let timeout = parse_duration(&args.timeout).map_err(|e| Error::InvalidArgument(format!("--timeout: {e}")))?;
    let mut queue = super::open_for_reading(home)?;
    if let Some(pid) = args.pid {
        return stop_one(&mut queue, pid, timeout);
    }
    // Recorded before the registry is read: a worker still starting (not registered yet) finds
    // a request newer than its own start once it has registered, and stops.
    record_stop_request(home)?;
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
    stop_workers(&local, timeout)
}

/// `worker stop --pid PID`: only that worker, found in the registry on this host and
/// confirmed by its recorded start time, like every worker `stop` signals. No stop request is
/// recorded (that would stop workers still starting) and no recovery runs: the others are left
/// alone.
fn stop_one(queue: &mut Queue, pid: u32, timeout: Duration) -> Result<()> {
    let host = registry::host_name();
    let status = queue.status()?;
    let Some(worker) = status.workers.iter().find(|w| w.pid == pid && w.host == host) else {
        let elsewhere = status.workers.iter().find(|w| w.pid == pid);
        return Err(Error::InvalidArgument(match elsewhere {
            Some(w) => format!("worker PID {pid} runs on host {}: stop it there", w.host),
            None => format!("no running worker with PID {pid} in this queue's registry (see `queuectl status`)"),
        })
        .into());
    };
    if worker.proc_start.is_none() {
        anyhow::bail!(
            "worker PID {pid} has no recorded process start time, so it cannot be told from another process \
             with the same PID: not signalled"
        );
    }
    stop_workers(std::slice::from_ref(worker), timeout)
}

/// Signals each worker (SIGTERM: graceful), waits up to `timeout`, then signals those left
/// again (forced: their jobs go back to pending) and waits for them to exit.
fn stop_workers(local: &[queuectl::store::WorkerRecord], timeout: Duration) -> Result<()> {
    for w in local {
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
    let mut remaining = wait_for_exit(local, timeout, alive);
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
    quiet: bool,
) -> Result<Option<std::thread::JoinHandle<queuectl::Result<()>>>> {
    let print = move |event: &queuectl::spool::SpoolEvent| {
        if !quiet || spool_event_is_trouble(event) {
            print_line(format!("[{pid}] {event}"));
        }
    };
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

/// With `--quiet`, whether a spool event is worth a line: refused files, an insecure spool,
/// problems, and falling back to polling; not the routine ingestion (cron would mail it).
fn spool_event_is_trouble(event: &queuectl::spool::SpoolEvent) -> bool {
    use queuectl::spool::SpoolEvent;
    matches!(
        event,
        SpoolEvent::Rejected { .. }
            | SpoolEvent::Insecure { .. }
            | SpoolEvent::Warning(_)
            | SpoolEvent::Watching { polling: true, .. }
    )
}

/// With `--quiet`, a run with nothing to report prints nothing at all, so a crontab line
/// (`--until-idle --quiet` every minute) mails only when something went wrong. The "Started"
/// line is held back and printed before the first line worth printing; "Worker stopped" is
/// printed only after such a line.
#[derive(Default)]
struct QuietReport {
    /// The held-back "Started" line, until something is printed.
    started: std::sync::Mutex<Option<String>>,
    /// Something was printed: the run's end is worth a line too.
    printed: std::sync::atomic::AtomicBool,
}

impl QuietReport {
    /// What to print for an event's line (already filtered by `event_line`'s quiet rules).
    fn line(&self, event: &WorkerEvent, line: String) -> Option<String> {
        let mut started = self.started.lock().unwrap_or_else(|e| e.into_inner());
        match event {
            WorkerEvent::Started { .. } => {
                *started = Some(line);
                None
            }
            WorkerEvent::Stopped { .. } if !self.printed.load(Ordering::Relaxed) => None,
            _ => {
                self.printed.store(true, Ordering::Relaxed);
                Some(match started.take() {
                    Some(header) => format!("{header}\n{line}"),
                    None => line,
                })
            }
        }
    }
}
