//! The queue home: the directory that holds `queue.db`, `config/queuectl.toml` and `spool/`.

use crate::error::{Error, Result};
use crate::store::DbLocation;
use std::fs::File;
use std::path::{Path, PathBuf};

/// The database file's name inside a home.
pub const DB_FILE: &str = "queue.db";
/// The config file's path inside a home.
pub const CONFIG_FILE: &str = "config/queuectl.toml";

/// Where a queue lives on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Home {
    root: PathBuf,
    db: DbLocation,
}

impl Home {
    /// A home rooted at `root`, with the database at `root/queue.db`.
    pub fn new(root: impl Into<PathBuf>) -> Home {
        let root = absolute(root.into());
        let db = DbLocation::Sqlite(root.join(DB_FILE));
        Home { root, db }
    }

    /// The same home with its jobs somewhere else (`--db`, `QUEUECTL_DB`, `db_url`): another
    /// SQLite file, or a PostgreSQL schema. The config file, spool and logs stay in the home.
    pub fn with_db(mut self, db: DbLocation) -> Home {
        self.db = match db {
            DbLocation::Sqlite(path) => DbLocation::Sqlite(absolute(path)),
            other => other,
        };
        self
    }

    /// The home directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the jobs live.
    pub fn db(&self) -> &DbLocation {
        &self.db
    }

    /// `config/queuectl.toml` in the home.
    pub fn config_path(&self) -> PathBuf {
        self.root.join(CONFIG_FILE)
    }

    /// Where `worker start --detach` writes its output.
    pub fn log_dir(&self) -> PathBuf {
        self.root.join("logs")
    }

    /// Opens `logs/NAME` for appending, creating `logs/` with mode 0700 and the file with mode
    /// 0600 whatever the umask: worker logs quote every command and its errors, which may hold
    /// secrets. Returns the file's path and the open file.
    pub fn create_log_file(&self, name: &str) -> Result<(PathBuf, File)> {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        let dir = self.log_dir();
        if !dir.is_dir() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)
                .map_err(|e| Error::io(&dir, e))?;
        }
        let path = dir.join(name);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        Ok((path, file))
    }
}

/// Creates a directory (and its parents) with `mode` if it does not exist.
pub(crate) fn create_dir(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if path.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(path)
        .map_err(|e| Error::io(path, e))
}

fn absolute(path: PathBuf) -> PathBuf {
    let joined = if path.is_absolute() {
        path
    } else {
        std::env::current_dir().map(|cwd| cwd.join(&path)).unwrap_or(path)
    };
    // Drop `.` components so messages show `/srv/q/queue.db`, not `/srv/q/./queue.db`.
    joined
        .components()
        .filter(|c| !matches!(c, std::path::Component::CurDir))
        .collect()
}
