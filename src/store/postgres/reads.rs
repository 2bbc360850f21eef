//! Reads (jobs, lists, counts, workers, config) and the small writes of the worker registry
//! and `config set`: the statements that change no job's state.

use super::{prepared, Conn};
use crate::error::Result;
use crate::job::{Attempt, Job, State};
use crate::store::ids::prefix_successor;
use crate::store::{ListFilter, StateCounts, WorkerRecord};
use crate::time::Millis;
use postgres::types::ToSql;
use postgres::{Row, Statement};
use std::collections::{BTreeMap, HashMap};

/// The columns [`row_to_job`] reads, in its order.
pub(super) const JOB_COLUMNS: &str = "seq, id, kind, command, payload, state, attempts, max_retries, priority, \
     run_at, timeout_seconds, cwd, env, created_at, updated_at, started_at, finished_at, worker, exit_code, \
     last_error, source, lease";

/// [`JOB_COLUMNS`] and the captured output.
const JOB_COLUMNS_WITH_OUTPUT: &str = "seq, id, kind, command, payload, state, attempts, max_retries, priority, \
     run_at, timeout_seconds, cwd, env, created_at, updated_at, started_at, finished_at, worker, exit_code, \
     last_error, source, lease, stdout, stderr";

const WORKER_COLUMNS: &str =
    "id, pid, host, proc_start, started_at, heartbeat_at, threads, kinds, slots, stopping, version";

/// A job from a row of [`JOB_COLUMNS`] (or [`JOB_COLUMNS_WITH_OUTPUT`]).
pub(super) fn row_to_job(row: &Row) -> Result<Job> {
    row_to_job_at(row, 0)
}

/// A job from the columns of a row that start at `first` with [`JOB_COLUMNS`] (and may go on
/// with the output).
pub(super) fn row_to_job_at(row: &Row, first: usize) -> Result<Job> {
    let state: String = row.try_get(first + 5)?;
    let payload: Option<String> = row.try_get(first + 4)?;
    let env: Option<String> = row.try_get(first + 12)?;
    let with_output = row.len() > first + 22;
    Ok(Job {
        seq: row.try_get(first)?,
        id: row.try_get(first + 1)?,
        kind: row.try_get(first + 2)?,
        command: row.try_get(first + 3)?,
        payload: payload.and_then(|p| serde_json::from_str(&p).ok()),
        state: state.parse().unwrap_or(State::Pending),
        attempts: row.try_get::<_, i64>(first + 6)?.clamp(0, u32::MAX as i64) as u32,
        max_retries: row
            .try_get::<_, Option<i64>>(first + 7)?
            .map(|v| v.clamp(0, u32::MAX as i64) as u32),
        priority: row.try_get(first + 8)?,
        run_at: row.try_get(first + 9)?,
        timeout_seconds: row.try_get::<_, Option<i64>>(first + 10)?.map(|v| v.max(0) as u64),
        cwd: row.try_get(first + 11)?,
        env: env.and_then(|e| serde_json::from_str(&e).ok()).unwrap_or_default(),
        created_at: row.try_get(first + 13)?,
        updated_at: row.try_get(first + 14)?,
        started_at: row.try_get(first + 15)?,
        finished_at: row.try_get(first + 16)?,
        worker: row.try_get(first + 17)?,
        exit_code: row.try_get(first + 18)?,
        last_error: row.try_get(first + 19)?,
        source: row.try_get(first + 20)?,
        lease: row.try_get(first + 21)?,
        stdout: if with_output { row.try_get(first + 22)? } else { None },
        stderr: if with_output { row.try_get(first + 23)? } else { None },
    })
}

/// Jobs from rows of [`JOB_COLUMNS`].
pub(super) fn rows_to_jobs(rows: &[Row]) -> Result<Vec<Job>> {
    rows.iter().map(row_to_job).collect()
}

fn row_to_worker(row: &Row) -> Result<WorkerRecord> {
    let kinds: String = row.try_get(7)?;
    let slots: String = row.try_get(8)?;
    Ok(WorkerRecord {
        id: row.try_get(0)?,
        pid: row.try_get::<_, i64>(1)?.clamp(0, u32::MAX as i64) as u32,
        host: row.try_get(2)?,
        proc_start: row.try_get::<_, Option<i64>>(3)?.map(|v| v as u64),
        started_at: row.try_get(4)?,
        heartbeat_at: row.try_get(5)?,
        threads: row.try_get::<_, i64>(6)?.clamp(0, u32::MAX as i64) as u32,
        kinds: serde_json::from_str(&kinds).unwrap_or_default(),
        slots: serde_json::from_str(&slots).unwrap_or(serde_json::Value::Array(vec![])),
        stopping: row.try_get(9)?,
        version: row.try_get(10)?,
    })
}

