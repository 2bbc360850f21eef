//! The transactions that change jobs' states: enqueue (and spool ingestion), the worker's
//! finish-and-claim, reaping lost workers, and DLQ retries.

use super::listen::Listener;
use super::reads::{row_to_job, rows_to_jobs, workers_in, JOB_COLUMNS};
use super::{prepared, Conn};
use crate::error::{Error, Result};
use crate::job::Job;
use crate::store::{
    AttemptOutcome, FinishedAttempt, NewJob, ReapOutcome, SpoolFileJobs, SpoolFileResult, WorkerRecord,
    HISTORY_TAIL_BYTES,
};
use crate::time::{now_ms, Millis};
use postgres::{GenericClient, Statement};
use std::collections::{HashMap, HashSet};

/// Inserts a batch in one statement (arrays unnested in batch order, so `seq` follows it),
/// skipping ids that exist; any skipped id fails the batch with the first clashing job's
/// place, exactly as a row-by-row insert would have: an id seen earlier in the batch, or one
/// that was already in the table.
fn insert_jobs_in(
    tx: &mut impl GenericClient,
    cache: &mut HashMap<String, Statement>,
    jobs: &[NewJob],
) -> Result<()> {
    if jobs.is_empty() {
        return Ok(());
    }
    let statement = prepared(
        tx,
        cache,
        "INSERT INTO jobs (id, kind, command, payload, state, attempts, max_retries, priority, run_at, \
         timeout_seconds, cwd, env, created_at, updated_at, source) \
         SELECT id, kind, command, payload, 'pending', 0, max_retries, priority, run_at, timeout_seconds, cwd, \
         env, created_at, created_at, source \
         FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int8[], $6::int8[], $7::int8[], \
                     $8::int8[], $9::text[], $10::text[], $11::int8[], $12::text[]) WITH ORDINALITY \
              AS batch (id, kind, command, payload, max_retries, priority, run_at, timeout_seconds, cwd, env, \
                        created_at, source, place) \
         ORDER BY place \
         ON CONFLICT (id) DO NOTHING RETURNING id",
    )?;
    let ids: Vec<&str> = jobs.iter().map(|j| j.id.as_str()).collect();
    let kinds: Vec<&str> = jobs.iter().map(|j| j.kind.as_str()).collect();
    let commands: Vec<&str> = jobs.iter().map(|j| j.command.as_str()).collect();
    let payloads: Vec<Option<&str>> = jobs.iter().map(|j| j.payload.as_deref()).collect();
    let max_retries: Vec<Option<i64>> = jobs.iter().map(|j| j.max_retries.map(i64::from)).collect();
    let priorities: Vec<i64> = jobs.iter().map(|j| j.priority).collect();
    let run_at: Vec<i64> = jobs.iter().map(|j| j.run_at).collect();
    let timeouts: Vec<Option<i64>> = jobs
        .iter()
        .map(|j| j.timeout_seconds.map(|t| t.min(i64::MAX as u64) as i64))
        .collect();
    let cwds: Vec<Option<&str>> = jobs.iter().map(|j| j.cwd.as_deref()).collect();
    let envs: Vec<Option<&str>> = jobs.iter().map(|j| j.env.as_deref()).collect();
    let created: Vec<i64> = jobs.iter().map(|j| j.created_at).collect();
    let sources: Vec<&str> = jobs.iter().map(|j| j.source.as_str()).collect();
    let rows = tx.query(
        &statement,
        &[
            &ids,
            &kinds,
            &commands,
            &payloads,
            &max_retries,
            &priorities,
            &run_at,
            &timeouts,
            &cwds,
            &envs,
            &created,
            &sources,
        ],
    )?;
    if rows.len() == jobs.len() {
        return Ok(());
    }
    let inserted: HashSet<String> = rows.iter().map(|r| r.try_get(0)).collect::<Result<_, _>>()?;
    let mut seen = HashSet::new();
    for job in jobs {
        if !seen.insert(job.id.as_str()) || !inserted.contains(&job.id) {
            return Err(Error::DuplicateId {
                id: job.id.clone(),
                location: job.location.clone(),
            });
        }
    }
    Err(Error::Other("inserting jobs: fewer rows were inserted than given".into()))
}

