//! `audit`: see the crate docs in `lib.rs`.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = audit::Config::parse();
    let _tracing = rh_telemetry::init("audit", &config.trace)?;
    audit::run(config, rh_telemetry::shutdown_token()).await
}
