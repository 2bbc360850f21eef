//! `worker start` under systemd without systemd: the test plays the service manager by binding
//! the `NOTIFY_SOCKET` datagram socket itself and reading what the worker sends. The shipped
//! unit files are checked for the keys the worker relies on, and with `systemd-analyze verify`
//! where that tool exists.

mod common;

use common::process::SHORT;
use common::{signal, wait_until, TestHome};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// The test's side of `NOTIFY_SOCKET`: every datagram the worker sent, in order.
struct Manager {
    _dir: tempfile::TempDir,
    path: PathBuf,
    socket: UnixDatagram,
    messages: Vec<String>,
}

impl Manager {
    fn bind() -> Manager {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("notify.sock");
        let socket = UnixDatagram::bind(&path).expect("bind the notify socket");
        socket
            .set_read_timeout(Some(Duration::from_millis(20)))
            .expect("read timeout");
        Manager {
            _dir: dir,
            path,
            socket,
            messages: Vec::new(),
        }
    }

    /// Reads what has arrived (waiting at most one read timeout for it).
    fn receive(&mut self) {
        let mut buffer = [0u8; 4096];
        while let Ok(n) = self.socket.recv(&mut buffer) {
            self.messages.push(String::from_utf8_lossy(&buffer[..n]).into_owned());
        }
    }

    /// Reads messages until `condition` holds for all received so far; panics after `timeout`.
    #[track_caller]
    fn wait_for(&mut self, what: &str, timeout: Duration, condition: impl Fn(&[String]) -> bool) {
        let deadline = Instant::now() + timeout;
        loop {
            self.receive();
            if condition(&self.messages) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {timeout:?} waiting for {what}; received: {:#?}",
                self.messages
            );
        }
    }

    /// How many messages so far contain the assignment `line` (e.g. `WATCHDOG=1`).
    fn count(&self, line: &str) -> usize {
        self.messages.iter().filter(|m| has_line(m, line)).count()
    }
}

fn has_line(message: &str, line: &str) -> bool {
    message.lines().any(|l| l == line)
}

/// A `queuectl worker start` with the systemd variables set, output in a file, SIGKILLed if the
/// test ends while it runs.
struct ServiceWorker {
    child: Child,
    output: PathBuf,
}

impl ServiceWorker {
    fn spawn(home: &TestHome, notify_socket: &str, extra_env: &[(&str, &str)], args: &[&str]) -> ServiceWorker {
        let output = home.path().join(format!("worker-{}.out", args.len()));
        let log = std::fs::File::create(&output).expect("worker output file");
        let mut all = vec!["worker", "start", "--no-spool"];
        all.extend_from_slice(args);
        let mut command = home.command(&all);
        command
            .env("NOTIFY_SOCKET", notify_socket)
            .env_remove("WATCHDOG_USEC")
            .env_remove("WATCHDOG_PID")
            .envs(extra_env.iter().copied())
            .stdout(log.try_clone().expect("clone the output file"))
            .stderr(log);
        ServiceWorker {
            child: command.spawn().expect("spawn queuectl worker"),
            output,
        }
    }

    fn output(&self) -> String {
        std::fs::read_to_string(&self.output).unwrap_or_default()
    }

    #[track_caller]
    fn wait_code(&mut self, timeout: Duration) -> i32 {
        let mut code = None;
        wait_until("the worker to exit", timeout, || {
            code = self.child.try_wait().expect("try_wait").map(|s| s.code().unwrap_or(-1));
            code.is_some()
        });
        code.expect("exit code")
    }
}

impl Drop for ServiceWorker {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            signal(self.child.id(), libc::SIGKILL);
            let _ = self.child.wait();
        }
    }
}