pub(super) fn insert_jobs(conn: &mut Conn, listener: &Listener, jobs: &[NewJob], durable: bool) -> Result<()> {
    let mut tx = conn.client.transaction()?;
    if !durable {
        // PostgreSQL commits durably by default; a caller that does not need it saves the
        // wait for the WAL flush (a crash may lose the batch, never corrupt anything).
        tx.batch_execute("SET LOCAL synchronous_commit = off")?;
    }
    insert_jobs_in(&mut tx, &mut conn.statements, jobs)?;
    if !jobs.is_empty() {
        listener.notify(&mut tx, &mut conn.statements)?;
    }
    tx.commit()?;
    Ok(())
}

/// Each file in a savepoint of one transaction: its identity first (a file some other session
/// is committing right now waits for it, then counts as already ingested), then its jobs.
pub(super) fn ingest_spool_files(
    conn: &mut Conn,
    listener: &Listener,
    files: &[SpoolFileJobs],
) -> Result<Vec<SpoolFileResult>> {
    let mut tx = conn.client.transaction()?;
    let cache = &mut conn.statements;
    let now = now_ms();
    let mut results = Vec::with_capacity(files.len());
    let mut any = false;
    for file in files {
        let mut sp = tx.savepoint("spool_file")?;
        let record = prepared(
            &mut sp,
            cache,
            "INSERT INTO spool_files (file_key, name, jobs, ingested_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (file_key) DO NOTHING",
        )?;
        let recorded = sp.execute(&record, &[&file.file_key, &file.name, &(file.jobs.len() as i64), &now])?;
        if recorded == 0 {
            sp.rollback()?;
            results.push(SpoolFileResult::AlreadyIngested);
            continue;
        }
        match insert_jobs_in(&mut sp, cache, &file.jobs) {
            Ok(()) => {
                sp.commit()?;
                any |= !file.jobs.is_empty();
                results.push(SpoolFileResult::Inserted(file.jobs.len()));
            }
            // The database failing (not this file's content): the whole call fails.
            Err(Error::Storage(e)) if e.kind.is_transient() => return Err(Error::Storage(e)),
            Err(e) => {
                sp.rollback()?;
                results.push(SpoolFileResult::Refused(e));
            }
        }
    }
    if any {
        listener.notify(&mut tx, cache)?;
    }
    tx.commit()?;
    Ok(results)
}

/// Finishes and claims whose transaction's fate is unknown: the connection was lost while it
/// ran, maybe after the server committed it. The next `finish_and_claim` settles them in its
/// own transaction: jobs claimed then (by this worker, at that `now`) never reached the worker,
/// so they go back to `pending`; a finish the retry finds already recorded counts as applied.
#[derive(Debug, Default)]
pub(super) struct InDoubt {
    /// (worker, claim time) of claims that may have committed.
    claims: Vec<(String, Millis)>,
    /// (job seq, lease, finished_at) of finishes that may have committed, with their worker.
    finishes: Vec<(i64, i64, Millis, String)>,
}

impl InDoubt {
    /// Records a failed call whose commit may have happened.
    pub(super) fn add(&mut self, worker: &str, finished: &[FinishedAttempt], claimed_at: Option<Millis>) {
        if let Some(at) = claimed_at {
            self.claims.push((worker.to_string(), at));
        }
        for f in finished {
            self.finishes
                .push((f.job_seq, f.lease, f.finished_at, worker.to_string()));
        }
    }

    /// Forgets everything (after a committed call settled it).
    pub(super) fn clear(&mut self) {
        self.claims.clear();
        self.finishes.clear();
    }
}

