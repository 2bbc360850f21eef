//! The spool directory, black-box: real files, real `queuectl` processes.

mod common;
mod spool_support;

use common::{now_millis, wait_until, TestHome};
use spool_support::*;
use std::fs;
use std::io::Write;
use std::time::{Duration, Instant};

#[test]
fn each_writer_style_is_ingested_once() {
    let home = TestHome::new();
    drop_renamed(&home, "renamed.json", r#"{"command":"echo renamed"}"#);
    fs::write(
        incoming(&home).join("in-place.json"),
        "{\"command\":\"echo in place\"}\n",
    )
    .unwrap();
    fs::write(
        incoming(&home).join("lines.ndjson"),
        "{\"command\":\"echo line 1\"}\n\n{\"command\":\"echo line 2\"}\n",
    )
    .unwrap();
    drop_renamed(
        &home,
        "array.json",
        r#"[{"command":"echo array 0"},{"id":"array-1","command":"echo array 1"}]"#,
    );
    // Ignored: dotfiles (a writer's scratch) and other names.
    fs::write(incoming(&home).join(".scratch.json"), r#"{"command":"echo hidden"}"#).unwrap();
    fs::write(incoming(&home).join("notes.txt"), "not a job").unwrap();

    let run = home.run(&["spool", "ingest"]).ok();
    assert!(run.stdout.contains("ingested 6 jobs from 4 files"), "{run:#?}");
    assert!(
        run.stdout.contains("spool: ingested 2 jobs from array.json"),
        "{run:#?}"
    );
    let expected: Vec<String> = [
        "echo renamed",
        "echo in place",
        "echo line 1",
        "echo line 2",
        "echo array 0",
        "echo array 1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_exactly_once(&home, &expected);
    assert_eq!(names_in(&incoming(&home)), vec![".scratch.json", "notes.txt"]);

    // The source names the file; the explicit id is kept.
    let job = home.job("array-1");
    assert_eq!(job["source"], "spool:array.json");
    let shown = home.run(&["show", "array-1"]).ok();
    assert!(shown.stdout.contains("spool:array.json"), "{shown:#?}");

    // A second pass finds nothing new.
    let run = home.run(&["spool", "ingest"]).ok();
    assert!(run.stdout.contains("ingested 0 jobs from 0 files"), "{run:#?}");
    assert_exactly_once(&home, &expected);
}

#[test]
fn rejections_go_to_failed_with_a_reason_and_good_files_still_ingest() {
    let home = TestHome::new();
    home.run(&["config", "set", "spool-max-file-bytes", "200"]).ok();
    home.run(&["enqueue", r#"{"id":"taken","command":"echo first"}"#]).ok();
    let inc = incoming(&home);

    let mut expect: Vec<(&str, String)> = Vec::new();
    fs::write(
        inc.join("malformed.json"),
        "{\"command\": \"echo\",\n  \"priority\": }\n",
    )
    .unwrap();
    age(&inc.join("malformed.json"));
    expect.push(("malformed.json", "malformed JSON".into()));
    expect.push(("malformed.json", "line 2 column".into()));
    drop_renamed(&home, "invalid.json", r#"{"command":"echo x","max_retries":"lots"}"#);
    expect.push(("invalid.json", "field `max_retries` must be an integer".into()));
    drop_renamed(
        &home,
        "invalid-line.ndjson",
        "{\"command\":\"ok\"}\n{\"command\":\"\"}\n",
    );
    expect.push(("invalid-line.ndjson", "at line 2: field `command`".into()));
    drop_renamed(
        &home,
        "duplicate.json",
        r#"[{"command":"echo a"},{"id":"taken","command":"echo b"}]"#,
    );
    expect.push((
        "duplicate.json",
        "job id `taken` (at index 1) already exists, added by cli".into(),
    ));
    let big = format!("{{\"command\":\"echo {}\"}}", "x".repeat(300));
    drop_renamed(&home, "oversize.json", &big);
    expect.push((
        "oversize.json",
        format!("file is {} bytes, over the limit of 200 bytes", big.len()),
    ));
    fs::write(spool(&home).join("target.json"), r#"{"command":"echo via link"}"#).unwrap();
    std::os::unix::fs::symlink(spool(&home).join("target.json"), inc.join("symlink.json")).unwrap();
    expect.push(("symlink.json", "file is a symbolic link".into()));
    let linked = spool(&home).join("tmp").join("linked.json");
    fs::write(&linked, r#"{"command":"echo hard link"}"#).unwrap();
    fs::hard_link(&linked, inc.join("hardlink.json")).unwrap();
    age(&linked);
    expect.push(("hardlink.json", "file has 2 hard links".into()));
    fs::write(inc.join("empty.json"), "").unwrap();
    age(&inc.join("empty.json"));
    expect.push(("empty.json", "file is empty".into()));
    let fifo = std::ffi::CString::new(inc.join("fifo.json").to_str().unwrap()).unwrap();
    // SAFETY: mkfifo(3) with a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    expect.push(("fifo.json", "file is a named pipe (FIFO)".into()));
    fs::create_dir(inc.join("directory.json")).unwrap();
    expect.push(("directory.json", "file is a directory".into()));
    // SAFETY: geteuid(2) cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        drop_renamed(&home, "foreign.json", r#"{"command":"echo foreign"}"#);
        let path = std::ffi::CString::new(inc.join("foreign.json").to_str().unwrap()).unwrap();
        // SAFETY: chown(2) with a valid path; as root it cannot be refused.
        assert_eq!(unsafe { libc::chown(path.as_ptr(), 54321, 54321) }, 0);
        expect.push((
            "foreign.json",
            "file is owned by uid 54321, not by this user (uid 0)".into(),
        ));
    }
    drop_renamed(&home, "good.json", r#"{"command":"echo good"}"#);
    drop_renamed(
        &home,
        "good.ndjson",
        "{\"command\":\"echo good 1\"}\n{\"command\":\"echo good 2\"}\n",
    );

    let run = home.run(&["spool", "ingest"]).code(1);
    assert!(run.stdout.contains("ingested 3 jobs from 2 files"), "{run:#?}");
    let rejected: std::collections::BTreeSet<&str> = expect.iter().map(|(name, _)| *name).collect();
    assert!(
        run.stdout.contains(&format!("rejected {} files", rejected.len())),
        "{run:#?}"
    );
    assert_exactly_once(
        &home,
        &["echo first", "echo good", "echo good 1", "echo good 2"].map(String::from),
    );
    assert!(
        names_in(&inc).is_empty(),
        "incoming/ should be empty: {:?}",
        names_in(&inc)
    );
    for (name, reason) in &expect {
        let text = fs::read_to_string(failed(&home).join(format!("{name}.error.txt")))
            .unwrap_or_else(|e| panic!("{name}.error.txt: {e}"));
        assert!(
            text.contains(reason.as_str()),
            "{name}: expected {reason:?} in:\n{text}"
        );
        assert!(
            failed(&home).join(name).symlink_metadata().is_ok(),
            "{name} not in failed/"
        );
    }
    let oversize = fs::read_to_string(failed(&home).join("oversize.json.error.txt")).unwrap();
    assert!(
        oversize.contains(&format!("size: {} bytes", big.len())) && oversize.contains("owner: uid"),
        "{oversize}"
    );
    // The symlink was moved, not followed.
    assert!(spool(&home).join("target.json").exists());

    let listed = home.run(&["spool", "failed", "--json"]).ok().json();
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), rejected.len());
    let dup = listed.iter().find(|f| f["name"] == "duplicate.json").unwrap();
    assert!(dup["reason"].as_str().unwrap().contains("already exists"), "{dup}");
    let table = home.run(&["spool", "failed"]).ok();
    assert!(
        table.stdout.starts_with("NAME") && table.stdout.contains("malformed.json"),
        "{table:#?}"
    );
}

#[test]
fn a_file_still_being_written_is_left_until_it_settles() {
    let home = TestHome::new();
    // Settling takes an hour here, so the test does not depend on how fast it runs.
    home.run(&["config", "set", "spool-settle-ms", "3600000"]).ok();
    let path = incoming(&home).join("slow.json");
    fs::write(&path, "{\"command\": \"echo sl").unwrap();
    let run = home.run(&["spool", "ingest"]).ok();
    assert!(run.stdout.contains("left 1 file still being written"), "{run:#?}");
    assert!(
        run.stdout.contains(
            "spool: waiting for slow.json: it does not parse yet; refused if it still does not after spool_settle_ms"
        ),
        "{run:#?}"
    );
    assert!(path.exists());
    assert!(names_in(&failed(&home)).is_empty());
    fs::write(&path, "{\"command\": \"echo slow\"}").unwrap();
    home.run(&["spool", "ingest"]).ok();
    assert_exactly_once(&home, &["echo slow".to_string()]);

    // Once older than spool_settle_ms, an unparsable file is refused.
    home.run(&["config", "set", "spool-settle-ms", "0"]).ok();
    fs::write(&path, "{\"command\": \"echo sl").unwrap();
    let run = home.run(&["spool", "ingest"]).code(1);
    assert!(run.stdout.contains("rejected slow.json"), "{run:#?}");
}

#[test]
fn watch_picks_up_a_backlog_and_then_renamed_files() {
    let home = TestHome::new();
    for i in 0..3 {
        drop_renamed(
            &home,
            &format!("backlog-{i}.json"),
            &format!(r#"{{"command":"echo backlog {i}"}}"#),
        );
    }
    let watch = Watch::start(&home);
    wait_until("the backlog ingested", Duration::from_secs(10), || total(&home) == 3);
    watch.wait_for_output("spool: watching");
    drop_renamed(&home, "live.json", r#"{"id":"live","command":"echo live"}"#);
    wait_until("the renamed file ingested", Duration::from_secs(10), || {
        total(&home) == 4 && names_in(&incoming(&home)).is_empty()
    });
    assert_eq!(home.job("live")["source"], "spool:live.json");
    assert!(names_in(&incoming(&home)).is_empty());
    let output = watch.stop();
    assert!(output.contains("spool: ingested 1 job from live.json"), "{output}");
}

#[test]
fn watch_waits_for_a_file_written_in_place_line_by_line() {
    let home = TestHome::new();
    home.run(&["config", "set", "spool-settle-ms", "100"]).ok();
    let watch = Watch::start(&home);
    watch.wait_for_output("spool: watching");
    let mut file = fs::File::create(incoming(&home).join("lines.ndjson")).unwrap();
    file.write_all(b"{\"command\":\"echo part 1\"}\n").unwrap();
    file.flush().unwrap();
    // A slow writer: the first line is complete JSON, but the file is still open. The watcher
    // says it is waiting once the file has lingered past spool_settle_ms.
    watch.wait_for_output("spool: waiting for lines.ndjson: it is open for writing");
    assert_eq!(total(&home), 0, "a file open for writing was ingested early");
    file.write_all(b"{\"command\":\"echo part 2\"}\n").unwrap();
    drop(file);
    wait_until("both lines ingested", Duration::from_secs(10), || total(&home) == 2);
    assert_exactly_once(&home, &["echo part 1", "echo part 2"].map(String::from));
    watch.stop();
}

#[test]
fn a_burst_of_10000_files_is_ingested_exactly_once() {
    const FILES: usize = 10_000;
    let home = TestHome::new();
    let watch = Watch::start(&home);
    watch.wait_for_output("spool: watching");
    let tmp = spool(&home).join("tmp");
    let inc = incoming(&home);
    let mut expected = Vec::with_capacity(FILES);
    for i in 0..FILES {
        let command = format!("echo burst {i}");
        fs::write(
            tmp.join(format!("b{i:05}.json")),
            format!(r#"{{"command":"{command}"}}"#),
        )
        .unwrap();
        expected.push(command);
    }
    let started = Instant::now();
    for i in 0..FILES {
        let name = format!("b{i:05}.json");
        fs::rename(tmp.join(&name), inc.join(&name)).unwrap();
    }
    wait_until("10,000 jobs", Duration::from_secs(60), || total(&home) == FILES as u64);
    let elapsed = started.elapsed();
    eprintln!("burst: {FILES} files ingested {elapsed:?} after the first rename (debug build)");
    assert_exactly_once(&home, &expected);
    wait_until("incoming/ empty", Duration::from_secs(10), || names_in(&inc).is_empty());
    watch.stop();
}

/// Writes one file of the crash test: its jobs' commands are returned.
fn crash_file(home: &TestHome, i: usize) -> Vec<String> {
    let commands: Vec<String> = match i % 3 {
        0 => vec![format!("crash {i}")],
        1 => (0..3).map(|k| format!("crash {i} {k}")).collect(),
        _ => (0..2).map(|k| format!("crash {i} line {k}")).collect(),
    };
    let (name, content) = match i % 3 {
        0 => (format!("c{i:04}.json"), format!(r#"{{"command":"{}"}}"#, commands[0])),
        1 => (
            format!("c{i:04}.json"),
            format!(
                r#"[{{"command":"{}"}},{{"id":"crash-{i}","command":"{}"}},{{"command":"{}"}}]"#,
                commands[0], commands[1], commands[2]
            ),
        ),
        _ => (
            format!("c{i:04}.ndjson"),
            commands
                .iter()
                .map(|c| format!("{{\"command\":\"{c}\"}}\n"))
                .collect::<String>(),
        ),
    };
    drop_renamed(home, &name, &content);
    commands
}

#[test]
fn sigkill_at_random_moments_loses_and_duplicates_nothing() {
    const ROUNDS: usize = 8;
    const FILES_PER_ROUND: usize = 150;
    let home = TestHome::new();
    let mut rng = Rng::seeded("sigkill_at_random_moments_loses_and_duplicates_nothing");
    let mut expected = Vec::new();
    let mut next = 0;
    for round in 0..ROUNDS {
        let mut watch = Watch::start(&home);
        // Files keep arriving while the watcher starts, ingests, and is killed.
        let kill_after = Duration::from_millis(5 + rng.below(120));
        let started = Instant::now();
        let mut written = 0;
        while started.elapsed() < kill_after || written < FILES_PER_ROUND / 3 {
            expected.extend(crash_file(&home, next));
            next += 1;
            written += 1;
            if written == FILES_PER_ROUND {
                break;
            }
        }
        watch.kill();
        eprintln!(
            "round {round}: killed after {:?}, {written} files written",
            started.elapsed()
        );
    }
    let watch = Watch::start(&home);
    wait_until("every file ingested", Duration::from_secs(30), || {
        names_in(&incoming(&home)).is_empty() && total(&home) == expected.len() as u64
    });
    let output = watch.stop();
    // Files committed just before a kill are found again and only removed.
    eprintln!(
        "after the crashes: {} files were found already ingested",
        output.matches("already been ingested").count()
    );
    assert_exactly_once(&home, &expected);
    assert!(
        names_in(&failed(&home)).is_empty(),
        "rejected: {:?}",
        names_in(&failed(&home))
    );
}

#[test]
fn two_ingesters_at_once_add_each_job_once() {
    const FILES: usize = 2000;
    let home = TestHome::new();
    let mut expected = Vec::new();
    for i in 0..FILES {
        let command = format!("echo pair {i}");
        drop_renamed(
            &home,
            &format!("p{i:04}.json"),
            &format!(r#"{{"command":"{command}"}}"#),
        );
        expected.push(command);
    }
    let a = home.spawn(&["spool", "ingest"]);
    let b = home.spawn(&["spool", "ingest"]);
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    assert!(a.status.success() && b.status.success());
    let (a, b) = (String::from_utf8_lossy(&a.stdout), String::from_utf8_lossy(&b.stdout));
    let summary = |text: &str| text.lines().last().unwrap_or("").to_string();
    // Either one skipped while the other held the lock, or the second found nothing left.
    let summaries = [summary(&a), summary(&b)];
    assert!(
        summaries
            .iter()
            .any(|s| s.starts_with("skipped") || s.starts_with("ingested 0 jobs")),
        "{summaries:?}"
    );
    assert!(
        summaries
            .iter()
            .any(|s| s == &format!("ingested {FILES} jobs from {FILES} files")),
        "{summaries:?}"
    );
    assert_exactly_once(&home, &expected);
    assert!(names_in(&incoming(&home)).is_empty());
}

#[test]
fn a_second_watcher_waits_and_takes_over_when_the_first_dies() {
    let home = TestHome::new();
    let mut first = Watch::start(&home);
    first.wait_for_output("spool: watching");
    let second = Watch::start(&home);
    second.wait_for_output("another process is ingesting");
    drop_renamed(&home, "one.json", r#"{"command":"echo one"}"#);
    wait_until("one.json ingested", Duration::from_secs(10), || total(&home) == 1);
    // The first watcher ingests; the second, waiting for the lock, does not.
    first.wait_for_output("ingested 1 job from one.json");
    assert!(!second.output().contains("one.json"), "{}", second.output());
    first.kill();
    drop_renamed(&home, "two.json", r#"{"command":"echo two"}"#);
    wait_until(
        "two.json ingested by the second watcher",
        Duration::from_secs(10),
        || total(&home) == 2,
    );
    let output = second.stop();
    assert!(
        output.contains("now ingesting") && output.contains("ingested 1 job from two.json"),
        "{output}"
    );
    assert_exactly_once(&home, &["echo one", "echo two"].map(String::from));
}

#[test]
fn failed_files_can_be_listed_fixed_and_retried() {
    let home = TestHome::new();
    assert!(home
        .run(&["spool", "failed"])
        .ok()
        .stdout
        .contains("no rejected spool files"));
    drop_renamed(&home, "broken.json", r#"{"command":"echo fixed","colour":"red"}"#);
    home.run(&["spool", "ingest"]).code(1);
    let listed = home.run(&["spool", "failed", "--json"]).ok().json();
    assert_eq!(listed[0]["name"], "broken.json");
    assert!(
        listed[0]["reason"].as_str().unwrap().contains("unknown field `colour`"),
        "{listed}"
    );

    let run = home.run(&["spool", "retry", "missing.json"]).code(2);
    assert!(
        run.stderr.contains("no rejected spool file named `missing.json`"),
        "{run:#?}"
    );
    assert_eq!(run.stderr.lines().count(), 1, "{run:#?}");

    fs::write(failed(&home).join("broken.json"), r#"{"command":"echo fixed"}"#).unwrap();
    let run = home.run(&["spool", "retry", "broken.json"]).ok();
    assert!(run.stdout.contains("moved broken.json back to"), "{run:#?}");
    assert!(names_in(&failed(&home)).is_empty(), "{:?}", names_in(&failed(&home)));
    assert_eq!(names_in(&incoming(&home)), vec!["broken.json"]);
    home.run(&["spool", "ingest"]).ok();
    assert_exactly_once(&home, &["echo fixed".to_string()]);

    // The same name refused twice keeps both files.
    for _ in 0..2 {
        drop_renamed(&home, "again.json", "[]");
        home.run(&["spool", "ingest"]).code(1);
    }
    assert_eq!(
        names_in(&failed(&home)),
        vec![
            "again-2.json",
            "again-2.json.error.txt",
            "again.json",
            "again.json.error.txt"
        ]
    );
}

#[test]
fn enqueue_spool_and_spool_submit_write_files_that_get_ingested() {
    let home = TestHome::new();
    let run = home
        .run(&["enqueue", "--spool", r#"{"id":"s1","command":"echo spooled"}"#])
        .ok();
    assert_eq!(run.stdout, "s1\n");
    // Not in the database yet: only a file in incoming/.
    home.run(&["show", "s1"]).code(2);
    assert_eq!(names_in(&incoming(&home)).len(), 1);
    assert!(names_in(&spool(&home).join("tmp")).is_empty());

    let run = home
        .run(&["enqueue", "--spool", "--command", "echo flags", "--delay", "1h"])
        .ok();
    let flagged = run.stdout.trim().to_string();
    let run = home.run_with_stdin(
        &["spool", "submit", "-", "--json"],
        "{\"command\":\"echo sub 1\"}\n{\"id\":\"sub-2\",\"command\":\"echo sub 2\"}\n",
    );
    let ids = run.ok().json();
    assert_eq!(ids[1]["id"], "sub-2");
    home.run(&["spool", "submit", r#"{"command":""}"#]).code(2);
    home.run(&["spool", "submit"]).code(2);

    home.run(&["spool", "ingest"]).ok();
    assert_exactly_once(
        &home,
        &["echo spooled", "echo flags", "echo sub 1", "echo sub 2"].map(String::from),
    );
    assert!(home.job("s1")["source"].as_str().unwrap().starts_with("spool:"));
    let delayed = home.job(&flagged);
    assert_eq!(
        home.status()["scheduled"],
        1,
        "the delay should survive the spool: {delayed}"
    );
    assert_eq!(
        ids[0]["id"],
        home.run(&["list", "--json", "--oldest-first"]).ok().json()[2]["id"]
    );
}

#[test]
fn a_writable_spool_draws_a_loud_warning() {
    use std::os::unix::fs::PermissionsExt;
    let home = TestHome::new();
    fs::set_permissions(incoming(&home), fs::Permissions::from_mode(0o777)).unwrap();
    let run = home.run(&["spool", "ingest"]).ok();
    assert!(
        run.stderr.contains("incoming is world-writable (mode 0777)"),
        "{run:#?}"
    );
    assert!(run.stderr.contains("chmod 700"), "{run:#?}");
    fs::set_permissions(incoming(&home), fs::Permissions::from_mode(0o700)).unwrap();
    let run = home.run(&["spool", "ingest"]).ok();
    assert!(!run.stderr.contains("writable"), "{run:#?}");
}

#[test]
fn spool_ingest_exits_1_only_when_it_rejected_a_file() {
    let home = TestHome::new();
    let run = home.run(&["spool", "ingest"]).ok();
    assert!(run.stdout.contains("ingested 0 jobs from 0 files"), "{run:#?}");
    drop_renamed(&home, "good.json", r#"{"command":"echo good"}"#);
    home.run(&["spool", "ingest"]).ok();

    drop_renamed(&home, "bad.json", r#"{"command":"echo bad","colour":"red"}"#);
    drop_renamed(&home, "fine.json", r#"{"command":"echo fine"}"#);
    let run = home.run(&["spool", "ingest"]).code(1);
    assert!(
        run.stdout.contains("ingested 1 job from 1 file, rejected 1 file"),
        "{run:#?}"
    );
    assert_eq!(
        run.stderr, "queuectl: error: rejected 1 file (see `queuectl spool failed`)\n",
        "{run:#?}"
    );
    assert_exactly_once(&home, &["echo good", "echo fine"].map(String::from));

    // The rejection belongs to that pass: the next one, with only failed/ left, is fine.
    home.run(&["spool", "ingest"]).ok();
    // Skipping because another process ingests is not a failure either.
    let watch = Watch::start(&home);
    watch.wait_for_output("spool: watching");
    let run = home.run(&["spool", "ingest"]).ok();
    assert!(run.stdout.contains("skipped: another process is ingesting"), "{run:#?}");
    watch.stop();
}

#[test]
fn jobs_are_committed_before_their_file_is_removed() {
    let home = TestHome::new();
    drop_renamed(&home, "ordered.json", r#"{"id":"ordered","command":"echo ordered"}"#);
    let path = incoming(&home).join("ordered.json");
    let reads = ReadWatch::new(&path);
    // The ingester reads the file, then waits for the database: hold the write lock.
    let lock = DbLock::take(&home);
    let mut ingest = Watch::start_with(&home, &["spool", "ingest"]);
    reads.wait_for_read(Duration::from_secs(10));
    wait_until_waiting_for_a_lock(&home, ingest.child.id());
    assert!(
        path.exists(),
        "the file was removed before its jobs were committed: {}",
        ingest.output()
    );
    lock.release();
    let status = ingest.child.wait().unwrap();
    assert!(status.success(), "{}", ingest.output());
    assert!(!path.exists());
    assert_eq!(home.job("ordered")["source"], "spool:ordered.json");
}

#[test]
fn a_failed_commit_leaves_the_file_for_the_next_pass() {
    let home = TestHome::new();
    drop_renamed(&home, "kept.json", r#"{"command":"echo kept"}"#);
    // A commit that fails like a full disk would.
    let mut db = home.sql();
    db.refuse_job_inserts("database or disk is full");
    let run = home.run(&["spool", "ingest"]).code(1);
    assert!(
        run.stderr.contains("could not add the jobs of kept.json") && run.stderr.contains("disk is full"),
        "{run:#?}"
    );
    assert_eq!(names_in(&incoming(&home)), vec!["kept.json"]);
    assert!(names_in(&failed(&home)).is_empty());
    assert_eq!(total(&home), 0);

    db.allow_job_inserts();
    home.run(&["spool", "ingest"]).ok();
    assert_exactly_once(&home, &["echo kept".to_string()]);
    assert!(names_in(&incoming(&home)).is_empty());
}

/// The rows of `spool_files`: (name, jobs).
fn spool_file_records(home: &TestHome) -> Vec<(String, i64)> {
    home.sql()
        .query("SELECT name, jobs FROM {spool_files} ORDER BY name", &[])
        .into_iter()
        .map(|row| (row[0].text().to_string(), row[1].int()))
        .collect()
}

/// The identities of ingested files are kept a week (what a file found again after a crash is
/// checked against), then forgotten by the next pass, so the table does not grow for ever.
#[test]
fn identities_of_files_ingested_over_a_week_ago_are_forgotten_by_the_next_pass() {
    let home = TestHome::new();
    let day: i64 = 24 * 3600 * 1000;
    let now = now_millis();
    for (key, age) in [
        ("eight-days", 8 * day),
        ("six-days", 6 * day),
        ("an-hour", day / 24 + 1),
    ] {
        home.sql().execute(
            "INSERT INTO {spool_files} (file_key, name, jobs, ingested_at) VALUES (?1, ?2, 1, ?3)",
            &[key.into(), format!("{key}.json").into(), (now - age).into()],
        );
    }
    home.run(&["spool", "ingest"]).ok();
    assert_eq!(
        spool_file_records(&home),
        vec![("an-hour.json".to_string(), 1), ("six-days.json".to_string(), 1)]
    );
}

#[test]
fn a_file_found_again_after_its_commit_is_removed_without_adding_twice() {
    let home = TestHome::new();
    // Keeping the ingested file in done/ and putting it back is what a crash between the
    // commit and the unlink leaves: the same file (inode, size, time stamps, content, name).
    home.run(&["config", "set", "spool-keep-ingested", "true"]).ok();
    drop_renamed(
        &home,
        "again.ndjson",
        "{\"command\":\"echo again 1\"}\n{\"command\":\"echo again 2\"}\n",
    );
    home.run(&["spool", "ingest"]).ok();
    assert_eq!(spool_file_records(&home), vec![("again.ndjson".to_string(), 2)]);
    let done = spool(&home).join("done");
    fs::rename(done.join("again.ndjson"), incoming(&home).join("again.ndjson")).unwrap();
    home.run(&["config", "set", "spool-keep-ingested", "false"]).ok();

    let run = home.run(&["spool", "ingest"]).ok();
    assert!(
        run.stdout
            .contains("spool: again.ndjson had already been ingested (before an interruption); removed it"),
        "{run:#?}"
    );
    assert_exactly_once(&home, &["echo again 1", "echo again 2"].map(String::from));
    assert!(names_in(&incoming(&home)).is_empty());
    assert!(names_in(&failed(&home)).is_empty());
    assert!(names_in(&done).is_empty());

    // Without the record, the same file still maps to the same job ids: it is refused as a
    // clash, never added twice.
    home.run(&["config", "set", "spool-keep-ingested", "true"]).ok();
    drop_renamed(&home, "forgotten.json", r#"{"command":"echo forgotten"}"#);
    home.run(&["spool", "ingest"]).ok();
    home.sql()
        .execute("DELETE FROM {spool_files} WHERE name = 'forgotten.json'", &[]);
    fs::rename(done.join("forgotten.json"), incoming(&home).join("forgotten.json")).unwrap();
    let run = home.run(&["spool", "ingest"]).code(1);
    assert!(
        run.stdout.contains("already exists, added by spool:forgotten.json"),
        "{run:#?}"
    );
    assert_exactly_once(
        &home,
        &["echo again 1", "echo again 2", "echo forgotten"].map(String::from),
    );
}

#[test]
fn spool_retry_takes_only_names_inside_failed() {
    let home = TestHome::new();
    // A file that a path through a subdirectory would reach, and a directory in incoming/
    // that would take it: without the name check, `d/x.json` would be moved.
    fs::create_dir(failed(&home).join("d")).unwrap();
    fs::write(failed(&home).join("d").join("x.json"), r#"{"command":"echo x"}"#).unwrap();
    fs::create_dir(incoming(&home).join("d")).unwrap();
    let outside = TestHome::empty();
    let outside_file = outside.path().join("outside.json");
    fs::write(&outside_file, "{}").unwrap();
    let before = home.db_snapshot();
    for name in [
        "d/x.json",
        "../../queue.db",
        "..",
        ".",
        "",
        outside_file.to_str().unwrap(),
        "x.json.error.txt",
    ] {
        let run = home.run(&["spool", "retry", name]).code(2);
        assert!(
            run.stderr.contains("is not the name of a rejected spool file"),
            "{name}: {run:#?}"
        );
        assert_eq!(run.stderr.lines().count(), 1, "{run:#?}");
    }
    assert!(failed(&home).join("d").join("x.json").exists());
    assert!(!incoming(&home).join("d").join("x.json").exists());
    assert!(home.database_exists() && outside_file.exists());
    assert_eq!(home.db_snapshot(), before);
}

#[test]
fn spool_keep_ingested_moves_files_to_done() {
    use std::os::unix::fs::PermissionsExt;
    let home = TestHome::new();
    home.run(&["config", "set", "spool-keep-ingested", "true"]).ok();
    let first = r#"{"command":"echo first"}"#;
    let second = r#"{"command":"echo second"}"#;
    drop_renamed(&home, "same.json", first);
    home.run(&["spool", "ingest"]).ok();
    drop_renamed(&home, "same.json", second);
    home.run(&["spool", "ingest"]).ok();
    let done = spool(&home).join("done");
    assert_eq!(names_in(&done), vec!["same-2.json", "same.json"]);
    assert_eq!(fs::read_to_string(done.join("same.json")).unwrap(), first);
    assert_eq!(fs::read_to_string(done.join("same-2.json")).unwrap(), second);
    assert_eq!(fs::metadata(&done).unwrap().permissions().mode() & 0o777, 0o700);
    assert!(names_in(&incoming(&home)).is_empty());
    assert_exactly_once(&home, &["echo first", "echo second"].map(String::from));

    // Off again: ingested files are deleted.
    home.run(&["config", "set", "spool-keep-ingested", "false"]).ok();
    drop_renamed(&home, "third.json", r#"{"command":"echo third"}"#);
    home.run(&["spool", "ingest"]).ok();
    assert_eq!(names_in(&done).len(), 2);
    assert!(names_in(&incoming(&home)).is_empty());
}

#[test]
fn spool_allowed_uids_admits_other_owners() {
    // SAFETY: geteuid(2) cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("not root: cannot create files owned by another uid; nothing to check here");
        return;
    }
    let home = TestHome::new();
    let chown = |name: &str, uid: u32| {
        std::os::unix::fs::chown(incoming(&home).join(name), Some(uid), None).unwrap();
    };
    drop_renamed(&home, "stranger.json", r#"{"command":"echo stranger"}"#);
    chown("stranger.json", 54321);
    let run = home.run(&["spool", "ingest"]).code(1);
    assert!(
        run.stdout
            .contains("file is owned by uid 54321, not by this user (uid 0) or a uid in spool_allowed_uids"),
        "{run:#?}"
    );

    home.run(&["config", "set", "spool-allowed-uids", "54321"]).ok();
    drop_renamed(&home, "friend.json", r#"{"command":"echo friend"}"#);
    chown("friend.json", 54321);
    drop_renamed(&home, "other.json", r#"{"command":"echo other"}"#);
    chown("other.json", 54322);
    let run = home.run(&["spool", "ingest"]).code(1);
    assert!(run.stdout.contains("ingested 1 job from friend.json"), "{run:#?}");
    assert!(
        run.stdout.contains("rejected other.json: file is owned by uid 54322"),
        "{run:#?}"
    );
    assert_exactly_once(&home, &["echo friend".to_string()]);
}

#[test]
fn worker_start_ingests_the_spool_and_runs_the_job() {
    let home = TestHome::new();
    let worker = Watch::start_with(&home, &["worker", "start", "--count", "1"]);
    worker.wait_for_output("spool: watching");
    drop_renamed(
        &home,
        "dropped.json",
        r#"{"id":"dropped","command":"echo ran > ran.txt"}"#,
    );
    wait_until("the dropped job completed", Duration::from_secs(20), || {
        home.run(&["show", "dropped", "--json"]).code == 0 && home.job("dropped")["state"] == "completed"
    });
    assert_eq!(fs::read_to_string(home.path().join("ran.txt")).unwrap(), "ran\n");
    assert!(names_in(&incoming(&home)).is_empty());
    let output = worker.stop();
    assert!(output.contains("spool: ingested 1 job from dropped.json"), "{output}");
}
