//! The `netward` command: flags -> settings -> command -> exit code. The
//! flags are in `cli`, each command in `commands`, all logic in the library.

use std::process::ExitCode;

use clap::Parser;

mod cli;
mod commands;
mod failure;

use failure::Failure;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match commands::run(cli.command) {
        Ok(code) => code,
        Err(Failure::Input(diags)) => {
            commands::print_diags(&diags);
            ExitCode::from(1)
        }
        Err(Failure::Invalid(msg)) => {
            eprintln!("netward: {msg}");
            ExitCode::from(1)
        }
        Err(Failure::Usage(msg)) => {
            eprintln!("netward: {msg}");
            ExitCode::from(2)
        }
        Err(Failure::Io(msg)) => {
            eprintln!("netward: {msg}");
            ExitCode::from(2)
        }
        Err(Failure::Exit(code)) => ExitCode::from(code),
    }
}
