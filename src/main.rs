//! The `queuectl` binary: parses arguments, calls the library, prints. Exit codes: 0 ok,
//! 2 bad input or usage, 3 jobs died (`wait`, `worker start --until-*`), 1 anything else.

mod cli;

use anyhow::Result;
use cli::{Cli, Command};
use queuectl::store::DbLocation;
use queuectl::{Home, Queue};

fn home_of(cli: &Cli) -> Result<Home> {
    let root = cli.home.clone().unwrap_or_else(|| std::path::PathBuf::from("."));
    let home = Home::new(root);
    Ok(match &cli.db {
        Some(db) => home.with_db(DbLocation::parse(db).map_err(|e| anyhow::anyhow!("--db: {e}"))?),
        None => queuectl::config::with_db_url(home)?,
    })
}

fn run(cli: Cli) -> Result<()> {
    let home = home_of(&cli)?;
    if !matches!(
        cli.command,
        Command::Init | Command::Completions { .. } | Command::Man(_)
    ) {
        cli::warn_about_config_permissions(&home);
    }
    match &cli.command {
        Command::Init => {
            let (queue, report) = Queue::init(&home)?;
            cli::warn_about_config_permissions(&home);
            let settings = queue.settings()?;
            if report.already_initialised {
                println!("already initialised: {} (jobs kept)", home.db());
            } else {
                println!("initialised {}", home.db());
            }
            if let Some(migrated) = &report.migrated {
                for line in cli::migrate::migrated_lines(&home, migrated) {
                    println!("{line}");
                }
            }
            if report.wrote_config {
                println!("wrote {}", home.config_path().display());
            }
            println!("spool: {}", settings.spool_dir.display());
            Ok(())
        }
        Command::Completions { shell } => {
            cli::completions::run(*shell);
            Ok(())
        }
        Command::Man(args) => cli::man::run(args),
        Command::Enqueue(args) => {
            // A refused batch writes nothing: validation happens before the one transaction.
            let mut queue = Queue::open(&home)?;
            // Jobs take their defaults (retries, timeout) from the settings at run time: taking
            // jobs in while those cannot be read would only hide the problem until later.
            queue.settings()?;
            cli::enqueue::run(&mut queue, args)
        }
        Command::Add(args) => {
            // As `enqueue`: nothing is written unless the whole job is valid and the settings
            // it will run with can be read.
            let mut queue = Queue::open(&home)?;
            queue.settings()?;
            cli::add::run(&mut queue, args)
        }
        // Commands that only read the queue, or act without settings, survive a broken config
        // file with a warning; the others (enqueue, worker start, config, spool, init) need
        // the settings to be right and refuse. `logs` and `wait` never read settings: they
        // stay silent (a warning would mix into the job's stderr that `logs` prints).
        Command::List(args) => cli::list::list(&cli::open_for_reading(&home)?, args),
        Command::Show(args) => cli::inspect::show(&cli::open_for_reading(&home)?, args),
        Command::Logs(args) => cli::inspect::logs(&Queue::open(&home)?, args),
        Command::Status(args) => cli::status::run(&mut cli::open_for_reading(&home)?, args),
        Command::Dlq(command) => cli::dlq::run(&mut cli::open_for_reading(&home)?, command),
        Command::Config(command) => cli::config_cmd::run(&Queue::open(&home)?, command),
        Command::Worker(command) => cli::worker_cmd::run(&home, command),
        Command::Wait(args) => cli::wait::run(&Queue::open(&home)?, args),
        Command::Health(args) => cli::health::run(&home, args),
        Command::Spool(command) => cli::spool_cmd::run(&home, command),
        Command::Backup(args) => cli::backup::run(&home, args),
        Command::Migrate(args) => cli::migrate::run(&home, args),
        Command::Recover => {
            let mut queue = cli::open_for_reading(&home)?;
            let report = queue.recover()?;
            for worker in &report.removed_workers {
                eprintln!("worker {} (PID {}) is gone", worker.id, worker.pid);
            }
            for (id, state) in &report.recovered {
                println!("{id}: worker lost, now {state}");
            }
            for (id, reason) in &report.held {
                println!("{id}: not recovered: {reason}");
            }
            println!(
                "recovered {} job{}",
                report.recovered.len(),
                if report.recovered.len() == 1 { "" } else { "s" }
            );
            Ok(())
        }
    }
}

/// The exit code for an error: 2 when the caller's input was wrong, 1 otherwise.
fn exit_code(error: &anyhow::Error) -> i32 {
    for cause in error.chain() {
        if let Some(e) = cause.downcast_ref::<queuectl::Error>() {
            return if e.is_user_error()
                || matches!(
                    e,
                    queuectl::Error::NotInitialised(_) | queuectl::Error::SchemaTooOld { .. }
                ) {
                2
            } else {
                1
            };
        }
    }
    1
}

fn main() {
    // Writing into a closed pipe (`queuectl list | head`) should end quietly, not panic.
    // SAFETY: restoring the default disposition of SIGPIPE before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = cli::usage::parse();
    if let Err(error) = run(cli) {
        if let Some(verdict) = error.downcast_ref::<cli::Verdict>() {
            eprintln!("queuectl: {verdict}");
            std::process::exit(verdict.code);
        }
        // Library errors already include their cause's text; print each new part once.
        let mut message = String::new();
        for cause in error.chain() {
            let text = cause.to_string();
            if !message.contains(&text) {
                if !message.is_empty() {
                    message.push_str(": ");
                }
                message.push_str(&text);
            }
        }
        eprintln!("queuectl: error: {message}");
        std::process::exit(exit_code(&error));
    }
}
