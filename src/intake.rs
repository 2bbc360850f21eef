//! Intake: the one path every entry point (CLI, library, spool) takes from validated job specs
//! to the rows a store inserts.

use crate::error::{Error, Result};
use crate::job::{JobSpec, Source};
use crate::store::NewJob;
use crate::time::Millis;
use std::collections::HashSet;

/// Turns validated specs into rows: resolves ids, checks duplicates within the batch, computes
/// `run_at`. The one path every entry point takes.
pub fn prepare_jobs(specs: Vec<(Option<String>, JobSpec)>, source: &Source, now: Millis) -> Result<Vec<NewJob>> {
    if specs.is_empty() {
        return Err(Error::InvalidJob(crate::error::InvalidJob::whole(
            "empty batch: no jobs given",
        )));
    }
    let mut seen = HashSet::with_capacity(specs.len());
    let mut jobs = Vec::with_capacity(specs.len());
    for (location, spec) in specs {
        spec.validate().map_err(|e| match &location {
            Some(l) => Error::InvalidJob(e.at(l.clone())),
            None => Error::InvalidJob(e),
        })?;
        let id = spec.id.clone().unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        if !seen.insert(id.clone()) {
            return Err(Error::InvalidJob(crate::error::InvalidJob {
                location: location.clone(),
                field: Some("id".into()),
                reason: format!("`{id}` appears more than once in the batch"),
            }));
        }
        let run_at = spec.schedule.run_at(now);
        jobs.push(NewJob {
            id,
            kind: spec.kind,
            command: spec.command,
            payload: spec.payload.map(|p| p.to_string()),
            max_retries: spec.max_retries,
            priority: spec.priority,
            run_at,
            created_at: now,
            timeout_seconds: spec.timeout_seconds,
            cwd: spec.cwd,
            env: if spec.env.is_empty() {
                None
            } else {
                serde_json::to_string(&spec.env).ok()
            },
            source: source.to_stored(),
            location,
        });
    }
    Ok(jobs)
}