/// A `u64` limit as SQL's: `NULL` (no limit) when absent.
fn sql_limit(limit: Option<u64>) -> Option<i64> {
    limit.map(|l| l.min(i64::MAX as u64) as i64)
}

pub(super) fn get_job(conn: &mut Conn, id: &str) -> Result<Option<Job>> {
    let statement = conn.prepared(&format!("SELECT {JOB_COLUMNS_WITH_OUTPUT} FROM jobs WHERE id = $1"))?;
    conn.client
        .query_opt(&statement, &[&id])?
        .as_ref()
        .map(row_to_job)
        .transpose()
}

pub(super) fn job_source(conn: &mut Conn, id: &str) -> Result<Option<String>> {
    let statement = conn.prepared("SELECT source FROM jobs WHERE id = $1")?;
    Ok(conn
        .client
        .query_opt(&statement, &[&id])?
        .map(|row| row.try_get(0))
        .transpose()?)
}

pub(super) fn job_states(conn: &mut Conn, ids: &[String]) -> Result<BTreeMap<String, State>> {
    let statement = conn.prepared("SELECT id, state FROM jobs WHERE id = ANY($1)")?;
    let mut states = BTreeMap::new();
    for row in conn.client.query(&statement, &[&ids])? {
        let state: String = row.try_get(1)?;
        states.insert(row.try_get(0)?, state.parse()?);
    }
    Ok(states)
}

pub(super) fn list_jobs(conn: &mut Conn, state: Option<State>, limit: Option<u64>) -> Result<Vec<Job>> {
    let limit = sql_limit(limit);
    let rows = match state {
        Some(state) => {
            let statement = conn.prepared(&format!(
                "SELECT {JOB_COLUMNS} FROM jobs WHERE state = $1 ORDER BY seq LIMIT $2"
            ))?;
            conn.client.query(&statement, &[&state.as_str(), &limit])?
        }
        None => {
            let statement = conn.prepared(&format!("SELECT {JOB_COLUMNS} FROM jobs ORDER BY seq LIMIT $1"))?;
            conn.client.query(&statement, &[&limit])?
        }
    };
    rows_to_jobs(&rows)
}

/// Jobs matching `filter`, newest first unless `filter.oldest_first`: a walk of the primary
/// key or of `jobs_state_seq` that `LIMIT` stops.
pub(super) fn list_filtered(conn: &mut Conn, filter: &ListFilter) -> Result<Vec<Job>> {
    let state = filter.state.map(State::as_str);
    let limit = sql_limit(filter.limit);
    let mut conditions = Vec::new();
    let mut values: Vec<&(dyn ToSql + Sync)> = Vec::new();
    if let Some(state) = &state {
        values.push(state);
        conditions.push(format!("state = ${}", values.len()));
    }
    if let Some(text) = &filter.search {
        // strpos: a literal, case-sensitive substring (LIKE would give % and _ meaning).
        values.push(text);
        conditions.push(format!("strpos(command, ${}) > 0", values.len()));
    }
    values.push(&limit);
    let sql = format!(
        "SELECT {JOB_COLUMNS} FROM jobs {} ORDER BY seq {} LIMIT ${}",
        if conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conditions.join(" AND "))
        },
        if filter.oldest_first { "ASC" } else { "DESC" },
        values.len()
    );
    let statement = conn.prepared(&sql)?;
    rows_to_jobs(&conn.client.query(&statement, &values)?)
}

/// Ids that start with `prefix`, in id order, at most `limit`: a range on the id index (ids
/// sort bytewise, `COLLATE "C"`).
pub(super) fn ids_with_prefix(conn: &mut Conn, prefix: &str, limit: u64) -> Result<Vec<String>> {
    let limit = limit.min(i64::MAX as u64) as i64;
    let rows = match prefix_successor(prefix) {
        Some(upper) => {
            let statement = conn.prepared("SELECT id FROM jobs WHERE id >= $1 AND id < $2 ORDER BY id LIMIT $3")?;
            conn.client.query(&statement, &[&prefix, &upper, &limit])?
        }
        None => {
            // No string sorts right after every extension of this prefix: the ids from it on
            // that still start with it (the index walk stops at the first that does not).
            let statement =
                conn.prepared("SELECT id FROM jobs WHERE id >= $1 AND starts_with(id, $1) ORDER BY id LIMIT $2")?;
            conn.client.query(&statement, &[&prefix, &limit])?
        }
    };
    Ok(rows.iter().map(|r| r.try_get(0)).collect::<Result<Vec<String>, _>>()?)
}