/// Records finished attempts, each only while its job is still `processing` under the same
/// claim, then claims up to `limit` due jobs, all in one transaction. Attempts are applied in
/// `seq` order, so two transactions touching the same jobs lock them in the same order.
#[allow(clippy::too_many_arguments)]
pub(super) fn finish_and_claim(
    conn: &mut Conn,
    listener: &Listener,
    in_doubt: &InDoubt,
    worker: &str,
    finished: &[FinishedAttempt],
    limit: usize,
    kinds: &[String],
    now: Millis,
) -> Result<(Vec<bool>, Vec<Job>)> {
    let mut tx = conn.client.transaction()?;
    let cache = &mut conn.statements;
    let mut changed = settle_claims(&mut tx, cache, in_doubt, now)?;
    let applied = finish_in(&mut tx, cache, finished, Some((worker, in_doubt)))?;
    // What waiters look at changed (and a retry or a release made work claimable).
    changed |= applied.iter().any(|ok| *ok);
    if changed {
        listener.notify(&mut tx, cache)?;
    }
    let jobs = if limit > 0 {
        claim_in(&mut tx, cache, worker, limit, kinds, now)?
    } else {
        Vec::new()
    };
    tx.commit()?;
    Ok((applied, jobs))
}

/// Puts back to `pending` the jobs of in-doubt claims that committed after all (they are
/// `processing` under the claiming worker since that claim, and nobody runs them).
fn settle_claims(
    tx: &mut impl GenericClient,
    cache: &mut HashMap<String, Statement>,
    in_doubt: &InDoubt,
    now: Millis,
) -> Result<bool> {
    let mut released = false;
    for (worker, claimed_at) in &in_doubt.claims {
        let statement = prepared(
            tx,
            cache,
            "UPDATE jobs SET state = 'pending', worker = NULL, updated_at = $3 \
             WHERE worker = $1 AND started_at = $2 AND state = 'processing'",
        )?;
        released |= tx.execute(&statement, &[worker, claimed_at, &now])? > 0;
    }
    Ok(released)
}

/// Claims up to `limit` due jobs in claim order for `worker`: one statement, skipping rows
/// other claimers hold. The limit is written into the SQL (one prepared variant per thread
/// count) so the plan is made for it: an index walk of `jobs_runnable` that stops early.
fn claim_in(
    tx: &mut impl GenericClient,
    cache: &mut HashMap<String, Statement>,
    worker: &str,
    limit: usize,
    kinds: &[String],
    now: Millis,
) -> Result<Vec<Job>> {
    let kind_filter = if kinds.is_empty() { "" } else { " AND kind = ANY($3)" };
    let sql = format!(
        "UPDATE jobs SET state = 'processing', worker = $1, started_at = $2, updated_at = $2, \
         finished_at = NULL, lease = lease + 1 \
         WHERE seq IN (SELECT seq FROM jobs \
                       WHERE state IN ('pending', 'failed') AND run_at <= $2{kind_filter} \
                       ORDER BY priority DESC, run_at, seq LIMIT {limit} FOR UPDATE SKIP LOCKED) \
         RETURNING {JOB_COLUMNS}"
    );
    let statement = prepared(tx, cache, &sql)?;
    let rows = if kinds.is_empty() {
        tx.query(&statement, &[&worker, &now])?
    } else {
        tx.query(&statement, &[&worker, &now, &kinds])?
    };
    let mut jobs = rows_to_jobs(&rows)?;
    // RETURNING promises no order: restore claim order.
    jobs.sort_by(|a, b| {
        b.priority
            .cmp(&a.priority)
            .then(a.run_at.cmp(&b.run_at))
            .then(a.seq.cmp(&b.seq))
    });
    Ok(jobs)
}

fn tail(text: &Option<String>, limit: usize) -> Option<String> {
    text.as_ref().map(|t| {
        if t.len() <= limit {
            t.clone()
        } else {
            let mut start = t.len() - limit;
            while !t.is_char_boundary(start) {
                start += 1;
            }
            t[start..].to_string()
        }
    })
}

