//! The `chasm` binary: parse the command line, run the command, turn any error into one
//! `error:` line on stderr and a non-zero exit.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    std::panic::set_hook(Box::new(|info| {
        let msg = info.to_string().replace('\n', " ");
        eprintln!("error: internal error (a bug in chasm, please report it): {msg}");
    }));
    let cli = chasm::cli::Cli::parse();
    match chasm::cli::run(cli) {
        Ok(code) => code,
        Err(err) if chasm::cli::is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {}", chasm::cli::one_line(&err));
            ExitCode::FAILURE
        }
    }
}
