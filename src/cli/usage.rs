//! Parsing the command line: the help every page shows, and usage errors in the same
//! `queuectl: error: ...` style as every other error.

use super::Cli;
use clap::error::ErrorKind;
use clap::{CommandFactory, FromArgMatches};

/// The global options, said once in `queuectl --help` rather than on every subcommand's page.
const GLOBAL_OPTIONS: &[&str] = &["home", "db"];

/// The clap command with the global options hidden from subcommand help (they still parse
/// everywhere: `queuectl list --home X` works). Used for parsing and man pages.
pub fn command() -> clap::Command {
    finish(Cli::command())
}

/// Builds `command` and hides the global options in its subcommands: globals are copied into
/// subcommands when the command is built, so they are hidden after that.
pub fn finish(mut command: clap::Command) -> clap::Command {
    command.build();
    hide_globals_in_subcommands(command)
}

/// Hides the global options in every subcommand, recursively. In place (`mut_args`,
/// `mut_subcommands`): `mut_arg` would move the argument to the end of a built command and
/// leave its key map pointing at the wrong arguments.
fn hide_globals_in_subcommands(command: clap::Command) -> clap::Command {
    command.mut_subcommands(|sub| {
        let sub = sub.mut_args(|arg| {
            if GLOBAL_OPTIONS.contains(&arg.get_id().as_str()) {
                arg.hide(true)
            } else {
                arg
            }
        });
        hide_globals_in_subcommands(sub)
    })
}

/// Parses the process's arguments. Help and version go to stdout with exit 0; a usage error
/// is printed as `queuectl: error: ...` (then clap's usage and tip lines) with exit code 2.
pub fn parse() -> Cli {
    let result = command()
        .try_get_matches()
        .and_then(|matches| Cli::from_arg_matches(&matches));
    match result {
        Ok(cli) => cli,
        Err(error) => {
            if matches!(
                error.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                error.exit();
            }
            eprint!("{}", restyle(&error.render().to_string()));
            std::process::exit(2);
        }
    }
}

/// Turns clap's `error: ...` first line into `queuectl: error: ...`; the usage and tip lines
/// after it stay as they are.
pub fn restyle(rendered: &str) -> String {
    let body = rendered.strip_prefix("error: ").unwrap_or(rendered);
    format!("queuectl: error: {body}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clap_errors_take_the_tool_prefix() {
        assert_eq!(
            restyle("error: unexpected argument '-x' found\n\nUsage: queuectl list\n"),
            "queuectl: error: unexpected argument '-x' found\n\nUsage: queuectl list\n"
        );
    }

    #[test]
    fn the_command_definition_is_consistent() {
        command().debug_assert();
    }
}