pub(super) fn id_neighbours(conn: &mut Conn, id: &str) -> Result<(Option<String>, Option<String>)> {
    let before = conn.prepared("SELECT max(id) FROM jobs WHERE id < $1")?;
    let before: Option<String> = conn.client.query_one(&before, &[&id])?.try_get(0)?;
    let after = conn.prepared("SELECT min(id) FROM jobs WHERE id > $1")?;
    let after: Option<String> = conn.client.query_one(&after, &[&id])?.try_get(0)?;
    Ok((before, after))
}

pub(super) fn attempts(conn: &mut Conn, job_seq: i64) -> Result<Vec<Attempt>> {
    let statement = conn.prepared(
        "SELECT attempt, outcome, worker, started_at, finished_at, exit_code, error, stdout_tail, stderr_tail \
         FROM attempts WHERE job_seq = $1 ORDER BY id",
    )?;
    conn.client
        .query(&statement, &[&job_seq])?
        .iter()
        .map(|r| {
            Ok(Attempt {
                attempt: r.try_get::<_, i64>(0)?.clamp(0, u32::MAX as i64) as u32,
                outcome: r.try_get(1)?,
                worker: r.try_get(2)?,
                started_at: r.try_get(3)?,
                finished_at: r.try_get(4)?,
                exit_code: r.try_get(5)?,
                error: r.try_get(6)?,
                stdout_tail: r.try_get(7)?,
                stderr_tail: r.try_get(8)?,
            })
        })
        .collect()
}

/// Jobs per state: the sum of the trigger-kept count slots (a few hundred rows at most).
pub(super) fn counts(conn: &mut Conn) -> Result<StateCounts> {
    let statement = conn.prepared("SELECT state, sum(n)::bigint FROM job_counts GROUP BY state")?;
    let mut counts = StateCounts::default();
    for row in conn.client.query(&statement, &[])? {
        let state: String = row.try_get(0)?;
        let n = row.try_get::<_, i64>(1)?.max(0) as u64;
        match state.as_str() {
            "pending" => counts.pending = n,
            "processing" => counts.processing = n,
            "completed" => counts.completed = n,
            "failed" => counts.failed = n,
            "dead" => counts.dead = n,
            _ => {}
        }
    }
    Ok(counts)
}

/// Waiting jobs scheduled after `now` (counted on `jobs_due`: scheduled jobs are usually few).
pub(super) fn count_scheduled(conn: &mut Conn, now: Millis) -> Result<u64> {
    let statement = conn.prepared("SELECT count(*) FROM jobs WHERE state IN ('pending', 'failed') AND run_at > $1")?;
    Ok(conn.client.query_one(&statement, &[&now])?.try_get::<_, i64>(0)? as u64)
}

pub(super) fn waiting_by_kind(conn: &mut Conn) -> Result<BTreeMap<String, u64>> {
    let statement = conn.prepared(
        "SELECT kind, sum(n)::bigint FROM job_counts WHERE state IN ('pending', 'failed') GROUP BY kind \
         HAVING sum(n) > 0",
    )?;
    conn.client
        .query(&statement, &[])?
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get::<_, i64>(1)? as u64)))
        .collect()
}

pub(super) fn next_run_at(conn: &mut Conn, kinds: &[String]) -> Result<Option<Millis>> {
    if kinds.is_empty() {
        let statement = conn.prepared("SELECT min(run_at) FROM jobs WHERE state IN ('pending', 'failed')")?;
        return Ok(conn.client.query_one(&statement, &[])?.try_get(0)?);
    }
    let statement =
        conn.prepared("SELECT min(run_at) FROM jobs WHERE state IN ('pending', 'failed') AND kind = ANY($1)")?;
    Ok(conn.client.query_one(&statement, &[&kinds])?.try_get(0)?)
}

