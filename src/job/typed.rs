//! Typed jobs: a Rust type as a job kind's arguments ([`JobArgs`]), instead of hand-written
//! JSON in and out of [`JobSpec::payload`] and [`Job::payload`].
//!
//! ```
//! use queuectl::{Job, JobArgs, JobSpec};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Debug, PartialEq, Serialize, Deserialize)]
//! struct Resize {
//!     path: String,
//!     width: u32,
//! }
//!
//! impl JobArgs for Resize {
//!     const KIND: &'static str = "resize";
//! }
//!
//! let spec = JobSpec::typed(&Resize { path: "a.png".into(), width: 64 })?;
//! assert_eq!(spec.kind, "resize");
//! let job = Job::from_spec(spec, 0);
//! assert_eq!(job.args::<Resize>()?, Resize { path: "a.png".into(), width: 64 });
//! # Ok::<(), queuectl::Error>(())
//! ```

use super::{Job, JobSpec};
use crate::error::{Error, InvalidJob, Result};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// The arguments of one job kind as a Rust type: serialised into the job's payload on enqueue
/// ([`JobSpec::typed`]) and read back by the handler ([`Job::args`],
/// [`PoolBuilder::job`](crate::PoolBuilder::job)).
pub trait JobArgs: Serialize + DeserializeOwned {
    /// The job kind these arguments belong to (1 to 64 letters, digits, `_`, `-`, `.`, `:`).
    const KIND: &'static str;
}

impl JobSpec {
    /// A job of kind `A::KIND` whose payload is `args` as JSON. Fails only if `args` cannot be
    /// written as JSON (a map with keys that are not strings, a serialiser that errs).
    pub fn typed<A: JobArgs>(args: &A) -> Result<JobSpec> {
        let payload = serde_json::to_value(args).map_err(|e| {
            Error::InvalidJob(InvalidJob::field(
                "payload",
                format!("(kind `{}`) could not be written as JSON: {e}", A::KIND),
            ))
        })?;
        Ok(JobSpec::kind(A::KIND, payload))
    }
}

impl Job {
    /// The job's payload read as `A`. Refuses a job of another kind, and names the field of a
    /// payload that does not fit `A` (`payload.width`, `payload.items[2].name`; `payload` itself
    /// for a missing field, which the message names).
    pub fn args<A: JobArgs>(&self) -> Result<A> {
        if self.kind != A::KIND {
            return Err(Error::InvalidArgument(format!(
                "job `{}` is of kind `{}`, not `{}`",
                self.id,
                self.kind,
                A::KIND
            )));
        }
        let null = serde_json::Value::Null;
        let payload = self.payload.as_ref().unwrap_or(&null);
        serde_path_to_error::deserialize(payload).map_err(|e| {
            let path = e.path().to_string();
            let field = if path == "." || path.is_empty() {
                "payload".to_string()
            } else {
                format!("payload.{path}")
            };
            Error::InvalidJob(InvalidJob::field(
                &field,
                format!("(kind `{}`): {}", A::KIND, e.inner()),
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Resize {
        path: String,
        width: u32,
        #[serde(default)]
        tags: Vec<Tag>,
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Tag {
        name: String,
    }

    impl JobArgs for Resize {
        const KIND: &'static str = "resize";
    }

    fn job(payload: serde_json::Value) -> Job {
        Job::from_spec(JobSpec::kind("resize", payload).with_id("j1"), 0)
    }

    #[test]
    fn typed_args_round_trip_through_the_payload() {
        let args = Resize {
            path: "a.png".into(),
            width: 64,
            tags: vec![Tag { name: "x".into() }],
        };
        let spec = JobSpec::typed(&args).unwrap();
        assert_eq!(spec.kind, "resize");
        assert_eq!(spec.payload.as_ref().unwrap()["width"], 64);
        assert_eq!(Job::from_spec(spec, 0).args::<Resize>().unwrap(), args);
    }

    #[test]
    fn a_payload_that_does_not_fit_names_the_field() {
        let e = job(serde_json::json!({"path": "a", "width": "big"}))
            .args::<Resize>()
            .unwrap_err()
            .to_string();
        assert!(e.contains("field `payload.width`"), "{e}");
        assert!(e.contains("invalid type: string \"big\""), "{e}");
        let e = job(serde_json::json!({"path": "a", "width": 1, "tags": [{"name": "x"}, {}]}))
            .args::<Resize>()
            .unwrap_err()
            .to_string();
        assert!(e.contains("field `payload.tags[1]`"), "{e}");
        assert!(e.contains("missing field `name`"), "{e}");
        let e = job(serde_json::json!({"path": "a"}))
            .args::<Resize>()
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("field `payload` (kind `resize`): missing field `width`"),
            "{e}"
        );
    }

    #[test]
    fn a_job_of_another_kind_is_refused() {
        let job = Job::from_spec(JobSpec::kind("crop", serde_json::json!({})).with_id("j2"), 0);
        let e = job.args::<Resize>().unwrap_err().to_string();
        assert_eq!(e, "job `j2` is of kind `crop`, not `resize`");
    }
}
