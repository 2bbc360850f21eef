//! The network: a bridge in the root namespace with the `.1` address of a private /24, and one
//! network namespace per host joined to it by a veth pair, with the address `.1N` and `lo` up.
//! Names carry the test process's PID and a counter (two clusters in one test process), so
//! concurrent runs never share anything, and a run that was killed before its guards ran is
//! swept by the next one.

use super::{cmd, kill, run_ok, run_output};
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Name prefixes, with TAG = `<PID>c<K>` (K: this process's cluster count, one digit):
/// namespaces `qm<TAG>h<N>`, the bridge `qmb<TAG>`, veths `qmv<TAG>h<N>` (root side) and
/// `qmp<TAG>h<N>` (host side). Interface names stay under 16 bytes (PIDs have at most 7 digits).
const NS_PREFIX: &str = "qm";
const BRIDGE_PREFIX: &str = "qmb";

/// Clusters made by this process so far.
static CLUSTERS: AtomicU32 = AtomicU32::new(0);
/// Held while a bridge picks its subnet and takes it, so two clusters never pick the same.
static SUBNETS: Mutex<()> = Mutex::new(());

/// The bridge; deleted when dropped.
pub struct Bridge {
    /// The interface name.
    pub name: String,
    /// `<PID>c<K>`, shared by the names of this cluster's namespaces and veths.
    tag: String,
    /// The third octet of `10.213.X.0/24`.
    pub subnet: u8,
}

impl Bridge {
    /// Creates the bridge on a /24 of 10.213.0.0/16 that no interface here uses yet.
    pub fn create() -> Result<Bridge, String> {
        let _subnets = SUBNETS.lock().unwrap_or_else(|e| e.into_inner());
        sweep_stale();
        let pid = std::process::id();
        let tag = format!("{pid}c{}", CLUSTERS.fetch_add(1, Ordering::Relaxed) % 10);
        let used =
            run_ok(&mut cmd("ip", ["-4", "-o", "addr", "show"]))? + &run_ok(&mut cmd("ip", ["-4", "route", "show"]))?;
        let start = (pid % 250) as u8 + 1;
        let subnet = (0..250u8)
            .map(|i| ((start as u16 + i as u16 - 1) % 250 + 1) as u8)
            .find(|x| !used.contains(&format!("10.213.{x}.")))
            .ok_or("every 10.213.X.0/24 is in use here")?;
        let name = format!("{BRIDGE_PREFIX}{tag}");
        run_ok(&mut cmd("ip", ["link", "add", &name, "type", "bridge"]))?;
        // From here on, dropping the guard deletes the bridge.
        let bridge = Bridge { name, tag, subnet };
        let cidr = format!("{}/24", bridge.address(1));
        run_ok(&mut cmd("ip", ["addr", "add", &cidr, "dev", &bridge.name]))?;
        run_ok(&mut cmd("ip", ["link", "set", &bridge.name, "up"]))?;
        Ok(bridge)
    }

    /// `10.213.X.last`.
    pub fn address(&self, last: u8) -> Ipv4Addr {
        Ipv4Addr::new(10, 213, self.subnet, last)
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        let _ = run_output(&mut cmd("ip", ["link", "del", &self.name]));
    }
}

/// A network namespace joined to the bridge; every process in it is killed and the namespace
/// deleted when dropped.
pub struct Netns {
    /// The namespace's name (`ip netns exec NAME ...`).
    pub name: String,
    /// The root side of its veth pair.
    veth: String,
    /// Its address on the bridge.
    pub address: Ipv4Addr,
}

impl Netns {
    /// Host number `n` (1-based): namespace, veth pair into `bridge`, address `.1n`, `lo` up.
    pub fn create(bridge: &Bridge, n: u8) -> Result<Netns, String> {
        let tag = &bridge.tag;
        let name = format!("{NS_PREFIX}{tag}h{n}");
        let veth = format!("qmv{tag}h{n}");
        let peer = format!("qmp{tag}h{n}");
        let address = bridge.address(10 + n);
        run_ok(&mut cmd("ip", ["netns", "add", &name]))?;
        // From here on, dropping the guard deletes the namespace (and the veth with it).
        let netns = Netns { name, veth, address };
        let name = netns.name.as_str();
        let veth = netns.veth.as_str();
        run_ok(&mut cmd(
            "ip",
            ["link", "add", veth, "type", "veth", "peer", "name", &peer],
        ))?;
        run_ok(&mut cmd("ip", ["link", "set", &peer, "netns", name]))?;
        run_ok(&mut cmd("ip", ["link", "set", veth, "master", &bridge.name, "up"]))?;
        let cidr = format!("{address}/24");
        run_ok(&mut cmd("ip", ["-n", name, "addr", "add", &cidr, "dev", &peer]))?;
        run_ok(&mut cmd("ip", ["-n", name, "link", "set", &peer, "up"]))?;
        run_ok(&mut cmd("ip", ["-n", name, "link", "set", "lo", "up"]))?;
        Ok(netns)
    }

    /// The PIDs of every process in this namespace.
    pub fn pids(&self) -> Vec<u32> {
        namespace_pids(&self.name)
    }

    /// Cuts (`up == false`) or restores the namespace's link: the root side of its veth goes
    /// down or up. Packets are dropped silently, as when a cable is pulled: no connection is
    /// reset, the processes inside keep running.
    pub fn set_link(&self, up: bool) -> Result<(), String> {
        let state = if up { "up" } else { "down" };
        run_ok(&mut cmd("ip", ["link", "set", &self.veth, state])).map(|_| ())
    }

    /// SIGKILLs every process in the namespace, again and again until none is left (a process
    /// may fork while we kill); `false` if some were still there after 10 s.
    pub fn kill_everything(&self) -> bool {
        kill_namespace(&self.name)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        kill_namespace(&self.name);
        let _ = run_output(&mut cmd("ip", ["netns", "del", &self.name]));
        // Gone with the namespace already, unless a process kept the namespace alive.
        let _ = run_output(&mut cmd("ip", ["link", "del", &self.veth]));
    }
}

fn namespace_pids(name: &str) -> Vec<u32> {
    run_ok(&mut cmd("ip", ["netns", "pids", name]))
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.trim().parse().ok())
        .collect()
}

