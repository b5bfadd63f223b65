use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // A file-size limit (RLIMIT_FSIZE) must make a write fail, not kill the agent: a failing
    // queue commit is retried and nothing is lost.
    // SAFETY: setting a signal to SIG_IGN before any thread starts has no preconditions.
    unsafe {
        let _ = nix::sys::signal::signal(
            nix::sys::signal::Signal::SIGXFSZ,
            nix::sys::signal::SigHandler::SigIgn,
        );
    }
    let cli = tracegate::cli::Cli::parse();
    tracegate::logging::init();
    tracegate::cli::main(cli)
}
