//! TLS to PostgreSQL (the `postgres-tls` feature, off by default: `cargo test --features
//! postgres-tls --test store_postgres_tls`): a private server of the test's own with `ssl = on`
//! and a self-signed certificate for `localhost` made with `openssl req`. `sslmode` keeps
//! libpq's meanings: `require` encrypts without checking the certificate, `verify-ca` checks it
//! against `sslrootcert`, `verify-full` the host name as well, `disable` never encrypts. The
//! store's sessions, the listening one included, are encrypted as asked (`pg_stat_ssl`).
//!
//! Root only (`initdb` runs as the `postgres` user): otherwise it prints one `skipped:` line.
#![cfg(feature = "postgres-tls")]

#[path = "many_hosts/mod.rs"]
mod harness;

use harness::postgres::Postgres;
use harness::{cmd, run_ok, wait_until};
use queuectl::store::{self, DbLocation, NewJob};
use queuectl::time::now_ms;
use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

/// The server with TLS on, its certificate, and where they live.
struct TlsServer {
    server: Postgres,
    certificate: String,
    _dir: tempfile::TempDir,
}

impl TlsServer {
    /// `None` (after one line) when not root or PostgreSQL's server binaries are missing.
    fn start() -> Option<TlsServer> {
        let tools = match harness::prerequisites() {
            Ok(tools) => tools,
            Err(reason) => {
                eprintln!("skipped: {reason}");
                return None;
            }
        };
        let dir = tempfile::Builder::new()
            .prefix("queuectl-tls-")
            .tempdir()
            .expect("temp dir");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let pg = dir.path().join("pg");
        let server = Postgres::start(&tools.pg_bin, &pg, Ipv4Addr::LOCALHOST).unwrap_or_else(|e| panic!("{e}"));
        // A self-signed certificate naming `localhost` only, so connecting to 127.0.0.1 with
        // `verify-full` fails on the name.
        let (certificate, key) = (text(&pg.join("server.crt")), text(&pg.join("server.key")));
        run_ok(&mut cmd(
            "openssl",
            [
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "1",
                "-subj",
                "/CN=localhost",
                "-addext",
                "subjectAltName=DNS:localhost",
                "-keyout",
                &key,
                "-out",
                &certificate,
            ],
        ))
        .unwrap_or_else(|e| panic!("{e}"));
        run_ok(&mut cmd("chown", ["postgres:", &key, &certificate])).unwrap_or_else(|e| panic!("{e}"));
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod key");
        for sql in [
            format!("ALTER SYSTEM SET ssl_cert_file = '{certificate}'"),
            format!("ALTER SYSTEM SET ssl_key_file = '{key}'"),
            "ALTER SYSTEM SET ssl = on".to_string(),
            "SELECT pg_reload_conf()".to_string(),
        ] {
            server.query(&sql).unwrap_or_else(|e| panic!("{e}"));
        }
        wait_until(
            "the server to turn TLS on",
            Duration::from_secs(10),
            Duration::from_millis(20),
            || harness::tail(&server.log_path(), 20),
            || match server.query("SHOW ssl").unwrap_or_default().trim() {
                "on" => Ok(()),
                other => Err(format!("ssl = {other:?}")),
            },
        );
        Some(TlsServer {
            server,
            certificate,
            _dir: dir,
        })
    }

    /// The queue's location on `host` with these URL parameters; its sessions are named
    /// `name` (to find them in `pg_stat_activity`).
    fn location(&self, host: &str, name: &str, parameters: &str) -> DbLocation {
        DbLocation::parse(&format!(
            "postgres://postgres@{host}:{}/postgres?application_name={name}&{parameters}&schema=tls_{name}",
            self.server.port
        ))
        .expect("location")
    }

    /// Whether each session named `name` is encrypted (sorted by backend start).
    fn encrypted(&self, name: &str) -> Vec<bool> {
        let rows = self
            .server
            .query(&format!(
                "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
                 WHERE a.application_name = '{name}' ORDER BY a.backend_start"
            ))
            .unwrap_or_else(|e| panic!("{e}"));
        rows.lines().map(|line| line.trim() == "t").collect()
    }
}

