//! Where a queue's jobs live: a SQLite file (the default, `HOME/queue.db`) or a schema in a
//! PostgreSQL database (`postgres://user@host/dbname?schema=NAME`).

use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// The schema a PostgreSQL queue uses when the URL names none.
pub const DEFAULT_PG_SCHEMA: &str = "queuectl";

/// A queue database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DbLocation {
    /// A SQLite file.
    Sqlite(PathBuf),
    /// A schema in a PostgreSQL database.
    Postgres {
        /// The connection URL as given, without queuectl's own `schema` parameter.
        url: String,
        /// The schema holding this queue's tables (one per queue: several queues can share a
        /// database).
        schema: String,
    },
}

impl DbLocation {
    /// Reads `--db`, `QUEUECTL_DB` or `db_url`: a `postgres://` or `postgresql://` URL (its
    /// optional `schema=NAME` query parameter names the queue's schema), or a file path
    /// (relative paths against the current directory).
    pub fn parse(text: &str) -> Result<DbLocation> {
        let text = text.trim();
        if text.is_empty() {
            return Err(Error::InvalidArgument("the database location is empty".into()));
        }
        let lower = text.to_ascii_lowercase();
        if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
            return parse_postgres(text);
        }
        if lower.contains("://") {
            let scheme = &text[..lower.find("://").unwrap_or(0)];
            return Err(Error::InvalidArgument(format!(
                "database URL scheme `{scheme}` is not supported: use a file path or postgres://user@host/dbname"
            )));
        }
        Ok(DbLocation::Sqlite(absolute(Path::new(text))))
    }

    /// The text [`DbLocation::parse`] reads back as this location (with any password: pass it
    /// through the environment, not a command line).
    pub fn to_text(&self) -> String {
        match self {
            DbLocation::Sqlite(path) => path.display().to_string(),
            DbLocation::Postgres { url, schema } => {
                let separator = if url.contains('?') { '&' } else { '?' };
                format!("{url}{separator}schema={schema}")
            }
        }
    }

    /// The SQLite file, if this is one.
    pub fn sqlite_path(&self) -> Option<&Path> {
        match self {
            DbLocation::Sqlite(path) => Some(path),
            DbLocation::Postgres { .. } => None,
        }
    }

    /// Whether the jobs live in PostgreSQL.
    pub fn is_postgres(&self) -> bool {
        matches!(self, DbLocation::Postgres { .. })
    }

    /// A string naming this queue and no other, for `QUEUECTL_QUEUE` in job processes (ids
    /// and leases repeat across queues): the canonical file path, or the server, database and
    /// schema (never the password).
    pub fn identity(&self) -> String {
        match self {
            DbLocation::Sqlite(path) => std::fs::canonicalize(path)
                .unwrap_or_else(|_| path.clone())
                .display()
                .to_string(),
            DbLocation::Postgres { url, schema } => format!("{}#{schema}", redact(url)),
        }
    }
}

impl std::fmt::Display for DbLocation {
    /// The file path, or the URL without its password and with the schema.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DbLocation::Sqlite(path) => write!(f, "{}", path.display()),
            DbLocation::Postgres { url, schema } => write!(f, "{} (schema {schema})", redact(url)),
        }
    }
}

fn parse_postgres(text: &str) -> Result<DbLocation> {
    let (base, query) = match text.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (text, None),
    };
    let mut schema = DEFAULT_PG_SCHEMA.to_string();
    let mut kept = Vec::new();
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("schema", value)) => schema = value.to_string(),
            _ => kept.push(pair),
        }
    }
    check_schema_name(&schema)?;
    let url = if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok(DbLocation::Postgres { url, schema })
}

/// A schema name queuectl accepts: lower-case ASCII letters, digits and `_`, starting with a
/// letter or `_`, at most 63 bytes (PostgreSQL's identifier limit), so it never needs quoting.
pub fn check_schema_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && !name.starts_with("pg_");
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!(
            "schema name `{name}` is not valid: use 1 to 63 lower-case letters, digits and _, not starting with a digit or pg_"
        )))
    }
}

/// The URL with any password replaced by `***`.
pub fn redact(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    match authority.rfind('@') {
        Some(at) => {
            let userinfo = &authority[..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme_end + 3], &rest[at..]),
                None => url.to_string(),
            }
        }
        None => url.to_string(),
    }
}

fn absolute(path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|dir| dir.join(path))
            .unwrap_or_else(|_| path.to_path_buf())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_postgres_url_keeps_its_parameters_and_gives_up_the_schema() {
        let location = DbLocation::parse("postgres://u@h/db?sslmode=disable&schema=q1").unwrap();
        assert_eq!(
            location,
            DbLocation::Postgres {
                url: "postgres://u@h/db?sslmode=disable".into(),
                schema: "q1".into()
            }
        );
        assert_eq!(DbLocation::parse(&location.to_text()).unwrap(), location);
        let plain = DbLocation::parse("postgresql://h/db").unwrap();
        assert_eq!(
            plain,
            DbLocation::Postgres {
                url: "postgresql://h/db".into(),
                schema: DEFAULT_PG_SCHEMA.into()
            }
        );
    }

    #[test]
    fn a_path_is_a_sqlite_file_made_absolute() {
        let location = DbLocation::parse("some/q.db").unwrap();
        let path = location.sqlite_path().unwrap();
        assert!(path.is_absolute() && path.ends_with("some/q.db"));
    }

    #[test]
    fn bad_schema_names_and_unknown_schemes_are_refused() {
        for bad in ["Q", "1q", "a-b", "pg_x", "", "a;drop"] {
            let url = format!("postgres://h/db?schema={bad}");
            let error = DbLocation::parse(&url).unwrap_err().to_string();
            assert!(error.contains("schema name"), "{bad}: {error}");
        }
        let error = DbLocation::parse("mysql://h/db").unwrap_err().to_string();
        assert!(error.contains("`mysql` is not supported"), "{error}");
    }

    #[test]
    fn passwords_never_show() {
        let location = DbLocation::parse("postgres://user:secret@host:5432/db?schema=q").unwrap();
        assert!(!location.to_string().contains("secret"));
        assert!(!location.identity().contains("secret"));
        assert!(location.to_string().contains("user:***@host:5432/db"));
    }
}
