//! Cases: schema versions (migrations are idempotent, a newer schema is refused, an older one
//! is refused until migrated), a database removed while in use, and the "something changed"
//! signal between connections.

use super::{claim_one, failed, finish, get, insert, jobs, Factory, T0};
use crate::store::Store;
use std::time::{Duration, Instant};

/// Migrating a current database again does nothing, from the same or another connection: the
/// version stays the supported one, the jobs stay, and the build that migrated it is recorded.
pub fn migrate_is_idempotent(factory: &dyn Factory) {
    let db = factory.fresh();
    let mut store = db.connect();
    let supported = store.supported_schema_version();
    assert!(supported > 0);
    assert_eq!(store.schema_version().expect("schema_version"), supported);
    insert(&mut *store, &jobs(&["a"]));
    store.config_set("k", "v").expect("config_set");
    let before = get(&*store, "a");
    store.migrate().expect("migrate again");
    store.migrate().expect("and again");
    db.connect().migrate().expect("from another connection");
    assert_eq!(store.schema_version().expect("schema_version"), supported);
    assert_eq!(get(&*store, "a"), before);
    assert_eq!(
        store
            .config_values()
            .expect("config_values")
            .get("k")
            .map(String::as_str),
        Some("v")
    );
    assert_eq!(
        store.last_migrated_by().expect("last_migrated_by"),
        Some(format!("queuectl {}", env!("CARGO_PKG_VERSION"))),
        "the build that migrated it is recorded"
    );
    let (reopened, version) = crate::store::open_existing(db.location()).expect("open_existing");
    assert_eq!(version, supported);
    assert_eq!(reopened.schema_version().expect("schema_version"), supported);
}

/// A database whose schema is newer than this build's is refused by `migrate` and by every
/// way of opening it ([`crate::Error::SchemaTooNew`], naming both versions), and is left as
/// it was.
pub fn newer_schema_is_refused(factory: &dyn Factory) {
    let db = factory.fresh();
    let mut store = db.connect();
    insert(&mut *store, &jobs(&["a"]));
    let before = get(&*store, "a");
    let supported = store.supported_schema_version();
    let newer = supported + 1;
    db.set_schema_version(newer);
    let check = |what: &str, error: Option<crate::Error>| match error {
        Some(crate::Error::SchemaTooNew {
            found,
            supported: known,
            ..
        }) => assert_eq!((found, known), (newer, supported), "{what}"),
        other => panic!("{what}: expected SchemaTooNew {{ found: {newer}, supported: {supported} }}, got {other:?}"),
    };
    check("migrate", store.migrate().err());
    check("open", crate::store::open(db.location()).err());
    check("open_existing", crate::store::open_existing(db.location()).err());
    check("create", crate::store::create(db.location()).err());
    assert_eq!(
        store.schema_version().expect("schema_version"),
        newer,
        "the version was changed"
    );
    db.set_schema_version(supported);
    let reopened = crate::store::open(db.location()).expect("open at the supported version");
    assert_eq!(get(&*reopened, "a"), before, "the refused database was changed");
}

/// A database at an older schema version is refused by `open` ([`crate::Error::SchemaTooOld`],
/// naming both versions: only an explicit migration may change it), while `open_existing`
/// opens it and reports the version it found. (Nothing to check for a backend still at its
/// first schema version.)
pub fn older_schema_is_refused_until_migrated(factory: &dyn Factory) {
    let db = factory.fresh();
    let supported = db.connect().supported_schema_version();
    if supported < 2 {
        // A backend at its first schema version has no older one: version 0 is a database
        // never initialised, refused as `NotInitialised` (the black-box tests' empty homes).
        return;
    }
    let older = supported - 1;
    db.set_schema_version(older);
    match crate::store::open(db.location()).err() {
        Some(crate::Error::SchemaTooOld { found, needed, .. }) => assert_eq!((found, needed), (older, supported)),
        other => panic!("open: expected SchemaTooOld {{ found: {older}, needed: {supported} }}, got {other:?}"),
    }
    let (existing, version) = crate::store::open_existing(db.location()).expect("open_existing");
    assert_eq!(version, older);
    assert_eq!(existing.schema_version().expect("schema_version"), older);
    db.set_schema_version(supported);
    crate::store::open(db.location()).expect("open at the supported version");
}

/// A database removed while in use (its file deleted, its schema dropped) fails
/// `check_health`, which a worker runs every heartbeat, so it stops instead of writing where
/// nobody else looks; opening it again says it was never initialised.
pub fn a_database_removed_while_in_use_fails_the_health_check(factory: &dyn Factory) {
    let db = factory.fresh();
    let store = db.connect();
    store.check_health().expect("a database in place is healthy");
    db.remove();
    let error = store.check_health().expect_err("the removal is noticed");
    assert!(error.to_string().contains("while in use"), "{error}");
    match crate::store::open(db.location()) {
        Err(crate::Error::NotInitialised(_)) => {}
        other => panic!("open after the removal: expected NotInitialised, got {other:?}"),
    }
}

/// Polls `store`'s change token until it differs from `from`, for up to 5 s.
#[track_caller]
fn wait_for_change(store: &dyn Store, from: i64, after: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if store.change_token().expect("change_token") != from {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the change token stayed {from} for 5 s after another connection's {after}"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// The change token of one connection moves after another connection inserts jobs, records
/// a failure with a retry, and retries a dead job (what a waiting worker must wake for).
pub fn change_token_moves_when_another_connection_inserts(factory: &dyn Factory) {
    let db = factory.fresh();
    let watcher = db.connect();
    let mut writer = db.connect();
    let token = watcher.change_token().expect("change_token");
    insert(&mut *writer, &jobs(&["a"]));
    wait_for_change(&*watcher, token, "insert");

    let claimed = claim_one(&mut *writer, "w", "a");
    let token = watcher.change_token().expect("change_token");
    assert_eq!(
        finish(&mut *writer, "w", &[failed(&claimed, T0 + 1, Some(T0 + 2))]),
        [true]
    );
    wait_for_change(&*watcher, token, "failure with a retry");

    let again = super::claim(&mut *writer, "w", 1, T0 + 2);
    assert_eq!(finish(&mut *writer, "w", &[failed(&again[0], T0 + 3, None)]), [true]);
    let token = watcher.change_token().expect("change_token");
    assert_eq!(writer.dlq_retry(&["a".to_string()]).expect("dlq_retry"), 1);
    wait_for_change(&*watcher, token, "DLQ retry");
}
