use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = tracegate::cli::Cli::parse();
    tracegate::logging::init();
    tracegate::cli::main(cli)
}
