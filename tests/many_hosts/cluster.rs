//! The whole setup as one guard: a temporary directory, the bridge, one namespace per host, the
//! PostgreSQL server on the bridge and the hosts' homes. Fields drop in declaration order, which
//! is the teardown order: workers, then every process of each namespace and the namespaces,
//! then the server, the bridge, and the directory. A setup that fails halfway drops what it made
//! so far the same way (locals drop in reverse order of creation).

use super::host::{DbSetting, Host};
use super::net::{Bridge, Netns};
use super::postgres::Postgres;
use super::Tools;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

/// Why a setup did not happen.
pub enum SetupError {
    /// The machine cannot make namespaces or bridges (e.g. a container without
    /// `CAP_NET_ADMIN`/`CAP_SYS_ADMIN`): the test is skipped with this reason.
    Unsupported(String),
    /// Anything else: the test fails.
    Failed(String),
}

/// Three hosts sharing one queue in a PostgreSQL server of their own.
pub struct Cluster {
    /// The hosts `h1`, `h2`, `h3`.
    pub hosts: Vec<Host>,
    namespaces: Vec<Netns>,
    /// The shared server.
    pub postgres: Postgres,
    bridge: Bridge,
    /// Where jobs record their runs (see `runs`).
    pub runs: PathBuf,
    /// Scratch space for the test (job files).
    pub scratch: PathBuf,
    dir: tempfile::TempDir,
}

/// Where the test's directory goes: `/dev/shm` when it is a tmpfs, else the system's temporary
/// directory. In memory the server's files and the thousands of small run records cost no disk
/// I/O, which on a busy machine slowed the test (and its cleanup by seconds).
fn scratch_root() -> PathBuf {
    let shm = std::path::Path::new("/dev/shm");
    // SAFETY: statfs is plain data, valid all zeroes.
    let mut stat: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: the path is a NUL-terminated literal; statfs writes only into `stat`.
    let rc = unsafe { libc::statfs(c"/dev/shm".as_ptr(), &mut stat) };
    if rc == 0 && stat.f_type == libc::TMPFS_MAGIC && shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

/// The PostgreSQL schema the hosts share.
pub const SCHEMA: &str = "shared";

impl Cluster {
    /// Builds `count` hosts: `h1`.. with `QUEUECTL_DB` in their environment, except the last,
    /// which names the queue by `db_url` in its config file (both ways are supported).
    pub fn build(tools: &Tools, count: u8) -> Result<Cluster, SetupError> {
        let failed = SetupError::Failed;
        let dir = tempfile::Builder::new()
            .prefix("queuectl-many-hosts-")
            .tempdir_in(scratch_root())
            .map_err(|e| failed(format!("temp dir: {e}")))?;
        // The postgres user must reach its directory inside.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .map_err(|e| failed(format!("{}: {e}", dir.path().display())))?;
        let runs = dir.path().join("runs");
        let scratch = dir.path().join("scratch");
        for path in [&runs, &scratch] {
            std::fs::create_dir(path).map_err(|e| failed(format!("{}: {e}", path.display())))?;
        }
        let bridge = Bridge::create().map_err(SetupError::Unsupported)?;
        let mut namespaces = Vec::new();
        for n in 1..=count {
            namespaces.push(Netns::create(&bridge, n).map_err(SetupError::Unsupported)?);
        }
        let postgres = Postgres::start(&tools.pg_bin, &dir.path().join("pg"), bridge.address(1)).map_err(failed)?;
        let url = postgres.url(SCHEMA);
        let mut hosts = Vec::new();
        for (i, netns) in namespaces.iter().enumerate() {
            let name = format!("h{}", i + 1);
            let db = if i + 1 == count as usize {
                DbSetting::ConfigFile(url.clone())
            } else {
                DbSetting::Env(url.clone())
            };
            hosts.push(Host::new(&name, &netns.name, dir.path().join(&name), db).map_err(failed)?);
        }
        Ok(Cluster {
            hosts,
            namespaces,
            postgres,
            bridge,
            runs,
            scratch,
            dir,
        })
    }

    /// The namespace of host `i` (0-based).
    pub fn netns(&self, i: usize) -> &Netns {
        &self.namespaces[i]
    }

    /// Every worker's log tail and the server's, for failure messages.
    pub fn logs(&self) -> String {
        let mut out: Vec<String> = self.hosts.iter().map(|h| h.log_tail()).collect();
        out.push(format!(
            "--- postgres log (tail):\n{}",
            super::tail(&self.postgres.log_path(), 10)
        ));
        out.join("\n")
    }
}
