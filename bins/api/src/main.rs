//! `api`: see the crate docs in `lib.rs`.

use clap::Parser;
use rh_api::config::{Cli, Command};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    rh_telemetry::init_tracing();
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => rh_api::startup::run(cli.settings).await,
        Command::SeedDemo => rh_api::seed::run(cli.settings).await,
    }
}
