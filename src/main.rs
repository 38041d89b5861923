use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    firstcall::cli::run(firstcall::cli::Cli::parse()).await
}
