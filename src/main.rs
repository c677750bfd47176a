#![forbid(unsafe_code)]

use clap::Parser;
use latchkey::cli::{Cli, run};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run(Cli::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("latchkey: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
