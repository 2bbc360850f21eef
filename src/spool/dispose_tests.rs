//! Tests of what becomes of a file after it was examined: each race is staged on real files
//! before the call, and the outcome is checked on disk.

use super::*;
use std::io::Write;
use std::os::unix::fs::FileTypeExt;
use std::time::{Duration, UNIX_EPOCH};
use tempfile::TempDir;

/// One job, as a writer would leave it: 22 bytes.
const JOB: &[u8] = b"{\"command\":\"echo hi\"}\n";
/// A second job of the same length: 22 bytes.
const OTHER_JOB: &[u8] = b"{\"command\":\"echo yo\"}\n";
const MAX_BYTES: u64 = 1 << 20;

/// A spool directory with only `incoming/`: `failed/` and `done/` exist only if written to.
fn spool() -> (TempDir, SpoolPaths) {
    let dir = tempfile::tempdir().unwrap();
    let paths = SpoolPaths::new(dir.path());
    crate::home::create_dir(&paths.incoming, 0o700).unwrap();
    (dir, paths)
}

/// What the ingester remembers of `path` when it reads `bytes` from it now.
fn read_now(path: &Path, bytes: &[u8]) -> ReadVersion {
    ReadVersion {
        version: Version::of(&fs::symlink_metadata(path).unwrap()),
        content_hash: identity::content_hash(bytes),
    }
}

/// Writes `incoming/NAME` and returns what reading it remembers.
fn committed(paths: &SpoolPaths, name: &str, bytes: &[u8]) -> ReadVersion {
    let path = paths.incoming.join(name);
    fs::write(&path, bytes).unwrap();
    read_now(&path, bytes)
}

fn finish(paths: &SpoolPaths, name: &str, read: &ReadVersion, jobs: usize, keep: bool) -> Finished {
    finish_committed(paths, name, read, jobs, keep, MAX_BYTES).unwrap()
}

/// Sets the modification time to a fixed moment long past, so the file's version differs
/// from the one read whatever the clock's resolution (the change time moves too).
fn set_old_mtime(path: &Path) {
    File::open(path)
        .unwrap()
        .set_modified(UNIX_EPOCH + Duration::from_secs(1_000_000_000))
        .unwrap();
}

/// The names in `dir`, sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

/// True if anything is at `path`, a dangling symlink included.
fn exists(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok()
}

fn ino(path: &Path) -> u64 {
    fs::symlink_metadata(path).unwrap().ino()
}

fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path).unwrap().mode() & 0o7777
}

/// Appends to `path` and closes it again.
fn append(path: &Path, bytes: &[u8]) {
    OpenOptions::new()
        .append(true)
        .open(path)
        .unwrap()
        .write_all(bytes)
        .unwrap();
}

/// A writer holding `path` open for writing (without writing anything) while it lives.
fn open_for_writing(path: &Path) -> File {
    OpenOptions::new().append(true).open(path).unwrap()
}

/// The path and the OS error number of an I/O error.
fn io_error(result: Result<impl std::fmt::Debug>) -> (PathBuf, Option<i32>) {
    match result {
        Err(Error::Io { path, source }) => (path, source.raw_os_error()),
        other => panic!("expected an I/O error, got {other:?}"),
    }
}

/// A directory on another file system than the temp dir (`/dev/shm` is a tmpfs on Linux), to
/// make a rename between the two fail with EXDEV; `None` where there is none.
fn other_file_system(than: &Path) -> Option<TempDir> {
    let dir = tempfile::tempdir_in("/dev/shm").ok()?;
    let dev = |path: &Path| fs::metadata(path).unwrap().dev();
    (dev(dir.path()) != dev(than)).then_some(dir)
}

