//! # queuectl
//!
//! A persistent background job queue for shell commands, as a library with a thin CLI on top.
//! Jobs arrive through the CLI, this library's API, or JSON files dropped into a spool
//! directory; all of them land in one SQLite file (or, for workers on many hosts, a PostgreSQL
//! schema). Worker pools claim jobs atomically, run them,
//! retry failures with exponential backoff (`delay = backoff_base ^ attempts` seconds) and move
//! jobs that used up their retries to the dead-letter queue.
//!
//! ## Layout
//!
//! - [`queue`]: [`Queue`], the front door: open a home, enqueue, inspect, wait, DLQ retry,
//!   recover, config. `Send + Sync`: share one between threads.
//! - [`job`]: the job model ([`JobSpec`], [`Job`], [`State`], [`Source`]), typed jobs
//!   ([`JobArgs`]) and the one validation path.
//! - [`intake`]: validated specs into rows (ids, `run_at`), the path every entry point takes.
//! - [`config`]: settings and their precedence (default < TOML file < environment <
//!   `config set` < job), settings in code, and per-kind policies ([`KindPolicy`]).
//! - [`backoff`]: the retry policy, a pure function.
//! - [`lifecycle`]: what the end of an attempt does to its job, a pure function (retries,
//!   [`Outcome::discard`], [`Outcome::retry_after`], timeouts).
//! - [`store`]: the [`Store`](store::Store) trait and its backends (SQLite, PostgreSQL); all
//!   SQL lives there.
//! - [`sqlite`]: enqueue inside the application's own SQLite transaction ([`sqlite::enqueue_tx`]):
//!   the job exists if and only if that transaction commits.
//! - `postgres` (feature `postgres`): the same on the application's PostgreSQL transaction
//!   (`postgres::enqueue_tx`).
//! - [`worker`]: the worker pool ([`PoolBuilder`], [`PoolHandle`], [`PoolReport`]), its events
//!   and shell hooks, and the registry of worker processes.
//! - [`executor`]: the plugin seam ([`Executor`], [`Outcome`], [`ExecContext`] with its
//!   [`CancelToken`]) and the built-in [`ShellExecutor`].
//! - [`testing`]: run an executor or typed handler without a pool; a throw-away [`TempQueue`](testing::TempQueue).
//! - [`shutdown`]: [`Shutdown`], the stop signal the caller controls (no signal handling inside).
//! - [`time`]: timestamps (RFC 3339 with milliseconds) and durations.
//! - [`spool`]: the spool directory protocol and its watcher.
//! - [`home`]: where a queue lives on disk.
//! - [`notify`]: the systemd notification protocol (`READY=1`, `WATCHDOG=1`, ...), no libsystemd.
//! - [`error`]: the one error type.
//!
//! [`serde`] and [`serde_json`] are re-exported, so typed jobs and payloads need no version
//! of their own in the embedding crate.
//!
//! ## Example
//!
//! Enqueue a shell job and a typed job, then run a pool until the queue is empty:
//!
//! ```
//! use queuectl::{ExecContext, Home, JobArgs, JobSpec, Outcome, PoolBuilder, Queue, Shutdown, State};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize)]
//! struct Greet {
//!     name: String,
//! }
//!
//! impl JobArgs for Greet {
//!     const KIND: &'static str = "greet";
//! }
//!
//! let dir = tempfile::tempdir()?;
//! let home = Home::new(dir.path());
//! let (queue, _) = Queue::init(&home)?;
//! queue.enqueue(JobSpec::shell("echo hello").with_id("job1").with_max_retries(2))?;
//! queue.enqueue(JobSpec::typed(&Greet { name: "Ada".into() })?.with_id("job2"))?;
//!
//! let report = PoolBuilder::new(&home)
//!     .threads(2)
//!     .job(|greet: Greet, _: &ExecContext| Outcome::success().with_output(format!("hello {}", greet.name), ""))
//!     .until_empty(true)
//!     .run(&Shutdown::new())?;
//! assert_eq!((report.attempts, report.completed, report.dead), (2, 2, 0));
//! assert_eq!(queue.get("job1")?.state, State::Completed);
//! assert_eq!(queue.get("job2")?.stdout.as_deref(), Some("hello Ada"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

pub mod backoff;
pub mod config;
pub mod error;
pub mod executor;
pub mod home;
pub mod intake;
pub mod job;
pub mod lifecycle;
pub mod notify;
#[cfg(feature = "postgres")]
pub mod postgres;
mod process;
pub mod queue;
pub mod shutdown;
pub mod spool;
pub mod sqlite;
pub mod store;
pub mod testing;
pub mod time;
pub mod worker;

pub use serde;
pub use serde_json;

pub use config::{KindPolicy, Settings};
pub use error::{Error, InvalidJob, Result};
pub use executor::{CancelReason, CancelToken, ExecContext, Executor, Outcome, Retry, ShellExecutor};
pub use home::Home;
pub use job::{Attempt, Job, JobArgs, JobSpec, Schedule, Source, State};
pub use queue::{Queue, Status, WaitReport};
pub use shutdown::Shutdown;
pub use store::AttemptOutcome;
pub use worker::{Observer, PoolBuilder, PoolHandle, PoolReport, WorkerEvent};
