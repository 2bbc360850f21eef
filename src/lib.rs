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
//! - [`queue`]: [`Queue`], the front door: open a home, enqueue, inspect, DLQ retry, recover, config.
//! - [`job`]: the job model ([`JobSpec`], [`Job`], [`State`]) and the one validation path.
//! - [`intake`]: validated specs into rows (ids, `run_at`), the path every entry point takes.
//! - [`config`]: settings and their precedence (default < TOML file < environment <
//!   `config set` < job).
//! - [`backoff`]: the retry policy, a pure function.
//! - [`lifecycle`]: what the end of an attempt does to its job, a pure function.
//! - [`store`]: the [`Store`](store::Store) trait and its backends (SQLite, PostgreSQL); all
//!   SQL lives there.
//! - [`sqlite`]: enqueue inside the application's own SQLite transaction ([`sqlite::enqueue_tx`]):
//!   the job exists if and only if that transaction commits.
//! - `postgres` (feature `postgres`): the same on the application's PostgreSQL transaction
//!   (`postgres::enqueue_tx`).
//! - [`worker`]: the worker pool ([`PoolBuilder`]), its events and shell hooks, and the registry
//!   of worker processes.
//! - [`executor`]: the plugin seam ([`Executor`]) and the built-in [`ShellExecutor`].
//! - [`shutdown`]: [`Shutdown`], the stop signal the caller controls (no signal handling inside).
//! - [`time`]: timestamps (RFC 3339 with milliseconds) and durations.
//! - [`spool`]: the spool directory protocol and its watcher.
//! - [`home`]: where a queue lives on disk.
//! - [`notify`]: the systemd notification protocol (`READY=1`, `WATCHDOG=1`, ...), no libsystemd.
//! - [`error`]: the one error type.
//!
//! ## Example
//!
//! Enqueue a shell job and a job for a custom executor, then run a pool until the queue is empty:
//!
//! ```
//! use queuectl::{ExecContext, Home, Job, JobSpec, Outcome, PoolBuilder, Queue, Shutdown, State};
//!
//! let dir = tempfile::tempdir()?;
//! let home = Home::new(dir.path());
//! let (mut queue, _) = Queue::init(&home)?;
//! queue.enqueue(JobSpec::shell("echo hello").with_id("job1").with_max_retries(2))?;
//! queue.enqueue(JobSpec::kind("greet", serde_json::json!({"name": "Ada"})).with_id("job2"))?;
//!
//! let ran = PoolBuilder::new(&home)
//!     .threads(2)
//!     .executor("greet", |job: &Job, _: &ExecContext| {
//!         let name = job.payload.as_ref().and_then(|p| p["name"].as_str()).unwrap_or("?");
//!         Outcome::success().with_output(format!("hello {name}"), "")
//!     })
//!     .until_empty(true)
//!     .run(&Shutdown::new())?;
//! assert_eq!(ran, 2);
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
pub mod time;
pub mod worker;

pub use config::Settings;
pub use error::{Error, InvalidJob, Result};
pub use executor::{ExecContext, Executor, Outcome, ShellExecutor};
pub use home::Home;
pub use job::{Attempt, Job, JobSpec, Schedule, Source, State};
pub use queue::{Queue, Status};
pub use shutdown::Shutdown;
pub use worker::{Observer, PoolBuilder, WorkerEvent};