/// A spool whose `incoming/` is on another file system than the rest (`/dev/shm`), or `None`
/// (after a printed line) where that is not another file system.
fn spool_with_incoming_elsewhere() -> Option<(TempDir, TempDir, SpoolPaths)> {
    let (dir, paths) = spool();
    let Some(mount) = other_file_system(dir.path()) else {
        eprintln!("skipped: /dev/shm is not another file system here");
        return None;
    };
    let paths = SpoolPaths {
        incoming: mount.path().join("incoming"),
        ..paths
    };
    crate::home::create_dir(&paths.incoming, 0o700).unwrap();
    Some((dir, mount, paths))
}

// ---- finish_committed ----

#[test]
fn a_file_gone_before_removal_is_not_there() {
    let (_dir, paths) = spool();
    let read = committed(&paths, "a.json", JOB);
    fs::remove_file(paths.incoming.join("a.json")).unwrap();
    assert!(matches!(finish(&paths, "a.json", &read, 1, true), Finished::NotThere));
    assert!(!exists(&paths.failed));
    assert!(!exists(&paths.done));
    assert!(!exists(&paths.root.join(REMOVING)));
}

/// Only absence and a symlink mean "not there": any other failure to open is an error.
#[test]
fn a_name_that_cannot_be_opened_is_an_error_not_absence() {
    let (_dir, paths) = spool();
    let name = format!("{}.json", "x".repeat(300));
    let read = committed(&paths, "a.json", JOB);
    let (path, errno) = io_error(finish_committed(&paths, &name, &read, 1, false, MAX_BYTES));
    assert_eq!(path, paths.incoming.join(&name));
    assert_eq!(errno, Some(libc::ENAMETOOLONG));
    assert_eq!(listing(&paths.incoming), ["a.json"]);
}

/// The symlink points at the very file that was read, moved out of `incoming/`: following it
/// would find the inode that was read.
#[test]
fn a_symlink_renamed_over_the_name_is_not_there_and_its_target_is_untouched() {
    let (_dir, paths) = spool();
    let read = committed(&paths, "a.json", JOB);
    let target = paths.root.join("moved.json");
    fs::rename(paths.incoming.join("a.json"), &target).unwrap();
    std::os::unix::fs::symlink(&target, paths.incoming.join("a.json")).unwrap();
    assert!(matches!(finish(&paths, "a.json", &read, 1, false), Finished::NotThere));
    assert_eq!(fs::read_link(paths.incoming.join("a.json")).unwrap(), target);
    assert_eq!(fs::read(&target).unwrap(), JOB);
    assert_eq!(ino(&target), read.version.ino);
    assert!(!exists(&paths.root.join(REMOVING)));
    assert!(!exists(&paths.failed));
}

/// Same size, other bytes: had it been taken for the file read, it would be "changed".
#[test]
fn another_file_renamed_over_the_name_is_not_there_and_stays_unchanged() {
    let (_dir, paths) = spool();
    let read = committed(&paths, "a.json", JOB);
    let other = paths.root.join("other.json");
    fs::write(&other, OTHER_JOB).unwrap();
    fs::rename(&other, paths.incoming.join("a.json")).unwrap();
    let before = Version::of(&fs::symlink_metadata(paths.incoming.join("a.json")).unwrap());
    assert_ne!(before.ino, read.version.ino);
    assert!(matches!(finish(&paths, "a.json", &read, 1, false), Finished::NotThere));
    assert_eq!(listing(&paths.incoming), ["a.json"]);
    let after = Version::of(&fs::symlink_metadata(paths.incoming.join("a.json")).unwrap());
    assert_eq!(after, before);
    assert_eq!(fs::read(paths.incoming.join("a.json")).unwrap(), OTHER_JOB);
    assert!(!exists(&paths.root.join(REMOVING)));
    assert!(!exists(&paths.failed));
}

