//! Cases: inserting batches, duplicate ids, and spool files ingested exactly once.

use super::{assert_counts_match_rows, assert_duplicate, get, insert, job, jobs, Factory, T0};
use crate::job::State;
use crate::store::{SpoolFileJobs, SpoolFileResult};

/// A batch with one bad job (an id that exists) adds nothing, durable or not; the same batch
/// without it is accepted whole.
pub fn batch_is_all_or_nothing(factory: &dyn Factory) {
    let db = factory.fresh();
    let mut store = db.connect();
    insert(&mut *store, &jobs(&["taken"]));
    for durable in [false, true] {
        let batch = jobs(&["new1", "new2", "taken", "new3"]);
        let result = store.insert_jobs(&batch, durable);
        assert_duplicate(result, "taken", None);
        for id in ["new1", "new2", "new3"] {
            assert!(
                store.get_job(id).expect("get_job").is_none(),
                "durable={durable}: {id} was inserted from a refused batch"
            );
        }
        assert_eq!(store.counts().expect("counts").total(), 1, "durable={durable}");
    }
    store
        .insert_jobs(&jobs(&["new1", "new2", "new3"]), true)
        .expect("the batch without the duplicate");
    assert_eq!(store.counts().expect("counts").pending, 4);
    store.insert_jobs(&[], false).expect("an empty batch");
    assert_counts_match_rows(&*store, "after the batches");
}

/// An id twice in one batch refuses the batch, naming the id and the second one's place.
pub fn duplicate_id_in_one_batch_names_its_place(factory: &dyn Factory) {
    let db = factory.fresh();
    let mut store = db.connect();
    let mut batch = jobs(&["a", "b", "a"]);
    for (i, job) in batch.iter_mut().enumerate() {
        job.location = Some(format!("line {}", i + 1));
    }
    assert_duplicate(store.insert_jobs(&batch, false), "a", Some("line 3"));
    assert!(store.list_jobs(None, None).expect("list_jobs").is_empty());
    assert_eq!(store.counts().expect("counts").total(), 0);
}

/// An id that exists from an earlier batch refuses the new batch, naming the id and its place
/// in the new batch; the earlier job is untouched.
pub fn duplicate_id_across_batches_names_its_place(factory: &dyn Factory) {
    let db = factory.fresh();
    let mut store = db.connect();
    insert(&mut *store, &jobs(&["a"]));
    let before = get(&*store, "a");
    let mut batch = vec![
        job("c"),
        crate::store::NewJob {
            command: "something else".into(),
            ..job("a")
        },
    ];
    batch[0].location = Some("index 0".into());
    batch[1].location = Some("index 1".into());
    assert_duplicate(store.insert_jobs(&batch, false), "a", Some("index 1"));
    assert!(
        store.get_job("c").expect("get_job").is_none(),
        "c came in with a refused batch"
    );
    assert_eq!(get(&*store, "a"), before, "the existing job changed");
    // Without a place (a single job), the error says none.
    assert_duplicate(store.insert_jobs(&jobs(&["a"]), false), "a", None);
    assert_counts_match_rows(&*store, "after the refusals");
}

