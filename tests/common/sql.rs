//! Direct SQL on a test home's queue database, the same on either backend: for tests that set
//! up a state no command produces (a worker row from another host, an ancient heartbeat, a held
//! write lock, inserts that fail like a full disk) and read what no command shows.
//!
//! SQL is written once, with the queue's tables in braces (`{jobs}`, `{workers}`: SQLite names
//! them `queuectl_jobs`, beside whatever else the file holds; PostgreSQL `jobs`, in the queue's
//! own schema) and SQLite's `?1`, `?2` placeholders. On SQLite the values are bound; on
//! PostgreSQL they are written into the statement as quoted literals, which the server reads as
//! whatever type the column has (`'5'` fits a BIGINT, an INTEGER or a BOOLEAN alike), so a test
//! need not know each backend's column types.

use std::time::Duration;

/// A value passed to or read from the database.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// SQL NULL.
    Null,
    /// An integer (a PostgreSQL BOOLEAN reads as 0 or 1).
    Int(i64),
    /// A floating-point number.
    Real(f64),
    /// Text.
    Text(String),
    /// Bytes.
    Blob(Vec<u8>),
}

impl Value {
    /// The integer, panicking on anything else.
    #[track_caller]
    pub fn int(&self) -> i64 {
        match self {
            Value::Int(i) => *i,
            other => panic!("not an integer: {other:?}"),
        }
    }

    /// The text, panicking on anything else.
    #[track_caller]
    pub fn text(&self) -> &str {
        match self {
            Value::Text(t) => t,
            other => panic!("not text: {other:?}"),
        }
    }

    /// A PostgreSQL literal of unknown type, so the server gives it the column's type.
    fn pg_literal(&self) -> String {
        match self {
            Value::Null => "NULL".to_string(),
            Value::Int(i) => format!("'{i}'"),
            Value::Real(f) => format!("'{f:?}'"),
            Value::Text(t) => format!("'{}'", t.replace('\'', "''")),
            Value::Blob(b) => format!(
                "'\\x{}'",
                b.iter().map(|byte| format!("{byte:02x}")).collect::<String>()
            ),
        }
    }
}

impl From<i64> for Value {
    fn from(v: i64) -> Value {
        Value::Int(v)
    }
}

impl From<u32> for Value {
    fn from(v: u32) -> Value {
        Value::Int(v.into())
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Value {
        Value::Text(v.to_string())
    }
}

impl From<String> for Value {
    fn from(v: String) -> Value {
        Value::Text(v)
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Value {
        v.map(Into::into).unwrap_or(Value::Null)
    }
}

/// An open connection to a test home's queue database.
pub enum Sql {
    /// `HOME/queue.db`.
    Sqlite(rusqlite::Connection),
    /// The home's schema (the search path is set to it).
    Postgres {
        /// The connection.
        client: postgres::Client,
        /// The home's schema.
        schema: String,
    },
}

impl Sql {
    /// Runs one statement with `{table}` names and `?N` parameters; returns the number of rows
    /// changed.
    #[track_caller]
    pub fn execute(&mut self, sql: &str, params: &[Value]) -> u64 {
        let sql = &self.tables(sql);
        match self {
            Sql::Sqlite(conn) => {
                let values: Vec<rusqlite::types::Value> = params.iter().map(sqlite_value).collect();
                conn.execute(sql, rusqlite::params_from_iter(values))
                    .unwrap_or_else(|e| panic!("{sql}: {e}")) as u64
            }
            Sql::Postgres { client, .. } => {
                let sql = inline_params(sql, params);
                client.execute(&sql, &[]).unwrap_or_else(|e| panic!("{sql}: {e}"))
            }
        }
    }

    /// Runs a query with `{table}` names and `?N` parameters; returns every row's values.
    #[track_caller]
    pub fn query(&mut self, sql: &str, params: &[Value]) -> Vec<Vec<Value>> {
        let sql = &self.tables(sql);
        match self {
            Sql::Sqlite(conn) => {
                let values: Vec<rusqlite::types::Value> = params.iter().map(sqlite_value).collect();
                let mut statement = conn.prepare(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
                let columns = statement.column_count();
                let rows = statement
                    .query_map(rusqlite::params_from_iter(values), |row| {
                        (0..columns)
                            .map(|i| row.get_ref(i).map(from_sqlite))
                            .collect::<rusqlite::Result<Vec<Value>>>()
                    })
                    .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>());
                rows.unwrap_or_else(|e| panic!("{sql}: {e}"))
            }
            Sql::Postgres { client, .. } => {
                let sql = inline_params(sql, params);
                let rows = client.query(&sql, &[]).unwrap_or_else(|e| panic!("{sql}: {e}"));
                rows.iter().map(from_pg_row).collect()
            }
        }
    }

