//! A throwaway PostgreSQL server for the test: `initdb` and `pg_ctl` run as the `postgres` user
//! (initdb refuses root) in a directory of the test's own, listening only on the bridge address
//! (and a Unix socket in that directory), trusting the bridge's subnet. Stopped with
//! `pg_ctl stop -m immediate` when dropped.

use super::{cmd, run_ok, run_output, tail};
use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};

/// A running server; stopped when dropped.
pub struct Postgres {
    bin: PathBuf,
    dir: PathBuf,
    /// The address it listens on.
    pub address: Ipv4Addr,
    /// Its TCP port.
    pub port: u16,
}

impl Postgres {
    /// Initialises a cluster in `dir` (created, owned by `postgres`) and starts it on
    /// `address`, on a port free there.
    pub fn start(bin: &Path, dir: &Path, address: Ipv4Addr) -> Result<Postgres, String> {
        std::fs::create_dir_all(dir.join("sock")).map_err(|e| format!("{}: {e}", dir.display()))?;
        run_ok(&mut cmd("chown", ["-R", "postgres:", &dir.display().to_string()]))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| format!("{}: {e}", dir.display()))?;
        let data = dir.join("data");
        let mut server = Postgres {
            bin: bin.to_path_buf(),
            dir: dir.to_path_buf(),
            address,
            port: 0,
        };
        // -N: no fsync of the new cluster; a throwaway instance.
        server.as_postgres("initdb", &["-D", &text(&data), "--auth=trust", "-U", "postgres", "-N"])?;
        // initdb --auth=trust writes host lines for localhost only: let the hosts in.
        let hba = data.join("pg_hba.conf");
        let mut lines = std::fs::read_to_string(&hba).map_err(|e| format!("{}: {e}", hba.display()))?;
        lines.push_str(&format!(
            "host all all {}/24 trust\n",
            Ipv4Addr::from(u32::from(address) & !0xff)
        ));
        std::fs::write(&hba, lines).map_err(|e| format!("{}: {e}", hba.display()))?;
        server.port = free_port(address)?;
        // fsync=off: a throwaway server whose data dies with the test; durability is not what
        // this test is about, and fsync would only slow it down.
        let options = format!(
            "-k {} -h {address} -p {} -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200",
            text(&dir.join("sock")),
            server.port
        );
        let log = text(&server.log_path());
        server
            .as_postgres(
                "pg_ctl",
                &[
                    "-D",
                    &text(&data),
                    "-o",
                    &options,
                    "-l",
                    &log,
                    "-t",
                    "30",
                    "-w",
                    "start",
                ],
            )
            .map_err(|e| format!("{e}\nserver log:\n{}", tail(&server.log_path(), 20)))?;
        Ok(server)
    }

    /// `postgres://postgres@ADDRESS:PORT/postgres?schema=SCHEMA`.
    pub fn url(&self, schema: &str) -> String {
        format!(
            "postgres://postgres@{}:{}/postgres?schema={schema}",
            self.address, self.port
        )
    }

    /// The server's log file.
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("server.log")
    }

    /// Runs a query through `psql` on the server's socket; its unaligned, tuples-only output.
    pub fn query(&self, sql: &str) -> Result<String, String> {
        let mut psql = self.command("psql");
        psql.args([
            "-X",
            "-A",
            "-t",
            "-h",
            &text(&self.dir.join("sock")),
            "-p",
            &self.port.to_string(),
        ])
        .args(["-U", "postgres", "-d", "postgres", "-c", sql]);
        run_ok(&mut psql)
    }

    /// A `psql` session (named `name` in `pg_stat_activity`) that runs `sql` and then stays
    /// open, idle, until dropped: e.g. a transaction left open, as a client that vanished
    /// mid-transaction leaves it until the server notices.
    pub fn open_session(&self, name: &str, sql: &str) -> Result<Session, String> {
        use std::io::Write;
        let mut child = Command::new(self.bin.join("psql"))
            .args([
                "-X",
                "-q",
                "-h",
                &text(&self.dir.join("sock")),
                "-p",
                &self.port.to_string(),
            ])
            .args(["-U", "postgres", "-d", "postgres"])
            .env("PGAPPNAME", name)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("psql: {e}"))?;
        let mut stdin = child.stdin.take().expect("psql's stdin");
        let written = writeln!(stdin, "{sql}").and_then(|_| stdin.flush());
        let session = Session {
            child,
            stdin: Some(stdin),
        };
        written.map_err(|e| format!("psql: {e}"))?;
        Ok(session)
    }

    fn command(&self, tool: &str) -> Command {
        let mut command = cmd("runuser", ["-u", "postgres", "--"]);
        command.arg(self.bin.join(tool)).current_dir(&self.dir);
        command
    }

    fn as_postgres(&self, tool: &str, args: &[&str]) -> Result<String, String> {
        run_ok(self.command(tool).args(args))
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if self.port == 0 {
            return; // never started
        }
        let data = text(&self.dir.join("data"));
        let stopped = run_output(
            self.command("pg_ctl")
                .args(["-D", &data, "-m", "immediate", "-t", "20", "stop"]),
        )
        .map(|output| output.status.success())
        .unwrap_or(false);
        if !stopped {
            // The postmaster's PID is the first line of postmaster.pid.
            let pid = std::fs::read_to_string(self.dir.join("data/postmaster.pid")).unwrap_or_default();
            if let Some(pid) = pid.lines().next().and_then(|line| line.trim().parse().ok()) {
                super::kill(pid, libc::SIGKILL);
            }
        }
    }
}

/// A TCP port nothing listens on at `address` now.
fn free_port(address: Ipv4Addr) -> Result<u16, String> {
    let listener =
        std::net::TcpListener::bind((address, 0)).map_err(|e| format!("bind {address}:0 for a free port: {e}"))?;
    listener.local_addr().map(|a| a.port()).map_err(|e| e.to_string())
}

fn text(path: &Path) -> String {
    path.display().to_string()
}

/// An open `psql` session; ended (killed) when dropped.
pub struct Session {
    child: Child,
    stdin: Option<ChildStdin>,
}

impl Drop for Session {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