fn text(path: &Path) -> String {
    path.display().to_string()
}

fn job(id: &str) -> NewJob {
    NewJob {
        id: id.into(),
        kind: "shell".into(),
        command: "true".into(),
        payload: None,
        max_retries: None,
        priority: 0,
        run_at: now_ms(),
        created_at: now_ms(),
        timeout_seconds: None,
        cwd: None,
        env: None,
        source: "api".into(),
        location: None,
    }
}

#[test]
fn sslmode_encrypts_and_verifies_as_libpq_does() {
    let Some(tls) = TlsServer::start() else { return };
    let root = format!("sslrootcert={}", tls.certificate);

    // require: encrypted, the self-signed certificate not checked. The listening session too.
    let location = tls.location("127.0.0.1", "require", "sslmode=require");
    let (store, _) = store::create(&location).expect("connect with sslmode=require");
    store.migrate().expect("migrate");
    store.change_token().expect("listen");
    let mut other = store::open(&location).expect("a second connection");
    let before = store.change_token().expect("token");
    other.insert_jobs(&[job("a")], true).expect("insert");
    wait_until(
        "the listening connection to see the commit",
        Duration::from_secs(10),
        Duration::from_millis(20),
        String::new,
        || match store.change_token().expect("token") != before {
            true => Ok(()),
            false => Err("no notification".into()),
        },
    );
    assert_eq!(store.counts().expect("counts").pending, 1);
    assert_eq!(
        tls.encrypted("require"),
        [true, true, true],
        "store, listener, second store"
    );
    drop((store, other));

    // verify-ca: the certificate is checked against sslrootcert, not the host name.
    let location = tls.location("127.0.0.1", "verifyca", &format!("sslmode=verify-ca&{root}"));
    let (store, _) = store::create(&location).expect("connect with sslmode=verify-ca");
    assert_eq!(tls.encrypted("verifyca"), [true]);
    drop(store);

    // verify-full: the name must match too: `localhost` does, 127.0.0.1 does not.
    let location = tls.location("localhost", "verifyfull", &format!("sslmode=verify-full&{root}"));
    let (store, _) = store::create(&location).expect("connect with sslmode=verify-full to localhost");
    assert_eq!(tls.encrypted("verifyfull"), [true]);
    drop(store);
    let location = tls.location("127.0.0.1", "wrongname", &format!("sslmode=verify-full&{root}"));
    let error = store::create(&location)
        .expect_err("the name does not match")
        .to_string();
    assert!(
        error.contains("could not connect") && error.contains("mismatch"),
        "{error}"
    );
    assert_eq!(error.lines().count(), 1, "{error}");

    // verify-full without sslrootcert: the system's authorities do not know this certificate.
    let location = tls.location("localhost", "untrusted", "sslmode=verify-full");
    let error = store::create(&location).expect_err("untrusted").to_string();
    assert!(
        error.contains("could not connect") && error.contains("certificate verify failed"),
        "{error}"
    );

    // A missing root certificate file is named.
    let location = tls.location(
        "localhost",
        "nofile",
        "sslmode=verify-full&sslrootcert=/nonexistent/ca.pem",
    );
    let error = store::create(&location).expect_err("no such file").to_string();
    assert!(error.contains("sslrootcert /nonexistent/ca.pem"), "{error}");

    // prefer (the default) encrypts when the server offers it; disable never does.
    let location = tls.location("127.0.0.1", "prefer", "connect_timeout=10");
    let (store, _) = store::create(&location).expect("connect with the default sslmode");
    assert_eq!(tls.encrypted("prefer"), [true]);
    drop(store);
    let location = tls.location("127.0.0.1", "disable", "sslmode=disable");
    let (store, _) = store::create(&location).expect("connect with sslmode=disable");
    assert_eq!(tls.encrypted("disable"), [false]);
    drop(store);
}
