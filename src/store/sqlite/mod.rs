//! The SQLite backend: every SQLite statement of queuectl lives in this module.
//!
//! A [`SqliteStore`] is one SQLite connection. It is `Send` but not `Sync`: each thread that needs the
//! database opens its own. Every state change is one transaction; claims use `BEGIN IMMEDIATE`
//! so two workers can never claim the same job, and finishing an attempt checks that the job is
//! still `processing` and held by the same worker, so a stale worker cannot overwrite a result.

pub mod backup;
pub(crate) mod caller_tx;
mod errors;
mod listing;
pub mod schema;
mod spool_sql;

use errors::is_unique_violation;

use super::{
    AttemptOutcome, BackupReport, DbLocation, FinishedAttempt, ListFilter, NewJob, Overwrite, ReapOutcome,
    SpoolFileJobs, SpoolFileResult, StateCounts, Store, WorkerRecord, HISTORY_TAIL_BYTES,
};
use crate::error::{Error, Result};
use crate::job::{Attempt, Job, State};
use crate::time::{now_ms, Millis};
use rusqlite::{params, params_from_iter, Connection, OpenFlags, OptionalExtension, Row, TransactionBehavior};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

const JOB_COLUMNS: &str = "seq, id, kind, command, payload, state, attempts, max_retries, priority, run_at, \
     timeout_seconds, cwd, env, created_at, updated_at, started_at, finished_at, worker, exit_code, \
     last_error, source, lease";
const JOB_COLUMNS_WITH_OUTPUT: &str = "seq, id, kind, command, payload, state, attempts, max_retries, priority, \
     run_at, timeout_seconds, cwd, env, created_at, updated_at, started_at, finished_at, worker, exit_code, \
     last_error, source, lease, stdout, stderr";

/// One SQLite connection to a queue database.
pub struct SqliteStore {
    conn: Connection,
    path: PathBuf,
    location: DbLocation,
    /// The database file's (device, inode) when opened: a file deleted or replaced under a
    /// running worker keeps working through the open descriptor, silently, so it is compared.
    file_id: Option<(u64, u64)>,
}

/// The (device, inode) of a file, if it exists.
fn file_identity(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// Opens an existing database file read-write and reads its schema version, changing nothing
/// (no WAL switch yet): refuses a missing file or one without a schema (never initialised, or
/// an interrupted `init`) and a schema newer than this build's.
fn open_checked(path: &Path) -> Result<(Connection, i64)> {
    if !path.is_file() {
        return Err(Error::NotInitialised(path.to_path_buf()));
    }
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI,
    )?;
    // Checked before switching to WAL: that switch writes, and a home that was never
    // initialised (an empty or foreign file) or a schema this build must not touch is left
    // untouched.
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version == 0 {
        return Err(Error::NotInitialised(path.to_path_buf()));
    }
    too_new(path, version)?;
    Ok((conn, version))
}

/// [`Error::SchemaTooNew`] for a version newer than this build's.
fn too_new(path: &Path, version: i64) -> Result<()> {
    if version > schema::SCHEMA_VERSION {
        return Err(Error::SchemaTooNew {
            path: path.to_path_buf(),
            found: version,
            supported: schema::SCHEMA_VERSION,
        });
    }
    Ok(())
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").field("path", &self.path).finish()
    }
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

fn row_to_job(row: &Row<'_>) -> rusqlite::Result<Job> {
    let state: String = row.get(5)?;
    let payload: Option<String> = row.get(4)?;
    let env: Option<String> = row.get(12)?;
    let column_count = row.as_ref().column_count();
    Ok(Job {
        seq: row.get(0)?,
        id: row.get(1)?,
        kind: row.get(2)?,
        command: row.get(3)?,
        payload: payload.and_then(|p| serde_json::from_str(&p).ok()),
        state: state.parse().unwrap_or(State::Pending),
        attempts: row.get(6)?,
        max_retries: row.get(7)?,
        priority: row.get(8)?,
        run_at: row.get(9)?,
        timeout_seconds: row.get(10)?,
        cwd: row.get(11)?,
        env: env.and_then(|e| serde_json::from_str(&e).ok()).unwrap_or_default(),
        created_at: row.get(13)?,
        updated_at: row.get(14)?,
        started_at: row.get(15)?,
        finished_at: row.get(16)?,
        worker: row.get(17)?,
        exit_code: row.get(18)?,
        last_error: row.get(19)?,
        source: row.get(20)?,
        lease: row.get(21)?,
        stdout: if column_count > 22 { row.get(22)? } else { None },
        stderr: if column_count > 23 { row.get(23)? } else { None },
    })
}

