//! `queuectl completions SHELL`: clap_complete's static script, plus (bash, zsh) completion
//! of job ids. clap_complete's dynamic completion is unstable, so the id part is a small
//! shell function that asks `queuectl list --format id` for the newest ids when needed.

use super::Cli;
use clap::CommandFactory;
use clap_complete::Shell;

/// How many ids completion offers: the newest ones, which are the ones people look for.
const COMPLETED_IDS: u32 = 200;

/// Prints the completion script for `shell`.
pub fn run(shell: Shell) {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "queuectl", &mut script);
    let mut script = String::from_utf8_lossy(&script).into_owned();
    match shell {
        Shell::Bash => script.push_str(&bash_ids()),
        Shell::Zsh => script = zsh_ids(&script),
        _ => {}
    }
    print!("{script}");
}

/// A bash wrapper around clap's `_queuectl`: where a job id goes (after `show`, `logs`,
/// `wait`, `dlq retry`, not after an option that takes a value) it offers ids from the same
/// queue home the command line names.
fn bash_ids() -> String {
    format!(
        r#"
_queuectl_job_ids() {{
    local cur="${{COMP_WORDS[COMP_CWORD]}}" prev="${{COMP_WORDS[COMP_CWORD-1]}}"
    local i word words=() home=()
    for ((i = 1; i < COMP_CWORD; i++)); do
        word="${{COMP_WORDS[i]}}"
        case "$word" in
            --home|--db) home+=("$word" "${{COMP_WORDS[i+1]}}"); ((i++)) ;;
            --timeout) ((i++)) ;;
            -*) ;;
            *) words+=("$word") ;;
        esac
    done
    case "${{words[0]}} ${{words[1]}}" in
        "show "|"logs "|"wait "*|"dlq retry") ;;
        *) _queuectl "$@"; return ;;
    esac
    case "$cur" in -*) _queuectl "$@"; return ;; esac
    case "$prev" in --home|--db|--timeout) _queuectl "$@"; return ;; esac
    COMPREPLY=( $(compgen -W "$(queuectl "${{home[@]}}" list --format id --limit {COMPLETED_IDS} 2>/dev/null)" -- "$cur") )
}}
complete -F _queuectl_job_ids -o nosort -o bashdefault -o default queuectl
"#
    )
}

/// Points zsh's id arguments (the positional `id`/`ids` of `show`, `logs`, `wait`, `dlq
/// retry`; not `enqueue --id`, which names a new job) at a function that lists job ids.
fn zsh_ids(script: &str) -> String {
    let function = format!(
        r#"
_queuectl_job_ids() {{
    local -a ids
    ids=(${{(f)"$(_call_program job-ids queuectl list --format id --limit {COMPLETED_IDS} 2>/dev/null)"}})
    compadd -a ids
}}
"#
    );
    let mut out = String::with_capacity(script.len() + function.len());
    for (i, line) in script.lines().enumerate() {
        let is_id_argument = line.starts_with("':id -- ") || line.starts_with("'*::ids -- ");
        match line.strip_suffix(":_default' \\") {
            Some(start) if is_id_argument => {
                out.push_str(start);
                out.push_str(":_queuectl_job_ids' \\");
            }
            _ => out.push_str(line),
        }
        out.push('\n');
        // After `#compdef queuectl`, which must stay the first line.
        if i == 0 {
            out.push_str(&function);
        }
    }
    out
}