/// Records finished attempts. Each applies only while its job is still `processing` under the
/// same claim (`lease`); its history row (which copies the job's worker before a release
/// clears it) is written by the same statement, only when the update applied. With
/// `in_doubt`, an attempt whose guard fails but that an earlier, in-doubt transaction recorded
/// counts as applied.
fn finish_in(
    tx: &mut impl GenericClient,
    cache: &mut HashMap<String, Statement>,
    finished: &[FinishedAttempt],
    in_doubt: Option<(&str, &InDoubt)>,
) -> Result<Vec<bool>> {
    let mut applied = vec![false; finished.len()];
    if finished.is_empty() {
        return Ok(applied);
    }
    let statement = prepared(
        tx,
        cache,
        "WITH done AS ( \
             UPDATE jobs j SET state = $2::text, attempts = $3, run_at = COALESCE($4, j.run_at), updated_at = $5, \
                 finished_at = $5, exit_code = $6, last_error = COALESCE($7, j.last_error), stdout = $8, \
                 stderr = $9, worker = CASE WHEN $2::text = 'pending' THEN NULL ELSE j.worker END \
             FROM jobs old_job \
             WHERE j.seq = $1 AND old_job.seq = j.seq AND j.state = 'processing' AND j.lease = $10 \
             RETURNING old_job.worker) \
         INSERT INTO attempts (job_seq, attempt, outcome, worker, started_at, finished_at, exit_code, error, \
                               stdout_tail, stderr_tail) \
         SELECT $1, $11, $12, done.worker, $13, $5, $6, $7, $14, $15 FROM done",
    )?;
    let mut order: Vec<usize> = (0..finished.len()).collect();
    order.sort_by_key(|&i| finished[i].job_seq);
    for i in order {
        let f = &finished[i];
        let attempt_number = if f.outcome == AttemptOutcome::Interrupted {
            f.attempts + 1
        } else {
            f.attempts
        };
        let inserted = tx.execute(
            &statement,
            &[
                &f.job_seq,
                &f.new_state.as_str(),
                &i64::from(f.attempts),
                &f.run_at,
                &f.finished_at,
                &f.exit_code,
                &f.error,
                &f.stdout,
                &f.stderr,
                &f.lease,
                &i64::from(attempt_number),
                &f.outcome.as_str(),
                &f.started_at,
                &tail(&f.stdout, HISTORY_TAIL_BYTES),
                &tail(&f.stderr, HISTORY_TAIL_BYTES),
            ],
        )?;
        applied[i] = inserted == 1;
        if !applied[i] {
            if let Some((worker, doubt)) = in_doubt {
                applied[i] = recorded_before(tx, cache, worker, doubt, f, attempt_number)?;
            }
        }
    }
    Ok(applied)
}

/// Whether an in-doubt transaction recorded this attempt after all (its history row is there).
fn recorded_before(
    tx: &mut impl GenericClient,
    cache: &mut HashMap<String, Statement>,
    worker: &str,
    doubt: &InDoubt,
    f: &FinishedAttempt,
    attempt_number: u32,
) -> Result<bool> {
    let in_doubt = doubt
        .finishes
        .iter()
        .any(|(seq, lease, at, w)| *seq == f.job_seq && *lease == f.lease && *at == f.finished_at && w == worker);
    if !in_doubt {
        return Ok(false);
    }
    let statement = prepared(
        tx,
        cache,
        "SELECT EXISTS (SELECT 1 FROM attempts WHERE job_seq = $1 AND worker = $2 AND finished_at = $3 \
         AND outcome = $4 AND attempt = $5)",
    )?;
    Ok(tx
        .query_one(
            &statement,
            &[
                &f.job_seq,
                &worker,
                &f.finished_at,
                &f.outcome.as_str(),
                &i64::from(attempt_number),
            ],
        )?
        .try_get(0)?)
}

