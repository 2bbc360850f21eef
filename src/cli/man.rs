//! `queuectl man`: man pages generated from the same clap definitions as `--help`, so they
//! can never disagree with it.

use anyhow::{Context, Result};
use clap::{Args, CommandFactory};
use std::path::PathBuf;

/// Arguments of `queuectl man`.
#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write queuectl.1 and one page per subcommand (queuectl-list.1, ...) into DIR, creating
    /// it; without it, print queuectl.1 to stdout
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// Runs `queuectl man`.
pub fn run(args: &ManArgs) -> Result<()> {
    // Without the `help` subcommand: it would get a page per subcommand of its own.
    let command = super::usage::finish(super::Cli::command().disable_help_subcommand(true));
    match &args.dir {
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
            clap_mangen::generate_to(command, dir)
                .with_context(|| format!("cannot write man pages into {}", dir.display()))?;
            println!("wrote man pages into {}", dir.display());
        }
        None => {
            let mut out = Vec::new();
            clap_mangen::Man::new(command).render(&mut out)?;
            std::io::Write::write_all(&mut std::io::stdout(), &out)?;
        }
    }
    Ok(())
}
