//! The worker's transaction: record finished attempts, each under its claim's lease, and claim
//! due jobs with `FOR UPDATE SKIP LOCKED`.
//!
//! Usually this is one statement, committed on its own: a round trip per step, which is what a
//! worker's throughput depends on when the server is another process or another host. Finished
//! attempts go in as arrays; a data-modifying CTE updates the jobs still held under each lease,
//! another writes their history rows, a third claims. Every CTE sees the same snapshot, so a
//! job finished by this statement cannot be claimed by it: when a finish makes its job due at
//! once (a release, a retry without delay) and jobs are to be claimed, or after a lost
//! connection (see [`Holdings`]), the same work runs as separate statements in one transaction
//! instead, exactly as SQLite does it.

use super::holdings::Holdings;
use super::reads::{row_to_job_at, rows_to_jobs, JOB_COLUMNS};
use super::{prepared, Conn};
use crate::error::Result;
use crate::job::{Job, State};
use crate::store::{AttemptOutcome, FinishedAttempt, HISTORY_TAIL_BYTES};
use crate::time::Millis;
use postgres::types::ToSql;
use postgres::{GenericClient, Statement};
use std::collections::{HashMap, HashSet};

/// Records finished attempts, each only while its job is still `processing` under the same
/// claim, then claims up to `limit` due jobs of `kinds` for `worker`, all in one transaction.
#[allow(clippy::too_many_arguments)]
pub(super) fn finish_and_claim(
    conn: &mut Conn,
    holdings: &Holdings,
    worker: &str,
    finished: &[FinishedAttempt],
    limit: usize,
    kinds: &[String],
    now: Millis,
) -> Result<(Vec<bool>, Vec<Job>)> {
    let due_again = |f: &FinishedAttempt| {
        matches!(f.new_state, State::Pending | State::Failed) && f.run_at.is_none_or(|at| at <= now)
    };
    let mut seqs = HashSet::new();
    let one_statement = !holdings.is_unsure()
        && finished.iter().all(|f| seqs.insert(f.job_seq))
        && !(limit > 0 && finished.iter().any(due_again));
    if one_statement {
        return finish_and_claim_at_once(conn, worker, finished, limit, kinds, now);
    }
    let mut tx = conn.client.transaction()?;
    let cache = &mut conn.statements;
    holdings.release_unheld(&mut tx, cache, worker, finished, now)?;
    let applied = finish_in(&mut tx, cache, finished, Some((worker, holdings)))?;
    let jobs = if limit > 0 {
        claim_in(&mut tx, cache, worker, limit, kinds, now)?
    } else {
        Vec::new()
    };
    tx.commit()?;
    Ok((applied, jobs))
}

/// The attempt number its history row records (an interrupted run counts no attempt, so it is
/// the one after the job's count).
fn attempt_number(f: &FinishedAttempt) -> u32 {
    if f.outcome == AttemptOutcome::Interrupted {
        f.attempts + 1
    } else {
        f.attempts
    }
}

/// The kind filter of a claim, with the placeholder its kinds bind to.
fn kind_filter(kinds: &[String], placeholder: usize) -> String {
    if kinds.is_empty() {
        String::new()
    } else {
        format!(" AND kind = ANY(${placeholder})")
    }
}

/// The claim's subquery: the first `limit` due jobs in claim order, walking `jobs_runnable`,
/// skipping rows other claimers hold. The limit is written into the SQL (one prepared variant
/// per thread count) so the plan is made for it.
fn due_jobs(limit: usize, kind_filter: &str) -> String {
    format!(
        "SELECT seq FROM jobs WHERE state IN ('pending', 'failed') AND run_at <= $2{kind_filter} \
         ORDER BY priority DESC, run_at, seq LIMIT {limit} FOR UPDATE SKIP LOCKED"
    )
}

