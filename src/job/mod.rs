//! The job model: what callers submit ([`JobSpec`]), what is stored ([`Job`]), its [`State`],
//! and the one validation path every entry point (CLI, library, spool) goes through.
//!
//! - `spec`: [`JobSpec`], [`Schedule`], the limits and [`JobSpec::validate`].
//! - `parse`: JSON text (object, array, NDJSON) into specs, with errors that name the field and
//!   the place in the batch.
//! - `strict`: JSON reading that refuses duplicate keys (serde_json keeps the last one).
//! - `command_line`: words typed after `queuectl add --` into the `sh -c` string that runs
//!   exactly them, and the rule for variable names given with `--env`.
//! - `model`: what is stored and shown: [`Job`], [`State`], [`Attempt`], [`Source`].
//! - `typed`: [`JobArgs`], a Rust type as a kind's arguments ([`JobSpec::typed`], [`Job::args`]).

mod command_line;
mod model;
mod parse;
mod spec;
mod strict;
mod typed;

pub use command_line::{check_env_name, shell_command_from_words};
pub use model::{Attempt, Job, Source, State};
pub use parse::{parse_jobs, parse_jobs_with, parse_ndjson, spec_from_value, GivenFields, KNOWN_FIELDS};
pub(crate) use spec::validate_kind;
pub use spec::{
    validate_id, JobSpec, Schedule, MAX_COMMAND_BYTES, MAX_DELAY_SECONDS, MAX_ID_BYTES, MAX_PAYLOAD_BYTES,
    MAX_RETRIES_LIMIT, MAX_TIMEOUT_SECONDS, PRIORITY_LIMIT, SHELL_KIND,
};
pub use typed::JobArgs;
