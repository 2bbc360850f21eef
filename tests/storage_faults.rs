//! What a worker does when its database misbehaves: a long-held lock, a forced stop while the
//! database cannot be written, a full disk, and a database deleted, replaced or damaged under
//! it. It never busy-loops, never loses a result it could still record, and stops with a clear
//! error where going on would write into the void.

mod common;

use common::{signal, skipped_under_postgres, wait_until, TestHome};
use serde_json::json;
use std::process::Child;
use std::time::Duration;

const SHORT: Duration = Duration::from_secs(30);

/// A worker process with its output collected, killed when dropped.
struct Worker {
    child: Option<Child>,
}

impl Worker {
    fn start(home: &TestHome, args: &[&str]) -> Worker {
        let mut full = vec!["worker", "start", "--no-spool"];
        full.extend_from_slice(args);
        Worker {
            child: Some(home.spawn(&full)),
        }
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().expect("worker").id()
    }

    fn running(&mut self) -> bool {
        matches!(self.child.as_mut().expect("worker").try_wait(), Ok(None))
    }

    fn wait_exit(mut self, timeout: Duration) -> (i32, String) {
        wait_until("worker exit", timeout, || !self.running());
        let output = self.child.take().expect("worker").wait_with_output().expect("output");
        (
            output.status.code().unwrap_or(-1),
            format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ),
        )
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            signal(child.id(), libc::SIGKILL);
            let _ = child.wait();
        }
    }
}

fn fast_heartbeat(home: &TestHome) {
    home.run(&["config", "set", "lease_seconds", "3"]).ok();
    home.run(&["config", "set", "heartbeat_seconds", "1"]).ok();
}

fn registered(home: &TestHome) -> bool {
    home.status()["workers"]
        .as_array()
        .map(|w| !w.is_empty())
        .unwrap_or(false)
}

