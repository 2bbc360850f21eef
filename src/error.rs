//! The library's one error type.
//!
//! Every variant carries the thing that was wrong (a job id, a field, a path, a config key) so
//! that a caller can match on it and a person can read it on one line. Messages are lowercase
//! and have no trailing period, following the project's conventions.

use std::path::PathBuf;

/// A result with the library's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a job (or a batch of jobs) was refused.
///
/// `location` says where the job was in a batch ("line 3", "index 2", or a spool file name);
/// it is empty for a single job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidJob {
    /// Where in the input the job was, e.g. `"line 3"`; `None` for a single job.
    pub location: Option<String>,
    /// The field that was wrong, e.g. `"command"`; `None` when the whole job was wrong.
    pub field: Option<String>,
    /// What was wrong, e.g. `"must not be empty"`.
    pub reason: String,
}

impl InvalidJob {
    /// A refusal of one field.
    pub fn field(field: &str, reason: impl Into<String>) -> Self {
        InvalidJob {
            location: None,
            field: Some(field.to_string()),
            reason: reason.into(),
        }
    }

    /// A refusal of the whole input or job rather than one field.
    pub fn whole(reason: impl Into<String>) -> Self {
        InvalidJob {
            location: None,
            field: None,
            reason: reason.into(),
        }
    }

    /// The same refusal, placed at `location` in a batch.
    pub fn at(mut self, location: impl Into<String>) -> Self {
        if self.location.is_none() {
            self.location = Some(location.into());
        }
        self
    }
}

impl std::fmt::Display for InvalidJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid job")?;
        if let Some(location) = &self.location {
            write!(f, " at {location}")?;
        }
        match &self.field {
            Some(field) => write!(f, ": field `{field}` {}", self.reason),
            None => write!(f, ": {}", self.reason),
        }
    }
}

/// Everything that can go wrong in the library.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A job was refused by validation; nothing was written.
    #[error("{0}")]
    InvalidJob(InvalidJob),

    /// A job id already exists (or appears twice in one batch); nothing was written.
    #[error("job id `{id}` already exists{}", location.as_ref().map(|l| format!(" (at {l})")).unwrap_or_default())]
    DuplicateId {
        /// The id that clashed.
        id: String,
        /// Where in the batch the clashing job was.
        location: Option<String>,
    },

    /// No job has this id.
    #[error("no job with id `{0}`")]
    NotFound(String),

    /// The job exists but is not in the state the operation needs.
    #[error("job `{id}` is {actual}, not {expected}")]
    WrongState {
        /// The job's id.
        id: String,
        /// Its current state.
        actual: String,
        /// The state the operation needs.
        expected: String,
    },

    /// A value given on the command line or through the API is not acceptable.
    #[error("{0}")]
    InvalidArgument(String),

    /// A configuration key is unknown or its value is invalid.
    #[error("{0}")]
    Config(String),

    /// The queue home has no database yet.
    #[error("no queue database at {}: run `queuectl init` first", .0.display())]
    NotInitialised(PathBuf),

    /// The database was written by a newer queuectl.
    #[error("database {} has schema version {found}, newer than this queuectl understands ({supported})", path.display())]
    SchemaTooNew {
        /// The database file.
        path: PathBuf,
        /// Its schema version.
        found: i64,
        /// The newest schema version this build knows.
        supported: i64,
    },

    /// The database has an older schema and this command does not upgrade it: only
    /// `queuectl migrate`, `init` and `worker start` do, taking a backup first.
    #[error("database {} at schema version {found}, this queuectl needs {needed}: run `queuectl migrate` (it takes a backup first)", path.display())]
    SchemaTooOld {
        /// The database file.
        path: PathBuf,
        /// Its schema version.
        found: i64,
        /// The schema version this build needs.
        needed: i64,
    },

    /// The database reported an error (see [`StoreError::kind`]).
    #[error("database error: {0}")]
    Storage(#[from] StoreError),

    /// A file system operation failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },

    /// A system call or other operation failed.
    #[error("{0}")]
    Other(String),
}

impl Error {
    /// True when the error was caused by the caller's input (exit code 2 in the CLI), false
    /// for failures of the system (storage, files).
    pub fn is_user_error(&self) -> bool {
        matches!(
            self,
            Error::InvalidJob(_)
                | Error::DuplicateId { .. }
                | Error::NotFound(_)
                | Error::WrongState { .. }
                | Error::InvalidArgument(_)
                | Error::Config(_)
        )
    }

    /// Wraps an I/O error with the path it concerned.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

impl From<InvalidJob> for Error {
    fn from(value: InvalidJob) -> Self {
        Error::InvalidJob(value)
    }
}

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
