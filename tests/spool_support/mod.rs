//! Helpers shared by the spool tests (`tests/spool.rs`, `tests/spool_writers.rs`): the spool's
//! paths, writing files by the contract, counting jobs, background `queuectl` processes that
//! are killed if a test fails, a seeded random sequence, and waiting for a file to be read.
#![allow(dead_code)]

use crate::common::sql::Sql;
use crate::common::{is_postgres, signal, wait_until, TestHome};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

pub fn spool(home: &TestHome) -> PathBuf {
    home.path().join("spool")
}

pub fn incoming(home: &TestHome) -> PathBuf {
    spool(home).join("incoming")
}

pub fn failed(home: &TestHome) -> PathBuf {
    spool(home).join("failed")
}

/// Writes `spool/tmp/NAME` and renames it into `incoming/`: the writer's contract.
pub fn drop_renamed(home: &TestHome, name: &str, content: &str) {
    let scratch = spool(home).join("tmp").join(name);
    fs::write(&scratch, content).unwrap();
    fs::rename(&scratch, incoming(home).join(name)).unwrap();
}

/// Sets a file's modification time an hour back, so it counts as settled (not being written).
pub fn age(path: &Path) {
    let file = fs::OpenOptions::new().write(true).open(path).unwrap();
    file.set_modified(SystemTime::now() - Duration::from_secs(3600))
        .unwrap();
}

/// Every job as JSON, in enqueue order.
pub fn jobs(home: &TestHome) -> Vec<Value> {
    home.run(&["list", "--json"])
        .ok()
        .json()
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// How many times each command occurs among the jobs.
pub fn command_counts(home: &TestHome) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for job in jobs(home) {
        *counts.entry(job["command"].as_str().unwrap().to_string()).or_insert(0) += 1;
    }
    counts
}

/// Asserts that the jobs are exactly `expected`, each once.
#[track_caller]
pub fn assert_exactly_once(home: &TestHome, expected: &[String]) {
    let counts = command_counts(home);
    let twice: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).take(5).collect();
    assert!(twice.is_empty(), "jobs added more than once: {twice:?}");
    let missing: Vec<_> = expected.iter().filter(|c| !counts.contains_key(*c)).take(5).collect();
    assert!(
        missing.is_empty(),
        "jobs missing: {missing:?} ({} of {} present)",
        counts.len(),
        expected.len()
    );
    assert_eq!(counts.len(), expected.len(), "unexpected extra jobs");
}

pub fn total(home: &TestHome) -> u64 {
    home.status()["total"].as_u64().unwrap()
}

/// The names in a directory, sorted, non-UTF-8 bytes replaced.
pub fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// `spool status --json`.
pub fn spool_status(home: &TestHome) -> Value {
    home.run(&["spool", "status", "--json"]).ok().json()
}

/// The entry of `spool status --json` for the file shown as `name`, if listed.
pub fn status_of(home: &TestHome, name: &str) -> Option<Value> {
    spool_status(home)["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == name)
        .cloned()
}

/// A background `queuectl` process whose output is collected; SIGKILLed if still running when
/// dropped, so a failing test leaves no process behind.
pub struct Watch {
    pub child: Child,
    output: Arc<Mutex<String>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

impl Watch {
    /// `queuectl spool watch`.
    pub fn start(home: &TestHome) -> Watch {
        Watch::start_with(home, &["spool", "watch"])
    }

    /// `queuectl ARGS` (e.g. `worker start`).
    pub fn start_with(home: &TestHome, args: &[&str]) -> Watch {
        let mut child = home
            .command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn queuectl");
        let output = Arc::new(Mutex::new(String::new()));
        let mut readers = Vec::new();
        // Drain both pipes: a process blocked on a full pipe would stop working.
        let stdout: Box<dyn Read + Send> = Box::new(child.stdout.take().unwrap());
        let stderr: Box<dyn Read + Send> = Box::new(child.stderr.take().unwrap());
        for pipe in [stdout, stderr] {
            let output = Arc::clone(&output);
            readers.push(std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines() {
                    let Ok(line) = line else { break };
                    let mut text = output.lock().unwrap();
                    text.push_str(&line);
                    text.push('\n');
                }
            }));
        }
        Watch { child, output, readers }
    }

    pub fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    pub fn wait_for_output(&self, what: &str) {
        wait_until(&format!("output containing {what:?}"), Duration::from_secs(10), || {
            self.output().contains(what)
        });
    }

    pub fn kill(&mut self) {
        signal(self.child.id(), libc::SIGKILL);
        let _ = self.child.wait();
    }

    /// Waits (with a deadline) for the process to exit on its own; returns its exit code and
    /// all its output.
    pub fn wait_exit(mut self) -> (i32, String) {
        wait_until("the process to exit", Duration::from_secs(30), || {
            matches!(self.child.try_wait(), Ok(Some(_)))
        });
        let code = self.child.wait().unwrap().code().unwrap_or(-1);
        for reader in std::mem::take(&mut self.readers) {
            let _ = reader.join();
        }
        (code, self.output())
    }

    /// SIGINT, then waits for a clean exit.
    pub fn stop(mut self) -> String {
        signal(self.child.id(), libc::SIGINT);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "process exited with {status}: {}", self.output());
                break;
            }
            assert!(
                Instant::now() < deadline,
                "process did not stop on SIGINT: {}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        // The pipes close with the process: read them to the end.
        for reader in std::mem::take(&mut self.readers) {
            let _ = reader.join();
        }
        self.output()
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.kill();
        }
    }
}

