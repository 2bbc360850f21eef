//! The systemd notification protocol (`sd_notify(3)`), spoken over a plain Unix datagram
//! socket: no crate and no libsystemd, because the protocol is one datagram of
//! `KEY=VALUE` lines sent to the socket named by `NOTIFY_SOCKET`.
//!
//! The service manager sets three variables for a `Type=notify` service:
//! - `NOTIFY_SOCKET`: an absolute path, or an abstract socket name written with a leading `@`.
//! - `WATCHDOG_USEC`: with `WatchdogSec=`, how long systemd waits for `WATCHDOG=1` before it
//!   kills the service; `sd_watchdog_enabled(3)` recommends pinging every half of it.
//! - `WATCHDOG_PID`: which process the watchdog is meant for; when it names another process
//!   (a child that inherited the variables), this process must not ping.
//!
//! These variables describe *this* process's relation to systemd; a child that inherits them
//! could speak for us. [`SUPERVISOR_VARIABLES`] lists them so the shell executor and the hooks
//! remove them from what jobs see.

use std::io;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

/// The environment variables by which systemd supervises this process, removed from the
/// environment of every job and hook: a job running `systemd-notify --ready` or `STOPPING=1`
/// must not talk to systemd as the worker.
pub const SUPERVISOR_VARIABLES: [&str; 3] = ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"];

/// How long one send may block when the manager does not read its socket: a notification is
/// never worth stalling the worker for.
const SEND_TIMEOUT: Duration = Duration::from_millis(500);

/// A connection to the service manager's notification socket.
#[derive(Debug)]
pub struct Notifier {
    socket: UnixDatagram,
    address: SocketAddr,
    /// The variable's value, for messages about it.
    name: String,
}

impl Notifier {
    /// The notifier `NOTIFY_SOCKET` asks for: `Ok(None)` when the variable is unset or empty
    /// (not run by a service manager), an error naming the value when it cannot be used.
    pub fn from_env() -> Result<Option<Notifier>, String> {
        match std::env::var_os("NOTIFY_SOCKET") {
            None => Ok(None),
            Some(value) if value.is_empty() => Ok(None),
            Some(value) => match value.to_str() {
                Some(text) => Notifier::connect(text).map(Some),
                None => Err(format!("NOTIFY_SOCKET {value:?} is not valid UTF-8")),
            },
        }
    }

    /// A notifier for a socket named as `NOTIFY_SOCKET` names it: an absolute path, or `@name`
    /// for a Linux abstract socket.
    pub fn connect(value: &str) -> Result<Notifier, String> {
        let address = socket_address(value)?;
        let socket =
            UnixDatagram::unbound().map_err(|e| format!("cannot create a socket for NOTIFY_SOCKET {value:?}: {e}"))?;
        socket
            .set_write_timeout(Some(SEND_TIMEOUT))
            .map_err(|e| format!("cannot set up the socket for NOTIFY_SOCKET {value:?}: {e}"))?;
        Ok(Notifier {
            socket,
            address,
            name: value.to_string(),
        })
    }

    /// The socket as `NOTIFY_SOCKET` named it.
    pub fn socket_name(&self) -> &str {
        &self.name
    }

    /// Sends one message: newline-separated `KEY=VALUE` assignments, e.g. `READY=1\nSTATUS=idle`.
    pub fn send(&self, message: &str) -> io::Result<()> {
        let sent = self.socket.send_to_addr(message.as_bytes(), &self.address)?;
        if sent != message.len() {
            return Err(io::Error::other(format!(
                "sent {sent} of {} bytes of a notification",
                message.len()
            )));
        }
        Ok(())
    }
}

/// The address `NOTIFY_SOCKET` names.
fn socket_address(value: &str) -> Result<SocketAddr, String> {
    if let Some(name) = value.strip_prefix('@') {
        if name.is_empty() {
            return Err("NOTIFY_SOCKET \"@\" names no abstract socket".to_string());
        }
        use std::os::linux::net::SocketAddrExt;
        return SocketAddr::from_abstract_name(name.as_bytes())
            .map_err(|e| format!("NOTIFY_SOCKET {value:?} is not a usable abstract socket name: {e}"));
    }
    if !value.starts_with('/') {
        // systemd also knows `vsock:` addresses (for virtual machines); a worker has no use for them.
        return Err(format!(
            "NOTIFY_SOCKET {value:?} is not supported: expected an absolute path or an @abstract name"
        ));
    }
    SocketAddr::from_pathname(value).map_err(|e| format!("NOTIFY_SOCKET {value:?} is not a usable socket path: {e}"))
}

