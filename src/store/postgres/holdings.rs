//! What a store's worker holds, so that a transaction lost with its connection (or with the
//! server's last commits) leaves no job stuck.
//!
//! Two things can go wrong between a worker and a server it reaches over a network:
//!
//! - The connection is lost while `finish_and_claim` commits: the server may have committed
//!   it or not. If it did, its claims are `processing` under this worker, which never received
//!   them and so never runs them; and a retried finish fails its lease guard although the
//!   result was recorded.
//! - The server crashes and loses its last commits (worker transactions commit without waiting
//!   for the WAL flush, like SQLite's `synchronous = NORMAL`): a finish the worker saw commit
//!   is gone, and the job is `processing` under a worker that has moved on.
//!
//! Either way the worker is alive, so no reaper would ever recover those jobs. The store
//! therefore remembers the jobs it handed to each worker and not yet finished, and after its
//! connection was replaced, the worker's next `finish_and_claim` first puts back to `pending`
//! every job the server says that worker holds and the store does not (without counting an
//! attempt: such a job runs again, as after any crash). A finish whose guard fails but that a
//! lost transaction recorded after all (its history row is there) counts as applied.

use super::prepared;
use crate::error::Result;
use crate::job::Job;
use crate::store::FinishedAttempt;
use crate::time::Millis;
use postgres::{GenericClient, Statement};
use std::collections::{HashMap, HashSet};

/// The jobs a store's workers hold, as far as the store knows.
#[derive(Debug, Default)]
pub(super) struct Holdings {
    /// Jobs claimed through this store and not yet finished through it, by worker: their `seq`.
    held: HashMap<String, HashSet<i64>>,
    /// Finishes sent in a transaction whose connection was lost: (seq, lease, finished_at,
    /// worker).
    doubtful: Vec<(i64, i64, Millis, String)>,
    /// The connection was replaced since the last committed `finish_and_claim`: the server's
    /// view of what the workers hold may differ from `held`.
    unsure: bool,
}

impl Holdings {
    /// Whether the connection was replaced since the last committed `finish_and_claim`.
    pub(super) fn is_unsure(&self) -> bool {
        self.unsure
    }

    /// After a connection was replaced: check before trusting the server's view again.
    pub(super) fn connection_replaced(&mut self) {
        self.unsure = true;
    }

    /// After a `finish_and_claim` committed: `finished` are no longer held, `claimed` are.
    pub(super) fn committed(&mut self, worker: &str, finished: &[FinishedAttempt], claimed: &[Job]) {
        let held = self.held.entry(worker.to_string()).or_default();
        for f in finished {
            held.remove(&f.job_seq);
        }
        held.extend(claimed.iter().map(|job| job.seq));
        if held.is_empty() {
            self.held.remove(worker);
        }
        self.doubtful.clear();
        self.unsure = false;
    }

    /// After a `finish_and_claim` failed with its connection lost: its finishes may have
    /// committed, and so may its claims.
    pub(super) fn lost(&mut self, worker: &str, finished: &[FinishedAttempt]) {
        self.doubtful.extend(
            finished
                .iter()
                .map(|f| (f.job_seq, f.lease, f.finished_at, worker.to_string())),
        );
        self.unsure = true;
    }

    /// If unsure, puts back to `pending` every job `processing` under `worker` that it does
    /// not hold (nor finishes now).
    pub(super) fn release_unheld(
        &self,
        tx: &mut impl GenericClient,
        cache: &mut HashMap<String, Statement>,
        worker: &str,
        finishing: &[FinishedAttempt],
        now: Millis,
    ) -> Result<()> {
        if !self.unsure {
            return Ok(());
        }
        let mut keep: Vec<i64> = self
            .held
            .get(worker)
            .map(|held| held.iter().copied().collect())
            .unwrap_or_default();
        keep.extend(finishing.iter().map(|f| f.job_seq));
        let statement = prepared(
            tx,
            cache,
            "UPDATE jobs SET state = 'pending', worker = NULL, updated_at = $3 \
             WHERE state = 'processing' AND worker = $1 AND seq <> ALL($2)",
        )?;
        tx.execute(&statement, &[&worker, &keep, &now])?;
        Ok(())
    }

    /// Whether a lost transaction recorded this attempt after all (its history row is there).
    pub(super) fn recorded_before(
        &self,
        tx: &mut impl GenericClient,
        cache: &mut HashMap<String, Statement>,
        worker: &str,
        f: &FinishedAttempt,
        attempt_number: u32,
    ) -> Result<bool> {
        let doubtful = self
            .doubtful
            .iter()
            .any(|(seq, lease, at, w)| *seq == f.job_seq && *lease == f.lease && *at == f.finished_at && w == worker);
        if !doubtful {
            return Ok(false);
        }
        let statement = prepared(
            tx,
            cache,
            "SELECT EXISTS (SELECT 1 FROM attempts WHERE job_seq = $1 AND worker = $2 AND finished_at = $3 \
             AND outcome = $4 AND attempt = $5)",
        )?;
        let outcome: &str = f.outcome.as_str();
        Ok(tx
            .query_one(
                &statement,
                &[
                    &f.job_seq,
                    &worker,
                    &f.finished_at,
                    &outcome,
                    &i64::from(attempt_number),
                ],
            )?
            .try_get(0)?)
    }
}
