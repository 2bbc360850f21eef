//! The row types every backend reads and writes: what the rest of queuectl hands to a
//! [`Store`](super::Store) and gets back from it.

use crate::error::Error;
use crate::job::State;
use crate::time::Millis;
use std::path::PathBuf;

/// The most bytes of each output stream kept in an attempt's history row.
pub const HISTORY_TAIL_BYTES: usize = 4096;

/// A validated job ready to insert.
#[derive(Debug, Clone)]
pub struct NewJob {
    /// The resolved id.
    pub id: String,
    /// Executor kind.
    pub kind: String,
    /// Shell command.
    pub command: String,
    /// Payload as JSON text.
    pub payload: Option<String>,
    /// The job's own max_retries.
    pub max_retries: Option<u32>,
    /// Priority.
    pub priority: i64,
    /// First run time.
    pub run_at: Millis,
    /// When it was accepted: the same clock reading `run_at` was computed from, so a delay
    /// reads back exactly as `run_at - created_at`.
    pub created_at: Millis,
    /// Own timeout.
    pub timeout_seconds: Option<u64>,
    /// Working directory.
    pub cwd: Option<String>,
    /// Environment as a JSON object, if any.
    pub env: Option<String>,
    /// `cli`, `api` or `spool:NAME`.
    pub source: String,
    /// Where it was in its batch, for error messages.
    pub location: Option<String>,
}

/// Counts of jobs per state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StateCounts {
    /// Jobs in `pending`.
    pub pending: u64,
    /// Jobs in `processing`.
    pub processing: u64,
    /// Jobs in `completed`.
    pub completed: u64,
    /// Jobs in `failed` (retry scheduled).
    pub failed: u64,
    /// Jobs in `dead` (the DLQ).
    pub dead: u64,
}

impl StateCounts {
    /// The count for one state.
    pub fn get(&self, state: State) -> u64 {
        match state {
            State::Pending => self.pending,
            State::Processing => self.processing,
            State::Completed => self.completed,
            State::Failed => self.failed,
            State::Dead => self.dead,
        }
    }

    /// All jobs.
    pub fn total(&self) -> u64 {
        self.pending + self.processing + self.completed + self.failed + self.dead
    }
}

/// A worker process as recorded in the `workers` table.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerRecord {
    /// Unique id of this worker process (`host:pid:start`).
    pub id: String,
    /// Its process id.
    pub pid: u32,
    /// The host it runs on.
    pub host: String,
    /// The process start time from `/proc/PID/stat`, to detect PID reuse.
    pub proc_start: Option<u64>,
    /// When it started.
    pub started_at: Millis,
    /// Its last heartbeat.
    pub heartbeat_at: Millis,
    /// Its thread count.
    pub threads: u32,
    /// The job kinds it runs.
    pub kinds: Vec<String>,
    /// JSON array describing its busy threads.
    pub slots: serde_json::Value,
    /// True once it has been asked to stop.
    pub stopping: bool,
    /// The queuectl version it runs.
    pub version: String,
}

/// The end of one attempt, to record.
#[derive(Debug, Clone)]
pub struct FinishedAttempt {
    /// The job's `seq`.
    pub job_seq: i64,
    /// The claim this attempt ran under ([`Job::lease`](crate::job::Job::lease) as claimed); the result applies only
    /// while that claim is still the job's current one.
    pub lease: i64,
    /// The job's `attempts` after this attempt (unchanged for interrupted attempts).
    pub attempts: u32,
    /// How the attempt ended.
    pub outcome: AttemptOutcome,
    /// The job's next state.
    pub new_state: State,
    /// The job's next `run_at` (for retries and released jobs).
    pub run_at: Option<Millis>,
    /// When the attempt started.
    pub started_at: Option<Millis>,
    /// When it ended.
    pub finished_at: Millis,
    /// Exit code, if the process exited.
    pub exit_code: Option<i32>,
    /// Error text for failures.
    pub error: Option<String>,
    /// Captured standard output (already capped).
    pub stdout: Option<String>,
    /// Captured standard error (already capped).
    pub stderr: Option<String>,
}

/// One spool file's jobs, for [`Store::ingest_spool_files`](super::Store::ingest_spool_files).
#[derive(Debug, Clone)]
pub struct SpoolFileJobs {
    /// The file's identity (name, device, inode, size, mtime).
    pub file_key: String,
    /// The file's name.
    pub name: String,
    /// Its validated jobs.
    pub jobs: Vec<NewJob>,
}

/// What became of one spool file in [`Store::ingest_spool_files`](super::Store::ingest_spool_files).
#[derive(Debug)]
pub enum SpoolFileResult {
    /// Its jobs were inserted.
    Inserted(usize),
    /// It had been committed before (a crash came between commit and unlink).
    AlreadyIngested,
    /// It was refused (e.g. an id that already exists from another source).
    Refused(Error),
}

/// What `list` asks for.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    /// Only jobs in this state.
    pub state: Option<State>,
    /// Only jobs whose command contains this text (case-sensitive, taken literally).
    pub search: Option<String>,
    /// At most this many jobs, counted from the end the order starts at.
    pub limit: Option<u64>,
    /// Oldest first (enqueue order) instead of newest first.
    pub oldest_first: bool,
}

/// What a backup wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupReport {
    /// The copy.
    pub path: PathBuf,
    /// Its schema version (the source's).
    pub schema_version: i64,
    /// Its jobs per state, counted in the copy itself.
    pub counts: StateCounts,
}

/// Whether an existing destination may be replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overwrite {
    /// Refuse a destination that exists.
    Refuse,
    /// Replace it (atomically: it holds either the old file or the whole copy).
    Replace,
}

/// How one attempt ended, as recorded in its history row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AttemptOutcome {
    /// The job succeeded.
    Completed,
    /// The job failed (a retry or the DLQ follows).
    Failed,
    /// Its worker died; recovered by another worker.
    Lost,
    /// Shutdown stopped it; it runs again without counting an attempt.
    Interrupted,
}

impl AttemptOutcome {
    /// The stored name: `completed`, `failed`, `lost` or `interrupted`.
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptOutcome::Completed => "completed",
            AttemptOutcome::Failed => "failed",
            AttemptOutcome::Lost => "lost",
            AttemptOutcome::Interrupted => "interrupted",
        }
    }

    /// Whether the attempt counts towards `max_retries` (an interrupted one does not).
    pub fn counts(self) -> bool {
        self != AttemptOutcome::Interrupted
    }
}

impl std::fmt::Display for AttemptOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What [`Store::reap_workers`](super::Store::reap_workers) did.
#[derive(Debug, Default)]
pub struct ReapOutcome {
    /// Dead workers whose rows were removed.
    pub removed: Vec<WorkerRecord>,
    /// Workers judged alive.
    pub live: Vec<WorkerRecord>,
    /// Jobs recovered from dead workers, with what was recorded for each.
    pub recovered: Vec<(crate::job::Job, FinishedAttempt)>,
}