#[test]
fn a_file_appended_to_after_it_was_read_is_changed_and_kept() {
    let (_dir, paths) = spool();
    let read = committed(&paths, "a.json", JOB);
    let path = paths.incoming.join("a.json");
    append(&path, OTHER_JOB);
    match finish(&paths, "a.json", &read, 1, false) {
        Finished::Changed { at, reason, size } => {
            assert_eq!(at, path);
            assert_eq!(size, 44);
            assert_eq!(
                reason,
                "the file changed after it was read (22 bytes read and 1 job added to the queue, \
                 now 44 bytes): remove those jobs from it before retrying it; write each batch to a \
                 new file and rename it into incoming/ instead of appending"
            );
        }
        other => panic!("expected Changed, got {other:?}"),
    }
    assert_eq!(fs::read(&path).unwrap(), [JOB, OTHER_JOB].concat());
    assert_eq!(ino(&path), read.version.ino);
    assert!(!exists(&paths.root.join(REMOVING)));
    assert!(!exists(&paths.failed));
}

#[test]
fn the_changed_reason_counts_jobs_in_the_plural() {
    let (_dir, paths) = spool();
    let read = committed(&paths, "a.ndjson", &[JOB, JOB].concat());
    append(&paths.incoming.join("a.ndjson"), OTHER_JOB);
    match finish(&paths, "a.ndjson", &read, 2, false) {
        Finished::Changed { reason, size, .. } => {
            assert_eq!(size, 66);
            assert_eq!(
                reason,
                "the file changed after it was read (44 bytes read and 2 jobs added to the queue, \
                 now 66 bytes): remove those jobs from it before retrying it; write each batch to a \
                 new file and rename it into incoming/ instead of appending"
            );
        }
        other => panic!("expected Changed, got {other:?}"),
    }
}

/// Same size, other bytes, time stamps changed: only the content hash tells.
#[test]
fn a_file_rewritten_in_place_to_the_same_size_is_changed_and_kept() {
    let (_dir, paths) = spool();
    let read = committed(&paths, "a.json", JOB);
    let path = paths.incoming.join("a.json");
    fs::write(&path, OTHER_JOB).unwrap();
    set_old_mtime(&path);
    match finish(&paths, "a.json", &read, 1, false) {
        Finished::Changed { at, reason, size } => {
            assert_eq!(at, path);
            assert_eq!(size, 22);
            assert_eq!(
                reason,
                "the file changed after it was read (22 bytes read and 1 job added to the queue, \
                 now 22 bytes): remove those jobs from it before retrying it; write each batch to a \
                 new file and rename it into incoming/ instead of appending"
            );
        }
        other => panic!("expected Changed, got {other:?}"),
    }
    assert_eq!(fs::read(&path).unwrap(), OTHER_JOB);
}

/// Its time stamps changed but it still holds exactly what was read.
#[test]
fn a_file_only_touched_after_it_was_read_is_removed() {
    let (_dir, paths) = spool();
    let read = committed(&paths, "a.json", JOB);
    let path = paths.incoming.join("a.json");
    set_old_mtime(&path);
    assert_ne!(Version::of(&fs::metadata(&path).unwrap()), read.version);
    assert!(matches!(finish(&paths, "a.json", &read, 1, false), Finished::Removed));
    assert!(listing(&paths.incoming).is_empty());
    assert!(!exists(&paths.root.join(REMOVING)));
    assert!(!exists(&paths.failed));
}

#[test]
fn a_committed_file_is_removed_without_a_leftover() {
    let (_dir, paths) = spool();
    let read = committed(&paths, "a.json", JOB);
    assert!(matches!(finish(&paths, "a.json", &read, 1, false), Finished::Removed));
    assert!(listing(&paths.incoming).is_empty());
    assert!(!exists(&paths.root.join(REMOVING)));
    assert!(!exists(&paths.done));
    assert!(!exists(&paths.failed));
}

