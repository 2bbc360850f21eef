//! Consistent copies of a live queue database: `queuectl backup FILE` and the backup every
//! schema migration writes first.
//!
//! The copy is made with `VACUUM INTO`: it reads the database in one read transaction, so the
//! copy is exactly the snapshot that transaction saw, and in WAL mode that transaction blocks
//! no writer (workers and enqueues go on). SQLite's online backup API would copy pages in steps
//! instead, but a step restarts the whole copy whenever another connection writes in between,
//! so under steady writes it either never finishes or must be run as one step, which is the
//! same single read transaction as `VACUUM INTO`, with a feature flag more and an uncompacted
//! copy. The copy is written to a temporary name beside the destination, synced, and only
//! then given its name, so a name that exists always holds a complete copy.

use super::SqliteStore;
use crate::error::{Error, Result};
use crate::store::{BackupReport, Overwrite, StateCounts};
use rusqlite::{Connection, OpenFlags};
use std::path::{Path, PathBuf};

/// Writes a consistent copy of the database to `dest` (mode 0600) and reports its counts.
/// Refuses, changing nothing, a destination whose directory does not exist, that is a
/// directory or the database itself, or that exists unless `overwrite` is
/// [`Overwrite::Replace`].
pub(super) fn backup_to(store: &SqliteStore, dest: &Path, overwrite: Overwrite) -> Result<BackupReport> {
    let dest = absolute(dest);
    check_destination(&dest, store.path(), overwrite)?;
    // SQLite takes the file name as text.
    if dest.to_str().is_none() {
        return Err(Error::InvalidArgument(format!(
            "backup file {} is not valid UTF-8",
            dest.display()
        )));
    }
    let (dir, name) = split(&dest)?;
    let temp = dir.join(format!(
        ".{name}.partial-{}-{}",
        std::process::id(),
        crate::time::now_ms()
    ));
    // The temporary file is removed on every failure, so no partial copy is left behind.
    let result = write_copy(store, &temp).and_then(|()| {
        install(&temp, &dest, overwrite)?;
        sync_dir(dir)
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result?;
    let (schema_version, counts) = describe(&dest)?;
    Ok(BackupReport {
        path: dest,
        schema_version,
        counts,
    })
}

/// The backup a migration from `version` takes first: `queue.db.bak-v{version}-{UTC time}`
/// beside the database (a numbered suffix if that name is taken).
pub(super) fn backup_before_migration(store: &SqliteStore, version: i64) -> Result<BackupReport> {
    let (dir, name) = split(store.path())?;
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
    let base = format!("{name}.bak-v{version}-{stamp}");
    let mut candidate = dir.join(&base);
    let mut n = 1;
    while candidate.exists() {
        n += 1;
        candidate = dir.join(format!("{base}-{n}"));
    }
    backup_to(store, &candidate, Overwrite::Refuse)
}

/// `VACUUM INTO` a new 0600 file at `temp`, then fsync it (SQLite does not sync the copy).
fn write_copy(store: &SqliteStore, temp: &Path) -> Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    // Created empty first, 0600 whatever the umask (`VACUUM INTO` accepts an empty file and
    // keeps its mode): the copy holds every command and its output.
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(temp)
        .map_err(|e| Error::io(temp, e))?;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))
        .map_err(|e| Error::io(temp, e))?;
    let temp_text = temp
        .to_str()
        .ok_or_else(|| Error::InvalidArgument(format!("backup file {} is not valid UTF-8", temp.display())))?;
    store
        .conn
        .execute("VACUUM INTO ?1", [temp_text])
        .map_err(|e| Error::Other(format!("backing up to {}: {e}", temp.display())))?;
    file.sync_all().map_err(|e| Error::io(temp, e))?;
    Ok(())
}

/// The path made absolute against the current directory (so SQLite never reads it as a URI).
fn absolute(path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|cwd| cwd.join(path))
            .unwrap_or_else(|_| path.to_path_buf())
    }
}

/// The directory and file name of a path.
fn split(path: &Path) -> Result<(&Path, String)> {
    match (path.parent(), path.file_name()) {
        (Some(dir), Some(name)) => Ok((dir, name.to_string_lossy().into_owned())),
        _ => Err(Error::InvalidArgument(format!(
            "backup file {} names no file",
            path.display()
        ))),
    }
}

fn check_destination(dest: &Path, db: &Path, overwrite: Overwrite) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let (dir, _) = split(dest)?;
    if !dir.is_dir() {
        return Err(Error::InvalidArgument(format!(
            "backup directory {} does not exist",
            dir.display()
        )));
    }
    let Ok(existing) = std::fs::symlink_metadata(dest) else {
        return Ok(());
    };
    if existing.is_dir() {
        return Err(Error::InvalidArgument(format!(
            "backup file {} is a directory",
            dest.display()
        )));
    }
    // Replacing the database (or a link to it) with its own copy would cut it from under
    // every worker: never, with or without --force.
    let same = |a: &std::fs::Metadata, b: &std::fs::Metadata| a.dev() == b.dev() && a.ino() == b.ino();
    if let Ok(db_meta) = std::fs::metadata(db) {
        let followed = std::fs::metadata(dest).ok();
        if same(&existing, &db_meta) || followed.is_some_and(|f| same(&f, &db_meta)) {
            return Err(Error::InvalidArgument(format!(
                "backup file {} is the queue database itself",
                dest.display()
            )));
        }
    }
    if overwrite == Overwrite::Refuse {
        return Err(Error::InvalidArgument(format!(
            "backup file {} already exists (use --force to replace it)",
            dest.display()
        )));
    }
    Ok(())
}

/// Gives the finished copy its name. Without `Replace` a hard link refuses a name that has
/// appeared since the check (rename would silently replace it).
fn install(temp: &Path, dest: &Path, overwrite: Overwrite) -> Result<()> {
    match overwrite {
        Overwrite::Replace => std::fs::rename(temp, dest).map_err(|e| Error::io(dest, e)),
        Overwrite::Refuse => match std::fs::hard_link(temp, dest) {
            Ok(()) => std::fs::remove_file(temp).map_err(|e| Error::io(temp, e)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(Error::InvalidArgument(format!(
                "backup file {} already exists (use --force to replace it)",
                dest.display()
            ))),
            Err(e) => Err(Error::io(dest, e)),
        },
    }
}

/// Makes the new name durable.
fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(dir, e))
}

/// The schema version and job counts of a finished copy, read from the copy itself (read-only),
/// so what is printed is what was written.
fn describe(path: &Path) -> Result<(i64, StateCounts)> {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let mut counts = StateCounts::default();
    // The backup a migration takes first is of the old schema: its tables may be unprefixed.
    let sql = format!(
        "SELECT state, count(*) FROM {} GROUP BY state",
        super::schema::table("jobs", version)
    );
    let mut statement = conn.prepare(&sql)?;
    let rows = statement.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
    for row in rows {
        let (state, n) = row?;
        let n = n.max(0) as u64;
        match state.as_str() {
            "pending" => counts.pending = n,
            "processing" => counts.processing = n,
            "completed" => counts.completed = n,
            "failed" => counts.failed = n,
            "dead" => counts.dead = n,
            _ => {}
        }
    }
    Ok((version, counts))
}
