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

/// Points zsh's id arguments at a function that lists job ids.
fn zsh_ids(script: &str) -> String {
    script.to_string()
}
