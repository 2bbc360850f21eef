//! The database schema and its migrations, versioned with `PRAGMA user_version`.
//!
//! Each entry of [`MIGRATIONS`] moves the schema up one version and runs in the same
//! transaction as the version bump, so a crash mid-migration leaves the old version intact.
//! Only `queuectl migrate`, `init` and `worker start` run them, each after writing a backup
//! beside the database (see [`super::backup`]); every other command refuses an older schema.
//!
//! The migrations are history: version 3 renamed everything to the `queuectl_` prefix, and the
//! SQL of versions 1 and 2 below still uses the old names. A new database gets the schema those
//! migrations end with in one step ([`create_current`]), never the old names, so `init` works on
//! a file whose application already has a table called `jobs`.

/// The schema version this build writes and understands.
pub const SCHEMA_VERSION: i64 = 3;

/// The first schema version whose tables, indexes and triggers carry the `queuectl_` prefix
/// (`queuectl_jobs`, `queuectl_meta`, ...), so they never clash with an application's own tables
/// in the same file. Code that reads an older database (`migrate`, the backup it takes first)
/// picks the names by version: [`table`].
pub const PREFIXED_SINCE: i64 = 3;

/// The name of the queuectl table `name` (`jobs`, `meta`, ...) in a database at schema `version`:
/// `queuectl_jobs` from [`PREFIXED_SINCE`] on, the bare name before.
pub fn table(name: &str, version: i64) -> String {
    if version >= PREFIXED_SINCE {
        format!("queuectl_{name}")
    } else {
        name.to_string()
    }
}

/// The `meta` key naming the queuectl that last ran a migration on the database
/// (`queuectl 0.1.0`): after an upgrade it tells which binary moved the schema, and `migrate`
/// shows it.
pub const META_LAST_MIGRATED_BY: &str = "last_migrated_by";

/// Creates the current schema on `conn` (inside the caller's transaction) in one step, for a
/// new database (version 0). Replaying [`MIGRATIONS`] there would first create the old,
/// unprefixed names (`jobs`, `config`, ...), which an application's own tables in the same
/// file may already use. The statements are the ones a replay leaves in `sqlite_master` (it runs
/// in a scratch in-memory database), so a new database and an upgraded one have the same
/// schema, statement for statement.
pub fn create_current(conn: &rusqlite::Connection) -> rusqlite::Result<()> {
    let scratch = rusqlite::Connection::open_in_memory()?;
    for migration in MIGRATIONS {
        scratch.execute_batch(migration)?;
    }
    let statements = scratch
        .prepare(
            "SELECT sql FROM sqlite_master WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' \
             ORDER BY CASE type WHEN 'table' THEN 0 WHEN 'index' THEN 1 ELSE 2 END, rowid",
        )?
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    for statement in statements {
        conn.execute_batch(&statement)?;
    }
    Ok(())
}

