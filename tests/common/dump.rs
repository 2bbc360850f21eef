//! Logical dumps of a queue database, for comparing before and after a command that must change
//! nothing: the schema and every row of every table, sorted so the order a database returns
//! rows in does not matter.

use std::fmt::Write;

/// A logical dump of a SQLite database: `user_version`, every schema entry, then every table's
/// rows (each as the debug form of its values, sorted).
pub fn dump_database(conn: &rusqlite::Connection) -> String {
    let mut out = String::new();
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .expect("user_version");
    writeln!(out, "user_version {version}").unwrap();
    let mut schema = conn
        .prepare("SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name")
        .expect("read the schema");
    let entries: Vec<(String, String, String, Option<String>)> = schema
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .expect("read the schema")
        .collect::<rusqlite::Result<_>>()
        .expect("read the schema");
    for (kind, name, table, sql) in &entries {
        writeln!(out, "{kind} {name} on {table}: {}", sql.as_deref().unwrap_or("-")).unwrap();
    }
    for (_, table, _, _) in entries.iter().filter(|(kind, ..)| kind == "table") {
        writeln!(out, "-- table {table}").unwrap();
        let mut select = conn
            .prepare(&format!("SELECT * FROM \"{}\"", table.replace('"', "\"\"")))
            .expect("select a table");
        let columns = select.column_count();
        let mut rows: Vec<String> = select
            .query_map([], |row| {
                let values: Vec<String> = (0..columns)
                    .map(|i| row.get_ref(i).map(show_value))
                    .collect::<rusqlite::Result<_>>()?;
                Ok(values.join(" | "))
            })
            .expect("read a table")
            .collect::<rusqlite::Result<_>>()
            .expect("read a table");
        rows.sort();
        for row in rows {
            writeln!(out, "{row}").unwrap();
        }
    }
    out
}

/// One SQLite value as text that tells the types apart: `NULL`, `42`, `1.5`, `"text"`, `x'00ff'`.
fn show_value(value: rusqlite::types::ValueRef<'_>) -> String {
    use rusqlite::types::ValueRef;
    match value {
        ValueRef::Null => "NULL".to_string(),
        ValueRef::Integer(i) => i.to_string(),
        ValueRef::Real(f) => format!("{f:?}"),
        ValueRef::Text(t) => format!("{:?}", String::from_utf8_lossy(t)),
        ValueRef::Blob(b) => format!("x'{}'", b.iter().map(|byte| format!("{byte:02x}")).collect::<String>()),
    }
}

/// A logical dump of one PostgreSQL schema: its tables with their columns, its indexes and
/// triggers, then every table's rows (each as JSON, sorted). Sequences are left out: a
/// transaction that rolled back may still have used up sequence values, which no query shows.
pub fn dump_pg_schema(client: &mut postgres::Client, schema: &str) -> String {
    let mut out = String::new();
    let exists = client
        .query_opt("SELECT 1 FROM pg_namespace WHERE nspname = $1", &[&schema])
        .expect("look for the schema")
        .is_some();
    if !exists {
        return "(no schema)\n".to_string();
    }
    let columns = client
        .query(
            "SELECT table_name::text, column_name::text, data_type::text, is_nullable::text, \
             coalesce(column_default::text, '-') FROM information_schema.columns \
             WHERE table_schema = $1 ORDER BY table_name, ordinal_position",
            &[&schema],
        )
        .expect("read the columns");
    for row in &columns {
        let (table, column, ty, nullable, default): (String, String, String, String, String) =
            (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4));
        writeln!(
            out,
            "column {table}.{column} {ty} nullable={nullable} default={default}"
        )
        .unwrap();
    }
    let indexes = client
        .query(
            "SELECT indexname::text, indexdef FROM pg_indexes WHERE schemaname = $1 ORDER BY indexname",
            &[&schema],
        )
        .expect("read the indexes");
    for row in &indexes {
        writeln!(out, "index {}: {}", row.get::<_, String>(0), row.get::<_, String>(1)).unwrap();
    }
    let triggers = client
        .query(
            "SELECT t.tgname::text, pg_get_triggerdef(t.oid) FROM pg_trigger t \
             JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = $1 AND NOT t.tgisinternal ORDER BY 1",
            &[&schema],
        )
        .expect("read the triggers");
    for row in &triggers {
        writeln!(out, "trigger {}: {}", row.get::<_, String>(0), row.get::<_, String>(1)).unwrap();
    }
    let tables: Vec<String> = client
        .query(
            "SELECT table_name::text FROM information_schema.tables \
             WHERE table_schema = $1 AND table_type = 'BASE TABLE' ORDER BY table_name",
            &[&schema],
        )
        .expect("list the tables")
        .iter()
        .map(|row| row.get(0))
        .collect();
    for table in tables {
        writeln!(out, "-- table {table}").unwrap();
        let select = format!(
            "SELECT row_to_json(t)::text FROM \"{}\".\"{}\" AS t",
            schema.replace('"', "\"\""),
            table.replace('"', "\"\"")
        );
        let mut rows: Vec<String> = client
            .query(&select, &[])
            .unwrap_or_else(|e| panic!("{select}: {e}"))
            .iter()
            .map(|row| row.get(0))
            .collect();
        rows.sort();
        for row in rows {
            writeln!(out, "{row}").unwrap();
        }
    }
    out
}
