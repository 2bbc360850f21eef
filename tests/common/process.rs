//! Processes the tests start and must never leave behind: `queuectl worker start` with its
//! output drained and a kill guard, a guard for processes started by jobs, and checks on PIDs.

use super::{signal, wait_until, TestHome};
use std::io::Read;
use std::path::Path;
use std::process::{Child, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The deadline for anything that should take a second or two.
pub const SHORT: Duration = Duration::from_secs(10);
/// The deadline for bulk work (thousands of jobs).
pub const LONG: Duration = Duration::from_secs(90);

/// A `queuectl worker start` process whose output is drained (so it never blocks on a full
/// pipe) and kept for assertions. Killed with SIGKILL if a test ends while it still runs.
pub struct Worker {
    child: Child,
    pub pid: u32,
    output: Arc<Mutex<String>>,
    readers: Vec<JoinHandle<()>>,
    status: Option<ExitStatus>,
}

impl Worker {
    /// Starts `queuectl worker start --no-spool ARGS` in `home`.
    pub fn spawn(home: &TestHome, args: &[&str]) -> Worker {
        let mut all = vec!["worker", "start", "--no-spool"];
        all.extend_from_slice(args);
        Worker::command(home, &all)
    }

    /// Starts any `queuectl ARGS` in the background with the same drained output and kill
    /// guard: for a command that blocks while the test acts (e.g. `worker stop`).
    pub fn command(home: &TestHome, args: &[&str]) -> Worker {
        let mut child = home
            .command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn queuectl");
        let output = Arc::new(Mutex::new(String::new()));
        let mut readers = Vec::new();
        let streams: Vec<Box<dyn Read + Send>> = vec![
            Box::new(child.stdout.take().expect("stdout")),
            Box::new(child.stderr.take().expect("stderr")),
        ];
        for mut stream in streams {
            let output = output.clone();
            readers.push(std::thread::spawn(move || {
                let mut buffer = [0u8; 8192];
                loop {
                    match stream.read(&mut buffer) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => output.lock().unwrap().push_str(&String::from_utf8_lossy(&buffer[..n])),
                    }
                }
            }));
        }
        let pid = child.id();
        Worker {
            child,
            pid,
            output,
            readers,
            status: None,
        }
    }

    /// Starts a worker and waits until `status` lists it.
    pub fn start(home: &TestHome, args: &[&str]) -> Worker {
        let mut worker = Worker::spawn(home, args);
        let pid = worker.pid;
        wait_until("the worker to register", SHORT, || {
            assert!(worker.is_running(), "worker exited early: {}", worker.output());
            worker_pids(home).contains(&pid)
        });
        worker
    }

    /// Everything the worker printed so far (stdout and stderr).
    pub fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    /// Waits until the worker's output contains `needle`.
    #[track_caller]
    pub fn wait_for_output(&self, needle: &str, timeout: Duration) {
        wait_until(&format!("the worker to print {needle:?}"), timeout, || {
            self.output().contains(needle)
        });
    }

    pub fn is_running(&mut self) -> bool {
        if self.status.is_none() {
            self.status = self.child.try_wait().expect("try_wait");
        }
        self.status.is_none()
    }

    /// Waits for the worker to exit and returns its status; its output is complete afterwards.
    #[track_caller]
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        while self.is_running() {
            if Instant::now() >= deadline {
                panic!(
                    "worker PID {} still running after {timeout:?}; output:\n{}",
                    self.pid,
                    self.output()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let readers = std::mem::take(&mut self.readers);
        let deadline = Instant::now() + Duration::from_secs(5);
        while readers.iter().any(|r| !r.is_finished()) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        self.status.expect("exit status")
    }

    /// Waits for the worker to exit and asserts it exited with code 0.
    #[track_caller]
    pub fn wait_success(&mut self, timeout: Duration) {
        self.wait_code(timeout, 0);
    }

    /// Waits for the worker to exit and asserts its exit code (3: jobs died during the run).
    #[track_caller]
    pub fn wait_code(&mut self, timeout: Duration, code: i32) {
        let status = self.wait_exit(timeout);
        assert_eq!(
            status.code(),
            Some(code),
            "worker exit status {status}; output:\n{}",
            self.output()
        );
    }

    pub fn signal(&self, sig: libc::c_int) {
        signal(self.pid, sig);
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if self.is_running() {
            signal(self.pid, libc::SIGKILL);
            let _ = self.child.wait();
        }
    }
}

/// Kills processes we did not start ourselves (a detached worker, a job's process or its
/// children) when a test ends, if they still run.
pub struct KillOnDrop(pub Vec<u32>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        for &pid in &self.0 {
            if !process_gone(pid) {
                signal(pid, libc::SIGKILL);
            }
        }
    }
}

/// Kills, when a test ends, every process whose PID is a line of a file (jobs append `$$` to
/// it): for jobs whose PIDs are not known when the guard is made.
pub struct KillListedOnDrop(pub std::path::PathBuf);

impl Drop for KillListedOnDrop {
    fn drop(&mut self) {
        let listed = std::fs::read_to_string(&self.0).unwrap_or_default();
        let pids: Vec<u32> = listed.lines().filter_map(|l| l.trim().parse().ok()).collect();
        drop(KillOnDrop(pids));
    }
}

/// The PIDs of the workers `status` lists.
pub fn worker_pids(home: &TestHome) -> Vec<u32> {
    home.status()["workers"]
        .as_array()
        .expect("status --json lists workers")
        .iter()
        .map(|w| w["pid"].as_u64().expect("a worker pid") as u32)
        .collect()
}

/// Waits for a file a job writes its PID into (ending with a newline), and returns the PID.
#[track_caller]
pub fn read_pid(path: impl AsRef<Path>) -> u32 {
    let path = path.as_ref();
    let mut pid = 0;
    wait_until(&format!("a pid in {}", path.display()), SHORT, || {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        match text.trim().parse::<u32>() {
            Ok(p) if text.ends_with('\n') => {
                pid = p;
                true
            }
            _ => false,
        }
    });
    pid
}

/// True if no process with this PID exists (a zombie counts as gone: it has exited, and the
/// init process of a container may never reap it).
pub fn process_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rfind(')')
            .map(|i| stat[i + 1..].trim_start().starts_with('Z'))
            .unwrap_or(false),
    }
}
