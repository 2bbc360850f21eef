//! `queuectl add`: one job, the command as you would type it in a shell, run from where you
//! typed it. The same as `queuectl enqueue [OPTIONS] -- CMD [ARGS...]`.

use super::enqueue::{run_input, JobFlags, JobInput};
use anyhow::Result;
use clap::Args;
use queuectl::Queue;

/// Arguments of `queuectl add`.
#[derive(Debug, Args)]
pub struct AddArgs {
    /// The flags `enqueue` has too.
    #[command(flatten)]
    pub flags: JobFlags,

    /// The command and its arguments, after the options (`--` first if the command starts
    /// with `-`); one word is a shell command string used as is
    #[arg(required = true, trailing_var_arg = true, value_name = "CMD")]
    pub words: Vec<String>,
}

/// Runs `queuectl add`.
pub fn run(queue: &mut Queue, args: &AddArgs) -> Result<()> {
    run_input(queue, &JobInput::Words(&args.words), &args.flags)
}
