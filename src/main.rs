use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = pairchat::cli::Cli::parse();
    pairchat::telemetry::init(cli.log_format);
    match pairchat::cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}