pub(super) fn has_unfinished(conn: &mut Conn, kinds: &[String]) -> Result<bool> {
    let row = if kinds.is_empty() {
        let statement =
            conn.prepared("SELECT EXISTS (SELECT 1 FROM jobs WHERE state IN ('pending', 'failed', 'processing'))")?;
        conn.client.query_one(&statement, &[])?
    } else {
        let statement = conn.prepared(
            "SELECT EXISTS (SELECT 1 FROM jobs WHERE state IN ('pending', 'failed', 'processing') \
             AND kind = ANY($1))",
        )?;
        conn.client.query_one(&statement, &[&kinds])?
    };
    Ok(row.try_get(0)?)
}

pub(super) fn config_values(conn: &mut Conn) -> Result<BTreeMap<String, String>> {
    let statement = conn.prepared("SELECT key, value FROM config")?;
    conn.client
        .query(&statement, &[])?
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect()
}

pub(super) fn config_set(conn: &mut Conn, key: &str, value: &str) -> Result<()> {
    let mut tx = conn.client.transaction()?;
    super::durable(&mut tx)?;
    let statement = super::prepared(
        &mut tx,
        &mut conn.statements,
        "INSERT INTO config (key, value, updated_at) VALUES ($1, $2, $3) \
         ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
    )?;
    tx.execute(&statement, &[&key, &value, &crate::time::now_ms()])?;
    tx.commit()?;
    Ok(())
}

pub(super) fn config_unset(conn: &mut Conn, key: &str) -> Result<bool> {
    let mut tx = conn.client.transaction()?;
    super::durable(&mut tx)?;
    let statement = super::prepared(&mut tx, &mut conn.statements, "DELETE FROM config WHERE key = $1")?;
    let removed = tx.execute(&statement, &[&key])? > 0;
    tx.commit()?;
    Ok(removed)
}

pub(super) fn register_worker(conn: &mut Conn, worker: &WorkerRecord) -> Result<()> {
    let statement = conn.prepared(&format!(
        "INSERT INTO workers ({WORKER_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
         ON CONFLICT (id) DO UPDATE SET pid = excluded.pid, host = excluded.host, \
         proc_start = excluded.proc_start, started_at = excluded.started_at, \
         heartbeat_at = excluded.heartbeat_at, threads = excluded.threads, kinds = excluded.kinds, \
         slots = excluded.slots, stopping = excluded.stopping, version = excluded.version"
    ))?;
    let kinds = serde_json::to_string(&worker.kinds).unwrap_or_else(|_| "[]".into());
    conn.client.execute(
        &statement,
        &[
            &worker.id,
            &(worker.pid as i64),
            &worker.host,
            &worker.proc_start.map(|v| v as i64),
            &worker.started_at,
            &worker.heartbeat_at,
            &(worker.threads as i64),
            &kinds,
            &worker.slots.to_string(),
            &worker.stopping,
            &worker.version,
        ],
    )?;
    Ok(())
}

/// Every recorded worker, oldest first (a statement of the transaction `tx` runs).
pub(super) fn workers_in(
    tx: &mut impl postgres::GenericClient,
    cache: &mut HashMap<String, Statement>,
) -> Result<Vec<WorkerRecord>> {
    let statement = prepared(
        tx,
        cache,
        &format!("SELECT {WORKER_COLUMNS} FROM workers ORDER BY started_at, id"),
    )?;
    tx.query(&statement, &[])?.iter().map(row_to_worker).collect()
}

/// The rows of the workers named `ids` that no other session holds, locked until the
/// transaction `tx` runs ends, as they are now: rows another session holds are skipped, never
/// waited for.
pub(super) fn lock_workers_in(
    tx: &mut impl postgres::GenericClient,
    cache: &mut HashMap<String, Statement>,
    ids: &[&str],
) -> Result<Vec<WorkerRecord>> {
    let statement = prepared(
        tx,
        cache,
        &format!(
            "SELECT {WORKER_COLUMNS} FROM workers WHERE id = ANY($1) ORDER BY started_at, id FOR UPDATE SKIP LOCKED"
        ),
    )?;
    tx.query(&statement, &[&ids])?.iter().map(row_to_worker).collect()
}

/// Every recorded worker, oldest first.
pub(super) fn workers(conn: &mut Conn) -> Result<Vec<WorkerRecord>> {
    let statement = conn.prepared(&format!("SELECT {WORKER_COLUMNS} FROM workers ORDER BY started_at, id"))?;
    conn.client.query(&statement, &[])?.iter().map(row_to_worker).collect()
}
