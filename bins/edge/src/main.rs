//! `edge`: see the crate docs in `lib.rs`.

use clap::Parser;

/// mimalloc: many small allocations per frame and per event (loadtest/RESULTS.md, session 9).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = edge::Config::parse();
    let _tracing = rh_telemetry::init("edge", &config.trace)?;
    edge::run(config, rh_telemetry::shutdown_token()).await
}