fn kill_namespace(name: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let pids = namespace_pids(name);
        if pids.is_empty() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        for pid in pids {
            kill(pid, libc::SIGKILL);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Deletes namespaces and bridges left by earlier runs whose test process is gone (killed
/// before its guards could run).
fn sweep_stale() {
    let namespaces = run_ok(&mut cmd("ip", ["netns", "list"])).unwrap_or_default();
    for name in namespaces.lines().filter_map(|line| line.split_whitespace().next()) {
        // qm<PID>c<K>h<N>
        let Some((tag, host)) = name.strip_prefix(NS_PREFIX).and_then(|rest| rest.rsplit_once('h')) else {
            continue;
        };
        if digits(host) && left_by_a_dead_process(tag) {
            kill_namespace(name);
            let _ = run_output(&mut cmd("ip", ["netns", "del", name]));
        }
    }
    let links = run_ok(&mut cmd("ip", ["-o", "link", "show", "type", "bridge"])).unwrap_or_default();
    for line in links.lines() {
        // "7: qmb1234c0: <BROADCAST,...> ..."
        let Some(name) = line.split(": ").nth(1) else { continue };
        if name.strip_prefix(BRIDGE_PREFIX).is_some_and(left_by_a_dead_process) {
            let _ = run_output(&mut cmd("ip", ["link", "del", name]));
        }
    }
}

/// Whether `tag` is `<PID>c<K>` and that process is gone.
fn left_by_a_dead_process(tag: &str) -> bool {
    match tag.split_once('c') {
        Some((pid, k)) if digits(pid) && digits(k) => !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        _ => false,
    }
}

fn digits(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())
}
