//! The processes a lost job left behind on this host, and how they are stopped before the job
//! runs again.
//!
//! When a worker dies (SIGKILL, OOM, a crash), its running jobs' processes live on (the shells
//! are reparented to init), and a job that runs again while its first run's `sleep; curl …`
//! still runs would run twice at the same time. So before a lost job on this host is retried,
//! recovery finds what is left of its run and stops it: SIGTERM, then SIGKILL after
//! `stop_grace_seconds`. Only when nothing is left does the job go back to the queue.
//!
//! A process is recognised as the run's by its environment: the shell executor gives every job
//! `QUEUECTL_JOB_ID`, `QUEUECTL_LEASE` (the claim's number) and `QUEUECTL_QUEUE` (the queue's
//! database, as ids and leases repeat across queues), which children inherit. The
//! worker row also records each running job's process group leader with its start time (PIDs
//! get reused), which identifies the group while its leader lives even if the job cleared its
//! environment. Processes in the recorded group that can be confirmed neither way (the leader
//! is gone and they carry no marker) are never signalled: the job stays `processing` and
//! `status` says why, until they end. A process that left the job's session (`setsid`) opted
//! out of the job's lifetime and is left alone, as on a normal exit.

use crate::process::parse_stat;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// One process of the process table, as far as recovery cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcEntry {
    /// Process id.
    pub pid: u32,
    /// Process group id.
    pub pgid: u32,
    /// Session id.
    pub sid: u32,
    /// Start time (clock ticks since boot, field 22 of `/proc/PID/stat`).
    pub start: u64,
    /// `QUEUECTL_JOB_ID` and `QUEUECTL_LEASE` from its environment, when readable, set, and
    /// `QUEUECTL_QUEUE` names the queue being scanned for.
    pub marker: Option<(String, i64)>,
}

/// Reads the process table (`/proc`). Processes that end while it is read are skipped. Only
/// processes of the queue named `queue` (see [`DbLocation::identity`](crate::store::DbLocation::identity)) get a marker.
pub fn scan(queue: &str) -> Vec<ProcEntry> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut entries = Vec::new();
    for entry in dir.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some((pgid, sid, start)) = parse_stat(&stat) else {
            continue;
        };
        let marker = std::fs::read(format!("/proc/{pid}/environ"))
            .ok()
            .and_then(|environ| parse_marker(&environ, queue));
        entries.push(ProcEntry {
            pid,
            pgid,
            sid,
            start,
            marker,
        });
    }
    entries
}

fn parse_marker(environ: &[u8], queue: &str) -> Option<(String, i64)> {
    let mut job = None;
    let mut lease = None;
    let mut same_queue = false;
    for variable in environ.split(|&b| b == 0) {
        let Ok(variable) = std::str::from_utf8(variable) else {
            continue;
        };
        if let Some(value) = variable.strip_prefix("QUEUECTL_JOB_ID=") {
            job = Some(value.to_string());
        } else if let Some(value) = variable.strip_prefix("QUEUECTL_LEASE=") {
            lease = value.parse::<i64>().ok();
        } else if let Some(value) = variable.strip_prefix("QUEUECTL_QUEUE=") {
            same_queue = value == queue;
        }
    }
    if !same_queue {
        return None;
    }
    Some((job?, lease?))
}

/// What is left of one run of a job, found in a process table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Leftovers {
    /// Process groups known to be the run's: signalled whole.
    pub groups: BTreeSet<u32>,
    /// Processes known to be the run's.
    pub confirmed: Vec<u32>,
    /// Processes in the run's recorded process group that cannot be confirmed as the run's
    /// (its leader is gone and they carry no marker): never signalled.
    pub unconfirmed: Vec<u32>,
}

impl Leftovers {
    /// True when nothing of the run is left.
    pub fn is_empty(&self) -> bool {
        self.confirmed.is_empty() && self.unconfirmed.is_empty()
    }
}

