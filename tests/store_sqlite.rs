//! The store conformance suite (`queuectl::store::conformance`) against the SQLite backend:
//! each case on a fresh database file in its own temporary directory.

use queuectl::store::conformance::{Factory, Fixture};
use queuectl::store::DbLocation;

/// Fresh SQLite databases, each in a temporary directory removed with it.
struct SqliteFactory;

struct SqliteFixture {
    location: DbLocation,
    // Dropped (removed) after everything that uses the file: fields drop in order.
    _dir: tempfile::TempDir,
}

impl Factory for SqliteFactory {
    fn fresh(&self) -> Box<dyn Fixture> {
        let dir = tempfile::tempdir().expect("temp dir");
        let location = DbLocation::Sqlite(dir.path().join("queue.db"));
        let (store, version) = queuectl::store::create(&location).expect("create");
        assert_eq!(version, 0, "a new file has no schema");
        store.migrate().expect("migrate");
        Box::new(SqliteFixture { location, _dir: dir })
    }
}

impl Fixture for SqliteFixture {
    fn location(&self) -> &DbLocation {
        &self.location
    }

    fn set_schema_version(&self, version: i64) {
        let path = self.location.sqlite_path().expect("a SQLite location");
        let conn = rusqlite::Connection::open(path).expect("open the database file");
        conn.pragma_update(None, "user_version", version)
            .expect("PRAGMA user_version");
    }

    fn remove(&self) {
        let path = self.location.sqlite_path().expect("a SQLite location");
        std::fs::remove_file(path).expect("delete the database file");
    }
}

queuectl::store_conformance!(SqliteFactory);

/// The hook the schema cases rely on really writes what the store reads.
#[test]
fn set_schema_version_is_what_the_store_reads() {
    let fixture = SqliteFactory.fresh();
    let store = fixture.connect();
    let supported = store.supported_schema_version();
    fixture.set_schema_version(supported + 3);
    assert_eq!(store.schema_version().expect("schema_version"), supported + 3);
    fixture.set_schema_version(supported);
    assert_eq!(store.schema_version().expect("schema_version"), supported);
}