#[test]
fn worker_tells_systemd_ready_status_watchdog_and_stopping_in_order() {
    let home = TestHome::new();
    // Due at once, so it runs as soon as the worker may claim.
    home.run(&["enqueue", r#"{"id":"env-job","command":"env > job-env.txt"}"#])
        .ok();
    let mut manager = Manager::bind();
    let mut worker = ServiceWorker::spawn(
        &home,
        manager.path.to_str().expect("utf-8 path"),
        &[("WATCHDOG_USEC", "200000")],
        &["--count", "2"],
    );
    manager.wait_for("a status after the job ran, and watchdog pings", SHORT, |messages| {
        messages
            .iter()
            .any(|m| has_line(m, "STATUS=2 threads, 0 busy, 1 job run"))
            && messages.iter().filter(|m| has_line(m, "WATCHDOG=1")).count() >= 3
    });
    signal(worker.child.id(), libc::SIGTERM);
    manager.wait_for("STOPPING=1", SHORT, |messages| {
        messages.iter().any(|m| has_line(m, "STOPPING=1"))
    });
    assert_eq!(worker.wait_code(SHORT), 0, "output:\n{}", worker.output());
    manager.receive();
    let messages = &manager.messages;

    // READY=1 comes first, and its status shows that no job had started yet.
    assert_eq!(
        messages[0], "READY=1\nSTATUS=2 threads, 0 busy, 0 jobs run",
        "all: {messages:#?}"
    );
    assert_eq!(manager.count("READY=1"), 1, "{messages:#?}");
    // STOPPING=1 once, after every status and ping.
    let stopping = messages
        .iter()
        .position(|m| has_line(m, "STOPPING=1"))
        .expect("STOPPING=1");
    assert_eq!(manager.count("STOPPING=1"), 1, "{messages:#?}");
    assert!(
        messages[stopping].starts_with("STOPPING=1\nSTATUS=stopping"),
        "{messages:#?}"
    );
    assert!(
        messages[stopping + 1..]
            .iter()
            .all(|m| !has_line(m, "WATCHDOG=1") && !m.starts_with("STATUS=")),
        "nothing but the stop after STOPPING=1: {messages:#?}"
    );
    // Every message is a set of KEY=VALUE lines the protocol knows.
    for message in messages {
        for line in message.lines() {
            let key = line.split('=').next().unwrap_or("");
            assert!(
                ["READY", "STATUS", "WATCHDOG", "STOPPING"].contains(&key),
                "unexpected line {line:?} in {messages:#?}"
            );
        }
    }

    // The job ran, without the variables that would let it speak for the worker.
    let env = std::fs::read_to_string(home.path().join("job-env.txt")).expect("the job wrote its env");
    assert!(env.contains("QUEUECTL_JOB_ID=env-job"), "{env}");
    for name in ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"] {
        assert!(
            !env.lines().any(|l| l.starts_with(&format!("{name}="))),
            "{name} in job env:\n{env}"
        );
    }
}

#[test]
fn worker_that_cannot_write_its_heartbeat_stops_the_watchdog_pings() {
    let home = TestHome::new();
    let mut manager = Manager::bind();
    let _worker = ServiceWorker::spawn(
        &home,
        manager.path.to_str().expect("utf-8 path"),
        &[("WATCHDOG_USEC", "200000")],
        &[],
    );
    manager.wait_for("watchdog pings", SHORT, |messages| {
        messages.iter().filter(|m| has_line(m, "WATCHDOG=1")).count() >= 2
    });
    // Hold the database's write lock: the worker's coordinator can no longer record its
    // heartbeat (it keeps retrying), as if it were wedged.
    let mut db = home.sql();
    db.take_write_lock();
    // Pings are due every 100 ms; a second without one means they stopped (the heartbeat goes
    // stale after 2 * heartbeat_seconds + 2 s = 4 s).
    let mut last_ping = Instant::now();
    let mut seen = manager.count("WATCHDOG=1");
    wait_until("the watchdog pings to stop", Duration::from_secs(30), || {
        manager.receive();
        let now_seen = manager.count("WATCHDOG=1");
        if now_seen != seen {
            seen = now_seen;
            last_ping = Instant::now();
        }
        last_ping.elapsed() >= Duration::from_secs(1)
    });
    db.release_write_lock();
    let stopped_at = manager.count("WATCHDOG=1");
    manager.wait_for("the watchdog pings to resume", SHORT, |messages| {
        messages.iter().filter(|m| has_line(m, "WATCHDOG=1")).count() > stopped_at
    });
}

#[test]
fn watchdog_is_not_pinged_when_systemd_set_none() {
    let home = TestHome::new();
    let mut manager = Manager::bind();
    let mut worker = ServiceWorker::spawn(
        &home,
        manager.path.to_str().expect("utf-8 path"),
        &[],
        &["--until-idle"],
    );
    assert_eq!(worker.wait_code(SHORT), 0, "output:\n{}", worker.output());
    manager.receive();
    assert_eq!(manager.messages.first().map(|m| m.starts_with("READY=1")), Some(true));
    assert_eq!(manager.count("STOPPING=1"), 1, "{:#?}", manager.messages);
    assert_eq!(manager.count("WATCHDOG=1"), 0, "{:#?}", manager.messages);
}

#[test]
fn abstract_notify_socket_is_reached() {
    use std::os::linux::net::SocketAddrExt;
    let name = format!("queuectl-test-notify-{}", std::process::id());
    let address = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).expect("abstract name");
    let socket = UnixDatagram::bind_addr(&address).expect("bind an abstract socket");
    socket
        .set_read_timeout(Some(Duration::from_millis(20)))
        .expect("read timeout");
    let home = TestHome::new();
    let mut worker = ServiceWorker::spawn(&home, &format!("@{name}"), &[], &["--until-idle"]);
    assert_eq!(worker.wait_code(SHORT), 0, "output:\n{}", worker.output());
    let mut buffer = [0u8; 1024];
    let n = socket.recv(&mut buffer).expect("READY=1 on the abstract socket");
    assert!(
        buffer[..n].starts_with(b"READY=1\n"),
        "{:?}",
        String::from_utf8_lossy(&buffer[..n])
    );
}

