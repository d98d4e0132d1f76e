//! `loadgen`: see the library for what it does and the README's "Load" section.

use clap::Parser as _;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    loadgen::main(loadgen::Cli::parse()).await
}
