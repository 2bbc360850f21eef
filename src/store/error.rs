//! The storage error every backend fills, so callers decide on the kind of failure (retry,
//! stop, report) without knowing which database answered.

/// What kind of storage failure happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StoreErrorKind {
    /// Another writer held a lock too long, or a transaction must be retried (SQLite's
    /// "database is locked", PostgreSQL's serialization failures and deadlocks).
    Busy,
    /// The disk (or the server's) is full.
    Full,
    /// The database is damaged: going on would make it worse.
    Corrupt,
    /// The database cannot be reached (connection refused or lost, server shutting down).
    Unavailable,
    /// Anything else.
    Other,
}

impl StoreErrorKind {
    /// Whether the operation may succeed if tried again later without any change.
    pub fn is_transient(self) -> bool {
        matches!(
            self,
            StoreErrorKind::Busy | StoreErrorKind::Full | StoreErrorKind::Unavailable
        )
    }
}

/// A storage failure: its kind and the database's own message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreError {
    /// What kind of failure it was.
    pub kind: StoreErrorKind,
    /// The backend's message.
    pub message: String,
}

impl StoreError {
    /// A failure of this kind with this message.
    pub fn new(kind: StoreErrorKind, message: impl Into<String>) -> StoreError {
        StoreError {
            kind,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for StoreError {}
