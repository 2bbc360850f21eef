//! The PostgreSQL backend: not written yet. Opening a `postgres://` location is refused.

use super::DbLocation;
use crate::error::{Error, Result};

/// The schema version the PostgreSQL backend writes.
pub const SCHEMA_VERSION: i64 = 1;

/// A PostgreSQL store (not written yet).
#[derive(Debug)]
pub struct PgStore;

impl PgStore {
    /// Refused until the backend exists.
    pub fn open(location: &DbLocation) -> Result<Box<dyn super::Store>> {
        Err(Error::Other(format!(
            "{location}: the PostgreSQL backend is not written yet"
        )))
    }

    /// Refused until the backend exists.
    pub fn open_existing(location: &DbLocation) -> Result<(Box<dyn super::Store>, i64)> {
        Err(Error::Other(format!(
            "{location}: the PostgreSQL backend is not written yet"
        )))
    }

    /// Refused until the backend exists.
    pub fn create(location: &DbLocation) -> Result<(Box<dyn super::Store>, i64)> {
        Err(Error::Other(format!(
            "{location}: the PostgreSQL backend is not written yet"
        )))
    }
}
