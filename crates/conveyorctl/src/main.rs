//! `conveyorctl`: see `conveyorctl --help`.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = conveyorctl::Cli::parse();
    ExitCode::from(conveyorctl::run(cli))
}