/// A cheap pseudo-random sequence (xorshift) whose seed is printed, so a failure can be
/// replayed: set `QUEUECTL_TEST_SEED` to the printed seed.
pub struct Rng(u64);

impl Rng {
    /// Seeded from `QUEUECTL_TEST_SEED` if set, else from the clock; prints the seed.
    pub fn seeded(test: &str) -> Rng {
        let seed = match std::env::var("QUEUECTL_TEST_SEED") {
            Ok(text) => text
                .trim()
                .parse()
                .unwrap_or_else(|_| panic!("QUEUECTL_TEST_SEED must be an integer, got {text:?}")),
            Err(_) => SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64,
        };
        eprintln!("{test}: seed {seed} (replay with QUEUECTL_TEST_SEED={seed})");
        Rng::from_seed(seed)
    }

    pub fn from_seed(seed: u64) -> Rng {
        // xorshift never leaves zero; any other seed is fine.
        Rng(seed | 1)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Reports when some process closes a file it had opened without writing (the ingester
/// reading it), through inotify's `IN_CLOSE_NOWRITE`, so a test can act right after the
/// ingester read a file without guessing how long that takes.
pub struct ReadWatch {
    fd: libc::c_int,
}

impl ReadWatch {
    /// Watches `path`, which must exist. Set up before the reader starts.
    pub fn new(path: &Path) -> ReadWatch {
        use std::os::unix::ffi::OsStrExt;
        // SAFETY: inotify_init1(2) with valid flags.
        let fd = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        assert!(fd >= 0, "inotify_init1: {}", std::io::Error::last_os_error());
        let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
        // SAFETY: a valid inotify descriptor and a NUL-terminated path.
        let wd = unsafe { libc::inotify_add_watch(fd, c_path.as_ptr(), libc::IN_CLOSE_NOWRITE) };
        assert!(wd >= 0, "inotify_add_watch: {}", std::io::Error::last_os_error());
        ReadWatch { fd }
    }

    /// Waits until the file has been closed after reading, or panics after `timeout`.
    #[track_caller]
    pub fn wait_for_read(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "the file was not read within {timeout:?}");
            let mut poll = libc::pollfd {
                fd: self.fd,
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: poll(2) on one valid pollfd.
            let ready = unsafe { libc::poll(&mut poll, 1, left.as_millis().min(1000) as libc::c_int) };
            if ready > 0 {
                let mut buffer = [0u8; 4096];
                // SAFETY: read(2) into a buffer of the given length.
                let n = unsafe { libc::read(self.fd, buffer.as_mut_ptr().cast(), buffer.len()) };
                if n > 0 {
                    return;
                }
            }
        }
    }
}

impl Drop for ReadWatch {
    fn drop(&mut self) {
        // SAFETY: closing the descriptor this value owns.
        unsafe {
            libc::close(self.fd);
        }
    }
}

/// The queue database's write lock, held by the test (as a long transaction of another
/// program would) until released or dropped: `Sql::take_write_lock`, on either backend.
pub struct DbLock {
    conn: Option<Sql>,
}

impl DbLock {
    pub fn take(home: &TestHome) -> DbLock {
        let mut conn = home.sql();
        conn.take_write_lock();
        DbLock { conn: Some(conn) }
    }

    pub fn release(mut self) {
        if let Some(mut conn) = self.conn.take() {
            conn.release_write_lock();
        }
    }
}

impl Drop for DbLock {
    fn drop(&mut self) {
        // Closing the connection ends its transaction, and with it the lock.
        self.conn.take();
    }
}

/// Waits until process `pid` waits for the database's write lock: up to then it has done
/// everything it does before asking for it. SQLite: the process sleeps in `nanosleep` (its
/// busy handler); PostgreSQL: a session waits for a lock on a table of the home's schema.
#[track_caller]
pub fn wait_until_waiting_for_a_lock(home: &TestHome, pid: u32) {
    let mut conn = is_postgres().then(|| home.sql());
    wait_until(
        &format!("process {pid} waiting for the database lock"),
        Duration::from_secs(10),
        || match &mut conn {
            None => fs::read_to_string(format!("/proc/{pid}/wchan"))
                .map(|w| w.contains("nanosleep"))
                .unwrap_or(false),
            Some(conn) => conn.someone_waits_for_a_lock(),
        },
    );
}