fn row_to_worker(row: &Row<'_>) -> rusqlite::Result<WorkerRecord> {
    let kinds: String = row.get(7)?;
    let slots: String = row.get(8)?;
    Ok(WorkerRecord {
        id: row.get(0)?,
        pid: row.get(1)?,
        host: row.get(2)?,
        proc_start: row.get::<_, Option<i64>>(3)?.map(|v| v as u64),
        started_at: row.get(4)?,
        heartbeat_at: row.get(5)?,
        threads: row.get(6)?,
        kinds: serde_json::from_str(&kinds).unwrap_or_default(),
        slots: serde_json::from_str(&slots).unwrap_or(serde_json::Value::Array(vec![])),
        stopping: row.get::<_, i64>(9)? != 0,
        version: row.get(10)?,
    })
}

impl SqliteStore {
    /// Opens an existing queue database at the current schema version. Never creates or
    /// changes anything: [`Error::NotInitialised`] if it does not exist or has no schema yet,
    /// [`Error::SchemaTooOld`] for an older schema (only an explicit upgrade, with a backup
    /// first, may change it: see [`SqliteStore::open_existing`]) and [`Error::SchemaTooNew`] for a
    /// newer one.
    pub fn open(path: &Path) -> Result<SqliteStore> {
        let (conn, version) = open_checked(path)?;
        if version < schema::SCHEMA_VERSION {
            return Err(Error::SchemaTooOld {
                path: path.to_path_buf(),
                found: version,
                needed: schema::SCHEMA_VERSION,
            });
        }
        SqliteStore::configure(conn, path)
    }

    /// Opens an existing queue database at the current or an older schema version, without
    /// migrating it; returns the store and the version found. For `migrate` and `backup`,
    /// which must work on a database this build cannot use yet. Refuses what [`SqliteStore::open`]
    /// refuses except an older schema.
    pub fn open_existing(path: &Path) -> Result<(SqliteStore, i64)> {
        let (conn, version) = open_checked(path)?;
        Ok((SqliteStore::configure(conn, path)?, version))
    }

    /// Creates (or opens) the database without migrating it. Returns the store and the schema
    /// version found: 0 for a new file (or one an interrupted `init` left without a schema).
    /// A new file is created with mode 0600. The caller runs [`Store::migrate`], after a
    /// backup when the version is older but not 0.
    pub fn create(path: &Path) -> Result<(SqliteStore, i64)> {
        if !path.exists() {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(|e| Error::io(path, e))?;
        }
        let conn = Connection::open(path)?;
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        too_new(path, version)?;
        let store = SqliteStore::configure(conn, path)?;
        Ok((store, version))
    }