/// RETURNING promises no order: claim order restored.
fn in_claim_order(mut jobs: Vec<Job>) -> Vec<Job> {
    jobs.sort_by(|a, b| {
        b.priority
            .cmp(&a.priority)
            .then(a.run_at.cmp(&b.run_at))
            .then(a.seq.cmp(&b.seq))
    });
    jobs
}

/// The whole step as one statement (see the module's documentation). Its one row per claimed
/// job (or a single row with no job) carries the places (1-based) of the attempts that applied.
fn finish_and_claim_at_once(
    conn: &mut Conn,
    worker: &str,
    finished: &[FinishedAttempt],
    limit: usize,
    kinds: &[String],
    now: Millis,
) -> Result<(Vec<bool>, Vec<Job>)> {
    let sql = format!(
        "WITH f AS ( \
             SELECT * FROM unnest($3::int8[], $4::int8[], $5::text[], $6::int8[], $7::int8[], $8::int8[], \
                                  $9::int4[], $10::text[], $11::text[], $12::text[], $13::int8[], $14::text[], \
                                  $15::int8[], $16::text[], $17::text[]) WITH ORDINALITY \
                 AS f (seq, lease, state, attempts, run_at, finished_at, exit_code, error, stdout, stderr, \
                       attempt, outcome, started_at, stdout_tail, stderr_tail, place)), \
         done AS ( \
             UPDATE jobs j SET state = f.state, attempts = f.attempts, run_at = COALESCE(f.run_at, j.run_at), \
                 updated_at = f.finished_at, finished_at = f.finished_at, exit_code = f.exit_code, \
                 last_error = COALESCE(f.error, j.last_error), stdout = f.stdout, stderr = f.stderr, \
                 worker = CASE WHEN f.state = 'pending' THEN NULL ELSE j.worker END \
             FROM f, jobs old_job \
             WHERE j.seq = f.seq AND old_job.seq = j.seq AND j.state = 'processing' AND j.lease = f.lease \
             RETURNING f.place, old_job.worker), \
         history AS ( \
             INSERT INTO attempts (job_seq, attempt, outcome, worker, started_at, finished_at, exit_code, error, \
                                   stdout_tail, stderr_tail) \
             SELECT f.seq, f.attempt, f.outcome, done.worker, f.started_at, f.finished_at, f.exit_code, f.error, \
                    f.stdout_tail, f.stderr_tail \
             FROM done JOIN f ON f.place = done.place ORDER BY f.place), \
         claimed AS ( \
             UPDATE jobs SET state = 'processing', worker = $1, started_at = $2, updated_at = $2, \
                 finished_at = NULL, lease = lease + 1 \
             WHERE seq IN ({}) \
             RETURNING {JOB_COLUMNS}) \
         SELECT applied.places, claimed.* \
         FROM (SELECT array_agg(place) AS places FROM done) applied LEFT JOIN claimed ON true",
        due_jobs(limit, &kind_filter(kinds, 18))
    );
    let statement = conn.prepared(&sql)?;
    let seq: Vec<i64> = finished.iter().map(|f| f.job_seq).collect();
    let lease: Vec<i64> = finished.iter().map(|f| f.lease).collect();
    let state: Vec<&str> = finished.iter().map(|f| f.new_state.as_str()).collect();
    let attempts: Vec<i64> = finished.iter().map(|f| i64::from(f.attempts)).collect();
    let run_at: Vec<Option<i64>> = finished.iter().map(|f| f.run_at).collect();
    let finished_at: Vec<i64> = finished.iter().map(|f| f.finished_at).collect();
    let exit_code: Vec<Option<i32>> = finished.iter().map(|f| f.exit_code).collect();
    let error: Vec<Option<&str>> = finished.iter().map(|f| f.error.as_deref()).collect();
    let stdout: Vec<Option<&str>> = finished.iter().map(|f| f.stdout.as_deref()).collect();
    let stderr: Vec<Option<&str>> = finished.iter().map(|f| f.stderr.as_deref()).collect();
    let attempt: Vec<i64> = finished.iter().map(|f| i64::from(attempt_number(f))).collect();
    let outcome: Vec<&str> = finished.iter().map(|f| f.outcome.as_str()).collect();
    let started_at: Vec<Option<i64>> = finished.iter().map(|f| f.started_at).collect();
    let stdout_tail: Vec<Option<String>> = finished.iter().map(|f| tail(&f.stdout, HISTORY_TAIL_BYTES)).collect();
    let stderr_tail: Vec<Option<String>> = finished.iter().map(|f| tail(&f.stderr, HISTORY_TAIL_BYTES)).collect();
    let mut params: Vec<&(dyn ToSql + Sync)> = vec![
        &worker,
        &now,
        &seq,
        &lease,
        &state,
        &attempts,
        &run_at,
        &finished_at,
        &exit_code,
        &error,
        &stdout,
        &stderr,
        &attempt,
        &outcome,
        &started_at,
        &stdout_tail,
        &stderr_tail,
    ];
    if !kinds.is_empty() {
        params.push(&kinds);
    }
    let rows = conn.client.query(&statement, &params)?;
    let mut applied = vec![false; finished.len()];
    let mut jobs = Vec::new();
    for row in &rows {
        if let Some(places) = row.try_get::<_, Option<Vec<i64>>>(0)? {
            for place in places {
                applied[(place - 1) as usize] = true;
            }
        }
        if row.try_get::<_, Option<i64>>(1)?.is_some() {
            jobs.push(row_to_job_at(row, 1)?);
        }
    }
    Ok((applied, in_claim_order(jobs)))
}