/// Every field of a new job reads back as given, in `pending` with no attempts and no claim.
pub fn inserted_jobs_read_back_field_for_field(factory: &dyn Factory) {
    let db = factory.fresh();
    let mut store = db.connect();
    let full = crate::store::NewJob {
        kind: "email".into(),
        command: "printf '%s' \"it's ünïcode\"".into(),
        payload: Some(r#"{"to":"ada@example.com","n":[1,2]}"#.into()),
        max_retries: Some(7),
        priority: -3,
        run_at: T0 + 1_500,
        created_at: T0 + 500,
        timeout_seconds: Some(90),
        cwd: Some("/srv/work dir".into()),
        env: Some(r#"{"A":"1","B":"two words"}"#.into()),
        source: "spool:batch-7.json".into(),
        ..job("full")
    };
    insert(&mut *store, &[full, job("bare")]);
    let got = get(&*store, "full");
    assert_eq!(got.id, "full");
    assert_eq!(got.kind, "email");
    assert_eq!(got.command, "printf '%s' \"it's ünïcode\"");
    assert_eq!(
        got.payload,
        Some(serde_json::json!({"to": "ada@example.com", "n": [1, 2]}))
    );
    assert_eq!(got.max_retries, Some(7));
    assert_eq!(got.priority, -3);
    assert_eq!(got.run_at, T0 + 1_500);
    assert_eq!(got.created_at, T0 + 500);
    assert_eq!(got.updated_at, T0 + 500, "updated_at starts at created_at");
    assert_eq!(got.timeout_seconds, Some(90));
    assert_eq!(got.cwd.as_deref(), Some("/srv/work dir"));
    assert_eq!(got.env.get("B").map(String::as_str), Some("two words"));
    assert_eq!(got.env.len(), 2);
    assert_eq!(got.source, "spool:batch-7.json");
    assert_eq!(got.state, State::Pending);
    assert_eq!(got.attempts, 0);
    assert_eq!(got.lease, 0, "never claimed");
    assert_eq!(
        (
            got.worker,
            got.started_at,
            got.finished_at,
            got.exit_code,
            got.last_error
        ),
        (None, None, None, None, None)
    );
    let bare = get(&*store, "bare");
    assert_eq!(
        (bare.payload, bare.max_retries, bare.timeout_seconds, bare.cwd),
        (None, None, None, None)
    );
    assert!(bare.env.is_empty());
    assert!(bare.seq > get(&*store, "full").seq, "seq follows enqueue order");
    assert_eq!(
        store.job_source("full").expect("job_source").as_deref(),
        Some("spool:batch-7.json")
    );
    assert_eq!(store.job_source("missing").expect("job_source"), None);
}

fn spool_file(key: &str, ids: &[&str]) -> SpoolFileJobs {
    let name = format!("{key}.json");
    SpoolFileJobs {
        file_key: key.to_string(),
        name: name.clone(),
        jobs: ids
            .iter()
            .enumerate()
            .map(|(i, id)| crate::store::NewJob {
                source: format!("spool:{name}"),
                location: Some(format!("{name} line {}", i + 1)),
                ..job(id)
            })
            .collect(),
    }
}

/// A spool file whose identity was committed is `AlreadyIngested` the next time and adds
/// nothing: each file's jobs go in exactly once.
pub fn spool_file_committed_once_is_already_ingested(factory: &dyn Factory) {
    let db = factory.fresh();
    let mut store = db.connect();
    let files = [spool_file("k1", &["s1", "s2"]), spool_file("k2", &["s3"])];
    let results = store.ingest_spool_files(&files).expect("ingest");
    assert!(
        matches!(
            results[..],
            [SpoolFileResult::Inserted(2), SpoolFileResult::Inserted(1)]
        ),
        "{results:?}"
    );
    assert_eq!(
        store.job_source("s1").expect("job_source").as_deref(),
        Some("spool:k1.json")
    );
    // Read again (a crash between the commit and the unlink), alone and beside a new file.
    let again = store
        .ingest_spool_files(&[spool_file("k1", &["s1", "s2"]), spool_file("k3", &["s4"])])
        .expect("ingest again");
    assert!(
        matches!(
            again[..],
            [SpoolFileResult::AlreadyIngested, SpoolFileResult::Inserted(1)]
        ),
        "{again:?}"
    );
    let mut other = db.connect();
    let again = other
        .ingest_spool_files(&files)
        .expect("ingest from another connection");
    assert!(
        matches!(
            again[..],
            [SpoolFileResult::AlreadyIngested, SpoolFileResult::AlreadyIngested]
        ),
        "{again:?}"
    );
    assert_eq!(store.counts().expect("counts").pending, 4);
    assert_counts_match_rows(&*store, "after ingesting");
}

/// A spool file holding an id that exists is refused (naming the id) and adds nothing, while
/// the other files of the same call commit; its identity is not recorded, so it is refused
/// again rather than passed as already ingested.
pub fn spool_file_with_a_taken_id_is_refused_and_the_others_commit(factory: &dyn Factory) {
    let db = factory.fresh();
    let mut store = db.connect();
    insert(&mut *store, &jobs(&["taken"]));
    let files = [
        spool_file("ka", &["a1"]),
        spool_file("kb", &["b1", "taken", "b2"]),
        spool_file("kc", &["c1", "c2"]),
    ];
    let results = store.ingest_spool_files(&files).expect("ingest");
    assert_eq!(results.len(), 3, "{results:?}");
    assert!(matches!(results[0], SpoolFileResult::Inserted(1)), "{results:?}");
    match &results[1] {
        SpoolFileResult::Refused(crate::Error::DuplicateId { id, location }) => {
            assert_eq!(id, "taken");
            assert_eq!(location.as_deref(), Some("kb.json line 2"));
        }
        other => panic!("expected kb refused for a duplicate id, got {other:?}"),
    }
    assert!(matches!(results[2], SpoolFileResult::Inserted(2)), "{results:?}");
    for (id, exists) in [("a1", true), ("b1", false), ("b2", false), ("c1", true), ("c2", true)] {
        assert_eq!(store.get_job(id).expect("get_job").is_some(), exists, "{id}");
    }
    assert_eq!(store.job_source("taken").expect("job_source").as_deref(), Some("api"));
    let again = store.ingest_spool_files(&files[1..2]).expect("ingest kb again");
    assert!(
        matches!(again[..], [SpoolFileResult::Refused(crate::Error::DuplicateId { .. })]),
        "{again:?}"
    );
    assert_counts_match_rows(&*store, "after the refusal");
}

/// `forget_spool_files_before` forgets identities committed before the cutoff (and only
/// those); a forgotten identity ingests again.
pub fn forgotten_spool_identities_can_be_ingested_again(factory: &dyn Factory) {
    let db = factory.fresh();
    let mut store = db.connect();
    store
        .ingest_spool_files(&[spool_file("k1", &["x1"]), spool_file("k2", &["x2"])])
        .expect("ingest");
    // Committed with the real clock: after the epoch, before T0.
    assert_eq!(store.forget_spool_files_before(0).expect("forget before 0"), 0);
    let again = store.ingest_spool_files(&[spool_file("k1", &["y1"])]).expect("ingest");
    assert!(matches!(again[..], [SpoolFileResult::AlreadyIngested]), "{again:?}");
    assert_eq!(store.forget_spool_files_before(T0).expect("forget before T0"), 2);
    assert_eq!(store.forget_spool_files_before(T0).expect("forget again"), 0);
    let again = store.ingest_spool_files(&[spool_file("k1", &["y1"])]).expect("ingest");
    assert!(matches!(again[..], [SpoolFileResult::Inserted(1)]), "{again:?}");
    assert_eq!(store.counts().expect("counts").pending, 3);
}