#[test]
fn a_kept_file_is_moved_to_a_private_done_directory() {
    let (_dir, paths) = spool();
    let read = committed(&paths, "a.json", JOB);
    assert!(matches!(finish(&paths, "a.json", &read, 1, true), Finished::Removed));
    assert!(listing(&paths.incoming).is_empty());
    assert_eq!(mode(&paths.done), 0o700);
    assert_eq!(listing(&paths.done), ["a.json"]);
    assert_eq!(ino(&paths.done.join("a.json")), read.version.ino);
    assert_eq!(fs::read(paths.done.join("a.json")).unwrap(), JOB);
    assert!(!exists(&paths.root.join(REMOVING)));
}

#[test]
fn a_kept_file_takes_a_free_name_when_its_name_is_taken_in_done() {
    let (_dir, paths) = spool();
    crate::home::create_dir(&paths.done, 0o700).unwrap();
    fs::write(paths.done.join("a.json"), OTHER_JOB).unwrap();
    let earlier = ino(&paths.done.join("a.json"));
    let read = committed(&paths, "a.json", JOB);
    assert!(matches!(finish(&paths, "a.json", &read, 1, true), Finished::Removed));
    assert!(listing(&paths.incoming).is_empty());
    assert_eq!(listing(&paths.done), ["a-2.json", "a.json"]);
    assert_eq!(ino(&paths.done.join("a-2.json")), read.version.ino);
    assert_eq!(fs::read(paths.done.join("a-2.json")).unwrap(), JOB);
    assert_eq!(ino(&paths.done.join("a.json")), earlier);
    assert_eq!(fs::read(paths.done.join("a.json")).unwrap(), OTHER_JOB);
}

/// A writer that opened it (and may write more) breaks nothing: it is kept where it is.
#[test]
fn a_file_opened_for_writing_after_it_was_read_is_changed_and_kept() {
    let (_dir, paths) = spool();
    let read = committed(&paths, "a.json", JOB);
    let path = paths.incoming.join("a.json");
    let writer = open_for_writing(&path);
    match finish(&paths, "a.json", &read, 1, true) {
        Finished::Changed { at, reason, size } => {
            assert_eq!(at, path);
            assert_eq!(size, 22);
            assert_eq!(
                reason,
                "the file was opened for writing again after it was read (22 bytes read, 1 job added \
                 to the queue): it is kept here, with anything written to it later; remove those jobs \
                 from it before retrying it, and write each batch to a new file renamed into incoming/"
            );
        }
        other => panic!("expected Changed, got {other:?}"),
    }
    drop(writer);
    assert_eq!(listing(&paths.incoming), ["a.json"]);
    assert_eq!(ino(&path), read.version.ino);
    assert!(!exists(&paths.done));
    assert!(!exists(&paths.root.join(REMOVING)));
}

/// With `incoming/` on a file system of its own the file cannot be moved out first, so it is
/// deleted in place (under the lease). Staged with `/dev/shm`; skipped where that is not
/// another file system.
#[test]
fn across_file_systems_a_committed_file_is_deleted_in_place() {
    let Some((_dir, _mount, paths)) = spool_with_incoming_elsewhere() else {
        return;
    };
    let read = committed(&paths, "a.json", JOB);
    assert!(matches!(finish(&paths, "a.json", &read, 1, false), Finished::Removed));
    assert!(listing(&paths.incoming).is_empty());
    assert!(!exists(&paths.root.join(REMOVING)));
}

/// `done/` on another file system than `incoming/`: the file is not deleted instead of kept.
#[test]
fn across_file_systems_a_file_to_keep_stays_in_incoming_with_an_error() {
    let Some((_dir, _mount, paths)) = spool_with_incoming_elsewhere() else {
        return;
    };
    let read = committed(&paths, "a.json", JOB);
    let (path, errno) = io_error(finish_committed(&paths, "a.json", &read, 1, true, MAX_BYTES));
    assert_eq!(path, paths.incoming.join("a.json"));
    assert_eq!(errno, Some(libc::EXDEV));
    assert_eq!(listing(&paths.incoming), ["a.json"]);
    assert_eq!(ino(&paths.incoming.join("a.json")), read.version.ino);
    assert!(listing(&paths.done).is_empty());
}

