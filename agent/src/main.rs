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
    no_fastbins();
    let cli = tracegate::cli::Cli::parse();
    tracegate::logging::init();
    tracegate::cli::main(cli)
}

/// Turns glibc's fastbins off (`M_MXFAST` = 0; `GLIBC_TUNABLES=glibc.malloc.mxfast=…` still
/// overrides it). Each event allocates many small strings and a payload of about a kilobyte;
/// with fastbins every such larger allocation first consolidates the small freed chunks, which
/// cost ~10 % of the agent's CPU at full load (docs/performance.md). The per-thread cache
/// (tcache) still serves the small ones.
fn no_fastbins() {
    #[cfg(target_env = "gnu")]
    if std::env::var_os("GLIBC_TUNABLES").is_none() {
        // SAFETY: mallopt only changes a malloc parameter; it is called before any thread starts.
        unsafe {
            nix::libc::mallopt(nix::libc::M_MXFAST, 0);
        }
    }
}
