//! `api`: see the crate docs in `lib.rs`.

use clap::Parser;
use rh_api::config::{Cli, Command};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let _tracing = rh_telemetry::init("api", &cli.settings.trace)?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => rh_api::startup::run(cli.settings).await,
        Command::SeedDemo => rh_api::seed::run(cli.settings).await,
    }
}