/// Claims up to `limit` due jobs in claim order for `worker` (a statement of the transaction
/// `tx` runs).
pub(super) fn claim_in(
    tx: &mut impl GenericClient,
    cache: &mut HashMap<String, Statement>,
    worker: &str,
    limit: usize,
    kinds: &[String],
    now: Millis,
) -> Result<Vec<Job>> {
    let sql = format!(
        "UPDATE jobs SET state = 'processing', worker = $1, started_at = $2, updated_at = $2, \
         finished_at = NULL, lease = lease + 1 \
         WHERE seq IN ({}) \
         RETURNING {JOB_COLUMNS}",
        due_jobs(limit, &kind_filter(kinds, 3))
    );
    let statement = prepared(tx, cache, &sql)?;
    let rows = if kinds.is_empty() {
        tx.query(&statement, &[&worker, &now])?
    } else {
        tx.query(&statement, &[&worker, &now, &kinds])?
    };
    Ok(in_claim_order(rows_to_jobs(&rows)?))
}

/// The last `limit` bytes of `text` (at a character boundary).
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

/// Records finished attempts, one statement each, in `seq` order (two transactions touching
/// the same jobs lock them in the same order). Each applies only while its job is still
/// `processing` under the same claim (`lease`); its history row (which copies the job's worker
/// before a release clears it) is written by the same statement, only when the update applied.
/// With `holdings`, an attempt whose guard fails but that an earlier transaction, lost with its
/// connection, recorded after all counts as applied.
pub(super) fn finish_in(
    tx: &mut impl GenericClient,
    cache: &mut HashMap<String, Statement>,
    finished: &[FinishedAttempt],
    holdings: Option<(&str, &Holdings)>,
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
        let number = attempt_number(f);
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
                &i64::from(number),
                &f.outcome.as_str(),
                &f.started_at,
                &tail(&f.stdout, HISTORY_TAIL_BYTES),
                &tail(&f.stderr, HISTORY_TAIL_BYTES),
            ],
        )?;
        applied[i] = inserted == 1;
        if !applied[i] {
            if let Some((worker, holdings)) = holdings {
                applied[i] = holdings.recorded_before(tx, cache, worker, f, number)?;
            }
        }
    }
    Ok(applied)
}
