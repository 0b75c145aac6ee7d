//! The `chasm` binary: parse the command line, run the command, turn any error into one
//! `error:` line on stderr and a non-zero exit.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    keep_freed_memory();
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

/// Asks glibc's allocator to keep 8 MB of freed heap instead of returning it to the system at
/// once (its default pad is 128 KB). A sync reads each changed session file into a buffer of
/// hundreds of kilobytes and frees it; given back, the next buffer comes from fresh pages, and
/// faulting them in was 4% of a sync round. A process holds at most that much more.
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `mallopt` only sets a tunable of the allocator; called before any other thread
    // starts, with a valid parameter and value.
    unsafe {
        libc::mallopt(libc::M_TOP_PAD, 8 << 20);
    }
}
