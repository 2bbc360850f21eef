//! The queue's tables in one PostgreSQL schema, and their migrations.
//!
//! The version lives in the schema's `meta` table (`schema_version`, with `last_migrated_by`
//! like SQLite's). Each entry of `MIGRATIONS` moves the schema up one version in one
//! transaction together with the version bump, under a transaction-level advisory lock, so
//! `migrate` run from several hosts at once migrates once and the others find it done.
//!
//! Every name in the migrations is qualified with the schema (`{s}` below), including inside
//! the trigger functions, which run with whatever `search_path` the writing session has.

use super::Conn;
use crate::error::{Error, Result};
use crate::store::DbLocation;

/// The schema version this build writes and understands.
pub const SCHEMA_VERSION: i64 = 1;

/// The `meta` key holding the schema version.
pub(super) const META_SCHEMA_VERSION: &str = "schema_version";

/// The `meta` key naming the queuectl that last migrated the schema (`queuectl 0.1.0`).
pub const META_LAST_MIGRATED_BY: &str = "last_migrated_by";

/// The first key of the advisory lock that serialises migrations (the second is the schema's
/// [`schema_key`]); count slots use the schema's key with small second keys instead.
const MIGRATION_LOCK: i32 = 0x5155_4531; // "QUE1"

/// How many count slots a (kind, state) may spread over: each writing transaction takes a
/// free one (an advisory lock), so concurrent writers never wait on one another's count rows.
pub const COUNT_SLOTS: i32 = 64;

/// `MIGRATIONS[n]` takes a schema from version `n` to `n + 1`; `{s}` stands for the schema
/// name, `{key}` for its [`schema_key`], `{slots}` for [`COUNT_SLOTS`] and `{channel}` for its
/// [`channel_name`].
const MIGRATIONS: &[&str] = &[r#"
CREATE SCHEMA IF NOT EXISTS {s};

CREATE TABLE {s}.meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);

