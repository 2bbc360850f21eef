//! The command line's surface: one meaning per short flag, one error style, global options
//! said once, man pages and completion scripts generated from the same definitions.

mod common;

use common::{bin, TestHome};
use std::process::{Command, Stdio};

#[test]
fn worker_start_takes_its_thread_count_as_dash_n() {
    let home = TestHome::new();
    home.run(&["enqueue", "--id", "a", "--command", "true"]).ok();
    let run = home.run(&["worker", "start", "-n", "2", "--until-idle"]).ok();
    assert!(run.stdout.contains("Started 2 workers"), "{run:#?}");
    assert_eq!(home.job("a")["state"], "completed");
}

#[test]
fn worker_start_refuses_dash_c_with_a_hint() {
    let home = TestHome::new();
    home.run(&["enqueue", "--id", "a", "--command", "true"]).ok();
    let before = home.db_snapshot();
    for args in [&["worker", "start", "-c", "2"][..], &["worker", "start", "-c"]] {
        let run = home.run(args).code(2);
        assert_eq!(run.stdout, "", "{run:#?}");
        assert_eq!(run.stderr.trim_end().lines().count(), 1, "{run:#?}");
        assert!(
            run.stderr.starts_with("queuectl: error: ") && run.stderr.contains("-n N or --count N"),
            "{run:#?}"
        );
    }
    assert_eq!(home.db_snapshot(), before, "nothing ran");
    // `-c` still means --command where it always did.
    home.run(&["enqueue", "-c", "echo short", "--id", "b"]).ok();
    assert_eq!(home.job("b")["command"], "echo short");
}

#[test]
fn usage_errors_and_tool_errors_share_one_style_and_exit_two() {
    let home = TestHome::new();
    let usage = home.run(&["list", "--no-such-flag"]).code(2);
    let first = usage.stderr.lines().next().unwrap_or("");
    assert!(
        first.starts_with("queuectl: error: ") && first.contains("--no-such-flag"),
        "{usage:#?}"
    );
    assert!(!usage.stderr.contains("\nerror:"), "{usage:#?}");
    let missing = home.run(&["show"]).code(2);
    assert!(missing.stderr.starts_with("queuectl: error: "), "{missing:#?}");
    let tool = home.run(&["show", "no-such-job"]).code(2);
    assert_eq!(tool.stderr, "queuectl: error: no job with id `no-such-job`\n");
    // Help and version are not errors.
    let help = home.run(&["list", "--help"]).ok();
    assert!(
        help.stdout.contains("--oldest-first") && help.stderr.is_empty(),
        "{help:#?}"
    );
    home.run(&["--version"]).ok();
}

#[test]
fn global_options_are_listed_once_in_the_top_level_help() {
    let home = TestHome::new();
    let top = home.run(&["--help"]).ok();
    assert!(
        top.stdout.contains("--home <DIR>") && top.stdout.contains("--db <PATH|URL>"),
        "{top:#?}"
    );
    for args in [
        &["list", "--help"][..],
        &["dlq", "retry", "--help"],
        &["worker", "start", "--help"],
    ] {
        let sub = home.run(args).ok();
        assert!(
            !sub.stdout.contains("--home") && !sub.stdout.contains("--db"),
            "{sub:#?}"
        );
    }
    // They still work after a subcommand: `init` there makes the other home's config file.
    let other = tempfile::tempdir().expect("temp dir");
    home.run(&["init", "--home", other.path().to_str().unwrap()]).ok();
    assert!(other.path().join("config/queuectl.toml").is_file());
}

#[test]
fn man_writes_a_page_for_the_tool_and_each_subcommand() {
    let home = TestHome::new();
    let dir = home.path().join("man/man1");
    let run = home.run(&["man", "--dir", dir.to_str().unwrap()]).ok();
    assert!(run.stdout.contains("wrote man pages"), "{run:#?}");
    let main = std::fs::read_to_string(dir.join("queuectl.1")).expect("queuectl.1");
    assert!(
        main.starts_with(".ie") || main.contains(".TH queuectl"),
        "roff: {}",
        &main[..200.min(main.len())]
    );
    for sub in [
        "init", "enqueue", "list", "show", "logs", "status", "dlq", "worker", "wait", "recover",
    ] {
        assert!(main.contains(sub), "queuectl.1 names {sub}");
    }
    for page in [
        "queuectl-list.1",
        "queuectl-dlq-retry.1",
        "queuectl-worker-start.1",
        "queuectl-show.1",
    ] {
        let text = std::fs::read_to_string(dir.join(page)).unwrap_or_else(|e| panic!("{page}: {e}"));
        assert!(text.contains(".TH"), "{page} is roff");
    }
    let list = std::fs::read_to_string(dir.join("queuectl-list.1")).unwrap();
    assert!(list.contains("oldest\\-first"), "the page documents the flags");
    // Hidden commands and clap's help subcommand get no page.
    for absent in ["queuectl-man.1", "queuectl-help.1"] {
        assert!(!dir.join(absent).exists(), "{absent}");
    }
    // Without --dir the main page goes to stdout.
    let stdout = home.run(&["man"]).ok();
    assert!(stdout.stdout.contains(".TH queuectl"), "{stdout:#?}");
}

#[test]
fn completions_offer_the_states() {
    let home = TestHome::new();
    for shell in ["bash", "zsh", "fish"] {
        let run = home.run(&["completions", shell]).ok();
        for state in ["pending", "processing", "completed", "failed", "dead"] {
            assert!(run.stdout.contains(state), "{shell} lacks {state}");
        }
    }
    let zsh = home.run(&["completions", "zsh"]).ok();
    assert!(zsh.stdout.starts_with("#compdef queuectl\n"), "{zsh:#?}");
    assert!(zsh.stdout.contains("_queuectl_job_ids() {"), "{zsh:#?}");
    assert_eq!(
        zsh.stdout.matches(":_queuectl_job_ids'").count(),
        4,
        "show, logs, wait and dlq retry complete ids: {zsh:#?}"
    );
}

#[test]
fn bash_completion_offers_job_ids_where_an_id_goes() {
    let home = TestHome::new();
    home.run(&["enqueue", "--id", "alpha-job", "--command", "true"]).ok();
    home.run(&["enqueue", "--id", "beta-job", "--command", "true"]).ok();
    let script = home.path().join("completion.bash");
    std::fs::write(&script, home.run(&["completions", "bash"]).ok().stdout).expect("write script");
    // Called the way bash calls a completion function: command, current word, previous word.
    let complete = |words: &str| -> String {
        let probe = format!(
            "source {}; COMP_WORDS=({words}); COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1)); \
             _queuectl_job_ids queuectl \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\"; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            script.display()
        );
        let bin_dir = bin().parent().expect("bin dir").to_path_buf();
        let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default());
        let mut command = Command::new("bash");
        command
            .args(["-c", &probe])
            .env("PATH", path)
            .env("QUEUECTL_HOME", home.path())
            .stdin(Stdio::null());
        home.set_db_env(&mut command);
        let output = command.output().expect("run bash");
        assert!(output.status.success(), "{output:?}");
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    assert_eq!(complete("queuectl show al"), "alpha-job\n");
    let both = complete("queuectl dlq retry ''");
    assert!(both.contains("alpha-job\n") && both.contains("beta-job\n"), "{both}");
    assert_eq!(complete("queuectl wait alpha-job be"), "beta-job\n");
    // Not where something else goes: states after --state, not ids.
    let states = complete("queuectl list --state p");
    assert!(states.contains("pending") && !states.contains("alpha"), "{states}");
}