#[test]
fn a_forced_stop_while_the_database_is_locked_exits_without_spinning() {
    let home = TestHome::new();
    home.run(&[
        "enqueue",
        &json!({"id": "j", "command": "touch began; until [ -e go ]; do sleep 0.05; done"}).to_string(),
    ])
    .ok();
    let log_path = home.path().join("worker.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut command = home.command(&["worker", "start", "--no-spool", "--count", "1"]);
    command.stdout(log.try_clone().unwrap()).stderr(log);
    let worker = Worker {
        child: Some(command.spawn().unwrap()),
    };
    let log_text = || std::fs::read_to_string(&log_path).unwrap_or_default();
    wait_until("the job to start", SHORT, || home.path().join("began").exists());
    let mut db = home.sql();
    db.take_write_lock();
    std::fs::write(home.path().join("go"), "").unwrap();
    wait_until("the worker to fail recording the result", SHORT, || {
        log_text().contains("database error")
    });
    // Graceful, then forced: the result cannot be recorded while the lock is held.
    signal(worker.pid(), libc::SIGTERM);
    wait_until("the graceful stop to begin", SHORT, || log_text().contains("Stopping"));
    signal(worker.pid(), libc::SIGTERM);
    let (code, _) = worker.wait_exit(Duration::from_secs(60));
    db.release_write_lock();
    let output = log_text();
    let errors = output.matches("database error").count();
    assert!(errors < 30, "{errors} database-error lines: a busy loop\n{output}");
    assert_eq!(code, 1, "{output}");
    assert!(output.contains("forced stop: could not record results"), "{output}");
    // What could not be recorded is recovered as lost, not lost.
    let recover = home.run(&["recover"]).ok();
    assert!(recover.stdout.contains("j: worker lost"), "{recover:?}");
}

#[test]
fn a_worker_stops_when_its_database_is_deleted() {
    if skipped_under_postgres("faults of the SQLite file") {
        return;
    }
    let home = TestHome::new();
    fast_heartbeat(&home);
    let worker = Worker::start(&home, &["--count", "1"]);
    wait_until("the worker to register", SHORT, || registered(&home));
    for name in ["queue.db", "queue.db-wal", "queue.db-shm"] {
        let _ = std::fs::remove_file(home.path().join(name));
    }
    let (code, output) = worker.wait_exit(SHORT);
    assert_eq!(code, 1, "{output}");
    assert!(output.contains("was deleted while in use"), "{output}");
}

#[test]
fn a_worker_stops_when_its_database_is_replaced() {
    if skipped_under_postgres("faults of the SQLite file") {
        return;
    }
    let home = TestHome::new();
    fast_heartbeat(&home);
    let other = TestHome::new();
    let worker = Worker::start(&home, &["--count", "1"]);
    wait_until("the worker to register", SHORT, || registered(&home));
    std::fs::copy(other.path().join("queue.db"), home.path().join("queue.db.new")).unwrap();
    std::fs::rename(home.path().join("queue.db.new"), home.path().join("queue.db")).unwrap();
    let (code, output) = worker.wait_exit(SHORT);
    assert_eq!(code, 1, "{output}");
    assert!(output.contains("was replaced by another file"), "{output}");
}

#[test]
fn a_damaged_database_is_refused_with_a_clear_error() {
    if skipped_under_postgres("faults of the SQLite file") {
        return;
    }
    let home = TestHome::new();
    let path = home.path().join("queue.db");
    let mut bytes = std::fs::read(&path).unwrap();
    for byte in bytes.iter_mut().take(100) {
        *byte = b'#';
    }
    std::fs::write(&path, bytes).unwrap();
    let worker = Worker::start(&home, &["--count", "1"]);
    let (code, output) = worker.wait_exit(SHORT);
    assert_eq!(code, 1, "{output}");
    assert!(output.contains("not a database"), "{output}");
    assert_eq!(output.lines().count(), 1, "one line, no retry loop:\n{output}");
}

/// A tmpfs of a few MiB, unmounted when dropped.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> Option<SmallDisk> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            println!("skipped: mounting a small tmpfs needs root (run the suite as root to cover a full disk)");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("run mount");
        if !status.success() {
            println!("skipped: mount -t tmpfs failed here ({status})");
            return None;
        }
        Some(SmallDisk { dir })
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

#[test]
fn a_full_disk_delays_results_but_loses_none() {
    if skipped_under_postgres("faults of the SQLite file") {
        return;
    }
    let Some(disk) = SmallDisk::mount("6m") else { return };
    let root = disk.dir.path().join("home");
    let home = TestHome::empty();
    let run = |args: &[&str]| {
        let mut command = home.command(args);
        command.env("QUEUECTL_HOME", &root);
        let output = command.output().expect("run queuectl");
        assert!(output.status.success(), "{args:?}: {output:?}");
        output
    };
    run(&["init"]);
    let jobs = 40;
    let batch: String = (0..jobs)
        .map(|i| {
            let command = format!(
                "touch ../began-{i}; until [ -e ../go ]; do sleep 0.05; done; head -c 30000 /dev/zero | tr '\\0' x"
            );
            format!("{}\n", json!({"id": format!("f{i}"), "command": command}))
        })
        .collect();
    let mut enqueue = home.command(&["enqueue", "-"]);
    enqueue.env("QUEUECTL_HOME", &root).stdin(std::process::Stdio::piped());
    let mut child = enqueue.spawn().unwrap();
    {
        use std::io::Write;
        child.stdin.take().unwrap().write_all(batch.as_bytes()).unwrap();
    }
    assert!(child.wait().unwrap().success());

    // The worker's output goes to a file off the small disk, to be watched while it runs.
    let log_path = home.path().join("worker.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut command = home.command(&["worker", "start", "--no-spool", "--count", "2", "--until-empty"]);
    command
        .env("QUEUECTL_HOME", &root)
        .stdout(log.try_clone().unwrap())
        .stderr(log);
    let mut worker = Worker {
        child: Some(command.spawn().unwrap()),
    };
    wait_until("two jobs to start", SHORT, || disk.dir.path().join("began-1").exists());
    // Fill the disk to the last byte, then let the jobs finish into it.
    let filler = disk.dir.path().join("filler");
    {
        use std::io::Write;
        let mut file = std::fs::File::create(&filler).unwrap();
        let chunk = vec![0u8; 64 * 1024];
        while file.write_all(&chunk).is_ok() {}
        let mut byte = [0u8; 1];
        while file.write_all(&byte).is_ok() {
            byte[0] = byte[0].wrapping_add(1);
        }
    }
    std::fs::write(disk.dir.path().join("go"), "").ok();
    if !disk.dir.path().join("go").exists() {
        // No room even for the empty marker's inode? tmpfs counts inodes apart: it should fit.
        std::fs::remove_file(&filler).unwrap();
        panic!("could not create the go marker on the full disk");
    }
    let db = root.join("queue.db");
    let counts = || {
        let conn = rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).ok()?;
        conn.query_row(
            "SELECT count(*) FROM queuectl_jobs WHERE state = 'completed'",
            [],
            |r| r.get::<_, i64>(0),
        )
        .ok()
    };
    // The worker keeps going (retrying, not spinning) while the disk is full.
    let log_text = || std::fs::read_to_string(&log_path).unwrap_or_default();
    wait_until("the worker to hit the full disk", SHORT, || {
        !worker.running() || log_text().contains("full")
    });
    assert!(worker.running(), "the worker exited on a full disk:\n{}", log_text());
    std::fs::remove_file(&filler).unwrap();
    let (code, _) = worker.wait_exit(Duration::from_secs(120));
    let output = log_text();
    assert_eq!(code, 0, "{output}");
    assert_eq!(counts(), Some(jobs), "{output}");
    let errors = output.matches("database error").count();
    assert!(errors < 100, "{errors} database-error lines:\n{output}");
}
