//! Cases: the reads: counts against the rows, scheduling questions, listing and ids.

use super::{
    assert_counts_match_rows, claim, claim_one, completed, failed, finish, insert, interrupted, job, jobs, lost,
    Factory, T0,
};
use crate::job::{Job, State};
use crate::store::{ListFilter, NewJob, SpoolFileJobs, Store};
use std::collections::BTreeMap;

fn of_kind(id: &str, kind: &str) -> NewJob {
    NewJob {
        kind: kind.into(),
        ..job(id)
    }
}

fn at(id: &str, kind: &str, run_at: i64) -> NewJob {
    NewJob {
        run_at,
        ..of_kind(id, kind)
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// The per-state counts (kept in O(1)) equal the rows of each state after every kind of
/// transition: insert, refused batch, claim, each outcome, a reap, DLQ retries, spool ingest.
pub fn counts_equal_rows_after_every_transition(factory: &dyn Factory) {
    let db = factory.fresh();
    let mut store = db.connect();
    let s = &mut *store;
    assert_counts_match_rows(s, "empty");
    insert(
        s,
        &[of_kind("a", "shell"), of_kind("b", "email"), of_kind("c", "shell")],
    );
    insert(s, &[of_kind("d", "email"), of_kind("e", "shell"), of_kind("f", "sms")]);
    assert_counts_match_rows(s, "after inserts");
    assert!(s.insert_jobs(&jobs(&["g", "a"]), false).is_err());
    assert_counts_match_rows(s, "after a refused batch");
    let c = claim(s, "w", 4, T0);
    assert_counts_match_rows(s, "after a claim");
    assert_eq!(finish(s, "w", &[completed(&c[0], T0 + 1)]), [true]);
    assert_counts_match_rows(s, "after a completion");
    assert_eq!(finish(s, "w", &[failed(&c[1], T0 + 1, Some(T0 + 2))]), [true]);
    assert_counts_match_rows(s, "after a failure with a retry");
    assert_eq!(finish(s, "w", &[failed(&c[2], T0 + 1, None)]), [true]);
    assert_counts_match_rows(s, "after a failure to the DLQ");
    assert_eq!(finish(s, "w", &[interrupted(&c[3], T0 + 1)]), [true]);
    assert_counts_match_rows(s, "after an interruption");
    assert_eq!(claim(s, "gone", 2, T0 + 2).len(), 2);
    assert_counts_match_rows(s, "after a second claim");
    let reaped = s
        .reap_workers(&|_| false, &|job| Some(lost(job, T0 + 3, None)))
        .expect("reap");
    assert_eq!(reaped.recovered.len(), 2);
    assert_counts_match_rows(s, "after a reap");
    let dead: Vec<String> = s
        .list_jobs(Some(State::Dead), None)
        .expect("list dead")
        .into_iter()
        .map(|j| j.id)
        .collect();
    assert_eq!(dead.len(), 3);
    assert_eq!(s.dlq_retry(&dead[..1]).expect("dlq retry"), 1);
    assert_counts_match_rows(s, "after a DLQ retry");
    assert_eq!(s.dlq_retry_all().expect("dlq retry all"), 2);
    assert_counts_match_rows(s, "after a DLQ retry of all");
    let file = SpoolFileJobs {
        file_key: "key".into(),
        name: "f.json".into(),
        jobs: vec![of_kind("spooled", "sms")],
    };
    s.ingest_spool_files(&[file]).expect("ingest");
    assert_counts_match_rows(s, "after a spool ingest");
    let counts = s.counts().expect("counts");
    assert_eq!(counts.total(), 7);
}

/// `count_scheduled(now)` counts waiting jobs (`pending`, `failed`) due after `now`; a job due
/// at `now` is not scheduled but due, and other states never count.
pub fn count_scheduled_counts_waiting_jobs_not_yet_due(factory: &dyn Factory) {
    let db = factory.fresh();
    let mut store = db.connect();
    assert_eq!(store.count_scheduled(T0).expect("count_scheduled"), 0);
    insert(&mut *store, &jobs(&["running", "done", "gone", "retry"]));
    let c = claim(&mut *store, "w", 4, T0);
    let finished = [
        completed(&c[1], T0),
        failed(&c[2], T0, None),
        failed(&c[3], T0, Some(T0 + 30)),
    ];
    assert_eq!(finish(&mut *store, "w", &finished), [true, true, true]);
    insert(
        &mut *store,
        &[
            at("due", "shell", T0),
            at("p10", "shell", T0 + 10),
            at("p20", "email", T0 + 20),
        ],
    );
    for (now, expected) in [
        (T0 - 1, 4),
        (T0, 3),
        (T0 + 9, 3),
        (T0 + 10, 2),
        (T0 + 29, 1),
        (T0 + 30, 0),
    ] {
        assert_eq!(
            store.count_scheduled(now).expect("count_scheduled"),
            expected,
            "at T0{:+}",
            now - T0
        );
    }
}

/// `next_run_at(kinds)` is the earliest `run_at` of a waiting job (`pending` or a `failed`
/// retry) of those kinds, or of any kind when none are given; `None` when there is none.
pub fn next_run_at_is_the_earliest_waiting_job_of_the_kinds(factory: &dyn Factory) {
    let db = factory.fresh();
    let mut store = db.connect();
    assert_eq!(store.next_run_at(&[]).expect("next_run_at"), None);
    insert(&mut *store, &[of_kind("retrying", "shell"), of_kind("busy", "sms")]);
    let c = claim(&mut *store, "w", 2, T0);
    assert_eq!(finish(&mut *store, "w", &[failed(&c[0], T0, Some(T0 + 5))]), [true]);
    insert(
        &mut *store,
        &[
            at("b", "email", T0 + 10),
            at("c", "email", T0 + 20),
            at("a", "shell", T0 + 30),
        ],
    );
    for (kinds, expected) in [
        (vec![], Some(T0 + 5)),
        (vec!["shell"], Some(T0 + 5)),
        (vec!["email"], Some(T0 + 10)),
        (vec!["email", "sms"], Some(T0 + 10)),
        (vec!["sms"], None),
        (vec!["unknown"], None),
    ] {
        assert_eq!(
            store.next_run_at(&strings(&kinds)).expect("next_run_at"),
            expected,
            "{kinds:?}"
        );
    }
}

/// `has_unfinished(kinds)` is true while a job of those kinds (any, when none are given) is
/// pending, processing or failed with a retry; completed and dead jobs are finished.
pub fn has_unfinished_sees_waiting_and_processing_jobs(factory: &dyn Factory) {
    let db = factory.fresh();
    let mut store = db.connect();
    let unfinished = |store: &dyn Store, kinds: &[&str]| store.has_unfinished(&strings(kinds)).expect("has_unfinished");
    assert!(!unfinished(&*store, &[]));
    insert(&mut *store, &[of_kind("a", "shell"), of_kind("b", "email")]);
    assert!(unfinished(&*store, &[]) && unfinished(&*store, &["shell"]) && unfinished(&*store, &["email"]));
    assert!(!unfinished(&*store, &["sms"]));
    let a = claim_one(&mut *store, "w", "a");
    assert!(unfinished(&*store, &["shell"]), "a processing job is unfinished");
    assert_eq!(finish(&mut *store, "w", &[completed(&a, T0 + 1)]), [true]);
    assert!(!unfinished(&*store, &["shell"]));
    assert!(unfinished(&*store, &["shell", "email"]));
    let b = claim_one(&mut *store, "w", "b");
    assert_eq!(finish(&mut *store, "w", &[failed(&b, T0 + 1, Some(T0 + 100))]), [true]);
    assert!(
        unfinished(&*store, &["email"]),
        "a job waiting for its retry is unfinished"
    );
    let b = claim(&mut *store, "w", 1, T0 + 100);
    assert_eq!(finish(&mut *store, "w", &[failed(&b[0], T0 + 101, None)]), [true]);
    assert!(!unfinished(&*store, &[]), "completed and dead jobs are finished");
    insert(&mut *store, &[of_kind("c", "sms")]);
    let c = claim_one(&mut *store, "w", "c");
    assert!(
        unfinished(&*store, &[]) && unfinished(&*store, &["sms"]),
        "a processing job alone is unfinished, asked with kinds or without"
    );
    assert_eq!(finish(&mut *store, "w", &[completed(&c, T0 + 1)]), [true]);
    assert!(!unfinished(&*store, &[]));
}

/// `waiting_by_kind` counts `pending` and `failed` jobs per kind, leaving out kinds with none.
pub fn waiting_by_kind_counts_pending_and_failed(factory: &dyn Factory) {
    let db = factory.fresh();
    let mut store = db.connect();
    assert!(store.waiting_by_kind().expect("waiting_by_kind").is_empty());
    insert(
        &mut *store,
        &[
            of_kind("m", "sms"),
            of_kind("e", "email"),
            of_kind("s1", "shell"),
            of_kind("s2", "shell"),
        ],
    );
    let waiting = |store: &dyn Store| store.waiting_by_kind().expect("waiting_by_kind");
    let expect =
        |pairs: &[(&str, u64)]| -> BTreeMap<String, u64> { pairs.iter().map(|(k, n)| (k.to_string(), *n)).collect() };
    assert_eq!(waiting(&*store), expect(&[("email", 1), ("shell", 2), ("sms", 1)]));
    let m = claim_one(&mut *store, "w", "m");
    assert_eq!(
        waiting(&*store),
        expect(&[("email", 1), ("shell", 2)]),
        "processing is not waiting"
    );
    assert_eq!(finish(&mut *store, "w", &[failed(&m, T0 + 1, Some(T0 + 50))]), [true]);
    assert_eq!(
        waiting(&*store),
        expect(&[("email", 1), ("shell", 2), ("sms", 1)]),
        "a retry waits"
    );
    let e = claim_one(&mut *store, "w", "e");
    assert_eq!(finish(&mut *store, "w", &[completed(&e, T0 + 1)]), [true]);
    assert_eq!(waiting(&*store), expect(&[("shell", 2), ("sms", 1)]));
}

fn listed(store: &dyn Store, filter: ListFilter) -> Vec<String> {
    store
        .list_filtered(&filter)
        .expect("list_filtered")
        .into_iter()
        .map(|j: Job| j.id)
        .collect()
}

/// `list_filtered`: newest first by default, oldest first on request; a state keeps only
/// that state; a limit counts from the end the order starts at.
pub fn list_filtered_by_state_search_limit_and_order(factory: &dyn Factory) {
    let db = factory.fresh();
    let mut store = db.connect();
    insert(&mut *store, &jobs(&["j1", "j2", "j3"]));
    insert(&mut *store, &jobs(&["j4", "j5", "j6"]));
    let c = claim(&mut *store, "w", 2, T0);
    assert_eq!(finish(&mut *store, "w", &[completed(&c[0], T0 + 1)]), [true]);
    let f = |state: Option<State>, limit: Option<u64>, oldest_first: bool| ListFilter {
        state,
        search: None,
        limit,
        oldest_first,
    };
    assert_eq!(
        listed(&*store, f(None, None, false)),
        ["j6", "j5", "j4", "j3", "j2", "j1"]
    );
    assert_eq!(
        listed(&*store, f(None, None, true)),
        ["j1", "j2", "j3", "j4", "j5", "j6"]
    );
    assert_eq!(listed(&*store, f(None, Some(2), false)), ["j6", "j5"]);
    assert_eq!(listed(&*store, f(None, Some(2), true)), ["j1", "j2"]);
    assert_eq!(listed(&*store, f(None, Some(0), false)), Vec::<String>::new());
    assert_eq!(listed(&*store, f(None, Some(100), false)).len(), 6);
    assert_eq!(
        listed(&*store, f(Some(State::Pending), None, false)),
        ["j6", "j5", "j4", "j3"]
    );
    assert_eq!(listed(&*store, f(Some(State::Pending), Some(2), true)), ["j3", "j4"]);
    assert_eq!(listed(&*store, f(Some(State::Completed), None, false)), ["j1"]);
    assert_eq!(listed(&*store, f(Some(State::Processing), None, true)), ["j2"]);
    assert!(listed(&*store, f(Some(State::Dead), None, false)).is_empty());
    let search = ListFilter {
        state: Some(State::Pending),
        search: Some("j".into()),
        limit: Some(3),
        oldest_first: false,
    };
    assert_eq!(listed(&*store, search), ["j6", "j5", "j4"]);
    // list_jobs: enqueue order, of a state, with a limit.
    let all: Vec<String> = store
        .list_jobs(None, Some(4))
        .expect("list_jobs")
        .into_iter()
        .map(|j| j.id)
        .collect();
    assert_eq!(all, ["j1", "j2", "j3", "j4"]);
    let pending: Vec<String> = store
        .list_jobs(Some(State::Pending), Some(2))
        .expect("list_jobs")
        .into_iter()
        .map(|j| j.id)
        .collect();
    assert_eq!(pending, ["j3", "j4"]);
}

/// The search of `list_filtered` is a literal, case-sensitive substring of the command: `%`,
/// `_` and `\` mean themselves.
pub fn list_search_is_a_literal_case_sensitive_substring(factory: &dyn Factory) {
    let db = factory.fresh();
    let mut store = db.connect();
    let commanded = |id: &str, command: &str| NewJob {
        command: command.into(),
        ..job(id)
    };
    insert(
        &mut *store,
        &[
            commanded("pct", "echo 100%"),
            commanded("x100", "echo 100x"),
            commanded("under", "echo a_b"),
            commanded("axb", "echo axb"),
            commanded("upper", "ECHO upper"),
            commanded("bs", r"echo back\slash"),
        ],
    );
    let search = |text: &str| {
        let mut ids = listed(
            &*store,
            ListFilter {
                search: Some(text.into()),
                oldest_first: true,
                ..ListFilter::default()
            },
        );
        ids.sort();
        ids
    };
    assert_eq!(search("%"), ["pct"]);
    assert_eq!(search("100%"), ["pct"]);
    assert_eq!(search("_"), ["under"]);
    assert_eq!(search("a_b"), ["under"]);
    assert_eq!(search(r"\"), ["bs"]);
    assert_eq!(search(r"k\s"), ["bs"]);
    assert_eq!(search("ECHO"), ["upper"]);
    assert_eq!(search("echo"), ["axb", "bs", "pct", "under", "x100"]);
    assert!(search("Echo").is_empty());
    assert!(search("%a%").is_empty());
}

/// `ids_with_prefix`: the ids that start with the prefix (`%` and `_` literal, case
/// sensitive), in code-point order (the order short ids are worked out in), at most `limit`.
pub fn ids_with_prefix_in_code_point_order(factory: &dyn Factory) {
    let db = factory.fresh();
    let mut store = db.connect();
    let all = [
        "ab2",
        "abc",
        "ab12",
        "ab1",
        "aB",
        "a_1",
        "a%2",
        "b1",
        "Zed",
        "€uro",
        "x\u{10FFFF}y",
        "x",
    ];
    insert(&mut *store, &jobs(&all));
    let prefixed = |prefix: &str, limit: u64| store.ids_with_prefix(prefix, limit).expect("ids_with_prefix");
    assert_eq!(prefixed("ab", 10), ["ab1", "ab12", "ab2", "abc"]);
    assert_eq!(prefixed("ab", 2), ["ab1", "ab12"]);
    assert_eq!(prefixed("ab1", 10), ["ab1", "ab12"]);
    assert_eq!(prefixed("a", 10), ["a%2", "aB", "a_1", "ab1", "ab12", "ab2", "abc"]);
    assert_eq!(prefixed("a_", 10), ["a_1"]);
    assert_eq!(prefixed("a%", 10), ["a%2"]);
    assert!(prefixed("A", 10).is_empty());
    assert!(prefixed("abcd", 10).is_empty());
    assert_eq!(prefixed("Z", 10), ["Zed"]);
    assert_eq!(prefixed("€", 10), ["€uro"]);
    assert_eq!(prefixed("x\u{10FFFF}", 10), ["x\u{10FFFF}y"]);
    assert_eq!(prefixed("x", 10), ["x", "x\u{10FFFF}y"]);
    assert_eq!(prefixed("", 3), ["Zed", "a%2", "aB"]);
    assert!(prefixed("ab", 0).is_empty());
}

/// `id_neighbours(id)`: the ids just before and just after `id` in code-point order, not
/// counting `id` itself.
pub fn id_neighbours_are_the_ids_just_before_and_after(factory: &dyn Factory) {
    let db = factory.fresh();
    let mut store = db.connect();
    let neighbours = |store: &dyn Store, id: &str| -> (Option<String>, Option<String>) {
        store.id_neighbours(id).expect("id_neighbours")
    };
    assert_eq!(neighbours(&*store, "c"), (None, None));
    insert(&mut *store, &jobs(&["d", "D", "f", "b"]));
    let some = |s: &str| Some(s.to_string());
    assert_eq!(neighbours(&*store, "d"), (some("b"), some("f")));
    assert_eq!(neighbours(&*store, "c"), (some("b"), some("d")));
    assert_eq!(neighbours(&*store, "a"), (some("D"), some("b")));
    assert_eq!(neighbours(&*store, "D"), (None, some("b")));
    assert_eq!(neighbours(&*store, "C"), (None, some("D")));
    assert_eq!(neighbours(&*store, "g"), (some("f"), None));
}

/// `job_states` answers for the ids that exist and leaves the others out; `get_job` and
/// `attempts` answer nothing for what does not exist.
pub fn job_states_leave_out_missing_ids(factory: &dyn Factory) {
    let db = factory.fresh();
    let mut store = db.connect();
    insert(&mut *store, &jobs(&["a", "b", "c"]));
    claim_one(&mut *store, "w", "a");
    let states = store.job_states(&strings(&["a", "missing", "c"])).expect("job_states");
    assert_eq!(
        states,
        BTreeMap::from([("a".to_string(), State::Processing), ("c".to_string(), State::Pending)])
    );
    assert!(store.job_states(&[]).expect("job_states").is_empty());
    assert!(store.get_job("missing").expect("get_job").is_none());
    assert!(store.attempts(-1).expect("attempts").is_empty());
}
