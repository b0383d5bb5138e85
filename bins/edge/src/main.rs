//! `edge`: see the crate docs in `lib.rs`.

use clap::Parser;
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    rh_telemetry::init_tracing();
    let config = edge::Config::parse();
    let shutdown = CancellationToken::new();
    tokio::spawn({
        let shutdown = shutdown.clone();
        async move {
            rh_telemetry::shutdown_signal().await;
            shutdown.cancel();
        }
    });
    edge::run(config, shutdown).await
}