CREATE TABLE {s}.jobs (
    seq             BIGSERIAL PRIMARY KEY,         -- enqueue order, never reused (FIFO tiebreak)
    id              TEXT COLLATE "C" NOT NULL UNIQUE, -- byte order, as SQLite: prefixes are ranges
    kind            TEXT NOT NULL DEFAULT 'shell',
    command         TEXT NOT NULL,
    payload         TEXT,                          -- JSON, for custom executors
    state           TEXT NOT NULL CHECK (state IN ('pending','processing','completed','failed','dead')),
    attempts        BIGINT NOT NULL DEFAULT 0,
    max_retries     BIGINT,                        -- NULL: config's max_retries at failure time
    priority        BIGINT NOT NULL DEFAULT 0,
    run_at          BIGINT NOT NULL,               -- ms since epoch (the writing host's clock)
    timeout_seconds BIGINT,
    cwd             TEXT,
    env             TEXT,                          -- JSON object
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    started_at      BIGINT,
    finished_at     BIGINT,
    worker          TEXT,                          -- the worker that holds (or last held) it
    lease           BIGINT NOT NULL DEFAULT 0,     -- claims so far: names the current claim
    exit_code       INTEGER,
    last_error      TEXT,
    stdout          TEXT,
    stderr          TEXT,
    source          TEXT NOT NULL                  -- cli | api | spool:NAME
);

-- Claims walk this partial index in claim order: flat however many finished jobs there are.
CREATE INDEX jobs_runnable ON {s}.jobs (priority DESC, run_at, seq) WHERE state IN ('pending', 'failed');
-- Due-now counts and the next wake-up time of an idle worker.
CREATE INDEX jobs_due ON {s}.jobs (run_at) WHERE state IN ('pending', 'failed');
-- `list --state S` in enqueue order.
CREATE INDEX jobs_state_seq ON {s}.jobs (state, seq);

-- Jobs per (kind, state), kept by statement triggers, summed on read: O(1) `status`. Each
-- writing transaction adds its changes to one slot it holds alone (see count_slot), so writers
-- on many hosts never queue on one hot row, nor deadlock on two.
CREATE TABLE {s}.job_counts (
    kind  TEXT NOT NULL,
    state TEXT NOT NULL,
    slot  INTEGER NOT NULL,
    n     BIGINT NOT NULL,
    PRIMARY KEY (kind, state, slot)
);

-- The slot this transaction writes its count changes to: the first free one from a place that
-- depends on the session, held by a transaction-level advisory lock until commit. Only when
-- every slot is held does a writer wait (for the slot its session would start at).
CREATE FUNCTION {s}.count_slot() RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    chosen integer := nullif(current_setting('queuectl.count_slot_{s}', true), '')::integer;
    start  integer;
BEGIN
    IF chosen IS NOT NULL THEN
        RETURN chosen;
    END IF;
    start := pg_backend_pid() % {slots};
    FOR i IN 0 .. {slots} - 1 LOOP
        chosen := (start + i) % {slots};
        IF pg_try_advisory_xact_lock({key}, chosen) THEN
            PERFORM set_config('queuectl.count_slot_{s}', chosen::text, true);
            RETURN chosen;
        END IF;
    END LOOP;
    PERFORM pg_advisory_xact_lock({key}, start);
    PERFORM set_config('queuectl.count_slot_{s}', start::text, true);
    RETURN start;
END $$;

-- The count triggers also announce what matters to waiting workers and `wait`: new jobs, and
-- every change of a job's state to another than `processing` (finished, retried, released,
-- recovered, back from the DLQ). A claim announces nothing. A notification is delivered at
-- commit, once per transaction.
CREATE FUNCTION {s}.jobs_count_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO {s}.job_counts AS c (kind, state, slot, n)
        SELECT kind, state, {s}.count_slot(), count(*) FROM new_rows GROUP BY kind, state
        ORDER BY kind, state
        ON CONFLICT (kind, state, slot) DO UPDATE SET n = c.n + excluded.n;
    IF FOUND THEN
        PERFORM pg_notify('{channel}', '');
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION {s}.jobs_count_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- A row whose state did not change adds -1 and +1 to the same count: left out.
    INSERT INTO {s}.job_counts AS c (kind, state, slot, n)
        SELECT kind, state, {s}.count_slot(), sum(delta) FROM (
            SELECT kind, state, -1 AS delta FROM old_rows
            UNION ALL
            SELECT kind, state, 1 AS delta FROM new_rows
        ) changes
        GROUP BY kind, state HAVING sum(delta) <> 0
        ORDER BY kind, state
        ON CONFLICT (kind, state, slot) DO UPDATE SET n = c.n + excluded.n;
    IF FOUND AND EXISTS (SELECT 1 FROM new_rows WHERE state <> 'processing') THEN
        PERFORM pg_notify('{channel}', '');
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION {s}.jobs_count_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO {s}.job_counts AS c (kind, state, slot, n)
        SELECT kind, state, {s}.count_slot(), -count(*) FROM old_rows GROUP BY kind, state
        ORDER BY kind, state
        ON CONFLICT (kind, state, slot) DO UPDATE SET n = c.n + excluded.n;
    RETURN NULL;
END $$;

CREATE TRIGGER jobs_count_insert AFTER INSERT ON {s}.jobs
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION {s}.jobs_count_insert();
CREATE TRIGGER jobs_count_update AFTER UPDATE ON {s}.jobs
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION {s}.jobs_count_update();
CREATE TRIGGER jobs_count_delete AFTER DELETE ON {s}.jobs
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION {s}.jobs_count_delete();

-- One row per attempt that ended: the story `show` tells.
CREATE TABLE {s}.attempts (
    id          BIGSERIAL PRIMARY KEY,
    job_seq     BIGINT NOT NULL REFERENCES {s}.jobs (seq) ON DELETE CASCADE,
    attempt     BIGINT NOT NULL,
    outcome     TEXT NOT NULL,                     -- completed | failed | lost | interrupted
    worker      TEXT,
    started_at  BIGINT,
    finished_at BIGINT NOT NULL,
    exit_code   INTEGER,
    error       TEXT,
    stdout_tail TEXT,
    stderr_tail TEXT
);
CREATE INDEX attempts_job ON {s}.attempts (job_seq);

