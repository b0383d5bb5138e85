//! `loadtest`: simulates many viewers of streamed AI responses against a running RelayHub stack, checks every
//! delivery and measures the fan-out path. `main.rs` only parses flags and calls [`run`], so a test can run a
//! scenario in-process (`loadtest/tests/smoke.rs`).
//!
//! | module | what it does |
//! |---|---|
//! | [`config`] | the scenario: clap flags, each also an `RH_LOADTEST_*` environment variable |
//! | [`setup`] | the scenario's org, accounts, conversations and shares, made with [`rh_client`] (the v1 REST client) |
//! | [`net`] | opening many sockets: loopback source-address spread, fd limit, `/proc/<pid>` VmRSS |
//! | [`viewer`] | one socket (edge or nats-ws) and its life: subscribe, replay, churn, catch-up, final checks |
//! | [`check`] | the per-viewer correctness rules (order, gaps, duplicates, final text) on a fast wire decoder |
//! | [`baseline`] | the `nats-ws` baseline: NATS text protocol over nats-server's WebSocket listener |
//! | [`synth`] | synthetic responses (same tokens, rate, coalescing and frames) for the `bare` and `pushpin` baselines |
//! | [`bare`] | the `bare` baseline: a minimal tokio + tungstenite broadcaster (the `bare-fanout` binary) |
//! | [`pushpin`] | the `pushpin` baseline: WebSocket-over-HTTP origin and publisher for a private Pushpin |
//! | [`cpu`] | CPU seconds of named processes (with children) and of the machine, per phase |
//! | [`metrics`] | sharded HDR histograms and counters shared by thousands of tasks |
//! | [`silence`] | the time a viewer spends without events (chaos runs report it) |
//! | [`scenario`] | one phase: open sockets, drive the responders and late joiners, drain, measure |
//! | [`report`] | the JSON report and the human summary |
//!
//! A run fails (non-zero exit) on any correctness violation or any error; the summary prints both. In a chaos run
//! (`--chaos`, with `bench.sh` killing processes) lost sockets and refused sends are disruptions, not errors.

pub mod bare;
pub mod baseline;
pub mod check;
pub mod config;
pub mod cpu;
pub mod metrics;
pub mod net;
pub mod pushpin;
pub mod report;
pub mod scenario;
pub mod setup;
pub mod silence;
pub mod synth;
pub mod viewer;

pub use config::{Baseline, Config};
pub use report::{PhaseReport, Report};

use anyhow::Context;

use viewer::Transport;

/// Installs the rustls crypto provider once (reqwest is built without a default one).
pub fn init_crypto() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// Runs the whole scenario: setup through the API, the edge phase, the baseline phase if asked, then the report
/// (written to `--report` when given). Errors are for runs that could not take place (API down, no monitor
/// socket); what went wrong during a run is in the report (`passed == false`).
pub async fn run(config: Config) -> anyhow::Result<Report> {
    config.validate()?;
    init_crypto();
    let fd_limit = net::raise_fd_limit();
    let sockets =
        config.conversations * (1 + config.viewers_per_conversation + config.late_joiners) + config.idle_connections;
    if (sockets as u64) + 256 > fd_limit {
        tracing::warn!(sockets, fd_limit, "the open-file limit is below the number of sockets: raise `ulimit -n`");
    }
    let started_at =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let api = rh_client::Client::new(&config.api).context("building the API client")?;
    tracing::info!(api = config.api, conversations = config.conversations, "setting up through the API");
    let world = setup::create_world(&api, config.conversations, config.responders, config.viewer_users)
        .await
        .context("setup through the v1 API")?;
    tracing::info!(org = %world.owner.org_id, "setup done");

    let mut phases = Vec::new();
    if !config.baseline_only {
        let mut targets = Vec::new();
        for url in &config.ws {
            targets.push(net::Target::resolve(url).await?);
        }
        phases.push(scenario::run_phase(&config, &api, &world, Transport::Edge(targets)).await?);
    }
    for baseline in &config.baseline {
        let transport = match baseline {
            Baseline::NatsWs | Baseline::NatsWsLive => Transport::NatsWs(
                net::Target::resolve(&config.nats_ws_url).await?,
                config.nats_ws_login(),
                *baseline == Baseline::NatsWsLive,
            ),
            Baseline::Bare => Transport::Bare(net::Target::resolve(&config.bare_url).await?),
            Baseline::Pushpin => {
                let pushpin = pushpin::Pushpin::start(&config.pushpin_origin, config.pushpin_publish_url.clone())
                    .await
                    .context("starting the Pushpin origin")?;
                Transport::Pushpin(net::Target::resolve(&config.pushpin_url).await?, pushpin)
            }
        };
        phases.push(scenario::run_phase(&config, &api, &world, transport).await?);
    }
    let comparisons = Report::compare(&phases);
    let passed = phases.iter().all(PhaseReport::passed);
    let report = Report {
        tool: "rh-loadtest",
        version: env!("CARGO_PKG_VERSION"),
        started_at,
        machine: report::Machine::probe(fd_limit),
        config: config.clone(),
        phases,
        comparisons,
        passed,
    };
    if let Some(path) = &config.report {
        report.write_json(path).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(report)
}
