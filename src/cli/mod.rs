//! The command line: clap definitions and printing only. Every decision lives in the library.

pub mod add;
pub mod backup;
pub mod completions;
pub mod config_cmd;
pub mod dlq;
pub mod enqueue;
pub mod health;
pub mod ids;
pub mod inspect;
pub mod list;
pub mod man;
pub mod migrate;
pub mod output;
pub mod sd_notify;
pub mod single_instance;
pub mod spool_cmd;
pub mod status;
pub mod usage;
pub mod wait;
pub mod worker_cmd;

use clap::{Parser, Subcommand};
use queuectl::{Home, Queue};
use std::path::PathBuf;

/// Opens the queue for a command that only reads it, or acts without needing settings
/// (`status`, `list`, `show`, `worker stop`, `recover`, ...): a broken config file must not
/// keep anyone from looking at the queue or stopping workers, so it is one warning line and
/// the command goes on with the built-in defaults and `config set` values.
pub fn open_for_reading(home: &Home) -> anyhow::Result<Queue> {
    let mut queue = Queue::open(home)?;
    if let Some(problem) = queue.tolerate_broken_config_file() {
        eprintln!(
            "queuectl: warning: {problem}; ignoring the config file for this command (defaults and `config set` values apply)"
        );
    }
    Ok(queue)
}

/// Warns (one line each) when the config file or its directory is writable by other users.
pub fn warn_about_config_permissions(home: &Home) {
    for warning in queuectl::config::permission_warnings(&home.config_path()) {
        eprintln!("queuectl: warning: {warning}");
    }
}

/// The exit code of a run that finished but saw jobs die: `wait` when a waited-for job is dead,
/// `worker start --until-empty/--until-idle` when a job moved to the DLQ during the run.
pub const EXIT_JOBS_DEAD: i32 = 3;

/// A command that did its work but must end with a non-zero exit code to tell scripts how it
/// went (jobs died). Not an error: the binary prints the message without "error:".
#[derive(Debug)]
pub struct Verdict {
    /// The process exit code.
    pub code: i32,
    /// One line for stderr.
    pub message: String,
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Verdict {}

/// "1 job", "3 jobs".
pub fn jobs(n: u64) -> String {
    format!("{n} job{}", if n == 1 { "" } else { "s" })
}

/// A persistent background job queue for shell commands.
///
/// Jobs persist in one SQLite file (queue.db) in the queue home: --home DIR, else $QUEUECTL_HOME,
/// else the current directory; or in PostgreSQL for workers on many hosts (--db postgres://...). Exit codes: 0 ok, 2 bad input or usage, 3 jobs died (`wait`,
/// `worker start --until-empty/--until-idle`), 1 anything else.
#[derive(Debug, Parser)]
#[command(name = "queuectl", version, propagate_version = true, max_term_width = 100)]
#[command(
    after_help = "Example:\n  queuectl init\n  queuectl enqueue '{\"id\":\"job1\",\"command\":\"echo hi\"}'\n  queuectl worker start --count 2\n  queuectl status"
)]
pub struct Cli {
    /// The queue home (holds queue.db, config/queuectl.toml and spool/)
    #[arg(long, global = true, env = "QUEUECTL_HOME", value_name = "DIR")]
    pub home: Option<PathBuf>,

    /// Keep the jobs here instead of HOME/queue.db: a SQLite file, or
    /// postgres://user@host/dbname[?schema=NAME] (default schema: queuectl)
    #[arg(long, global = true, env = "QUEUECTL_DB", value_name = "PATH|URL")]
    pub db: Option<String>,

