//! `edge`: see the crate docs in `lib.rs`.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = edge::Config::parse();
    let _tracing = rh_telemetry::init("edge", &config.trace)?;
    edge::run(config, rh_telemetry::shutdown_token()).await
}
