//! SQLite's errors, sorted into the kinds every backend reports ([`StoreErrorKind`]).

use crate::error::Error;
use crate::store::{StoreError, StoreErrorKind};

/// True for SQLite errors that mean the file is damaged or not a database: retrying cannot
/// help, and going on could make it worse.
pub fn is_corruption(error: &rusqlite::Error) -> bool {
    matches!(
        error.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseCorrupt) | Some(rusqlite::ErrorCode::NotADatabase)
    )
}

/// True for SQLite errors that mean the disk is full.
pub fn is_disk_full(error: &rusqlite::Error) -> bool {
    matches!(error.sqlite_error_code(), Some(rusqlite::ErrorCode::DiskFull))
}

pub(super) fn is_unique_violation(error: &rusqlite::Error) -> bool {
    matches!(error, rusqlite::Error::SqliteFailure(e, _)
        if e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
            || e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY)
}

/// SQLite's errors, sorted into the kinds every backend reports.
impl From<rusqlite::Error> for Error {
    fn from(error: rusqlite::Error) -> Self {
        let kind = if is_corruption(&error) {
            StoreErrorKind::Corrupt
        } else if is_disk_full(&error) {
            StoreErrorKind::Full
        } else if matches!(
            error.sqlite_error_code(),
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
        ) {
            StoreErrorKind::Busy
        } else if matches!(
            error.sqlite_error_code(),
            Some(rusqlite::ErrorCode::CannotOpen | rusqlite::ErrorCode::SystemIoFailure)
        ) {
            StoreErrorKind::Unavailable
        } else {
            StoreErrorKind::Other
        };
        Error::Storage(StoreError::new(kind, error.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::ffi;

    fn failure(extended_code: i32) -> rusqlite::Error {
        rusqlite::Error::SqliteFailure(ffi::Error::new(extended_code), None)
    }

    fn kind(error: rusqlite::Error) -> StoreErrorKind {
        match Error::from(error) {
            Error::Storage(e) => e.kind,
            other => panic!("not a storage error: {other:?}"),
        }
    }

    #[test]
    fn sqlite_codes_map_to_the_kinds_callers_act_on() {
        for (code, expected) in [
            (ffi::SQLITE_CORRUPT, StoreErrorKind::Corrupt),
            (ffi::SQLITE_NOTADB, StoreErrorKind::Corrupt),
            (ffi::SQLITE_FULL, StoreErrorKind::Full),
            (ffi::SQLITE_BUSY, StoreErrorKind::Busy),
            (ffi::SQLITE_LOCKED, StoreErrorKind::Busy),
            (ffi::SQLITE_CANTOPEN, StoreErrorKind::Unavailable),
            (ffi::SQLITE_IOERR, StoreErrorKind::Unavailable),
            (ffi::SQLITE_CONSTRAINT_UNIQUE, StoreErrorKind::Other),
            (ffi::SQLITE_READONLY, StoreErrorKind::Other),
        ] {
            assert_eq!(kind(failure(code)), expected, "code {code}");
        }
        assert_eq!(kind(rusqlite::Error::QueryReturnedNoRows), StoreErrorKind::Other);
    }

    #[test]
    fn only_unique_and_primary_key_violations_are_duplicates() {
        assert!(is_unique_violation(&failure(ffi::SQLITE_CONSTRAINT_UNIQUE)));
        assert!(is_unique_violation(&failure(ffi::SQLITE_CONSTRAINT_PRIMARYKEY)));
        assert!(!is_unique_violation(&failure(ffi::SQLITE_CONSTRAINT_NOTNULL)));
        assert!(!is_unique_violation(&failure(ffi::SQLITE_CONSTRAINT_CHECK)));
        assert!(!is_unique_violation(&failure(ffi::SQLITE_FULL)));
        assert!(!is_corruption(&failure(ffi::SQLITE_FULL)));
        assert!(!is_disk_full(&failure(ffi::SQLITE_CORRUPT)));
    }
}
