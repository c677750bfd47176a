#![forbid(unsafe_code)]

use clap::Parser;
use latchkey::cli::{Cli, run};

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

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