// ---- put_back (reached from finish_committed only by a rename racing its own) ----

#[test]
fn put_back_returns_a_file_under_its_name() {
    let (_dir, paths) = spool();
    let from = paths.root.join(REMOVING);
    fs::write(&from, JOB).unwrap();
    let moved = ino(&from);
    put_back(&paths, &from, "a.json").unwrap();
    assert!(!exists(&from));
    assert_eq!(listing(&paths.incoming), ["a.json"]);
    assert_eq!(ino(&paths.incoming.join("a.json")), moved);
}

#[test]
fn put_back_takes_a_free_name_when_its_name_is_taken_again() {
    let (_dir, paths) = spool();
    let from = paths.root.join(REMOVING);
    fs::write(&from, JOB).unwrap();
    let moved = ino(&from);
    fs::write(paths.incoming.join("a.json"), OTHER_JOB).unwrap();
    let newer = ino(&paths.incoming.join("a.json"));
    put_back(&paths, &from, "a.json").unwrap();
    assert!(!exists(&from));
    assert_eq!(listing(&paths.incoming), ["a-2.json", "a.json"]);
    assert_eq!(ino(&paths.incoming.join("a-2.json")), moved);
    assert_eq!(ino(&paths.incoming.join("a.json")), newer);
    assert_eq!(fs::read(paths.incoming.join("a.json")).unwrap(), OTHER_JOB);
}

// ---- leftover_removal ----

#[test]
fn no_leftover_removal_is_nothing_to_do() {
    let (_dir, paths) = spool();
    assert!(leftover_removal(&paths).unwrap().is_none());
    assert_eq!(listing(&paths.root), ["incoming"]);
}

/// Any failure to open other than absence and a symlink is an error, and what is there is
/// left (a socket cannot be opened: ENXIO).
#[test]
fn a_leftover_that_cannot_be_opened_is_an_error_and_kept() {
    let (_dir, paths) = spool();
    let path = paths.root.join(REMOVING);
    let _socket = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let (at, errno) = io_error(leftover_removal(&paths));
    assert_eq!(at, path);
    assert_eq!(errno, Some(libc::ENXIO));
    assert!(fs::symlink_metadata(&path).unwrap().file_type().is_socket());
}

#[test]
fn a_leftover_file_is_deleted() {
    let (_dir, paths) = spool();
    fs::write(paths.root.join(REMOVING), JOB).unwrap();
    assert!(leftover_removal(&paths).unwrap().is_none());
    assert_eq!(listing(&paths.root), ["incoming"]);
}

#[test]
fn a_leftover_symlink_is_removed_and_its_target_kept() {
    let (_dir, paths) = spool();
    let target = paths.root.join("target.json");
    fs::write(&target, JOB).unwrap();
    let target_ino = ino(&target);
    std::os::unix::fs::symlink(&target, paths.root.join(REMOVING)).unwrap();
    assert!(leftover_removal(&paths).unwrap().is_none());
    assert!(!exists(&paths.root.join(REMOVING)));
    assert_eq!(fs::read(&target).unwrap(), JOB);
    assert_eq!(ino(&target), target_ino);
}

#[test]
fn a_leftover_open_for_writing_is_refused_and_kept() {
    let (_dir, paths) = spool();
    let path = paths.root.join(REMOVING);
    fs::write(&path, JOB).unwrap();
    let meta = fs::metadata(&path).unwrap();
    let writer = open_for_writing(&path);
    let refusal = leftover_removal(&paths).unwrap().expect("a refusal");
    drop(writer);
    assert_eq!(refusal.name, "interrupted-removal.json");
    assert_eq!(refusal.path, path);
    assert_eq!(
        refusal.reason,
        "an ingester stopped while removing this file after adding its jobs, and a writer has it \
         open: it is kept here with anything written to it; remove the jobs already added before \
         retrying it"
    );
    assert_eq!(refusal.ino, Some(meta.ino()));
    assert_eq!(refusal.size, Some(22));
    assert_eq!(refusal.uid, Some(meta.uid()));
    assert_eq!(fs::read(&path).unwrap(), JOB);
    assert_eq!(ino(&path), meta.ino());
}