    /// `sql` with each `{table}` of the queue replaced by the table's name on this backend.
    #[track_caller]
    pub fn tables(&self, sql: &str) -> String {
        let prefix = match self {
            Sql::Sqlite(_) => "queuectl_",
            Sql::Postgres { .. } => "",
        };
        let mut out = sql.to_string();
        for table in TABLES {
            out = out.replace(&format!("{{{table}}}"), &format!("{prefix}{table}"));
        }
        // Anything else of that shape is a typo (JSON in a literal has quotes after its brace).
        for (at, _) in out.match_indices('{') {
            let name: String = out[at + 1..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect();
            assert!(
                name.is_empty() || !out[at + 1 + name.len()..].starts_with('}'),
                "{{{name}}} is not one of the queue's tables: {sql}"
            );
        }
        out
    }

    /// The first column of the first row, if there is a row.
    #[track_caller]
    pub fn query_value(&mut self, sql: &str, params: &[Value]) -> Option<Value> {
        self.query(sql, params)
            .into_iter()
            .next()
            .map(|row| row.into_iter().next().expect("a column"))
    }

    /// Takes the write lock of the whole queue until [`Sql::release_write_lock`]: every
    /// writer waits (SQLite `BEGIN IMMEDIATE`; PostgreSQL an open transaction holding every
    /// table of the schema in EXCLUSIVE mode, which lets reads through, like SQLite).
    #[track_caller]
    pub fn take_write_lock(&mut self) {
        match self {
            Sql::Sqlite(conn) => conn.execute_batch("BEGIN IMMEDIATE").expect("take the write lock"),
            Sql::Postgres { client, schema } => {
                let tables: Vec<String> = client
                    .query(
                        "SELECT quote_ident(table_name) FROM information_schema.tables \
                         WHERE table_schema = $1 AND table_type = 'BASE TABLE' ORDER BY table_name",
                        &[&*schema],
                    )
                    .expect("list the tables")
                    .iter()
                    .map(|row| row.get(0))
                    .collect();
                assert!(!tables.is_empty(), "schema {schema} has no tables to lock");
                client
                    .batch_execute(&format!("BEGIN; LOCK TABLE {} IN EXCLUSIVE MODE", tables.join(", ")))
                    .expect("take the write lock");
            }
        }
    }

    /// Ends what [`Sql::take_write_lock`] began, changing nothing.
    #[track_caller]
    pub fn release_write_lock(&mut self) {
        match self {
            Sql::Sqlite(conn) => conn.execute_batch("ROLLBACK").expect("release the write lock"),
            Sql::Postgres { client, .. } => client.batch_execute("ROLLBACK").expect("release the write lock"),
        }
    }

    /// True while some session waits for a lock this home's database holds (PostgreSQL: a
    /// lock on a table of the schema not granted yet). SQLite keeps no such record: there a
    /// waiting process is found by where it sleeps, not through the database.
    pub fn someone_waits_for_a_lock(&mut self) -> bool {
        match self {
            Sql::Sqlite(_) => panic!("SQLite cannot tell who waits for its lock"),
            Sql::Postgres { client, schema } => client
                .query_one(
                    "SELECT EXISTS (SELECT 1 FROM pg_locks l JOIN pg_class c ON c.oid = l.relation \
                     JOIN pg_namespace n ON n.oid = c.relnamespace WHERE NOT l.granted AND n.nspname = $1)",
                    &[&*schema],
                )
                .expect("read pg_locks")
                .get(0),
        }
    }

    /// Makes every insert into `jobs` fail with `message` (a trigger raising an error of no
    /// particular kind, on either backend: SQLite's `RAISE(ABORT)`, PostgreSQL's
    /// `raise_exception`), until [`Sql::allow_job_inserts`].
    #[track_caller]
    pub fn refuse_job_inserts(&mut self, message: &str) {
        let quoted = message.replace('\'', "''");
        match self {
            Sql::Sqlite(conn) => conn
                .execute_batch(&format!(
                    "CREATE TRIGGER test_refuse BEFORE INSERT ON queuectl_jobs BEGIN SELECT RAISE(ABORT, '{quoted}'); END;"
                ))
                .expect("create the refusing trigger"),
            Sql::Postgres { client, .. } => client
                .batch_execute(&format!(
                    "CREATE FUNCTION test_refuse() RETURNS trigger LANGUAGE plpgsql AS \
                     $$ BEGIN RAISE EXCEPTION '{quoted}'; END $$; \
                     CREATE TRIGGER test_refuse BEFORE INSERT ON jobs FOR EACH ROW EXECUTE FUNCTION test_refuse();"
                ))
                .expect("create the refusing trigger"),
        }
    }

    /// Undoes [`Sql::refuse_job_inserts`].
    #[track_caller]
    pub fn allow_job_inserts(&mut self) {
        match self {
            Sql::Sqlite(conn) => conn
                .execute_batch("DROP TRIGGER test_refuse")
                .expect("drop the refusing trigger"),
            Sql::Postgres { client, .. } => client
                .batch_execute("DROP TRIGGER test_refuse ON jobs; DROP FUNCTION test_refuse()")
                .expect("drop the refusing trigger"),
        }
    }
}

/// The queue's tables, as `Sql` statements name them in braces.
const TABLES: &[&str] = &[
    "jobs",
    "job_counts",
    "attempts",
    "config",
    "workers",
    "spool_files",
    "meta",
];

/// Opens a SQLite queue database for writing (never creating it), waiting up to 10 s for a
/// worker's write lock.
pub fn open_sqlite(path: &std::path::Path) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE)
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    conn.busy_timeout(Duration::from_secs(10)).expect("busy timeout");
    conn
}

fn sqlite_value(value: &Value) -> rusqlite::types::Value {
    use rusqlite::types::Value as V;
    match value {
        Value::Null => V::Null,
        Value::Int(i) => V::Integer(*i),
        Value::Real(f) => V::Real(*f),
        Value::Text(t) => V::Text(t.clone()),
        Value::Blob(b) => V::Blob(b.clone()),
    }
}

fn from_sqlite(value: rusqlite::types::ValueRef<'_>) -> Value {
    use rusqlite::types::ValueRef;
    match value {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Int(i),
        ValueRef::Real(f) => Value::Real(f),
        ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => Value::Blob(b.to_vec()),
    }
}

/// One PostgreSQL row as values, by column type.
fn from_pg_row(row: &postgres::Row) -> Vec<Value> {
    use postgres::types::Type;
    (0..row.len())
        .map(|i| {
            let ty = row.columns()[i].type_();
            let value = match *ty {
                Type::INT2 => row.get::<_, Option<i16>>(i).map(|v| Value::Int(v.into())),
                Type::INT4 => row.get::<_, Option<i32>>(i).map(|v| Value::Int(v.into())),
                Type::INT8 => row.get::<_, Option<i64>>(i).map(Value::Int),
                Type::OID => row.get::<_, Option<u32>>(i).map(|v| Value::Int(v.into())),
                Type::BOOL => row.get::<_, Option<bool>>(i).map(|v| Value::Int(v.into())),
                Type::FLOAT4 => row.get::<_, Option<f32>>(i).map(|v| Value::Real(v.into())),
                Type::FLOAT8 => row.get::<_, Option<f64>>(i).map(Value::Real),
                Type::BYTEA => row.get::<_, Option<Vec<u8>>>(i).map(Value::Blob),
                Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => {
                    row.get::<_, Option<String>>(i).map(Value::Text)
                }
                _ => panic!(
                    "column {} has type {ty}: cast it to text in the query",
                    row.columns()[i].name()
                ),
            };
            value.unwrap_or(Value::Null)
        })
        .collect()
}

/// `sql` with each `?N` outside a quoted string replaced by the literal of `params[N - 1]`.
#[track_caller]
fn inline_params(sql: &str, params: &[Value]) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        if c == '\'' {
            quoted = !quoted;
        }
        if c != '?' || quoted {
            out.push(c);
            continue;
        }
        let mut digits = String::new();
        while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
            digits.push(*d);
            chars.next();
        }
        let index: usize = digits
            .parse()
            .unwrap_or_else(|_| panic!("write placeholders as ?1, ?2...: {sql}"));
        let value = params
            .get(index.wrapping_sub(1))
            .unwrap_or_else(|| panic!("no parameter ?{index} for {sql}"));
        out.push_str(&value.pg_literal());
    }
    out
}
