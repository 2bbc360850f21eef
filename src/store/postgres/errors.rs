//! PostgreSQL's errors, sorted into the kinds every backend reports ([`StoreErrorKind`]).

use crate::error::Error;
use crate::store::{DbLocation, StoreError, StoreErrorKind};

/// The kind of failure a SQLSTATE means for queuectl.
pub(super) fn kind_of_code(code: &str) -> StoreErrorKind {
    match code {
        // serialization_failure, deadlock_detected, lock_not_available, query_canceled
        // (statement or lock timeout): the same work may succeed when tried again.
        "40001" | "40P01" | "55P03" | "57014" => StoreErrorKind::Busy,
        // disk_full, out_of_memory, too_many_connections
        "53100" | "53200" | "53300" => StoreErrorKind::Full,
        // data_corrupted, index_corrupted
        "XX001" | "XX002" => StoreErrorKind::Corrupt,
        // admin_shutdown, crash_shutdown, cannot_connect_now; every connection exception (08...)
        "57P01" | "57P02" | "57P03" => StoreErrorKind::Unavailable,
        _ if code.starts_with("08") => StoreErrorKind::Unavailable,
        _ => StoreErrorKind::Other,
    }
}

/// The kind of failure a client error means: the server's SQLSTATE when it answered, else
/// whether the connection itself failed.
pub(super) fn kind_of(error: &postgres::Error) -> StoreErrorKind {
    if let Some(code) = error.code() {
        return kind_of_code(code.code());
    }
    if error.is_closed() || io_source(error).is_some() {
        return StoreErrorKind::Unavailable;
    }
    // The client's own failures to reach the server name themselves in their text only.
    let text = error.to_string();
    if text.starts_with("error connecting to server")
        || text.starts_with("timeout waiting for server")
        || text.starts_with("error communicating with the server")
    {
        return StoreErrorKind::Unavailable;
    }
    StoreErrorKind::Other
}

fn io_source(error: &postgres::Error) -> Option<&std::io::Error> {
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            return Some(io);
        }
        source = cause.source();
    }
    None
}

/// The error's text on one line: the server's message (and detail) for a database error, the
/// client's description with its causes otherwise.
pub(super) fn message(error: &postgres::Error) -> String {
    let text = match error.as_db_error() {
        Some(db) => match db.detail() {
            Some(detail) => format!("{} ({detail})", db.message()),
            None => db.message().to_string(),
        },
        None => {
            let mut text = error.to_string();
            let mut source = std::error::Error::source(error);
            while let Some(cause) = source {
                let cause_text = cause.to_string();
                if !text.contains(&cause_text) {
                    text.push_str(": ");
                    text.push_str(&cause_text);
                }
                source = cause.source();
            }
            text
        }
    };
    text.lines().map(str::trim).collect::<Vec<_>>().join(" ")
}

/// A failure to connect, naming the location (never its password).
pub(super) fn connect_error(location: &DbLocation, error: &postgres::Error) -> Error {
    // Refused or timed out: Unavailable; a failed login or a missing database: Other (it will
    // not fix itself).
    Error::Storage(StoreError::new(
        kind_of(error),
        format!("could not connect to {location}: {}", message(error)),
    ))
}

/// PostgreSQL's errors, sorted into the kinds every backend reports.
impl From<postgres::Error> for Error {
    fn from(error: postgres::Error) -> Self {
        Error::Storage(StoreError::new(kind_of(&error), message(&error)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlstates_map_to_the_kinds_callers_act_on() {
        for (code, kind) in [
            ("40001", StoreErrorKind::Busy),
            ("40P01", StoreErrorKind::Busy),
            ("55P03", StoreErrorKind::Busy),
            ("57014", StoreErrorKind::Busy),
            ("53100", StoreErrorKind::Full),
            ("53200", StoreErrorKind::Full),
            ("53300", StoreErrorKind::Full),
            ("XX001", StoreErrorKind::Corrupt),
            ("XX002", StoreErrorKind::Corrupt),
            ("08006", StoreErrorKind::Unavailable),
            ("08001", StoreErrorKind::Unavailable),
            ("57P01", StoreErrorKind::Unavailable),
            ("57P03", StoreErrorKind::Unavailable),
            ("23505", StoreErrorKind::Other),
            ("42P01", StoreErrorKind::Other),
        ] {
            assert_eq!(kind_of_code(code), kind, "{code}");
        }
    }
}
