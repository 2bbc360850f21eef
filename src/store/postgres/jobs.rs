//! The transactions that change jobs' states besides the worker's (see [`super::claim`]):
//! enqueue and spool ingestion, reaping lost workers, and DLQ retries.

use super::claim::finish_in;
use super::reads::{row_to_job, workers_in, JOB_COLUMNS};
use super::{prepared, Conn};
use crate::error::{Error, Result};
use crate::job::Job;
use crate::store::{FinishedAttempt, NewJob, ReapOutcome, SpoolFileJobs, SpoolFileResult, WorkerRecord};
use crate::time::now_ms;
use postgres::{GenericClient, Statement};
use std::collections::{HashMap, HashSet};

/// Inserts a batch in one statement (arrays unnested in batch order, so `seq` follows it),
/// skipping ids that exist; any skipped id fails the batch with the first clashing job's
/// place, exactly as a row-by-row insert would have: an id seen earlier in the batch, or one
/// that was already in the table.
fn insert_jobs_in(tx: &mut impl GenericClient, cache: &mut HashMap<String, Statement>, jobs: &[NewJob]) -> Result<()> {
    insert_jobs_into(tx, cache, "jobs", jobs)
}

/// [`insert_jobs_in`] into `table`: `SCHEMA.jobs` on a session whose `search_path` is not the
/// queue's (an application's own transaction: see `caller_tx`).
pub(super) fn insert_jobs_into(
    tx: &mut impl GenericClient,
    cache: &mut HashMap<String, Statement>,
    table: &str,
    jobs: &[NewJob],
) -> Result<()> {
    if jobs.is_empty() {
        return Ok(());
    }
    let statement = prepared(
        tx,
        cache,
        &format!(
            "INSERT INTO {table} (id, kind, command, payload, state, attempts, max_retries, priority, run_at, \
         timeout_seconds, cwd, env, created_at, updated_at, source) \
         SELECT id, kind, command, payload, 'pending', 0, max_retries, priority, run_at, timeout_seconds, cwd, \
         env, created_at, created_at, source \
         FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int8[], $6::int8[], $7::int8[], \
                     $8::int8[], $9::text[], $10::text[], $11::int8[], $12::text[]) WITH ORDINALITY \
              AS batch (id, kind, command, payload, max_retries, priority, run_at, timeout_seconds, cwd, env, \
                        created_at, source, place) \
         ORDER BY place \
         ON CONFLICT (id) DO NOTHING RETURNING id"
        ),
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
    Err(Error::Other(
        "inserting jobs: fewer rows were inserted than given".into(),
    ))
}

pub(super) fn insert_jobs(conn: &mut Conn, jobs: &[NewJob], durable: bool) -> Result<()> {
    let mut tx = conn.client.transaction()?;
    if durable {
        super::durable(&mut tx)?;
    }
    insert_jobs_in(&mut tx, &mut conn.statements, jobs)?;
    tx.commit()?;
    Ok(())
}

/// Each file in a savepoint of one transaction: its identity first (a file some other session
/// is committing right now waits for it, then counts as already ingested), then its jobs.
pub(super) fn ingest_spool_files(conn: &mut Conn, files: &[SpoolFileJobs]) -> Result<Vec<SpoolFileResult>> {
    let mut tx = conn.client.transaction()?;
    // The files are deleted once this returns.
    super::durable(&mut tx)?;
    let cache = &mut conn.statements;
    let now = now_ms();
    let mut results = Vec::with_capacity(files.len());
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
    tx.commit()?;
    Ok(results)
}

/// Recovers every `processing` job whose worker is not alive and removes the rows of dead
/// workers, in one transaction. The worker rows are locked first, so two reapers (on two hosts)
/// take turns and the second sees what the first did; the jobs are read after that, and the
/// workers read again, so a worker that registered and claimed meanwhile is judged, not taken
/// for a stranger. Each recovery applies only to the claim that was read (its lease).
pub(super) fn reap_workers(
    conn: &mut Conn,
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
        let held = job.worker.as_ref().is_some_and(|w| live.iter().any(|l| &l.id == w));
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
pub(super) fn dlq_retry(conn: &mut Conn, ids: &[String]) -> Result<usize> {
    let mut tx = conn.client.transaction()?;
    super::durable(&mut tx)?;
    let cache = &mut conn.statements;
    let now = now_ms();
    let lock = prepared(
        &mut tx,
        cache,
        "SELECT id, state FROM jobs WHERE id = ANY($1) FOR UPDATE",
    )?;
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
    tx.execute(&retry, &[&ids, &now])?;
    tx.commit()?;
    Ok(ids.len())
}

/// Puts every dead job back to `pending`; returns how many.
pub(super) fn dlq_retry_all(conn: &mut Conn) -> Result<usize> {
    let mut tx = conn.client.transaction()?;
    super::durable(&mut tx)?;
    let cache = &mut conn.statements;
    let retry = prepared(
        &mut tx,
        cache,
        "UPDATE jobs SET state = 'pending', attempts = 0, run_at = $1, updated_at = $1, worker = NULL \
         WHERE state = 'dead'",
    )?;
    let count = tx.execute(&retry, &[&now_ms()])?;
    tx.commit()?;
    Ok(count as usize)
}
