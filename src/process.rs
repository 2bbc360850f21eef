//! Facts about processes on this host, read from `/proc` and the kernel: whether a process is
//! alive, when it started (PIDs get reused, so a PID alone names nobody for long), and its
//! process group and session.

/// Process group, session and start time from a `/proc/PID/stat` line; `None` for a zombie
/// (it has exited and holds nothing but its PID) or a line that does not parse.
pub(crate) fn parse_stat(stat: &str) -> Option<(u32, u32, u64)> {
    // The command name (field 2) may hold spaces and parentheses: split after its last ')'.
    let fields: Vec<&str> = stat[stat.rfind(')')? + 1..].split_whitespace().collect();
    // fields[0] is field 3 (the state), so field N is fields[N - 3].
    if fields.first() == Some(&"Z") {
        return None;
    }
    let pgid = fields.get(2)?.parse().ok()?;
    let sid = fields.get(3)?.parse().ok()?;
    let start = fields.get(19)?.parse().ok()?;
    Some((pgid, sid, start))
}

/// The start time of a live process (field 22 of `/proc/PID/stat`, in clock ticks since boot),
/// or `None` if there is no such process or it is a zombie.
pub fn process_start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&stat).map(|(_, _, start)| start)
}

/// True if a process with this PID exists (and, when given, started at `start_time`).
pub fn process_alive(pid: u32, start_time: Option<u64>) -> bool {
    if pid == 0 || pid > i32::MAX as u32 {
        return false;
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // A zombie has exited: it holds no jobs, only its parent has not reaped it yet.
        Ok(stat) => match parse_stat(&stat) {
            Some((_, _, actual)) => start_time.map(|expected| expected == actual).unwrap_or(true),
            None => false,
        },
        Err(_) => {
            // No /proc entry we can read (no /proc, or hidepid hides other users' processes):
            // ask the kernel. EPERM means the process exists but is not ours to signal.
            // SAFETY: signal 0 only checks for the process's existence.
            let rc = unsafe { libc::kill(pid as libc::pid_t, 0) };
            rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_wrong_start_time_is_not() {
        let pid = std::process::id();
        let start = process_start_time(pid).expect("start time of self");
        assert!(process_alive(pid, Some(start)));
        assert!(!process_alive(pid, Some(start + 1)));
        assert!(!process_alive(0, None));
    }

    #[test]
    fn stat_lines_parse_with_odd_command_names_and_zombies_are_skipped() {
        let line = "123 (a b) c) S 1 77 88 0 -1 4194304 0 0 0 0 0 0 0 0 20 0 1 0 4242 0 0";
        assert_eq!(parse_stat(line), Some((77, 88, 4242)));
        let zombie = "123 (x) Z 1 77 88 0 -1 4194304 0 0 0 0 0 0 0 0 20 0 1 0 4242 0 0";
        assert_eq!(parse_stat(zombie), None);
    }
}