/// `MIGRATIONS[n]` takes a database from version `n` to `n + 1`. A new database skips them:
/// see [`create_current`].
pub const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE jobs (
    seq             INTEGER PRIMARY KEY,          -- enqueue order, never reused (FIFO tiebreak)
    id              TEXT NOT NULL UNIQUE,         -- the spec's string id
    kind            TEXT NOT NULL DEFAULT 'shell',
    command         TEXT NOT NULL,
    payload         TEXT,                         -- JSON, for custom executors
    state           TEXT NOT NULL CHECK (state IN ('pending','processing','completed','failed','dead')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    max_retries     INTEGER,                      -- NULL: config's max_retries at failure time
    priority        INTEGER NOT NULL DEFAULT 0,
    run_at          INTEGER NOT NULL,             -- ms since epoch; not before
    timeout_seconds INTEGER,
    cwd             TEXT,
    env             TEXT,                         -- JSON object
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    started_at      INTEGER,
    finished_at     INTEGER,
    worker          TEXT,                         -- the worker that holds (or last held) it
    lease           INTEGER NOT NULL DEFAULT 0,   -- claims so far: names the current claim, so a
                                                  -- stale holder's result is never applied
    exit_code       INTEGER,
    last_error      TEXT,
    stdout          TEXT,
    stderr          TEXT,
    source          TEXT NOT NULL                 -- cli | api | spool:NAME
);

-- The claim query walks this partial index in claim order, so claiming stays flat however many
-- finished jobs the table holds.
CREATE INDEX jobs_runnable ON jobs (priority DESC, run_at, seq) WHERE state IN ('pending', 'failed');
-- Due-now counts and the next wake-up time of an idle worker.
CREATE INDEX jobs_due ON jobs (run_at) WHERE state IN ('pending', 'failed');
-- `list --state S` in enqueue order.
CREATE INDEX jobs_state_seq ON jobs (state, seq);

-- Counts per kind and state kept by triggers, so `status` is O(1) on a table of millions
-- (whatever state those millions are in).
CREATE TABLE job_counts (
    kind  TEXT NOT NULL,
    state TEXT NOT NULL,
    n     INTEGER NOT NULL,
    PRIMARY KEY (kind, state)
) WITHOUT ROWID;
CREATE TRIGGER jobs_count_insert AFTER INSERT ON jobs BEGIN
    INSERT INTO job_counts (kind, state, n) VALUES (NEW.kind, NEW.state, 1)
        ON CONFLICT (kind, state) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER jobs_count_update AFTER UPDATE OF state ON jobs WHEN OLD.state <> NEW.state BEGIN
    UPDATE job_counts SET n = n - 1 WHERE kind = OLD.kind AND state = OLD.state;
    INSERT INTO job_counts (kind, state, n) VALUES (NEW.kind, NEW.state, 1)
        ON CONFLICT (kind, state) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER jobs_count_delete AFTER DELETE ON jobs BEGIN
    UPDATE job_counts SET n = n - 1 WHERE kind = OLD.kind AND state = OLD.state;
END;

-- One row per attempt that ended: the story `show` tells.
CREATE TABLE attempts (
    rowid       INTEGER PRIMARY KEY,
    job_seq     INTEGER NOT NULL REFERENCES jobs (seq) ON DELETE CASCADE,
    attempt     INTEGER NOT NULL,
    outcome     TEXT NOT NULL,                    -- completed | failed | lost | interrupted
    worker      TEXT,
    started_at  INTEGER,
    finished_at INTEGER NOT NULL,
    exit_code   INTEGER,
    error       TEXT,
    stdout_tail TEXT,
    stderr_tail TEXT
);
CREATE INDEX attempts_job ON attempts (job_seq);

-- `queuectl config set` values; they override config/queuectl.toml.
CREATE TABLE config (key TEXT PRIMARY KEY, value TEXT NOT NULL, updated_at INTEGER NOT NULL) WITHOUT ROWID;

-- Live worker processes and their leases.
CREATE TABLE workers (
    id           TEXT PRIMARY KEY,
    pid          INTEGER NOT NULL,
    host         TEXT NOT NULL,
    proc_start   INTEGER,                         -- /proc/PID/stat start time: PIDs get reused
    started_at   INTEGER NOT NULL,
    heartbeat_at INTEGER NOT NULL,
    threads      INTEGER NOT NULL,
    kinds        TEXT NOT NULL,                   -- JSON array of the kinds it runs
    slots        TEXT NOT NULL DEFAULT '[]',      -- JSON: what each busy thread runs
    stopping     INTEGER NOT NULL DEFAULT 0,
    version      TEXT NOT NULL
) WITHOUT ROWID;

-- Spool files already committed, so a file re-read after a crash is deleted, not re-added.
CREATE TABLE spool_files (
    file_key    TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    jobs        INTEGER NOT NULL,
    ingested_at INTEGER NOT NULL
) WITHOUT ROWID;
"#,
    // Version 2: facts about the database itself rather than the queue. The migration code
    // records which queuectl last migrated it (`META_LAST_MIGRATED_BY`).
    r#"
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
"#,
    // Version 3: every table, index and trigger gets the `queuectl_` prefix, so an application
    // can keep its own tables in the queue's file (and enqueue in its own transactions: see
    // `queuectl::sqlite`) without clashing. `ALTER TABLE ... RENAME` keeps every row and
    // rewrites the references to a renamed table (the attempts -> jobs foreign key, trigger
    // bodies) as long as `legacy_alter_table` is off, SQLite's default; it renames the
    // automatic index of `id UNIQUE` with its table. Indexes and triggers cannot be renamed:
    // they are dropped first and made again under the new names (the indexes rebuilt from the
    // table: seconds for a million jobs, once).
    r#"
PRAGMA legacy_alter_table = OFF;
DROP TRIGGER jobs_count_insert;
DROP TRIGGER jobs_count_update;
DROP TRIGGER jobs_count_delete;
DROP INDEX jobs_runnable;
DROP INDEX jobs_due;
DROP INDEX jobs_state_seq;
DROP INDEX attempts_job;

ALTER TABLE jobs RENAME TO queuectl_jobs;
ALTER TABLE job_counts RENAME TO queuectl_job_counts;
ALTER TABLE attempts RENAME TO queuectl_attempts;
ALTER TABLE config RENAME TO queuectl_config;
ALTER TABLE workers RENAME TO queuectl_workers;
ALTER TABLE spool_files RENAME TO queuectl_spool_files;
ALTER TABLE meta RENAME TO queuectl_meta;

CREATE INDEX queuectl_jobs_runnable ON queuectl_jobs (priority DESC, run_at, seq) WHERE state IN ('pending', 'failed');
CREATE INDEX queuectl_jobs_due ON queuectl_jobs (run_at) WHERE state IN ('pending', 'failed');
CREATE INDEX queuectl_jobs_state_seq ON queuectl_jobs (state, seq);
CREATE INDEX queuectl_attempts_job ON queuectl_attempts (job_seq);

CREATE TRIGGER queuectl_jobs_count_insert AFTER INSERT ON queuectl_jobs BEGIN
    INSERT INTO queuectl_job_counts (kind, state, n) VALUES (NEW.kind, NEW.state, 1)
        ON CONFLICT (kind, state) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER queuectl_jobs_count_update AFTER UPDATE OF state ON queuectl_jobs WHEN OLD.state <> NEW.state BEGIN
    UPDATE queuectl_job_counts SET n = n - 1 WHERE kind = OLD.kind AND state = OLD.state;
    INSERT INTO queuectl_job_counts (kind, state, n) VALUES (NEW.kind, NEW.state, 1)
        ON CONFLICT (kind, state) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER queuectl_jobs_count_delete AFTER DELETE ON queuectl_jobs BEGIN
    UPDATE queuectl_job_counts SET n = n - 1 WHERE kind = OLD.kind AND state = OLD.state;
END;
"#,
];
