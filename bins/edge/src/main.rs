//! `edge`: see the crate docs in `lib.rs`.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    rh_telemetry::init_tracing();
    let config = edge::Config::parse();
    edge::run(config, rh_telemetry::shutdown_token()).await
}
