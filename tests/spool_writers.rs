//! Spool writers that do not follow the tmp + rename contract, and odd names and contents:
//! whatever lands in `incoming/` is ingested, refused with a reason, or shown by `spool status`
//! as waiting and why; nothing a writer wrote is lost without a trace.

mod common;
mod spool_support;

use common::{wait_until, TestHome};
use serde_json::Value;
use spool_support::*;
use std::ffi::OsStr;
use std::fs;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

/// A shell that opens `incoming/NAME` for writing, writes one line, keeps the file open until
/// the test opens the gate (a FIFO), then writes a second line and exits. SIGKILLed if the test
/// fails first.
struct PausedWriter {
    child: Child,
    gate: PathBuf,
}

impl PausedWriter {
    fn start(home: &TestHome, name: &str, first: &str, second: &str) -> PausedWriter {
        let gate = home.path().join(format!("{name}.gate"));
        let c_gate = std::ffi::CString::new(gate.as_os_str().as_bytes()).unwrap();
        // SAFETY: mkfifo(3) with a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c_gate.as_ptr(), 0o600) }, 0);
        let child = Command::new("sh")
            .arg("-c")
            .arg(r#"exec 3>"$1"; printf '%s\n' "$2" >&3; read go < "$3"; printf '%s\n' "$4" >&3"#)
            .arg("sh")
            .arg(incoming(home).join(name))
            .arg(first)
            .arg(&gate)
            .arg(second)
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn sh");
        let writer = PausedWriter { child, gate };
        let path = incoming(home).join(name);
        wait_until("the writer's first line", Duration::from_secs(10), || {
            fs::read_to_string(&path).is_ok_and(|text| text.ends_with('\n'))
        });
        writer
    }

    /// Lets the writer write its second line and waits for it to exit.
    fn resume(mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut gate = loop {
            // Non-blocking: fails (ENXIO) until the writer is waiting on the FIFO.
            match fs::OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(&self.gate)
            {
                Ok(file) => break file,
                Err(e) if e.raw_os_error() == Some(libc::ENXIO) && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                Err(e) => panic!("cannot open the writer's gate: {e}"),
            }
        };
        gate.write_all(b"go\n").unwrap();
        drop(gate);
        wait_until("the writer to exit", Duration::from_secs(10), || {
            matches!(self.child.try_wait(), Ok(Some(_)))
        });
        assert!(self.child.wait().unwrap().success());
    }
}

impl Drop for PausedWriter {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Waits until `spool status` shows `name` waiting because it is open for writing, and
/// unchanged for five times `settle_ms`: well past the point where a settle-time rule would
/// have taken it.
fn wait_until_held_back_while_open(home: &TestHome, name: &str, settle_ms: u64) -> Value {
    let mut last = None;
    wait_until(
        &format!("{name} shown as waiting (open for writing) well past spool_settle_ms"),
        Duration::from_secs(20),
        || {
            last = status_of(home, name);
            last.as_ref().is_some_and(|f| {
                f["state"] == "waiting"
                    && f["reason"].as_str().unwrap().contains("it is open for writing")
                    && f["unchanged_ms"].as_u64().unwrap() >= 5 * settle_ms
            })
        },
    );
    last.unwrap()
}

#[test]
fn paused_writer_keeps_its_later_lines_with_a_watcher() {
    let home = TestHome::new();
    home.run(&["config", "set", "spool-settle-ms", "200"]).ok();
    let watch = Watch::start(&home);
    watch.wait_for_output("spool: watching");
    let writer = PausedWriter::start(
        &home,
        "paused.ndjson",
        r#"{"command":"echo paused 1"}"#,
        r#"{"command":"echo paused 2"}"#,
    );
    wait_until_held_back_while_open(&home, "paused.ndjson", 200);
    watch.wait_for_output("spool: waiting for paused.ndjson: it is open for writing");
    assert_eq!(total(&home), 0, "{}", watch.output());
    writer.resume();
    wait_until("both lines ingested", Duration::from_secs(10), || total(&home) == 2);
    assert_exactly_once(&home, &["echo paused 1", "echo paused 2"].map(String::from));
    wait_until("incoming/ empty", Duration::from_secs(10), || {
        names_in(&incoming(&home)).is_empty()
    });
    assert!(names_in(&failed(&home)).is_empty(), "{:?}", names_in(&failed(&home)));
    watch.stop();
}

#[test]
fn paused_writer_keeps_its_later_lines_with_spool_ingest() {
    let home = TestHome::new();
    home.run(&["config", "set", "spool-settle-ms", "200"]).ok();
    let writer = PausedWriter::start(
        &home,
        "paused.ndjson",
        r#"{"command":"echo paused 1"}"#,
        r#"{"command":"echo paused 2"}"#,
    );
    wait_until_held_back_while_open(&home, "paused.ndjson", 200);
    let run = home.run(&["spool", "ingest"]).ok();
    assert!(
        run.stdout.contains(
            "spool: waiting for paused.ndjson: it is open for writing; it is read once every writer has closed it"
        ) && run.stdout.contains("left 1 file"),
        "{run:#?}"
    );
    assert_eq!(total(&home), 0);
    writer.resume();
    home.run(&["spool", "ingest"]).ok();
    assert_exactly_once(&home, &["echo paused 1", "echo paused 2"].map(String::from));
    assert!(names_in(&incoming(&home)).is_empty());
    assert!(names_in(&failed(&home)).is_empty());
}

/// Starts `spool ingest` with the database locked and returns once it has read `name`: it
/// then waits to commit until the lock is released.
fn ingest_paused_after_reading(home: &TestHome, name: &str) -> (Watch, DbLock) {
    let reads = ReadWatch::new(&incoming(home).join(name));
    let lock = DbLock::take(home);
    let ingest = Watch::start_with(home, &["spool", "ingest"]);
    reads.wait_for_read(Duration::from_secs(10));
    (ingest, lock)
}

fn finish(ingest: Watch, lock: DbLock) -> (i32, String) {
    lock.release();
    ingest.wait_exit()
}

#[test]
fn a_file_appended_to_after_it_was_read_goes_to_failed_not_away() {
    let home = TestHome::new();
    let first = "{\"command\":\"echo grown 1\"}\n";
    drop_renamed(&home, "grown.ndjson", first);
    let path = incoming(&home).join("grown.ndjson");
    let (ingest, lock) = ingest_paused_after_reading(&home, "grown.ndjson");
    // Written after the ingester read the file and before it removes it.
    let mut file = fs::OpenOptions::new().append(true).open(&path).unwrap();
    file.write_all(b"{\"command\":\"echo grown 2\"}\n").unwrap();
    drop(file);
    let (code, output) = finish(ingest, lock);
    assert_eq!(code, 1, "{output}");
    assert!(output.contains("spool: ingested 1 job from grown.ndjson"), "{output}");
    // What was read is in the queue; the whole file, later line included, is in failed/.
    assert_exactly_once(&home, &["echo grown 1".to_string()]);
    assert_eq!(
        fs::read_to_string(failed(&home).join("grown.ndjson")).unwrap(),
        format!("{first}{{\"command\":\"echo grown 2\"}}\n")
    );
    let reason = fs::read_to_string(failed(&home).join("grown.ndjson.error.txt")).unwrap();
    assert!(
        reason.starts_with(&format!(
            "the file changed after it was read ({} bytes read and 1 job added to the queue, now {} bytes)",
            first.len(),
            first.len() * 2
        )),
        "{reason}"
    );
    assert!(names_in(&incoming(&home)).is_empty());
}

#[test]
fn a_file_reopened_for_writing_after_it_was_read_keeps_what_is_written_later() {
    let home = TestHome::new();
    let first = "{\"command\":\"echo reopened 1\"}\n";
    drop_renamed(&home, "reopened.ndjson", first);
    let path = incoming(&home).join("reopened.ndjson");
    let (ingest, lock) = ingest_paused_after_reading(&home, "reopened.ndjson");
    // Opened for writing after the read, written only after the ingester is done with it.
    let mut file = fs::OpenOptions::new().append(true).open(&path).unwrap();
    let (code, output) = finish(ingest, lock);
    assert_eq!(code, 1, "{output}");
    assert!(
        output.contains("the file was opened for writing again after it was read"),
        "{output}"
    );
    file.write_all(b"{\"command\":\"echo reopened 2\"}\n").unwrap();
    drop(file);
    assert_exactly_once(&home, &["echo reopened 1".to_string()]);
    assert_eq!(
        fs::read_to_string(failed(&home).join("reopened.ndjson")).unwrap(),
        format!("{first}{{\"command\":\"echo reopened 2\"}}\n")
    );
}

#[test]
fn upper_case_extensions_are_spool_files() {
    let home = TestHome::new();
    drop_renamed(&home, "UPPER.JSON", r#"{"command":"echo upper"}"#);
    drop_renamed(&home, "Mixed.NdJson", "{\"command\":\"echo mixed\"}\n");
    let run = home.run(&["spool", "ingest"]).ok();
    assert!(run.stdout.contains("ingested 2 jobs from 2 files"), "{run:#?}");
    assert_exactly_once(&home, &["echo upper", "echo mixed"].map(String::from));
    // A refused one keeps its extension in failed/, so it can be retried.
    for _ in 0..2 {
        drop_renamed(&home, "BAD.JSON", "[]");
        home.run(&["spool", "ingest"]).code(1);
    }
    assert_eq!(
        names_in(&failed(&home)),
        vec!["BAD-2.JSON", "BAD-2.JSON.error.txt", "BAD.JSON", "BAD.JSON.error.txt"]
    );
}

#[test]
fn a_leading_byte_order_mark_is_ignored() {
    let home = TestHome::new();
    drop_renamed(&home, "bom.json", "\u{feff}{\"command\":\"echo bom\"}");
    drop_renamed(
        &home,
        "bom.ndjson",
        "\u{feff}{\"command\":\"echo bom 1\"}\n{\"command\":\"echo bom 2\"}\n",
    );
    home.run(&["spool", "ingest"]).ok();
    assert_exactly_once(&home, &["echo bom", "echo bom 1", "echo bom 2"].map(String::from));
    // Only a leading one: elsewhere it is not JSON (refused at once with no settle time).
    home.run(&["config", "set", "spool-settle-ms", "0"]).ok();
    drop_renamed(
        &home,
        "late.ndjson",
        "{\"command\":\"echo x\"}\n\u{feff}{\"command\":\"echo y\"}\n",
    );
    let run = home.run(&["spool", "ingest"]).code(1);
    assert!(run.stdout.contains("rejected late.ndjson"), "{run:#?}");
}

fn set_mtime(path: &Path, time: SystemTime) {
    fs::OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(time)
        .unwrap();
}

#[test]
fn a_modification_time_in_the_future_holds_no_file_back() {
    let home = TestHome::new();
    home.run(&["config", "set", "spool-settle-ms", "200"]).ok();
    let tomorrow = SystemTime::now() + Duration::from_secs(24 * 3600);
    drop_renamed(&home, "future.json", r#"{"command":"echo future"}"#);
    set_mtime(&incoming(&home).join("future.json"), tomorrow);
    home.run(&["spool", "ingest"]).ok();
    assert_exactly_once(&home, &["echo future".to_string()]);

    // An unparsable file dated tomorrow waits spool_settle_ms, then is refused: never stuck.
    let stuck = incoming(&home).join("stuck.json");
    fs::write(&stuck, "{\"command\": \"echo st").unwrap();
    set_mtime(&stuck, tomorrow);
    wait_until("the unparsable future file refused", Duration::from_secs(20), || {
        home.run(&["spool", "ingest"]).code == 1
    });
    assert!(failed(&home).join("stuck.json").exists());
    let reason = fs::read_to_string(failed(&home).join("stuck.json.error.txt")).unwrap();
    assert!(reason.contains("malformed JSON"), "{reason}");
}

#[test]
fn a_file_name_that_is_not_utf8_is_refused_and_can_be_retried() {
    let home = TestHome::new();
    let latin1 = OsStr::from_bytes(b"caf\xe9.json");
    fs::write(incoming(&home).join(latin1), r#"{"command":"echo cafe"}"#).unwrap();
    fs::write(incoming(&home).join(OsStr::from_bytes(b"notes\xff.txt")), "x").unwrap();

    let status = spool_status(&home);
    let files = status["files"].as_array().unwrap();
    let cafe = files.iter().find(|f| f["name"] == "caf\\xe9.json").unwrap();
    assert_eq!(cafe["state"], "refused", "{status}");
    assert!(
        cafe["reason"].as_str().unwrap().contains("is not valid UTF-8"),
        "{status}"
    );
    let notes = files.iter().find(|f| f["name"] == "notes\\xff.txt").unwrap();
    assert_eq!(notes["state"], "ignored", "{status}");

    let run = home.run(&["spool", "ingest"]).code(1);
    assert!(
        run.stdout.contains(
            "spool: rejected caf\u{fffd}.json: file name `caf\\xe9.json` is not valid UTF-8; it is kept in failed/ as `caf\u{fffd}.json`"
        ),
        "{run:#?}"
    );
    assert!(run.stdout.contains("ignored 1 file"), "{run:#?}");
    assert_eq!(
        names_in(&failed(&home)),
        vec!["caf\u{fffd}.json", "caf\u{fffd}.json.error.txt"]
    );
    home.run(&["spool", "retry", "caf\u{fffd}.json"]).ok();
    home.run(&["spool", "ingest"]).ok();
    assert_exactly_once(&home, &["echo cafe".to_string()]);
    assert_eq!(
        home.job(jobs(&home)[0]["id"].as_str().unwrap())["source"],
        "spool:caf\u{fffd}.json"
    );
}

#[test]
fn a_newline_in_a_file_name_cannot_forge_a_log_line() {
    let home = TestHome::new();
    let forged = "evil\nspool: ingested 99 jobs from forged.json";
    drop_renamed(&home, forged, r#"{"id":"evil","command":"echo evil"}"#);
    let refused = "bad\nspool: ingested 7 jobs from x.json";
    drop_renamed(&home, refused, r#"{"command":""}"#);
    let run = home.run(&["spool", "ingest"]).code(1);
    for line in run.stdout.lines().chain(run.stderr.lines()) {
        assert!(
            !line.starts_with("spool: ingested 99") && !line.starts_with("spool: ingested 7"),
            "a forged line: {run:#?}"
        );
    }
    assert!(
        run.stdout
            .contains("spool: ingested 1 job from evil\\nspool: ingested 99 jobs from forged.json\n"),
        "{run:#?}"
    );
    assert!(
        run.stdout
            .contains("spool: rejected bad\\nspool: ingested 7 jobs from x.json: "),
        "{run:#?}"
    );
    // Shown escaped wherever it appears: the job's source, the list of rejected files.
    assert_eq!(
        home.job("evil")["source"],
        "spool:evil\\nspool: ingested 99 jobs from forged.json"
    );
    let table = home.run(&["spool", "failed"]).ok();
    assert_eq!(table.stdout.lines().count(), 2, "{table:#?}");
    assert!(table.stdout.contains("bad\\nspool: ingested 7 jobs"), "{table:#?}");
    let reason = fs::read_to_string(failed(&home).join(format!("{refused}.error.txt"))).unwrap();
    assert!(
        reason.lines().nth(2).unwrap().starts_with("file: bad\\nspool"),
        "{reason}"
    );
}

#[test]
fn spool_status_accounts_for_every_file_in_incoming() {
    let home = TestHome::new();
    home.run(&["config", "set", "spool-settle-ms", "3600000"]).ok();
    let inc = incoming(&home);
    fs::write(inc.join("notes.txt"), "not a job").unwrap();
    fs::write(inc.join(".scratch.json"), "{").unwrap();
    drop_renamed(&home, "ready.ndjson", "{\"command\":\"a\"}\n{\"command\":\"b\"}\n");
    fs::write(inc.join("partial.json"), "{\"command\": \"echo par").unwrap();
    drop_renamed(&home, "bad.json", r#"{"command":"x","colour":"red"}"#);
    fs::create_dir(inc.join("dir.json")).unwrap();
    let mut open = fs::File::create(inc.join("open.json")).unwrap();
    open.write_all(br#"{"command":"echo open"}"#).unwrap();

    let status = spool_status(&home);
    assert_eq!(status["ingester_pid"], Value::Null, "{status}");
    let expect = [
        (".scratch.json", "ignored", "a dotfile"),
        ("bad.json", "refused", "unknown field `colour`"),
        ("dir.json", "refused", "file is a directory"),
        ("notes.txt", "ignored", "not a spool file name"),
        ("open.json", "waiting", "it is open for writing"),
        ("partial.json", "waiting", "it does not parse yet"),
        ("ready.ndjson", "ready", "complete (2 jobs)"),
    ];
    let files = status["files"].as_array().unwrap();
    assert_eq!(files.len(), expect.len(), "{status}");
    for ((name, state, reason), file) in expect.iter().zip(files) {
        assert_eq!(file["name"], *name, "{status}");
        assert_eq!(file["state"], *state, "{file}");
        assert!(file["reason"].as_str().unwrap().contains(reason), "{file}");
    }
    // Looking changes nothing.
    assert_eq!(names_in(&inc).len(), expect.len());
    assert_eq!(total(&home), 0);
    let text = home.run(&["spool", "status"]).ok();
    assert!(text.stdout.contains("ingester: none running"), "{text:#?}");
    assert!(
        text.stdout
            .lines()
            .any(|l| l.starts_with("open.json") && l.contains("waiting") && l.contains("open for writing")),
        "{text:#?}"
    );
    drop(open);

    let watch = Watch::start(&home);
    let pid = watch.child.id();
    wait_until("spool status names the ingester", Duration::from_secs(10), || {
        spool_status(&home)["ingester_pid"] == pid
    });
    watch.stop();
}