-- `queuectl config set` values; they override config/queuectl.toml.
CREATE TABLE {s}.config (key TEXT PRIMARY KEY, value TEXT NOT NULL, updated_at BIGINT NOT NULL);

-- Live worker processes (on every host) and their heartbeats.
CREATE TABLE {s}.workers (
    id           TEXT COLLATE "C" PRIMARY KEY,
    pid          BIGINT NOT NULL,
    host         TEXT NOT NULL,
    proc_start   BIGINT,                           -- /proc/PID/stat start time: PIDs get reused
    started_at   BIGINT NOT NULL,
    heartbeat_at BIGINT NOT NULL,
    threads      BIGINT NOT NULL,
    kinds        TEXT NOT NULL,                    -- JSON array of the kinds it runs
    slots        TEXT NOT NULL DEFAULT '[]',       -- JSON: what each busy thread runs
    stopping     BOOLEAN NOT NULL DEFAULT false,
    version      TEXT NOT NULL
);

-- Spool files already committed, so a file re-read after a crash is deleted, not re-added.
CREATE TABLE {s}.spool_files (
    file_key    TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    jobs        BIGINT NOT NULL,
    ingested_at BIGINT NOT NULL
);
"#];

/// A number naming this schema in advisory locks: the same on every host and build (derived
/// from a name-based UUID, not from Rust's unstable hasher).
pub fn schema_key(schema: &str) -> i32 {
    let uuid = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, format!("queuectl:{schema}").as_bytes());
    let bytes = uuid.as_bytes();
    i32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
}

/// The `LISTEN`/`NOTIFY` channel of the queue in `schema`: `queuectl_<schema>`, or, where that
/// would pass PostgreSQL's 63-byte limit, a shortened name made unique by a hash.
pub fn channel_name(schema: &str) -> String {
    let full = format!("queuectl_{schema}");
    if full.len() <= 63 {
        return full;
    }
    let uuid = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, format!("queuectl:{schema}").as_bytes());
    let hash = uuid.simple().to_string();
    format!("queuectl_{}_{}", &schema[..36], &hash[..16])
}

/// The migration from `version` to `version + 1` for `schema`.
fn migration_sql(version: i64, schema: &str) -> String {
    MIGRATIONS[version as usize]
        .replace("{s}", schema)
        .replace("{key}", &schema_key(schema).to_string())
        .replace("{slots}", &COUNT_SLOTS.to_string())
        .replace("{channel}", &channel_name(schema))
}

/// The schema's version: 0 when it (or its `meta` table) does not exist.
pub(super) fn version(conn: &mut Conn, schema: &str) -> Result<i64> {
    read_version(&mut conn.client, schema)
}

/// [`version`] through a connection or inside a transaction. The `meta` table is looked up in
/// `pg_class` with the statement's snapshot, not with `to_regclass`, whose catalog cache is not
/// refreshed inside a transaction that waited for a lock: after waiting for another host's
/// migration it would miss the tables that migration created.
fn read_version(client: &mut impl postgres::GenericClient, schema: &str) -> Result<i64> {
    let exists: bool = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_class c \
             JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = $1 AND c.relname = 'meta')",
            &[&schema],
        )?
        .try_get(0)?;
    if !exists {
        return Ok(0);
    }
    let value: Option<String> = client
        .query_opt(
            &format!("SELECT value FROM {schema}.meta WHERE key = $1"),
            &[&META_SCHEMA_VERSION],
        )?
        .map(|row| row.try_get(0))
        .transpose()?;
    Ok(value.and_then(|v| v.trim().parse().ok()).unwrap_or(0))
}

