//! # queuectl
//!
//! A persistent background job queue for shell commands, as a library with a thin CLI on top.
//! Jobs arrive through the CLI, this library's API, or JSON files dropped into a spool
//! directory; all of them land in one SQLite file. Worker pools claim jobs atomically, run them,
//! retry failures with exponential backoff (`delay = backoff_base ^ attempts` seconds) and move
//! jobs that used up their retries to the dead-letter queue.
//!
//! ## Layout
//!
//! - [`queue`]: [`Queue`], the front door: open a home, enqueue, inspect, DLQ retry, recover, config.
//! - [`job`]: the job model ([`JobSpec`], [`Job`], [`State`]) and the one validation path.
//! - [`config`]: settings and their precedence (default < TOML file < `config set` < job).
//! - [`backoff`]: the retry policy, a pure function.
//! - [`store`]: the SQLite store; all SQL lives there.
//! - [`worker`]: the worker pool and the registry of worker processes.
//! - [`spool`]: the spool directory protocol and its watcher.
//! - [`home`]: where a queue lives on disk.
//! - [`error`]: the one error type.
//!
//! ## Example
//!
//! ```
//! use queuectl::{Home, JobSpec, Queue, State};
//!
//! let dir = tempfile::tempdir()?;
//! let (mut queue, _) = Queue::init(&Home::new(dir.path()))?;
//! let id = queue.enqueue(JobSpec::shell("echo hello").with_id("job1").with_max_retries(2))?;
//! assert_eq!(id, "job1");
//! assert_eq!(queue.get("job1")?.state, State::Pending);
//! assert_eq!(queue.status()?.counts.pending, 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

pub mod backoff;
pub mod config;
pub mod error;
pub mod executor;
pub mod home;
pub mod hooks;
pub mod job;
pub mod queue;
pub mod shutdown;
pub mod spool;
pub mod store;
pub mod time;
pub mod worker;

pub use config::Settings;
pub use error::{Error, InvalidJob, Result};
pub use home::Home;
pub use job::{Attempt, Job, JobSpec, Schedule, Source, State};
pub use queue::{Queue, Status};
pub use shutdown::Shutdown;