    /// What to do
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create the database, a documented config file and the spool directories
    #[command(
        after_help = "Example:\n  queuectl init\n  queuectl --home /var/lib/queuectl init\n\nRunning it again keeps every job."
    )]
    Init,

    /// Add jobs: one JSON object, a JSON array, NDJSON, flags, or `-- CMD [ARGS...]` (as `add`)
    #[command(
        after_help = "Examples:\n  queuectl enqueue '{\"id\":\"job1\",\"command\":\"echo hi\"}'\n  queuectl enqueue --command 'make backup' --max-retries 5 --delay 30s\n  queuectl enqueue --run-at 'tomorrow 9am' -- make -j4\n  queuectl enqueue --file jobs.ndjson\n  generate-jobs | queuectl enqueue -\n  queuectl enqueue --file nightly.ndjson --delay 1h --priority -5\n\nJob fields: id, command, kind, payload, max_retries, priority, run_at (RFC 3339),\ndelay_seconds, timeout_seconds, cwd, env. A batch is all or nothing. The flags --id,\n--max-retries, --priority, --delay, --run-at, --timeout, --cwd, --env and --env-pass apply to\nevery job of JSON input (--id only to a single job); a job that sets the same field itself is\nrefused. `enqueue -- CMD [ARGS...]` is `queuectl add CMD [ARGS...]`: see `queuectl add --help`.\n--command and JSON jobs run in the queue home unless --cwd (or their `cwd`) says otherwise."
    )]
    Enqueue(enqueue::EnqueueArgs),

    /// Add one job: the command as you would type it, run from the current directory
    #[command(
        after_help = "Examples:\n  queuectl add make -j4\n  queuectl add --priority 5 -- ./build.sh --release\n  queuectl add -- 'make && make install'\n  queuectl add --run-at 'tomorrow 9am' --env-pass HOME -- rsync -a src/ backup/\n\nSeveral words are run exactly as typed: each is one argument, whatever it holds (spaces,\nquotes, $, *), quoted for `sh -c`. Exactly one word is a shell command string used as is,\nso pass shell syntax (&&, |, >, $VAR) as one quoted word. Options go before the command:\neverything from the command on is the command's.\n\nThe job runs in the directory `add` was run from (stored as an absolute path) unless --cwd DIR.\n--run-at takes RFC 3339, a local date-time (2026-12-01 14:30), a date (local midnight), a time of\nday (14:30, 9am, 9:15pm: the next one), tomorrow [TIME], [next] WEEKDAY [TIME] (the first such\nday still ahead), in DURATION or now, in the local time zone (TZ honoured).\n\n`queuectl enqueue [OPTIONS] -- CMD [ARGS...]` does the same."
    )]
    Add(add::AddArgs),

    /// List jobs, newest first: short ids, local times, when each runs next
    #[command(
        after_help = "Examples:\n  queuectl list --state pending\n  queuectl list --state dead --limit 50 --json\n  queuectl list --search backup --oldest-first\n  queuectl list --format id,state,attempts --utc\n\nThe table shows generated ids by their first 8 characters (longer when needed to stay\nunique); any command taking an id accepts that form, or any unique prefix of 4 or more.\nNEXT is `now` or `in 5m 3s` for a waiting job, `running`, or the finish time.\n--format fields: id, short_id, state, attempts, runs, max_runs, priority, kind, command,\ncreated, updated, run_at, next, started, finished, exit_code, worker, last_error, source."
    )]
    List(list::ListArgs),

    /// Show one job whole: every field, its attempt history, last error and output
    #[command(after_help = "Example:\n  queuectl show job1")]
    Show(inspect::ShowArgs),

    /// Print a job's captured stdout (to stdout) and stderr (to stderr)
    #[command(after_help = "Example:\n  queuectl logs job1")]
    Logs(inspect::LogsArgs),

    /// Job counts per state and the live workers
    #[command(after_help = "Example:\n  queuectl status --json")]
    Status(status::StatusArgs),

    /// The dead-letter queue: jobs whose retries are used up
    #[command(subcommand, after_help = "Examples:\n  queuectl dlq list\n  queuectl dlq retry job1")]
    Dlq(dlq::DlqCommand),

    /// Read and change settings (default < config/queuectl.toml < QUEUECTL_<KEY> < config set < job)
    #[command(
        subcommand,
        after_help = "Examples:\n  queuectl config set max-retries 5\n  queuectl config list"
    )]
    Config(config_cmd::ConfigCommand),

    /// The spool directory other programs drop job files into
    #[command(
        subcommand,
        after_help = "Examples:\n  queuectl spool ingest\n  queuectl spool watch\n  queuectl spool failed"
    )]
    Spool(spool_cmd::SpoolCommand),

    /// Start and stop workers
    #[command(
        subcommand,
        after_help = "Examples:\n  queuectl worker start --count 2\n  queuectl worker stop"
    )]
    Worker(worker_cmd::WorkerCommand),

    /// Block until the given jobs (or all jobs) are completed or dead
    #[command(
        after_help = "Examples:\n  queuectl wait job1 job2 --timeout 60s\n  queuectl wait              # every job\n\nExit codes: 0 all completed, 3 all finished but some are dead (in the DLQ), 1 timeout,\n2 unknown id."
    )]
    Wait(wait::WaitArgs),

    /// Recover jobs stuck in processing whose worker is gone
    #[command(
        after_help = "Example:\n  queuectl recover\n\nEach recovered job counts as a failed attempt (error \"worker lost\")."
    )]
    Recover,

    /// Write a consistent copy of the queue database while workers run
    #[command(
        after_help = "Examples:\n  queuectl backup /var/backups/queue.db\n  queuectl backup --force /var/backups/queue.db\n\nThe copy is written beside FILE under a temporary name and renamed when complete (mode\n0600); it is a queue database: `queuectl --db FILE status` reads it. Restore by stopping\nthe workers and putting the copy in place of queue.db."
    )]
    Backup(backup::BackupArgs),

    /// Upgrade the database to this queuectl's schema, writing a backup first
    #[command(
        after_help = "Example:\n  queuectl migrate\n\nThe backup is queue.db.bak-v{OLD VERSION}-{UTC TIME} beside the database. On a current\ndatabase it changes nothing and says so. `init` and `worker start` migrate the same way;\nevery other command refuses an older schema (exit 2)."
    )]
    Migrate(migrate::MigrateArgs),

    /// Check the queue for a monitor: exit 0 healthy, 1 unhealthy (one line per failed check)
    #[command(
        after_help = "Examples:\n  queuectl health\n  queuectl health --max-pending-age 10m --min-workers 2\n  queuectl health --json\n\nChecks: the database answers, the settings are valid, and with the flags the oldest due\njob has not waited longer than --max-pending-age and at least --min-workers worker threads\nare live. A missing or uninitialised home is unhealthy (1); bad flags exit 2."
    )]
    Health(health::HealthArgs),

    /// Print a shell completion script (states for --state; job ids too in bash and zsh)
    #[command(after_help = "Example:\n  queuectl completions bash > /etc/bash_completion.d/queuectl")]
    Completions {
        /// The shell
        shell: clap_complete::Shell,
    },

    /// Write man pages generated from this help (queuectl.1 and one page per subcommand)
    #[command(hide = true, after_help = "Example:\n  queuectl man --dir ~/.local/share/man/man1")]
    Man(man::ManArgs),
}