    fn configure(conn: Connection, path: &Path) -> Result<SqliteStore> {
        conn.busy_timeout(Duration::from_secs(30))?;
        // Room for the claim statement's per-thread-count variants besides the rest.
        conn.set_prepared_statement_cache_capacity(64);
        // WAL lets readers (status, list) run while workers write; NORMAL sync is safe in WAL
        // (consistent after a crash); accepting jobs switches to FULL for durability.
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(Error::Other(format!(
                "{}: could not switch to WAL mode (got {mode})",
                path.display()
            )));
        }
        // temp_store = MEMORY keeps statement journals (written by multi-row updates and
        // triggers inside a transaction) off the disk.
        // journal_size_limit: after a checkpoint the WAL is truncated to at most this size, so
        // a burst of writes does not leave a large file behind on a small disk.
        conn.execute_batch(
            "PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA temp_store = MEMORY; \
             PRAGMA journal_size_limit = 16777216;",
        )?;
        Ok(SqliteStore {
            conn,
            path: path.to_path_buf(),
            location: DbLocation::Sqlite(path.to_path_buf()),
            file_id: file_identity(path),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Store for SqliteStore {
    fn location(&self) -> &DbLocation {
        &self.location
    }

    fn supported_schema_version(&self) -> i64 {
        schema::SCHEMA_VERSION
    }

    /// The database's schema version (`PRAGMA user_version`).
    fn schema_version(&self) -> Result<i64> {
        Ok(self.conn.query_row("PRAGMA user_version", [], |r| r.get(0))?)
    }

    /// The queuectl that last migrated this database (`queuectl 0.1.0`), if recorded: schema
    /// versions before 2 have no place for it.
    fn last_migrated_by(&self) -> Result<Option<String>> {
        let version = self.schema_version()?;
        if version < 2 {
            return Ok(None);
        }
        let sql = format!("SELECT value FROM {} WHERE key = ?1", schema::table("meta", version));
        Ok(self
            .conn
            .query_row(&sql, [schema::META_LAST_MIGRATED_BY], |r| r.get(0))
            .optional()?)
    }

    /// Brings the schema up to [`schema::SCHEMA_VERSION`], one migration per transaction (a new
    /// database: the current schema in one, see [`schema::create_current`]), each recording this
    /// queuectl's version in `meta` (`queuectl_meta` from version 3). Does nothing on a current database.
    /// Callers take a backup first (`Queue::migrate`, `Queue::init`).
    fn migrate(&self) -> Result<()> {
        loop {
            let version = self.schema_version()?;
            too_new(&self.path, version)?;
            if version == schema::SCHEMA_VERSION {
                return Ok(());
            }
            self.conn.execute_batch("BEGIN IMMEDIATE")?;
            // Re-read under the write lock: another process may have migrated meanwhile.
            let version = self.schema_version()?;
            // A new database gets the current schema at once, an older one the next migration.
            let target = if version == 0 {
                schema::SCHEMA_VERSION
            } else {
                version + 1
            };
            let result = if version < schema::SCHEMA_VERSION {
                let step = if version == 0 {
                    schema::create_current(&self.conn)
                } else {
                    self.conn.execute_batch(schema::MIGRATIONS[version as usize])
                };
                step.and_then(|_| self.conn.execute_batch(&format!("PRAGMA user_version = {target}")))
                    .and_then(|_| {
                        if target < 2 {
                            return Ok(0);
                        }
                        self.conn.execute(
                            &format!(
                                "INSERT INTO {} (key, value) VALUES (?1, ?2) \
                                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                                schema::table("meta", target)
                            ),
                            params![
                                schema::META_LAST_MIGRATED_BY,
                                concat!("queuectl ", env!("CARGO_PKG_VERSION"))
                            ],
                        )
                    })
                    .map(|_| ())
            } else {
                Ok(())
            };
            match result {
                Ok(()) => self.conn.execute_batch("COMMIT")?,
                Err(e) => {
                    let _ = self.conn.execute_batch("ROLLBACK");
                    // SQLite's message may quote the whole migration statement: keep one line.
                    let message = e.to_string();
                    let first = message.lines().next().unwrap_or("").trim();
                    return Err(Error::Other(format!(
                        "{}: migrating the schema from version {version} to {target} failed (nothing was changed): {first}",
                        self.path.display(),
                    )));
                }
            }
        }
    }

    /// Fails if the database file was deleted or replaced since it was opened (this connection
    /// would go on writing to a file nobody else sees).
    fn check_health(&self) -> Result<()> {
        let now = file_identity(&self.path);
        if self.file_id.is_some() && now != self.file_id {
            let what = if now.is_none() {
                "deleted"
            } else {
                "replaced by another file"
            };
            return Err(Error::Other(format!(
                "the queue database {} was {what} while in use: stopping (restore it, or run `queuectl init`)",
                self.path.display()
            )));
        }
        Ok(())
    }

    /// Checkpoints the WAL into the database and truncates it: frees disk space after writes
    /// failed on a full disk. Errors are returned for the caller to report.
    fn relieve_full(&self) -> Result<()> {
        self.conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        Ok(())
    }

    /// SQLite's `data_version`: changes whenever *another* connection commits. Polling it is
    /// nearly free and is how idle workers notice new jobs without a daemon.
    fn change_token(&self) -> Result<i64> {
        Ok(self
            .conn
            .prepare_cached("PRAGMA data_version")?
            .query_row([], |r| r.get(0))?)
    }

    /// Inserts a batch of jobs in one transaction, all or nothing. With `durable`, the commit is
    /// synced to disk (`synchronous = FULL`) before this returns.
    fn insert_jobs(&mut self, jobs: &[NewJob], durable: bool) -> Result<()> {
        if durable {
            self.conn.execute_batch("PRAGMA synchronous = FULL")?;
        }
        let result = (|| {
            let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            insert_jobs_in(&tx, jobs)?;
            tx.commit()?;
            Ok(())
        })();
        if durable {
            self.conn.execute_batch("PRAGMA synchronous = NORMAL")?;
        }
        result
    }

    /// Inserts the jobs of many spool files in one durable transaction; each file is all or
    /// nothing on its own (a savepoint), and the file's key is recorded with its jobs so a file
    /// re-read after a crash is recognised.
    fn ingest_spool_files(&mut self, files: &[SpoolFileJobs]) -> Result<Vec<SpoolFileResult>> {
        self.conn.execute_batch("PRAGMA synchronous = FULL")?;
        let result = (|| {
            let mut tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let now = now_ms();
            let mut results = Vec::with_capacity(files.len());
            for file in files {
                let seen: bool = tx
                    .query_row(
                        "SELECT 1 FROM queuectl_spool_files WHERE file_key = ?1",
                        [&file.file_key],
                        |_| Ok(true),
                    )
                    .optional()?
                    .unwrap_or(false);
                if seen {
                    results.push(SpoolFileResult::AlreadyIngested);
                    continue;
                }
                let sp = tx.savepoint()?;
                let inserted = insert_jobs_in(&sp, &file.jobs).and_then(|_| {
                    sp.execute(
                        "INSERT INTO queuectl_spool_files (file_key, name, jobs, ingested_at) VALUES (?1, ?2, ?3, ?4)",
                        params![file.file_key, file.name, file.jobs.len() as i64, now],
                    )?;
                    Ok(())
                });
                match inserted {
                    Ok(()) => {
                        sp.commit()?;
                        results.push(SpoolFileResult::Inserted(file.jobs.len()));
                    }
                    Err(e) => {
                        drop(sp); // rolls back this file's savepoint only
                        results.push(SpoolFileResult::Refused(e));
                    }
                }
            }
            tx.commit()?;
            Ok(results)
        })();
        self.conn.execute_batch("PRAGMA synchronous = NORMAL")?;
        result
    }

    /// One job with its captured output, or `None`.
    fn get_job(&self, id: &str) -> Result<Option<Job>> {
        let sql = format!("SELECT {JOB_COLUMNS_WITH_OUTPUT} FROM queuectl_jobs WHERE id = ?1");
        Ok(self.conn.query_row(&sql, [id], row_to_job).optional()?)
    }

    /// The states of the given ids (missing ids are absent from the map).
    fn job_states(&self, ids: &[String]) -> Result<BTreeMap<String, State>> {
        let mut statement = self
            .conn
            .prepare_cached("SELECT state FROM queuectl_jobs WHERE id = ?1")?;
        let mut states = BTreeMap::new();
        for id in ids {
            if let Some(state) = statement.query_row([id], |r| r.get::<_, String>(0)).optional()? {
                states.insert(id.clone(), state.parse()?);
            }
        }
        Ok(states)
    }

    /// Jobs in enqueue order (oldest first), optionally of one state, at most `limit`.
    fn list_jobs(&self, state: Option<State>, limit: Option<u64>) -> Result<Vec<Job>> {
        let limit = limit.map(|l| l.min(i64::MAX as u64) as i64).unwrap_or(-1);
        let jobs = match state {
            Some(state) => {
                let sql = format!("SELECT {JOB_COLUMNS} FROM queuectl_jobs WHERE state = ?1 ORDER BY seq LIMIT ?2");
                let mut statement = self.conn.prepare(&sql)?;
                let rows = statement.query_map(params![state.as_str(), limit], row_to_job)?;
                rows.collect::<rusqlite::Result<Vec<_>>>()?
            }
            None => {
                let sql = format!("SELECT {JOB_COLUMNS} FROM queuectl_jobs ORDER BY seq LIMIT ?1");
                let mut statement = self.conn.prepare(&sql)?;
                let rows = statement.query_map(params![limit], row_to_job)?;
                rows.collect::<rusqlite::Result<Vec<_>>>()?
            }
        };
        Ok(jobs)
    }

    /// The attempt history of a job, oldest first.
    fn attempts(&self, job_seq: i64) -> Result<Vec<Attempt>> {
        let mut statement = self.conn.prepare(
            "SELECT attempt, outcome, worker, started_at, finished_at, exit_code, error, stdout_tail, stderr_tail \
             FROM queuectl_attempts WHERE job_seq = ?1 ORDER BY rowid",
        )?;
        let rows = statement.query_map([job_seq], |r| {
            Ok(Attempt {
                attempt: r.get(0)?,
                outcome: r.get(1)?,
                worker: r.get(2)?,
                started_at: r.get(3)?,
                finished_at: r.get(4)?,
                exit_code: r.get(5)?,
                error: r.get(6)?,
                stdout_tail: r.get(7)?,
                stderr_tail: r.get(8)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    /// Jobs per state (kept by triggers: O(1)).
    fn counts(&self) -> Result<StateCounts> {
        let mut counts = StateCounts::default();
        let mut statement = self
            .conn
            .prepare_cached("SELECT state, SUM(n) FROM queuectl_job_counts GROUP BY state")?;
        let rows = statement.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
        for row in rows {
            let (state, n) = row?;
            let n = n.max(0) as u64;
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

    /// Waiting jobs (`pending` or `failed`) scheduled after `now`. Counting the future side
    /// keeps this cheap when millions of jobs are due: scheduled jobs are usually few.
    fn count_scheduled(&self, now: Millis) -> Result<u64> {
        Ok(self.conn.query_row(
            "SELECT COUNT(*) FROM queuectl_jobs INDEXED BY queuectl_jobs_due WHERE state IN ('pending', 'failed') AND run_at > ?1",
            [now],
            |r| r.get::<_, i64>(0),
        )? as u64)
    }

    /// Waiting jobs per kind.
    fn waiting_by_kind(&self) -> Result<BTreeMap<String, u64>> {
        let mut statement = self.conn.prepare(
            "SELECT kind, SUM(n) FROM queuectl_job_counts WHERE state IN ('pending', 'failed') GROUP BY kind \
             HAVING SUM(n) > 0 ORDER BY kind",
        )?;
        let rows = statement.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64)))?;
        Ok(rows.collect::<rusqlite::Result<BTreeMap<_, _>>>()?)
    }

    /// The earliest `run_at` among waiting jobs of these kinds (all kinds when `kinds` is empty).
    fn next_run_at(&self, kinds: &[String]) -> Result<Option<Millis>> {
        if kinds.is_empty() {
            return Ok(self.conn.query_row(
                "SELECT MIN(run_at) FROM queuectl_jobs INDEXED BY queuectl_jobs_due WHERE state IN ('pending', 'failed')",
                [],
                |r| r.get(0),
            )?);
        }
        let sql = format!(
            "SELECT MIN(run_at) FROM queuectl_jobs INDEXED BY queuectl_jobs_due WHERE state IN ('pending', 'failed') AND kind IN ({})",
            placeholders(kinds.len(), 1)
        );
        Ok(self.conn.query_row(&sql, params_from_iter(kinds), |r| r.get(0))?)
    }

    /// True while any job of these kinds is pending, processing or waiting for a retry.
    fn has_unfinished(&self, kinds: &[String]) -> Result<bool> {
        let sql = if kinds.is_empty() {
            "SELECT EXISTS (SELECT 1 FROM queuectl_jobs WHERE state IN ('pending', 'failed', 'processing'))".to_string()
        } else {
            format!(
                "SELECT EXISTS (SELECT 1 FROM queuectl_jobs WHERE state IN ('pending', 'failed', 'processing') AND kind IN ({}))",
                placeholders(kinds.len(), 1)
            )
        };
        Ok(self
            .conn
            .query_row(&sql, params_from_iter(kinds), |r| r.get::<_, i64>(0))?
            != 0)
    }

    /// Records finished attempts and claims up to `limit` new jobs in one transaction: a worker
    /// whose thread just freed up needs one write lock, not two. Each attempt applies only if its
    /// job is still `processing` under the same claim (see [`FinishedAttempt::lease`]); the
    /// first result says which applied. Claims follow claim order: priority (higher first), then
    /// due time, then enqueue order.
    fn finish_and_claim(
        &mut self,
        worker: &str,
        finished: &[FinishedAttempt],
        limit: usize,
        kinds: &[String],
        now: Millis,
    ) -> Result<(Vec<bool>, Vec<Job>)> {
        if finished.is_empty() && limit == 0 {
            return Ok((Vec::new(), Vec::new()));
        }
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let applied = finish_in(&tx, finished)?;
        let jobs = if limit > 0 {
            claim_in(&tx, worker, limit, kinds, now)?
        } else {
            Vec::new()
        };
        tx.commit()?;
        Ok((applied, jobs))
    }

    /// Recovers every `processing` job whose worker is not alive and removes the rows of dead
    /// workers, all in one transaction, so a worker that registers and claims meanwhile is never
    /// mistaken for a dead one. `lost` builds each orphaned job's recorded attempt, or `None` to
    /// leave the job `processing` for now (its lost run still has processes to stop); a dead
    /// worker's row stays while any of its jobs is left so. Each attempt applies only to the
    /// claim that was read (its lease). Returns the removed workers, the live ones, and the
    /// recovered jobs with what was recorded for them.
    fn reap_workers(
        &mut self,
        alive: &dyn Fn(&WorkerRecord) -> bool,
        lost: &dyn Fn(&Job) -> Option<FinishedAttempt>,
    ) -> Result<ReapOutcome> {
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let (live, dead): (Vec<WorkerRecord>, Vec<WorkerRecord>) = {
            let mut statement = tx.prepare_cached(
                "SELECT id, pid, host, proc_start, started_at, heartbeat_at, threads, kinds, slots, stopping, version \
                 FROM queuectl_workers ORDER BY started_at, id",
            )?;
            let workers = statement
                .query_map([], row_to_worker)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            workers.into_iter().partition(|worker| alive(worker))
        };
        let orphans: Vec<Job> = {
            let sql = format!("SELECT {JOB_COLUMNS} FROM queuectl_jobs WHERE state = 'processing' ORDER BY seq");
            let mut statement = tx.prepare_cached(&sql)?;
            let rows = statement.query_map([], row_to_job)?;
            let mut orphans = Vec::new();
            for job in rows {
                let job = job?;
                if !job
                    .worker
                    .as_ref()
                    .map(|w| live.iter().any(|l| &l.id == w))
                    .unwrap_or(false)
                {
                    orphans.push(job);
                }
            }
            orphans
        };
        let mut recovered = Vec::new();
        let mut held_by = Vec::new();
        for job in orphans {
            match lost(&job) {
                Some(attempt) => recovered.push((job, attempt)),
                None => held_by.extend(job.worker.clone()),
            }
        }
        let finished: Vec<FinishedAttempt> = recovered.iter().map(|(_, f)| f.clone()).collect();
        let applied = finish_in(&tx, &finished)?;
        let mut removed = Vec::new();
        for worker in dead {
            if !held_by.contains(&worker.id) {
                tx.execute("DELETE FROM queuectl_workers WHERE id = ?1", [&worker.id])?;
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

    /// Sets how long a statement waits for another connection's write lock before failing with
    /// "database is locked".
    fn set_lock_timeout(&self, timeout: Duration) -> Result<()> {
        self.conn.busy_timeout(timeout)?;
        Ok(())
    }

    /// Puts dead jobs back to `pending` with attempts reset, all or nothing: an id that does not
    /// exist or is not dead refuses the whole call.
    fn dlq_retry(&mut self, ids: &[String]) -> Result<usize> {
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let now = now_ms();
        for id in ids {
            let state: Option<String> = tx
                .query_row("SELECT state FROM queuectl_jobs WHERE id = ?1", [id], |r| r.get(0))
                .optional()?;
            match state.as_deref() {
                None => return Err(Error::NotFound(id.clone())),
                Some("dead") => {}
                Some(other) => {
                    return Err(Error::WrongState {
                        id: id.clone(),
                        actual: other.to_string(),
                        expected: "dead (only jobs in the DLQ can be retried)".to_string(),
                    })
                }
            }
            tx.execute(
                "UPDATE queuectl_jobs SET state = 'pending', attempts = 0, run_at = ?2, updated_at = ?2, worker = NULL \
                 WHERE id = ?1 AND state = 'dead'",
                params![id, now],
            )?;
        }
        tx.commit()?;
        Ok(ids.len())
    }

    /// Puts every dead job back to `pending`; returns how many.
    fn dlq_retry_all(&mut self) -> Result<usize> {
        let now = now_ms();
        Ok(self.conn.execute(
            "UPDATE queuectl_jobs SET state = 'pending', attempts = 0, run_at = ?1, updated_at = ?1, worker = NULL \
             WHERE state = 'dead'",
            [now],
        )?)
    }

    /// Every value stored by `config set`.
    fn config_values(&self) -> Result<BTreeMap<String, String>> {
        let mut statement = self.conn.prepare_cached("SELECT key, value FROM queuectl_config")?;
        let rows = statement.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<BTreeMap<_, _>>>()?)
    }

    /// Stores a `config set` value.
    fn config_set(&self, key: &str, value: &str) -> Result<()> {
        self.conn.execute(
            "INSERT INTO queuectl_config (key, value, updated_at) VALUES (?1, ?2, ?3) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
            params![key, value, now_ms()],
        )?;
        Ok(())
    }

    /// Drops a `config set` value; returns whether there was one.
    fn config_unset(&self, key: &str) -> Result<bool> {
        Ok(self.conn.execute("DELETE FROM queuectl_config WHERE key = ?1", [key])? > 0)
    }

    /// Records a worker process (or replaces its row).
    fn register_worker(&self, worker: &WorkerRecord) -> Result<()> {
        self.conn.execute(
            "INSERT OR REPLACE INTO queuectl_workers (id, pid, host, proc_start, started_at, heartbeat_at, threads, kinds, \
             slots, stopping, version) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            params![
                worker.id,
                worker.pid,
                worker.host,
                worker.proc_start.map(|v| v as i64),
                worker.started_at,
                worker.heartbeat_at,
                worker.threads,
                serde_json::to_string(&worker.kinds).unwrap_or_else(|_| "[]".into()),
                worker.slots.to_string(),
                worker.stopping as i64,
                worker.version,
            ],
        )?;
        Ok(())
    }

    /// Updates a worker's heartbeat and what its threads run. Returns false if its row is gone
    /// (another process decided it was dead).
    fn heartbeat(&self, id: &str, now: Millis, slots: &serde_json::Value, stopping: bool) -> Result<bool> {
        Ok(self.conn.execute(
            "UPDATE queuectl_workers SET heartbeat_at = ?2, slots = ?3, stopping = ?4 WHERE id = ?1",
            params![id, now, slots.to_string(), stopping as i64],
        )? == 1)
    }

    /// Removes a worker's row.
    fn remove_worker(&self, id: &str) -> Result<()> {
        self.conn.execute("DELETE FROM queuectl_workers WHERE id = ?1", [id])?;
        Ok(())
    }

    /// Every recorded worker.
    fn workers(&self) -> Result<Vec<WorkerRecord>> {
        let mut statement = self.conn.prepare_cached(
            "SELECT id, pid, host, proc_start, started_at, heartbeat_at, threads, kinds, slots, stopping, version \
             FROM queuectl_workers ORDER BY started_at, id",
        )?;
        let rows = statement.query_map([], row_to_worker)?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    fn list_filtered(&self, filter: &ListFilter) -> Result<Vec<Job>> {
        listing::list_filtered(self, filter)
    }

    fn ids_with_prefix(&self, prefix: &str, limit: u64) -> Result<Vec<String>> {
        listing::ids_with_prefix(self, prefix, limit)
    }

    fn id_neighbours(&self, id: &str) -> Result<(Option<String>, Option<String>)> {
        listing::id_neighbours(self, id)
    }

    fn job_source(&self, id: &str) -> Result<Option<String>> {
        spool_sql::job_source(self, id)
    }

    fn forget_spool_files_before(&self, cutoff: Millis) -> Result<usize> {
        spool_sql::forget_spool_files_before(self, cutoff)
    }

    fn backup_to(&self, dest: &Path, overwrite: Overwrite) -> Result<BackupReport> {
        backup::backup_to(self, dest, overwrite)
    }

    fn backup_before_migration(&self, version: i64) -> Result<Option<BackupReport>> {
        backup::backup_before_migration(self, version).map(Some)
    }
}

fn claim_in(tx: &Connection, worker: &str, limit: usize, kinds: &[String], now: Millis) -> Result<Vec<Job>> {
    let kind_filter = if kinds.is_empty() {
        String::new()
    } else {
        format!(" AND kind IN ({})", placeholders(kinds.len(), 3))
    };
    // The LIMIT is written into the SQL, not bound: a bound LIMIT in this subquery makes SQLite
    // re-prepare the statement on every call (measured: a fifth of a worker's CPU). There are
    // only as many variants as thread counts, and the statement cache holds them.
    let sql = format!(
        "UPDATE queuectl_jobs SET state = 'processing', worker = ?1, started_at = ?2, updated_at = ?2, finished_at = NULL, \
         lease = lease + 1 \
         WHERE seq IN (SELECT seq FROM queuectl_jobs INDEXED BY queuectl_jobs_runnable \
                       WHERE state IN ('pending', 'failed') AND run_at <= ?2{kind_filter} \
                       ORDER BY priority DESC, run_at, seq LIMIT {limit}) \
         RETURNING {JOB_COLUMNS}"
    );
    let mut values: Vec<rusqlite::types::Value> = vec![worker.to_string().into(), now.into()];
    values.extend(kinds.iter().map(|k| rusqlite::types::Value::from(k.clone())));
    let mut statement = tx.prepare_cached(&sql)?;
    let rows = statement.query_map(params_from_iter(values), row_to_job)?;
    let mut jobs = rows.collect::<rusqlite::Result<Vec<_>>>()?;
    // RETURNING does not promise an order: restore claim order.
    jobs.sort_by(|a, b| {
        b.priority
            .cmp(&a.priority)
            .then(a.run_at.cmp(&b.run_at))
            .then(a.seq.cmp(&b.seq))
    });
    Ok(jobs)
}

/// Records finished attempts. Each applies only while its job is still `processing` under the
/// same claim (`lease`): a claim always bumps the lease, so that one guard covers "same worker"
/// and "not recovered and re-claimed meanwhile". (A plain guard, with no `?x IS NULL OR …`
/// terms: those make SQLite re-prepare the statement on every new binding.)
fn finish_in(tx: &Connection, finished: &[FinishedAttempt]) -> Result<Vec<bool>> {
    let mut applied = Vec::with_capacity(finished.len());
    let mut update = tx.prepare_cached(
        "UPDATE queuectl_jobs SET state = ?2, attempts = ?3, run_at = COALESCE(?4, run_at), updated_at = ?5, \
         finished_at = ?5, exit_code = ?6, last_error = COALESCE(?7, last_error), stdout = ?8, stderr = ?9, \
         worker = CASE WHEN ?2 = 'pending' THEN NULL ELSE worker END \
         WHERE seq = ?1 AND state = 'processing' AND lease = ?10",
    )?;
    // The history row copies the worker column, so it is written before a release clears it;
    // it is written only when the job is still ours (the same condition as the update).
    let mut history = tx.prepare_cached(
        "INSERT INTO queuectl_attempts (job_seq, attempt, outcome, worker, started_at, finished_at, exit_code, error, \
         stdout_tail, stderr_tail) \
         SELECT ?1, ?2, ?3, worker, ?4, ?5, ?6, ?7, ?8, ?9 FROM queuectl_jobs \
         WHERE seq = ?1 AND state = 'processing' AND lease = ?10",
    )?;
    for f in finished {
        let attempt_number = if f.outcome == AttemptOutcome::Interrupted {
            f.attempts + 1
        } else {
            f.attempts
        };
        let inserted = history.execute(params![
            f.job_seq,
            attempt_number,
            f.outcome.as_str(),
            f.started_at,
            f.finished_at,
            f.exit_code,
            f.error,
            tail(&f.stdout, HISTORY_TAIL_BYTES),
            tail(&f.stderr, HISTORY_TAIL_BYTES),
            f.lease,
        ])?;
        if inserted == 0 {
            applied.push(false);
            continue;
        }
        let changed = update.execute(params![
            f.job_seq,
            f.new_state.as_str(),
            f.attempts,
            f.run_at,
            f.finished_at,
            f.exit_code,
            f.error,
            f.stdout,
            f.stderr,
            f.lease,
        ])?;
        applied.push(changed == 1);
    }
    Ok(applied)
}

fn placeholders(count: usize, first: usize) -> String {
    (first..first + count)
        .map(|i| format!("?{i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn insert_jobs_in(conn: &Connection, jobs: &[NewJob]) -> Result<()> {
    let mut statement = conn.prepare_cached(
        "INSERT INTO queuectl_jobs (id, kind, command, payload, state, attempts, max_retries, priority, run_at, \
         timeout_seconds, cwd, env, created_at, updated_at, source) \
         VALUES (?1, ?2, ?3, ?4, 'pending', 0, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?11, ?12)",
    )?;
    for job in jobs {
        let result = statement.execute(params![
            job.id,
            job.kind,
            job.command,
            job.payload,
            job.max_retries,
            job.priority,
            job.run_at,
            job.timeout_seconds.map(|t| t as i64),
            job.cwd,
            job.env,
            job.created_at,
            job.source,
        ]);
        if let Err(e) = result {
            if is_unique_violation(&e) {
                return Err(Error::DuplicateId {
                    id: job.id.clone(),
                    location: job.location.clone(),
                });
            }
            return Err(e.into());
        }
    }
    Ok(())
}