// ---- move_to_failed ----

/// The text of `NAME.error.txt` without its last line, which is the time of the refusal; that
/// line is checked to be there and to be the last.
fn reason_text(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap();
    let (before, last) = text.trim_end_matches('\n').rsplit_once('\n').unwrap();
    assert!(last.starts_with("rejected at: "), "{text}");
    assert!(text.ends_with('\n'), "{text}");
    format!("{before}\n")
}

/// A refusal of `incoming/NAME` as examining it now would make it.
fn refusal_of(paths: &SpoolPaths, name: &str, reason: &str) -> Refusal {
    let path = paths.incoming.join(name);
    Refusal::of(name, &path, &fs::symlink_metadata(&path).unwrap(), reason)
}

#[test]
fn a_refused_file_moves_to_a_private_failed_directory_beside_its_reason() {
    let (_dir, paths) = spool();
    fs::write(paths.incoming.join("a.json"), JOB).unwrap();
    let refusal = refusal_of(&paths, "a.json", "file is empty");
    let moved = refusal.ino.unwrap();
    let uid = refusal.uid.unwrap();
    assert_eq!(move_to_failed(&paths, &refusal).unwrap().as_deref(), Some("a.json"));
    assert!(listing(&paths.incoming).is_empty());
    assert_eq!(mode(&paths.failed), 0o700);
    assert_eq!(listing(&paths.failed), ["a.json", "a.json.error.txt"]);
    assert_eq!(ino(&paths.failed.join("a.json")), moved);
    let reason_path = paths.failed.join("a.json.error.txt");
    assert_eq!(mode(&reason_path), 0o600);
    assert_eq!(
        reason_text(&reason_path),
        format!("file is empty\n\nfile: a.json\nsize: 22 bytes\nowner: uid {uid}\n")
    );
}

#[test]
fn a_reason_without_size_or_owner_has_neither_line() {
    let (_dir, paths) = spool();
    let path = paths.incoming.join("a.json");
    fs::write(&path, JOB).unwrap();
    let refusal = Refusal {
        name: "a.json".into(),
        path,
        reason: "file is a directory; only regular files are accepted".into(),
        ino: None,
        size: None,
        uid: None,
    };
    assert_eq!(move_to_failed(&paths, &refusal).unwrap().as_deref(), Some("a.json"));
    assert_eq!(
        reason_text(&paths.failed.join("a.json.error.txt")),
        "file is a directory; only regular files are accepted\n\nfile: a.json\n"
    );
}

/// The first line is the reason `spool failed` shows: a newline in it, or in the name, must
/// not end it early.
#[test]
fn a_reason_and_a_name_with_newlines_stay_on_their_lines() {
    let (_dir, paths) = spool();
    let name = "a\nb.json";
    fs::write(paths.incoming.join(name), JOB).unwrap();
    let refusal = refusal_of(&paths, name, "unknown field `x\ny`");
    let uid = refusal.uid.unwrap();
    assert_eq!(move_to_failed(&paths, &refusal).unwrap().as_deref(), Some(name));
    assert_eq!(
        reason_text(&paths.failed.join(format!("{name}{ERROR_SUFFIX}"))),
        format!("unknown field `x\\ny`\n\nfile: a\\nb.json\nsize: 22 bytes\nowner: uid {uid}\n")
    );
}

