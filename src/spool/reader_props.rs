//! Property test of the spool file reader: whatever bytes a file holds, a pass neither panics
//! nor fails; the file is either ingested whole, or refused to `failed/` with a reason and no
//! job added.

use super::ingest::run_pass;
use super::read::Memory;
use super::SpoolPaths;
use crate::home::Home;
use crate::queue::Queue;
use proptest::prelude::*;
use std::fs;

/// Valid spool content to start mutations from.
const SEEDS: &[&str] = &[
    r#"{"command":"echo a"}"#,
    r#"[{"command":"echo a"},{"command":"echo b","priority":3,"cwd":"sub"}]"#,
    "{\"command\":\"echo a\"}\n{\"command\":\"echo b\",\"env\":{\"K\":\"v\"}}\n",
    r#"{"command":"echo a","run_at":"2030-01-01T00:00:00Z","timeout_seconds":5,"max_retries":2}"#,
];

/// A change to valid content: cut it, overwrite, insert or delete a byte, or prefix a BOM.
#[derive(Debug, Clone)]
enum Mutation {
    Truncate(usize),
    Overwrite(usize, u8),
    Insert(usize, u8),
    Delete(usize),
    Bom,
}

fn mutated(seed: &str, mutations: &[Mutation]) -> Vec<u8> {
    let mut bytes = seed.as_bytes().to_vec();
    for mutation in mutations {
        let at = |i: &usize, len: usize| if len == 0 { 0 } else { i % len };
        match mutation {
            Mutation::Truncate(i) => bytes.truncate(at(i, bytes.len() + 1)),
            Mutation::Overwrite(i, b) if !bytes.is_empty() => {
                let i = at(i, bytes.len());
                bytes[i] = *b;
            }
            Mutation::Insert(i, b) => {
                let i = at(i, bytes.len() + 1);
                bytes.insert(i, *b);
            }
            Mutation::Delete(i) if !bytes.is_empty() => {
                let i = at(i, bytes.len());
                bytes.remove(i);
            }
            Mutation::Bom => bytes.splice(0..0, "\u{feff}".bytes()).for_each(drop),
            _ => {}
        }
    }
    bytes
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Overwrite(i, b)),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        any::<usize>().prop_map(Mutation::Delete),
        Just(Mutation::Bom),
    ]
}

/// Arbitrary bytes, or valid content with a few mutations (which reaches the parser and the
/// validation far more often than noise does).
fn content() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..300),
        (0..SEEDS.len(), proptest::collection::vec(mutation(), 0..4))
            .prop_map(|(seed, mutations)| mutated(SEEDS[seed], &mutations)),
    ]
}

/// One queue home for all cases (creating one costs more than a case). Each case's file has
/// a name of its own, so no case can find an earlier one's record.
struct Fixture {
    _dir: tempfile::TempDir,
    queue: Queue,
    paths: SpoolPaths,
    cases: usize,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let home = Home::new(dir.path());
    let (queue, _) = Queue::init(&home).unwrap();
    let paths = SpoolPaths::new(&queue.settings().unwrap().spool_dir);
    Fixture {
        _dir: dir,
        queue,
        paths,
        cases: 0,
    }
}

fn count_jobs(queue: &Queue) -> usize {
    queue.list(None, None).unwrap().len()
}

/// 256 cases from a seed that is printed, taken from `QUEUECTL_TEST_SEED` when set so that a
/// failure can be replayed (proptest also saves failing cases under `proptest-regressions/`).
fn config() -> ProptestConfig {
    let seed = match std::env::var("QUEUECTL_TEST_SEED") {
        Ok(text) => text.trim().parse().expect("QUEUECTL_TEST_SEED must be an integer"),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1),
    };
    eprintln!("spool reader property test: seed {seed} (replay with QUEUECTL_TEST_SEED={seed})");
    ProptestConfig {
        cases: 256,
        rng_seed: proptest::test_runner::RngSeed::Fixed(seed),
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn any_bytes_are_ingested_whole_or_refused_with_a_reason(
        bytes in content(),
        ndjson in any::<bool>(),
    ) {
        thread_local! {
            static FIXTURE: std::cell::RefCell<Fixture> = std::cell::RefCell::new(fixture());
        }
        FIXTURE.with(|fixture| {
            let mut fixture = fixture.borrow_mut();
            let Fixture { queue, paths, cases, .. } = &mut *fixture;
            *cases += 1;
            // Each case starts from an empty spool.
            for dir in [&paths.incoming, &paths.failed] {
                for entry in fs::read_dir(dir).unwrap() {
                    fs::remove_file(entry.unwrap().path()).unwrap();
                }
            }
            let mut settings = queue.settings().unwrap();
            // No waiting: every file is settled, so each case ends in a decision.
            settings.spool_settle_ms = 0;
            let name = format!("case-{cases}.{}", if ndjson { "ndjson" } else { "json" });
            fs::write(paths.incoming.join(&name), &bytes).unwrap();
            let jobs_before = count_jobs(queue);

            let events = std::cell::RefCell::new(Vec::new());
            let outcome = run_pass(
                queue.store().as_mut(),
                &settings,
                paths,
                &mut Memory::single_pass(),
                &|e| events.borrow_mut().push(e.to_string()),
            ).unwrap();
            let report = outcome.report;
            let events = events.into_inner();
            prop_assert!(fs::read_dir(&paths.incoming).unwrap().next().is_none(), "left in incoming/: {events:?}");
            prop_assert_eq!(report.files_left, 0);
            if report.files_ingested == 1 {
                prop_assert_eq!(report.files_rejected, 0);
                prop_assert!(report.jobs_added > 0);
                prop_assert_eq!(count_jobs(queue) - jobs_before, report.jobs_added);
                prop_assert!(fs::read_dir(&paths.failed).unwrap().next().is_none());
            } else {
                prop_assert_eq!(report.files_rejected, 1, "{:?}", events);
                prop_assert_eq!(count_jobs(queue), jobs_before);
                // Nothing lost: the refused file is in failed/ as it was, with a reason.
                prop_assert_eq!(fs::read(paths.failed.join(&name)).unwrap(), bytes);
                let reason = fs::read_to_string(paths.failed.join(format!("{name}.error.txt"))).unwrap();
                let first = reason.lines().next().unwrap_or("");
                prop_assert!(!first.trim().is_empty(), "no reason: {reason:?}");
                prop_assert!(events.iter().any(|e| e.starts_with(&format!("spool: rejected {name}"))), "{:?}", events);
            }
            Ok(())
        })?;
    }
}