/// Recovers every `processing` job whose worker is not alive and removes the rows of dead
/// workers, in one transaction. The worker rows are locked first, so two reapers (on two hosts)
/// take turns and the second sees what the first did; the jobs are read after that, and the
/// workers read again, so a worker that registered and claimed meanwhile is judged, not taken
/// for a stranger. Each recovery applies only to the claim that was read (its lease).
pub(super) fn reap_workers(
    conn: &mut Conn,
    listener: &Listener,
    alive: &dyn Fn(&WorkerRecord) -> bool,
    lost: &dyn Fn(&Job) -> Option<FinishedAttempt>,
) -> Result<ReapOutcome> {
    let mut tx = conn.client.transaction()?;
    let cache = &mut conn.statements;
    workers_in(&mut tx, true)?;
    let processing = prepared(
        &mut tx,
        cache,
        &format!("SELECT {JOB_COLUMNS} FROM jobs WHERE state = 'processing' ORDER BY seq"),
    )?;
    let processing = tx.query(&processing, &[])?;
    let (live, dead): (Vec<WorkerRecord>, Vec<WorkerRecord>) =
        workers_in(&mut tx, true)?.into_iter().partition(|worker| alive(worker));
    let mut recovered = Vec::new();
    let mut held_by = Vec::new();
    for row in &processing {
        let job = row_to_job(row)?;
        let held = job
            .worker
            .as_ref()
            .is_some_and(|w| live.iter().any(|l| &l.id == w));
        if held {
            continue;
        }
        match lost(&job) {
            Some(attempt) => recovered.push((job, attempt)),
            None => held_by.extend(job.worker.clone()),
        }
    }
    let finished: Vec<FinishedAttempt> = recovered.iter().map(|(_, f)| f.clone()).collect();
    let applied = finish_in(&mut tx, cache, &finished, None)?;
    let remove = prepared(&mut tx, cache, "DELETE FROM workers WHERE id = $1")?;
    let mut removed = Vec::new();
    for worker in dead {
        if !held_by.contains(&worker.id) && tx.execute(&remove, &[&worker.id])? == 1 {
            removed.push(worker);
        }
    }
    if applied.iter().any(|ok| *ok) {
        listener.notify(&mut tx, cache)?;
    }
    tx.commit()?;
    let recovered = recovered
        .into_iter()
        .zip(applied)
        .filter(|(_, ok)| *ok)
        .map(|(pair, _)| pair)
        .collect();
    Ok(ReapOutcome {
        removed,
        live,
        recovered,
    })
}

/// Puts dead jobs back to `pending` with attempts reset, all or nothing: the ids are checked in
/// the order given (rows locked), and the first that does not exist or is not dead (a repeated
/// id is pending by then) refuses the whole call.
pub(super) fn dlq_retry(conn: &mut Conn, listener: &Listener, ids: &[String]) -> Result<usize> {
    let mut tx = conn.client.transaction()?;
    let cache = &mut conn.statements;
    let now = now_ms();
    let lock = prepared(&mut tx, cache, "SELECT id, state FROM jobs WHERE id = ANY($1) FOR UPDATE")?;
    let mut states: HashMap<String, String> = HashMap::new();
    for row in tx.query(&lock, &[&ids])? {
        states.insert(row.try_get(0)?, row.try_get(1)?);
    }
    for id in ids {
        match states.get(id).map(String::as_str) {
            None => return Err(Error::NotFound(id.clone())),
            Some("dead") => {
                states.insert(id.clone(), "pending".into());
            }
            Some(other) => {
                return Err(Error::WrongState {
                    id: id.clone(),
                    actual: other.to_string(),
                    expected: "dead (only jobs in the DLQ can be retried)".to_string(),
                })
            }
        }
    }
    let retry = prepared(
        &mut tx,
        cache,
        "UPDATE jobs SET state = 'pending', attempts = 0, run_at = $2, updated_at = $2, worker = NULL \
         WHERE id = ANY($1) AND state = 'dead'",
    )?;
    if tx.execute(&retry, &[&ids, &now])? > 0 {
        listener.notify(&mut tx, cache)?;
    }
    tx.commit()?;
    Ok(ids.len())
}

/// Puts every dead job back to `pending`; returns how many.
pub(super) fn dlq_retry_all(conn: &mut Conn, listener: &Listener) -> Result<usize> {
    let mut tx = conn.client.transaction()?;
    let cache = &mut conn.statements;
    let retry = prepared(
        &mut tx,
        cache,
        "UPDATE jobs SET state = 'pending', attempts = 0, run_at = $1, updated_at = $1, worker = NULL \
         WHERE state = 'dead'",
    )?;
    let count = tx.execute(&retry, &[&now_ms()])?;
    if count > 0 {
        listener.notify(&mut tx, cache)?;
    }
    tx.commit()?;
    Ok(count as usize)
}