/// Finds what is left of the run of `job_id` under claim `lease`. `leader` is the recorded
/// process group leader and its start time, when the worker had recorded it.
pub fn find(procs: &[ProcEntry], job_id: &str, lease: i64, leader: Option<(u32, u64)>) -> Leftovers {
    let is_marked = |p: &ProcEntry| {
        p.marker
            .as_ref()
            .map(|(j, l)| j == job_id && *l == lease)
            .unwrap_or(false)
    };
    // Sessions the run created on purpose (`setsid`): the processes in them are detached.
    let detached_sessions: BTreeSet<u32> = procs
        .iter()
        .filter(|p| is_marked(p) && p.sid == p.pid)
        .map(|p| p.pid)
        .collect();
    let mut groups: BTreeSet<u32> = procs
        .iter()
        .filter(|p| is_marked(p) && !detached_sessions.contains(&p.sid))
        .map(|p| p.pgid)
        .collect();
    let mut leader_group_unconfirmed = None;
    if let Some((pid, start)) = leader {
        if procs.iter().any(|p| p.pid == pid && p.start == start) {
            groups.insert(pid);
        } else if !groups.contains(&pid) {
            leader_group_unconfirmed = Some(pid);
        }
    }
    let mut left = Leftovers {
        groups,
        ..Leftovers::default()
    };
    for p in procs {
        if left.groups.contains(&p.pgid) && !detached_sessions.contains(&p.sid) {
            left.confirmed.push(p.pid);
        } else if Some(p.pgid) == leader_group_unconfirmed {
            left.unconfirmed.push(p.pid);
        }
    }
    left
}

/// Where stopping one lost run stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing of the run is left: the job may run again.
    Gone,
    /// Its processes were signalled and are being waited for.
    Stopping,
    /// Something is left that must not or cannot be signalled; the job stays `processing`.
    Held(String),
}

/// Stops the leftovers of lost runs: SIGTERM first, SIGKILL once `grace` has passed. Keeps
/// when it first signalled each run, so it is called again (each reap pass) until the run is
/// gone.
#[derive(Debug, Default)]
pub struct OrphanKiller {
    term_sent: BTreeMap<(String, i64), Instant>,
}

impl OrphanKiller {
    /// One step for one lost run (see [`Verdict`]).
    pub fn step(
        &mut self,
        procs: &[ProcEntry],
        job_id: &str,
        lease: i64,
        leader: Option<(u32, u64)>,
        grace: Duration,
    ) -> Verdict {
        let key = (job_id.to_string(), lease);
        let left = find(procs, job_id, lease, leader);
        if left.is_empty() {
            self.term_sent.remove(&key);
            return Verdict::Gone;
        }
        if left.confirmed.is_empty() {
            return Verdict::Held(held_reason(&left));
        }
        let signal = match self.term_sent.get(&key) {
            None => {
                self.term_sent.insert(key, Instant::now());
                libc::SIGTERM
            }
            Some(sent) if sent.elapsed() >= grace => libc::SIGKILL,
            Some(_) => return Verdict::Stopping,
        };
        for &group in &left.groups {
            if !signal_group(group, signal) {
                return Verdict::Held(format!(
                    "cannot signal process group {group} of the lost run: {}",
                    std::io::Error::last_os_error()
                ));
            }
            if signal == libc::SIGTERM {
                // A stopped process would never act on SIGTERM.
                signal_group(group, libc::SIGCONT);
            }
        }
        Verdict::Stopping
    }

    /// Forgets runs not in `keep` (recovered, or taken care of elsewhere).
    pub fn retain(&mut self, keep: &BTreeSet<(String, i64)>) {
        self.term_sent.retain(|key, _| keep.contains(key));
    }
}

/// Why a run's leftovers hold its job, for `status` and the worker's log.
pub fn held_reason(left: &Leftovers) -> String {
    let list = |pids: &[u32]| pids.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(", ");
    if !left.confirmed.is_empty() {
        format!(
            "its lost run's processes are being stopped (PID {})",
            list(&left.confirmed)
        )
    } else {
        format!(
            "PID {} in its lost run's process group cannot be confirmed as the run's (the group leader is \
             gone and they carry no QUEUECTL_JOB_ID): not signalled; the job waits until they end",
            list(&left.unconfirmed)
        )
    }
}