#[test]
fn a_refused_file_takes_a_free_name_when_its_name_is_taken_in_failed() {
    let (_dir, paths) = spool();
    crate::home::create_dir(&paths.failed, 0o700).unwrap();
    fs::write(paths.failed.join("a.json"), OTHER_JOB).unwrap();
    let earlier = ino(&paths.failed.join("a.json"));
    fs::write(paths.incoming.join("a.json"), JOB).unwrap();
    let refusal = refusal_of(&paths, "a.json", "file is empty");
    assert_eq!(move_to_failed(&paths, &refusal).unwrap().as_deref(), Some("a-2.json"));
    assert_eq!(listing(&paths.failed), ["a-2.json", "a-2.json.error.txt", "a.json"]);
    assert_eq!(ino(&paths.failed.join("a-2.json")), refusal.ino.unwrap());
    assert_eq!(ino(&paths.failed.join("a.json")), earlier);
    assert_eq!(fs::read(paths.failed.join("a.json")).unwrap(), OTHER_JOB);
    assert!(reason_text(&paths.failed.join("a-2.json.error.txt")).starts_with("file is empty\n\nfile: a.json\n"));
}

/// Another file renamed over the refused one since it was examined is not the one refused.
#[test]
fn a_refused_file_replaced_since_it_was_examined_is_left_alone() {
    let (_dir, paths) = spool();
    fs::write(paths.incoming.join("a.json"), JOB).unwrap();
    let refusal = refusal_of(&paths, "a.json", "file is empty");
    let newer = paths.root.join("newer.json");
    fs::write(&newer, OTHER_JOB).unwrap();
    let newer_ino = ino(&newer);
    fs::rename(&newer, paths.incoming.join("a.json")).unwrap();
    assert_eq!(move_to_failed(&paths, &refusal).unwrap(), None);
    assert!(listing(&paths.failed).is_empty());
    assert_eq!(listing(&paths.incoming), ["a.json"]);
    assert_eq!(ino(&paths.incoming.join("a.json")), newer_ino);
    assert_eq!(fs::read(paths.incoming.join("a.json")).unwrap(), OTHER_JOB);
}

#[test]
fn a_refused_file_gone_since_it_was_examined_leaves_no_reason() {
    let (_dir, paths) = spool();
    fs::write(paths.incoming.join("a.json"), JOB).unwrap();
    let refusal = refusal_of(&paths, "a.json", "file is empty");
    fs::remove_file(paths.incoming.join("a.json")).unwrap();
    assert_eq!(move_to_failed(&paths, &refusal).unwrap(), None);
    assert!(listing(&paths.failed).is_empty());
}

/// Without an inode to compare (a refusal made without looking at the file), it is the rename
/// that finds the file gone.
#[test]
fn a_refused_file_without_an_inode_gone_before_the_move_leaves_no_reason() {
    let (_dir, paths) = spool();
    let refusal = Refusal {
        name: "a.json".into(),
        path: paths.incoming.join("a.json"),
        reason: "file is empty".into(),
        ino: None,
        size: None,
        uid: None,
    };
    assert_eq!(move_to_failed(&paths, &refusal).unwrap(), None);
    assert!(listing(&paths.failed).is_empty());
}

/// Only a vanished file is nothing to move: any other failure to move it is an error.
#[test]
fn a_refused_file_that_cannot_be_moved_is_an_error_and_leaves_no_reason() {
    let (_dir, paths) = spool();
    let not_a_dir = paths.root.join("file");
    fs::write(&not_a_dir, JOB).unwrap();
    let refusal = Refusal {
        name: "a.json".into(),
        path: not_a_dir.join("a.json"),
        reason: "file is empty".into(),
        ino: None,
        size: None,
        uid: None,
    };
    let (path, errno) = io_error(move_to_failed(&paths, &refusal));
    assert_eq!(path, refusal.path);
    assert_eq!(errno, Some(libc::ENOTDIR));
    // Its reason is not left behind in failed/, where each pass would add another.
    assert_eq!(fs::read_dir(&paths.failed).unwrap().count(), 0);
}