/// How often to send `WATCHDOG=1`, from the values of `WATCHDOG_USEC` and `WATCHDOG_PID`: half
/// the watchdog timeout, as `sd_watchdog_enabled(3)` recommends. `None` when no watchdog is
/// set, the value is not a positive number, or `WATCHDOG_PID` names another process.
pub fn watchdog_interval(usec: Option<&str>, watchdog_pid: Option<&str>, our_pid: u32) -> Option<Duration> {
    let usec: u64 = usec?.trim().parse().ok()?;
    if usec == 0 {
        return None;
    }
    if let Some(pid) = watchdog_pid {
        if pid.trim().parse::<u32>().ok()? != our_pid {
            return None;
        }
    }
    Some(Duration::from_micros(usec / 2))
}

/// [`watchdog_interval`] for this process's environment.
pub fn watchdog_interval_from_env() -> Option<Duration> {
    let usec = std::env::var("WATCHDOG_USEC").ok();
    let pid = std::env::var("WATCHDOG_PID").ok();
    watchdog_interval(usec.as_deref(), pid.as_deref(), std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watchdog_pings_at_half_the_timeout() {
        assert_eq!(
            watchdog_interval(Some("200000"), None, 7),
            Some(Duration::from_millis(100))
        );
        assert_eq!(
            watchdog_interval(Some("30000000"), Some("7"), 7),
            Some(Duration::from_secs(15))
        );
    }

    #[test]
    fn watchdog_meant_for_another_process_is_left_alone() {
        assert_eq!(watchdog_interval(Some("200000"), Some("8"), 7), None);
        assert_eq!(watchdog_interval(Some("200000"), Some("not a pid"), 7), None);
    }

    #[test]
    fn watchdog_without_a_usable_timeout_is_off() {
        assert_eq!(watchdog_interval(None, None, 7), None);
        assert_eq!(watchdog_interval(Some("0"), None, 7), None);
        assert_eq!(watchdog_interval(Some("-5"), None, 7), None);
        assert_eq!(watchdog_interval(Some("soon"), None, 7), None);
    }

    #[test]
    fn relative_and_vsock_socket_names_are_refused_by_name() {
        for value in ["run/notify", "vsock:2:1234", "@"] {
            let error = Notifier::connect(value).expect_err(value);
            assert!(error.contains(&format!("{value:?}")), "{error}");
        }
    }

    #[test]
    fn message_arrives_on_a_path_socket() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("notify.sock");
        let receiver = UnixDatagram::bind(&path).expect("bind");
        let notifier = Notifier::connect(path.to_str().expect("utf-8 path")).expect("connect");
        notifier.send("READY=1\nSTATUS=idle").expect("send");
        let mut buffer = [0u8; 256];
        let n = receiver.recv(&mut buffer).expect("recv");
        assert_eq!(&buffer[..n], b"READY=1\nSTATUS=idle");
    }

    #[test]
    fn message_arrives_on_an_abstract_socket() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("queuectl-notify-test-{}", std::process::id());
        let address = SocketAddr::from_abstract_name(name.as_bytes()).expect("abstract name");
        let receiver = UnixDatagram::bind_addr(&address).expect("bind abstract");
        let notifier = Notifier::connect(&format!("@{name}")).expect("connect");
        notifier.send("WATCHDOG=1").expect("send");
        let mut buffer = [0u8; 64];
        let n = receiver.recv(&mut buffer).expect("recv");
        assert_eq!(&buffer[..n], b"WATCHDOG=1");
    }

    #[test]
    fn sending_to_a_socket_nobody_listens_on_is_an_error() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("gone.sock");
        let notifier = Notifier::connect(path.to_str().expect("utf-8 path")).expect("connect");
        assert!(notifier.send("READY=1").is_err());
    }
}