/// Signals a process group; false if that failed for a reason other than it being gone.
fn signal_group(group: u32, signal: libc::c_int) -> bool {
    if group <= 1 || group > i32::MAX as u32 {
        return true;
    }
    // SAFETY: kill(2) with a negative pid signals that process group; no memory is involved.
    let rc = unsafe { libc::kill(-(group as libc::pid_t), signal) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
}

/// The recorded group leader of each running job in a worker row's `slots` JSON: job id to
/// (PID, start time).
pub fn recorded_leaders(slots: &serde_json::Value) -> BTreeMap<String, (u32, u64)> {
    let mut leaders = BTreeMap::new();
    for slot in slots.as_array().into_iter().flatten() {
        let job = slot.get("job").and_then(|v| v.as_str());
        let pid = slot.get("pid").and_then(|v| v.as_u64());
        let start = slot.get("pid_start").and_then(|v| v.as_u64());
        if let (Some(job), Some(pid), Some(start)) = (job, pid, start) {
            leaders.insert(job.to_string(), (pid as u32, start));
        }
    }
    leaders
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proc(pid: u32, pgid: u32, sid: u32, marker: Option<(&str, i64)>) -> ProcEntry {
        ProcEntry {
            pid,
            pgid,
            sid,
            start: 1000 + pid as u64,
            marker: marker.map(|(j, l)| (j.to_string(), l)),
        }
    }

    #[test]
    fn marked_processes_name_their_groups_and_the_whole_group_is_confirmed() {
        let procs = vec![
            proc(10, 10, 1, Some(("job", 3))),
            proc(11, 10, 1, None), // cleared its environment, but is in the marked group
            proc(20, 20, 1, Some(("job", 2))), // an older claim of the same job: not this run
            proc(30, 30, 1, Some(("other", 3))),
        ];
        let left = find(&procs, "job", 3, None);
        assert_eq!(left.groups, BTreeSet::from([10]));
        assert_eq!(left.confirmed, vec![10, 11]);
        assert!(left.unconfirmed.is_empty());
    }

    #[test]
    fn an_unmarked_session_leader_does_not_detach_the_run_in_its_session() {
        // The worker's own session (a login shell leads it) is not a session the run created.
        let procs = vec![proc(1, 1, 1, None), proc(10, 10, 1, Some(("job", 3)))];
        let left = find(&procs, "job", 3, None);
        assert_eq!(left.confirmed, vec![10]);
        assert!(!left.is_empty());
    }

    #[test]
    fn unconfirmed_leftovers_alone_are_not_nothing() {
        let procs = vec![proc(50, 50, 1, None)];
        let left = find(&procs, "job", 1, Some((50, 7)));
        assert!(left.confirmed.is_empty());
        assert!(!left.is_empty(), "an unconfirmed process is still something left");
        assert!(find(&[], "job", 1, None).is_empty());
    }

    #[test]
    fn a_process_that_left_the_session_is_detached_and_left_alone() {
        let procs = vec![
            proc(10, 10, 1, Some(("job", 1))),
            proc(40, 40, 40, Some(("job", 1))),
            proc(41, 40, 40, Some(("job", 1))),
        ];
        let left = find(&procs, "job", 1, None);
        assert_eq!(left.confirmed, vec![10]);
    }

    #[test]
    fn a_live_recorded_leader_confirms_its_group_and_a_dead_one_does_not() {
        let procs = vec![proc(50, 50, 1, None), proc(51, 50, 1, None)];
        let alive = find(&procs, "job", 1, Some((50, 1050)));
        assert_eq!(alive.confirmed, vec![50, 51]);
        let reused = find(&procs, "job", 1, Some((50, 7)));
        assert!(reused.confirmed.is_empty());
        assert_eq!(reused.unconfirmed, vec![50, 51]);
        assert!(held_reason(&reused).contains("cannot be confirmed"));
    }

    #[test]
    fn nothing_left_is_gone() {
        let mut killer = OrphanKiller::default();
        let verdict = killer.step(&[proc(1, 1, 1, None)], "job", 1, None, Duration::from_secs(1));
        assert_eq!(verdict, Verdict::Gone);
    }

    #[test]
    fn markers_need_job_lease_and_this_queue() {
        assert_eq!(
            parse_marker(
                b"A=1\0QUEUECTL_JOB_ID=j\0QUEUECTL_LEASE=4\0QUEUECTL_QUEUE=/q/queue.db\0",
                "/q/queue.db"
            ),
            Some(("j".to_string(), 4))
        );
        assert_eq!(
            parse_marker(
                b"QUEUECTL_JOB_ID=j\0QUEUECTL_LEASE=4\0QUEUECTL_QUEUE=/other/queue.db\0",
                "/q/queue.db"
            ),
            None
        );
        assert_eq!(
            parse_marker(b"QUEUECTL_JOB_ID=j\0QUEUECTL_LEASE=4\0", "/q/queue.db"),
            None
        );
        assert_eq!(
            parse_marker(b"QUEUECTL_JOB_ID=j\0QUEUECTL_QUEUE=/q/queue.db\0", "/q/queue.db"),
            None
        );
    }
}
