//! `bare-fanout`: the `bare` baseline's broadcaster (see `loadtest::bare`), a process of its own so its CPU is
//! measured apart from the load tool's. Prints `listening bare-fanout http://ADDR` once it accepts sockets.

use clap::Parser;
use std::sync::Arc;

/// Minimal WebSocket broadcaster of pre-serialized frames: the machine's limit for the load test to compare with.
#[derive(Parser, Debug)]
#[command(name = "bare-fanout", version)]
struct Args {
    /// Address to listen on (port 0: any free port).
    #[arg(long, env = "RH_BARE_LISTEN", default_value = "127.0.0.1:0")]
    listen: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    loadtest::net::raise_fd_limit();
    let listener = tokio::net::TcpListener::bind(&args.listen).await?;
    println!("listening bare-fanout http://{}", listener.local_addr()?);
    Arc::new(loadtest::bare::Bare::default()).serve(listener).await?;
    Ok(())
}