/// The queuectl that last migrated the schema, if recorded.
pub(super) fn last_migrated_by(conn: &mut Conn, schema: &str) -> Result<Option<String>> {
    if version(conn, schema)? == 0 {
        return Ok(None);
    }
    Ok(conn
        .client
        .query_opt(
            &format!("SELECT value FROM {schema}.meta WHERE key = $1"),
            &[&META_LAST_MIGRATED_BY],
        )?
        .map(|row| row.try_get(0))
        .transpose()?)
}

/// [`Error::SchemaTooNew`] for a version newer than this build's.
pub(super) fn too_new(location: &DbLocation, version: i64) -> Result<()> {
    if version > SCHEMA_VERSION {
        return Err(Error::SchemaTooNew {
            path: location.to_string().into(),
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    Ok(())
}

/// Brings the schema up to [`SCHEMA_VERSION`], one migration per transaction under the
/// migration lock, re-reading the version once the lock is held.
pub(super) fn migrate(conn: &mut Conn, location: &DbLocation, schema: &str) -> Result<()> {
    loop {
        let version = version(conn, schema)?;
        too_new(location, version)?;
        if version == SCHEMA_VERSION {
            return Ok(());
        }
        let mut tx = conn.client.transaction()?;
        super::durable(&mut tx)?;
        tx.execute(
            "SELECT pg_advisory_xact_lock($1, $2)",
            &[&MIGRATION_LOCK, &schema_key(schema)],
        )?;
        // Another host may have migrated while this one waited for the lock: read again (a new
        // statement sees what committed meanwhile).
        let version = read_version(&mut tx, schema)?;
        if version >= SCHEMA_VERSION {
            tx.commit()?;
            continue;
        }
        let upsert = format!(
            "INSERT INTO {schema}.meta (key, value) VALUES ($1, $2) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value"
        );
        let by = concat!("queuectl ", env!("CARGO_PKG_VERSION"));
        let next = (version + 1).to_string();
        let result = tx
            .batch_execute(&migration_sql(version, schema))
            .and_then(|_| tx.execute(&upsert, &[&META_SCHEMA_VERSION, &next]))
            .and_then(|_| tx.execute(&upsert, &[&META_LAST_MIGRATED_BY, &by]))
            .and_then(|_| tx.commit());
        if let Err(e) = result {
            let error = Error::from(e);
            if let Error::Storage(store_error) = &error {
                if store_error.kind != crate::store::StoreErrorKind::Other {
                    return Err(error);
                }
            }
            return Err(Error::Other(format!(
                "{location}: migrating the schema from version {version} to {} failed (nothing was changed): {}",
                version + 1,
                match &error {
                    Error::Storage(e) => e.message.clone(),
                    other => other.to_string(),
                }
            )));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_names_fit_postgres_identifiers_and_stay_distinct() {
        assert_eq!(channel_name("queuectl"), "queuectl_queuectl");
        let long_a = "a".repeat(63);
        let long_b = format!("{}b", "a".repeat(62));
        let (a, b) = (channel_name(&long_a), channel_name(&long_b));
        assert!(a.len() <= 63 && b.len() <= 63, "{a} {b}");
        assert_ne!(a, b);
    }

    #[test]
    fn schema_keys_and_channels_are_the_same_in_every_build() {
        // Hosts running different builds must agree on the lock key and the channel: both come
        // from a UUID v5 of the schema name (values computed independently, with Python's uuid).
        assert_eq!(schema_key("queuectl"), 126_952_590);
        assert_ne!(schema_key("q1"), schema_key("q2"));
        assert_eq!(
            channel_name(&"a".repeat(63)),
            format!("queuectl_{}_506668de56865e14", "a".repeat(36))
        );
    }

    #[test]
    fn migrations_name_nothing_outside_their_schema() {
        let sql = migration_sql(0, "q_test");
        for placeholder in ["{s}", "{key}", "{slots}", "{channel}"] {
            assert!(!sql.contains(placeholder), "{placeholder}");
        }
        for line in sql.lines() {
            let line = line.trim();
            if let Some(rest) = line.strip_prefix("CREATE TABLE ") {
                assert!(rest.starts_with("q_test."), "{line}");
            }
        }
    }
}
