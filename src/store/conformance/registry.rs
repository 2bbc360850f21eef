//! Cases: `config set` values and the registry of worker processes.

use super::{worker, Factory, T0};
use crate::store::WorkerRecord;
use std::collections::BTreeMap;

/// `config set` values: set, replaced, read back as a whole, unset (saying whether there was
/// one), and shared by every connection.
pub fn config_values_set_replace_and_unset(factory: &dyn Factory) {
    let db = factory.fresh();
    let store = db.connect();
    assert!(store.config_values().expect("config_values").is_empty());
    store.config_set("max_retries", "5").expect("set");
    store.config_set("backoff_base", "2.5").expect("set");
    store.config_set("max_retries", "7").expect("replace");
    let quoted = "it's \"quoted\" ünïcode; DROP TABLE config; --";
    store.config_set("hooks.on_dead", quoted).expect("set");
    let expected: BTreeMap<String, String> = [("backoff_base", "2.5"), ("hooks.on_dead", quoted), ("max_retries", "7")]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert_eq!(store.config_values().expect("config_values"), expected);
    assert_eq!(db.connect().config_values().expect("from another connection"), expected);
    assert!(store.config_unset("max_retries").expect("unset"));
    assert!(!store.config_unset("max_retries").expect("unset again"));
    assert!(!store.config_unset("never_set").expect("unset unknown"));
    let left: Vec<String> = store.config_values().expect("config_values").into_keys().collect();
    assert_eq!(left, ["backoff_base", "hooks.on_dead"]);
}

/// Worker rows: registered (every field read back), listed oldest first, replaced by a
/// second registration, updated by heartbeats (true while the row exists), removed (after
/// which a heartbeat says false).
pub fn workers_register_heartbeat_and_remove(factory: &dyn Factory) {
    let db = factory.fresh();
    let store = db.connect();
    assert!(store.workers().expect("workers").is_empty());
    let younger = WorkerRecord {
        pid: 77,
        host: "host-b".into(),
        proc_start: None,
        threads: 8,
        kinds: vec!["email".into(), "sms".into()],
        slots: serde_json::json!([{"thread": 0, "job": "a", "leader": 1234}]),
        stopping: true,
        version: "queuectl 9.9.9".into(),
        ..worker("younger", T0 + 10)
    };
    let older = worker("older", T0);
    store.register_worker(&younger).expect("register");
    store.register_worker(&older).expect("register");
    assert_eq!(store.workers().expect("workers"), [older.clone(), younger.clone()]);

    let slots = serde_json::json!([{"thread": 1, "job": "b"}]);
    assert!(store.heartbeat("older", T0 + 50, &slots, true).expect("heartbeat"));
    let beat = WorkerRecord {
        heartbeat_at: T0 + 50,
        slots: slots.clone(),
        stopping: true,
        ..older.clone()
    };
    assert_eq!(store.workers().expect("workers"), [beat.clone(), younger.clone()]);

    let replaced = WorkerRecord {
        threads: 16,
        heartbeat_at: T0 + 60,
        stopping: false,
        ..younger.clone()
    };
    store.register_worker(&replaced).expect("register again");
    assert_eq!(store.workers().expect("workers"), [beat.clone(), replaced]);

    store.remove_worker("younger").expect("remove");
    assert!(!store.heartbeat("younger", T0 + 70, &slots, false).expect("heartbeat"));
    assert_eq!(store.workers().expect("workers"), [beat]);
    store.remove_worker("younger").expect("removing a row that is gone");
    store.remove_worker("older").expect("remove");
    assert!(store.workers().expect("workers").is_empty());
    assert!(!db
        .connect()
        .heartbeat("older", T0 + 80, &slots, false)
        .expect("heartbeat"));
}
