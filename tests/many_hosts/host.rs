//! A "host": a network namespace, a UTS namespace with its own host name (made per command by
//! `unshare --uts`), and a queue home of its own (config file, spool) whose jobs live in the
//! shared PostgreSQL queue. `queuectl` runs inside the host with [`Host::inside`], or from the
//! root namespace with the host's home and settings with [`Host::outside`] (for the test's own
//! polling, which needs no namespace).

use super::{run_output, tail};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How a host finds the shared queue.
pub enum DbSetting {
    /// `QUEUECTL_DB=URL` in the environment of every command.
    Env(String),
    /// `db_url = "URL"` in the home's config file (written before `init`, which keeps it).
    ConfigFile(String),
}

/// One host; its worker is SIGKILLed and reaped when dropped (the namespace guard kills
/// whatever else runs in it).
pub struct Host {
    /// The host name inside its UTS namespace, e.g. `h1`.
    pub name: String,
    /// Its network namespace.
    pub netns: String,
    /// Its queue home.
    pub home: PathBuf,
    /// Where its worker's stdout and stderr go.
    pub log: PathBuf,
    db_env: Option<String>,
    worker: Mutex<Option<Child>>,
}

/// Settings every host's config file carries: fast heartbeats and short leases, so a lost host
/// is noticed in seconds (presumed dead after 2 × lease = 6 s).
pub const SETTINGS: &str = "heartbeat_seconds = 1\nlease_seconds = 3\n";

impl Host {
    /// A host named `name` in namespace `netns`, with its home at `home` (created).
    pub fn new(name: &str, netns: &str, home: PathBuf, db: DbSetting) -> Result<Host, String> {
        std::fs::create_dir_all(&home).map_err(|e| format!("{}: {e}", home.display()))?;
        let log = home.with_extension("worker.log");
        let db_env = match db {
            DbSetting::Env(url) => Some(url),
            DbSetting::ConfigFile(url) => {
                let config = home.join("config");
                std::fs::create_dir_all(&config).map_err(|e| format!("{}: {e}", config.display()))?;
                set_mode(&config, 0o700)?;
                let file = config.join("queuectl.toml");
                std::fs::write(&file, format!("db_url = \"{url}\"\n{SETTINGS}"))
                    .map_err(|e| format!("{}: {e}", file.display()))?;
                set_mode(&file, 0o600)?;
                None
            }
        };
        Ok(Host {
            name: name.to_string(),
            netns: netns.to_string(),
            home,
            log,
            db_env,
            worker: Mutex::new(None),
        })
    }

    /// `queuectl init` inside the host; for a host configured by environment, then appends
    /// [`SETTINGS`] to the config file `init` wrote. Returns init's stdout.
    pub fn init(&self) -> Result<String, String> {
        let output = run_output(&mut self.inside(["init"]))?;
        if !output.status.success() {
            return Err(format!("{}: `queuectl init` failed: {}", self.name, shown(&output)));
        }
        let config = self.home.join("config/queuectl.toml");
        let text = std::fs::read_to_string(&config).map_err(|e| format!("{}: {e}", config.display()))?;
        if !text.contains("lease_seconds = 3") {
            std::fs::write(&config, format!("{text}\n{SETTINGS}")).map_err(|e| format!("{}: {e}", config.display()))?;
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// `queuectl ARGS` run inside the host: its network namespace, a UTS namespace whose host
    /// name is the host's.
    pub fn inside<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", &self.netns, "unshare", "--uts", "sh", "-c"])
            .arg(format!("hostname {} && exec \"$0\" \"$@\"", self.name))
            .arg(env!("CARGO_BIN_EXE_queuectl"))
            .args(args);
        self.environment(&mut command);
        command
    }

    /// `queuectl ARGS` in the root namespace with this host's home and database: for reading
    /// the shared queue (status, list, show), which needs no host identity.
    pub fn outside<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut command = Command::new(env!("CARGO_BIN_EXE_queuectl"));
        command.args(args);
        self.environment(&mut command);
        command
    }

    /// Runs `queuectl ARGS` from the root namespace; its stdout, or panics naming the failure.
    #[track_caller]
    pub fn query(&self, args: &[&str]) -> String {
        let output = run_output(&mut self.outside(args)).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            output.status.success(),
            "`queuectl {}` for {} failed: {}",
            args.join(" "),
            self.name,
            shown(&output)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// `status --json` of the shared queue.
    #[track_caller]
    pub fn status(&self) -> serde_json::Value {
        let text = self.query(&["status", "--json"]);
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("status --json is not JSON ({e}): {text}"))
    }

    /// `show ID --json`.
    #[track_caller]
    pub fn job(&self, id: &str) -> serde_json::Value {
        let text = self.query(&["show", id, "--json"]);
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("show --json is not JSON ({e}): {text}"))
    }

    /// Starts `queuectl worker start --count COUNT` inside the host (spool ingester on), its
    /// output going to [`Host::log`].
    pub fn start_worker(&self, count: u32) -> Result<(), String> {
        let log = std::fs::File::create(&self.log).map_err(|e| format!("{}: {e}", self.log.display()))?;
        let err = log.try_clone().map_err(|e| e.to_string())?;
        let child = self
            .inside(["worker", "start", "--count", &count.to_string()])
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("{}: starting the worker: {e}", self.name))?;
        *self.worker.lock().unwrap() = Some(child);
        Ok(())
    }

    /// Whether the worker still runs (an exited one is reaped).
    pub fn worker_running(&self) -> bool {
        match self.worker.lock().unwrap().as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Reaps the worker after it was killed; `None` if it still runs after `timeout`.
    pub fn reap_worker(&self, timeout: Duration) -> Option<ExitStatus> {
        let mut worker = self.worker.lock().unwrap();
        let child = worker.as_mut()?;
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The end of the worker's log, for failure messages.
    pub fn log_tail(&self) -> String {
        format!("--- {} worker log (tail):\n{}", self.name, tail(&self.log, 15))
    }

    /// The home's spool `incoming/` directory.
    pub fn incoming(&self) -> PathBuf {
        self.home.join("spool/incoming")
    }

    fn environment(&self, command: &mut Command) {
        // Nothing of the caller's queuectl settings (e.g. QUEUECTL_DB from a CI run against
        // another server) may leak into the hosts.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("QUEUECTL_") {
                command.env_remove(key);
            }
        }
        command.env("QUEUECTL_HOME", &self.home).env("NO_COLOR", "1");
        if let Some(url) = &self.db_env {
            command.env("QUEUECTL_DB", url);
        }
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        if let Some(child) = self.worker.get_mut().unwrap_or_else(|e| e.into_inner()).as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn set_mode(path: &Path, mode: u32) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// A finished command's exit status and output, for messages.
pub fn shown(output: &Output) -> String {
    format!(
        "{}\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout).trim(),
        String::from_utf8_lossy(&output.stderr).trim()
    )
}
