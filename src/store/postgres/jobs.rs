//! The transactions that change jobs' states besides the worker's (see [`super::claim`]):
//! enqueue and spool ingestion, reaping lost workers, and DLQ retries.

use super::claim::finish_in;
use super::reads::{lock_workers_in, row_to_job, workers_in, JOB_COLUMNS};
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
/// workers, in one transaction that never waits for a row another session holds.
///
/// The jobs are read first, then the workers: a worker registers before it claims, so the
/// holder of every job read is in the second read unless its row was removed meanwhile. The
/// rows of the workers judged dead are then locked with `SKIP LOCKED` and judged again as they
/// are now; a row another session holds (another reaper judging the same worker, or the
/// worker's own heartbeat in flight: it may be alive after all) is left for a later pass, and
/// so are its jobs. The jobs to recover are locked the same way, each under the claim that was
/// read (its lease): a job whose row another session holds (another reaper, a worker's
/// transaction whose host vanished before the server ended it, any other client) is left for
/// a later pass, with its worker's row, while the other jobs are recovered now. Live workers'
/// rows are never locked, so their heartbeats never wait for a reap.
pub(super) fn reap_workers(
    conn: &mut Conn,
    alive: &dyn Fn(&WorkerRecord) -> bool,
    lost: &dyn Fn(&Job) -> Option<FinishedAttempt>,
) -> Result<ReapOutcome> {
    let mut tx = conn.client.transaction()?;
    let cache = &mut conn.statements;
    let processing = prepared(
        &mut tx,
        cache,
        &format!("SELECT {JOB_COLUMNS} FROM jobs WHERE state = 'processing' ORDER BY seq"),
    )?;
    let processing = tx.query(&processing, &[])?;
    let workers = workers_in(&mut tx, cache)?;
    let known: HashSet<String> = workers.iter().map(|w| w.id.clone()).collect();
    let (mut live, judged_dead): (Vec<WorkerRecord>, Vec<WorkerRecord>) =
        workers.into_iter().partition(|worker| alive(worker));
    let dead_ids: Vec<&str> = judged_dead.iter().map(|w| w.id.as_str()).collect();
    let mut dead = Vec::new();
    for worker in lock_workers_in(&mut tx, cache, &dead_ids)? {
        if alive(&worker) {
            live.push(worker);
        } else {
            dead.push(worker);
        }
    }
    live.sort_by(|a, b| a.started_at.cmp(&b.started_at).then_with(|| a.id.cmp(&b.id)));

    // The jobs to recover: those of the dead workers whose rows this reap holds, and those
    // whose worker has no row at all.
    let mut candidates = Vec::new();
    let mut held_by = HashSet::new();
    for row in &processing {
        let job = row_to_job(row)?;
        let ours = match job.worker.as_deref() {
            Some(worker) if known.contains(worker) => dead.iter().any(|d| d.id == worker),
            _ => true,
        };
        if !ours {
            continue;
        }
        match lost(&job) {
            Some(attempt) => candidates.push((job, attempt)),
            None => held_by.extend(job.worker.clone()),
        }
    }
    let seqs: Vec<i64> = candidates.iter().map(|(job, _)| job.seq).collect();
    let leases: Vec<i64> = candidates.iter().map(|(job, _)| job.lease).collect();
    let lock = prepared(
        &mut tx,
        cache,
        "SELECT seq FROM jobs WHERE state = 'processing' \
         AND (seq, lease) IN (SELECT * FROM unnest($1::int8[], $2::int8[])) \
         FOR UPDATE SKIP LOCKED",
    )?;
    let locked: HashSet<i64> = tx
        .query(&lock, &[&seqs, &leases])?
        .iter()
        .map(|row| row.try_get(0))
        .collect::<Result<_, _>>()?;
    let (recovered, busy): (Vec<_>, Vec<_>) = candidates
        .into_iter()
        .partition(|(job, _): &(Job, FinishedAttempt)| locked.contains(&job.seq));
    held_by.extend(busy.into_iter().filter_map(|(job, _)| job.worker));

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
