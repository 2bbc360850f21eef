//! Writing a spool file by the writer's contract: for programs that must not wait on the
//! database (it may be locked by a long transaction, or on a slow disk).

use super::SpoolPaths;
use crate::config::open_with_settings;
use crate::error::{Error, Result};
use crate::home::Home;
use crate::intake::prepare_jobs;
use crate::job::{JobSpec, Schedule, Source, SHELL_KIND};
use crate::time::{format_ms, now_ms, Millis};
use serde_json::{Map, Value};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Validates `specs` and writes them as one file into the spool of `home`; returns their ids.
///
/// Jobs without an id get a random UUID here, so the caller knows every id at once. The file
/// is written to `spool/tmp/`, synced, and renamed into `spool/incoming/`; an ingester (a
/// worker or `queuectl spool watch`) adds the jobs, all or nothing. A `delay` becomes an
/// absolute `run_at` counted from now, not from ingestion.
pub fn submit(home: &Home, specs: &[JobSpec]) -> Result<Vec<String>> {
    let (_, settings) = open_with_settings(home)?;
    submit_to_dir(&settings.spool_dir, specs)
}

/// Like [`submit`], into the spool directory `spool_dir` (for callers that already know it).
pub fn submit_to_dir(spool_dir: &Path, specs: &[JobSpec]) -> Result<Vec<String>> {
    let now = now_ms();
    let located: Vec<(Option<String>, JobSpec)> = specs
        .iter()
        .enumerate()
        .map(|(i, spec)| ((specs.len() > 1).then(|| format!("index {i}")), spec.clone()))
        .collect();
    // The one validation path: the same rules and messages as `enqueue`.
    let jobs = prepare_jobs(located, &Source::Spool(String::new()), now)?;
    let values: Vec<Value> = specs
        .iter()
        .zip(&jobs)
        .map(|(spec, job)| spec_to_json(spec, &job.id, job.run_at))
        .collect();
    let ids: Vec<String> = jobs.into_iter().map(|job| job.id).collect();
    let text = match values.as_slice() {
        [one] => format!("{one}\n"),
        _ => format!("{}\n", Value::Array(values)),
    };
    let paths = SpoolPaths::new(spool_dir);
    // Named by time first so that ingestion, which goes by name, keeps submission order.
    let name = format!("{now:013}-{}.json", uuid::Uuid::new_v4().simple());
    let scratch = paths.tmp.join(&name);
    let target = paths.incoming.join(&name);
    if let Err(e) = write_synced(&scratch, text.as_bytes()) {
        let _ = fs::remove_file(&scratch);
        return Err(e);
    }
    if let Err(e) = fs::rename(&scratch, &target) {
        let _ = fs::remove_file(&scratch);
        return Err(Error::io(&target, e));
    }
    // Sync the directory too, so the rename survives a power loss once we have said "done".
    File::open(&paths.incoming)
        .and_then(|dir| dir.sync_all())
        .map_err(|e| Error::io(&paths.incoming, e))?;
    Ok(ids)
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    // 0640: in a shared setup (spool_allowed_uids) the worker reads it through the group.
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o640)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    file.write_all(bytes)
        .and_then(|_| file.sync_all())
        .map_err(|e| Error::io(path, e))
}

/// A spec as the JSON an ingester parses back into the same job.
fn spec_to_json(spec: &JobSpec, id: &str, run_at: Millis) -> Value {
    let mut object = Map::new();
    object.insert("id".into(), id.into());
    if !spec.command.is_empty() {
        object.insert("command".into(), spec.command.clone().into());
    }
    if spec.kind != SHELL_KIND {
        object.insert("kind".into(), spec.kind.clone().into());
    }
    if let Some(payload) = &spec.payload {
        object.insert("payload".into(), payload.clone());
    }
    if let Some(max_retries) = spec.max_retries {
        object.insert("max_retries".into(), max_retries.into());
    }
    if spec.priority != 0 {
        object.insert("priority".into(), spec.priority.into());
    }
    if !matches!(spec.schedule, Schedule::Now) {
        object.insert("run_at".into(), format_ms(run_at).into());
    }
    if let Some(timeout) = spec.timeout_seconds {
        object.insert("timeout_seconds".into(), timeout.into());
    }
    if let Some(cwd) = &spec.cwd {
        object.insert("cwd".into(), cwd.clone().into());
    }
    if !spec.env.is_empty() {
        let env = spec
            .env
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        object.insert("env".into(), Value::Object(env));
    }
    Value::Object(object)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::parse_jobs;

    #[test]
    fn written_files_parse_back_to_the_same_jobs() {
        let dir = tempfile::tempdir().unwrap();
        super::super::create_layout(dir.path()).unwrap();
        let specs = vec![
            JobSpec::shell("echo a")
                .with_id("a")
                .with_priority(5)
                .with_env("K", "v")
                .with_cwd("sub"),
            JobSpec::shell("echo b")
                .with_schedule(Schedule::After(60.0))
                .with_timeout_seconds(9)
                .with_max_retries(1),
            JobSpec::kind("email", serde_json::json!({"to": "x@y"})),
        ];
        let before = now_ms();
        let ids = submit_to_dir(dir.path(), &specs).unwrap();
        assert_eq!(ids[0], "a");
        assert!(uuid::Uuid::parse_str(&ids[1]).is_ok());
        let files: Vec<_> = fs::read_dir(dir.path().join("incoming"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(files.len(), 1);
        assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
        let parsed = parse_jobs(&fs::read_to_string(&files[0]).unwrap()).unwrap();
        assert_eq!(parsed.len(), 3);
        assert_eq!(parsed[0].1, specs[0]);
        let b = &parsed[1].1;
        assert_eq!(b.id.as_deref(), Some(ids[1].as_str()));
        assert_eq!((b.timeout_seconds, b.max_retries), (Some(9), Some(1)));
        match b.schedule {
            Schedule::At(at) => assert!(at >= before + 60_000 && at <= now_ms() + 60_000),
            other => panic!("expected an absolute time, got {other:?}"),
        }
        assert_eq!(parsed[2].1.kind, "email");
        assert_eq!(parsed[2].1.payload, specs[2].payload);
    }

    #[test]
    fn invalid_specs_write_nothing() {
        let dir = tempfile::tempdir().unwrap();
        super::super::create_layout(dir.path()).unwrap();
        let e = submit_to_dir(
            dir.path(),
            &[JobSpec::shell("a").with_id("x"), JobSpec::shell("b").with_id("x")],
        )
        .unwrap_err();
        assert!(e.to_string().contains("`x` appears more than once"), "{e}");
        let e = submit_to_dir(dir.path(), &[JobSpec::shell(" ")]).unwrap_err();
        assert!(e.to_string().contains("field `command`"), "{e}");
        assert!(submit_to_dir(dir.path(), &[]).is_err());
        assert_eq!(fs::read_dir(dir.path().join("incoming")).unwrap().count(), 0);
    }
}
