//! Jobs that record their runs. Each job has a tag (its id, or a name given in its command) and
//! two files of its own in the shared runs directory, so appends of different jobs never
//! interleave: `TAG.runs` gets `JOB_ID HOST start ATTEMPT` when a run begins and
//! `JOB_ID HOST end ATTEMPT` when it ends, and `TAG.overlap` a line if a run began while another
//! run of the same job held `TAG.lock` (`flock -n`). Overlap is detected by the lock, never by
//! comparing clock readings. The host is read from `/proc/sys/kernel/hostname`, which follows
//! the UTS namespace the job runs in.

use std::path::Path;

/// One line of a `TAG.runs` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// `QUEUECTL_JOB_ID` of the run.
    pub job: String,
    /// The host name the run saw.
    pub host: String,
    /// `start` or `end`.
    pub event: String,
    /// `QUEUECTL_ATTEMPT` of the run.
    pub attempt: u32,
}

/// The shell command of a job tagged `tag` that records its runs in `dir`, sleeping `sleep`
/// seconds between its start and end records.
pub fn command(dir: &Path, tag: &str, sleep: Option<u32>) -> String {
    assert!(
        tag.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'),
        "a tag is a file name: {tag:?}"
    );
    let base = format!("{}/{tag}", dir.display());
    let pause = sleep.map(|s| format!("sleep {s}; ")).unwrap_or_default();
    format!(
        "exec 9>>'{base}.lock'; if flock -n 9; then read h < /proc/sys/kernel/hostname; \
         echo \"$QUEUECTL_JOB_ID $h start $QUEUECTL_ATTEMPT\" >> '{base}.runs'; {pause}\
         echo \"$QUEUECTL_JOB_ID $h end $QUEUECTL_ATTEMPT\" >> '{base}.runs'; \
         else echo \"$QUEUECTL_JOB_ID overlap\" >> '{base}.overlap'; exit 1; fi"
    )
}

/// The records of the job tagged `tag`, in the order written (none if it never ran).
#[track_caller]
pub fn records(dir: &Path, tag: &str) -> Vec<Record> {
    let path = dir.join(format!("{tag}.runs"));
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => panic!("{}: {e}", path.display()),
    };
    text.lines()
        .map(|line| {
            let parts: Vec<&str> = line.split(' ').collect();
            match parts[..] {
                [job, host, event @ ("start" | "end"), attempt] => Record {
                    job: job.to_string(),
                    host: host.to_string(),
                    event: event.to_string(),
                    attempt: attempt
                        .parse()
                        .unwrap_or_else(|_| panic!("{}: bad attempt in {line:?}", path.display())),
                },
                _ => panic!("{}: malformed record {line:?}", path.display()),
            }
        })
        .collect()
}

/// Every overlap marker in `dir`: `TAG: contents`.
pub fn overlaps(dir: &Path) -> Vec<String> {
    let mut found: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| entries.filter_map(|e| e.ok()).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .filter(|entry| entry.file_name().to_string_lossy().ends_with(".overlap"))
        .map(|entry| {
            let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
            format!("{}: {}", entry.file_name().to_string_lossy(), text.trim())
        })
        .collect();
    found.sort();
    found
}

/// Whether the records show exactly one run, complete: a start and an end of the same job, on
/// one host, in one attempt. Returns that host.
pub fn single_complete_run(records: &[Record]) -> Option<&str> {
    match records {
        [start, end]
            if start.event == "start"
                && end.event == "end"
                && start.job == end.job
                && start.host == end.host
                && start.attempt == end.attempt =>
        {
            Some(start.host.as_str())
        }
        _ => None,
    }
}
