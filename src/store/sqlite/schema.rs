//! The database schema and its migrations, versioned with `PRAGMA user_version`.
//!
//! Each entry of [`MIGRATIONS`] moves the schema up one version and runs in the same
//! transaction as the version bump, so a crash mid-migration leaves the old version intact.
//! Only `queuectl migrate`, `init` and `worker start` run them, each after writing a backup
//! beside the database (see [`super::backup`]); every other command refuses an older schema.

/// The schema version this build writes and understands.
pub const SCHEMA_VERSION: i64 = 2;

/// The `meta` key naming the queuectl that last ran a migration on the database
/// (`queuectl 0.1.0`): after an upgrade it tells which binary moved the schema, and `migrate`
/// shows it.
pub const META_LAST_MIGRATED_BY: &str = "last_migrated_by";

/// `MIGRATIONS[n]` takes a database from version `n` to `n + 1`.
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
];