#[test]
fn unusable_notify_socket_is_one_warning_and_the_worker_runs() {
    let home = TestHome::new();
    home.run(&["enqueue", r#"{"id":"notify-fallback-job","command":"true"}"#])
        .ok();
    let mut worker = ServiceWorker::spawn(&home, "relative/notify.sock", &[], &["--until-idle"]);
    assert_eq!(worker.wait_code(SHORT), 0, "output:\n{}", worker.output());
    let output = worker.output();
    let warnings: Vec<&str> = output.lines().filter(|l| l.contains("] warning: ")).collect();
    assert_eq!(warnings.len(), 1, "one warning line expected:\n{output}");
    assert!(
        warnings[0].ends_with(
            "warning: NOTIFY_SOCKET \"relative/notify.sock\" is not supported: expected an absolute path or an @abstract name; not notifying systemd"
        ),
        "{output}"
    );
    assert_eq!(home.job("notify-fallback-job")["state"], "completed");
}

// ---------------------------------------------------------------------------------------------
// The shipped unit files
// ---------------------------------------------------------------------------------------------

fn unit_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/systemd")
}

/// The `[Service]` section's assignments of a unit file, in order (comments and blank lines
/// skipped).
fn service_section(unit: &str) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(unit_dir().join(unit)).unwrap_or_else(|e| panic!("read {unit}: {e}"));
    let mut section = String::new();
    let mut assignments = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if line.starts_with('[') {
            section = line.to_string();
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("{unit}: not an assignment: {line}"));
        if section == "[Service]" {
            assignments.push((key.trim().to_string(), value.trim().to_string()));
        }
    }
    assignments
}

fn value<'a>(assignments: &'a [(String, String)], key: &str) -> Vec<&'a str> {
    assignments
        .iter()
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .collect()
}

#[test]
fn worker_unit_has_what_the_worker_relies_on() {
    let service = service_section("queuectl-worker@.service");
    let one = |key: &str| {
        let values = value(&service, key);
        assert_eq!(values.len(), 1, "{key} once in [Service]: {values:?}");
        values[0].to_string()
    };
    assert_eq!(one("Type"), "notify");
    assert_eq!(one("NotifyAccess"), "main");
    assert_eq!(one("ExecStart"), "/usr/local/bin/queuectl --home %f worker start");
    assert_eq!(one("KillSignal"), "SIGTERM");
    // Without it, systemd's SIGTERM would reach every job at once.
    assert_eq!(one("KillMode"), "mixed");
    assert_eq!(one("ReadWritePaths"), "%f");
    assert_eq!(one("NoNewPrivileges"), "yes");
    assert_eq!(one("ProtectSystem"), "strict");
    assert_eq!(one("ProtectHome"), "read-only");
    assert_eq!(one("PrivateTmp"), "yes");
    assert_eq!(one("Restart"), "on-failure");
    assert_eq!(one("ExecReload"), "/bin/kill -HUP $MAINPID");
    assert!(one("WatchdogSec").ends_with('s'));
    let stop: u64 = one("TimeoutStopSec").parse().expect("TimeoutStopSec in seconds");
    assert!(stop > 5, "TimeoutStopSec must leave running jobs time to finish");
}

#[test]
fn spool_unit_runs_spool_watch_in_the_home() {
    let service = service_section("queuectl-spool@.service");
    assert_eq!(
        value(&service, "ExecStart"),
        ["/usr/local/bin/queuectl --home %f spool watch"]
    );
    assert_eq!(value(&service, "ReadWritePaths"), ["%f"]);
    assert_eq!(value(&service, "NoNewPrivileges"), ["yes"]);
    // `spool watch` does not notify: Type=notify would make systemd wait for it in vain.
    assert_ne!(value(&service, "Type"), ["notify"]);
}

#[test]
fn unit_files_pass_systemd_analyze_verify() {
    let Ok(found) = std::process::Command::new("systemd-analyze")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    else {
        eprintln!("skipped: systemd-analyze is not installed; the unit files were only parsed");
        return;
    };
    assert!(found.success(), "systemd-analyze --version failed");
    // verify insists that ExecStart's program exists: point it at the binary under test, and
    // name an instance (a template alone has no %f to check).
    let dir = tempfile::tempdir().expect("temp dir");
    let mut units = Vec::new();
    for unit in ["queuectl-worker@.service", "queuectl-spool@.service"] {
        let text = std::fs::read_to_string(unit_dir().join(unit)).expect("read the unit");
        let text = text.replace("/usr/local/bin/queuectl", &common::bin().display().to_string());
        std::fs::write(dir.path().join(unit), text).expect("write the unit copy");
        units.push(dir.path().join(unit.replace("@.", "@srv-queue.")));
    }
    let output = std::process::Command::new("systemd-analyze")
        .arg("verify")
        .arg("--man=no")
        .args(&units)
        .output()
        .expect("run systemd-analyze verify");
    assert!(
        output.status.success() && output.stderr.is_empty(),
        "systemd-analyze verify: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}
