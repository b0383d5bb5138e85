//! Runs one phase of the scenario over one transport:
//!
//! 1. edge RSS, then the idle sockets (edge only), edge RSS again;
//! 2. one monitor socket per conversation, then the initial viewers (ramped, bounded concurrency), edge RSS;
//! 3. the responders send their messages over REST; late joiners (edge only) join once the first response of
//!    their conversation is `join_after_tokens` in; a ticker drives the progress bar and samples the peak rate;
//! 4. once every responder is done, the [`Plan`] goes out and the viewers finish (or hit the drain deadline);
//! 5. the counters become a [`PhaseReport`].
//!
//! | module | step |
//! |---|---|
//! | [`open`] | 1–2: the sockets, opened with bounded concurrency over the ramp |
//! | [`load`] | 3: responders, late joiners, the ticker |
//! | [`finish`] | 4–5: the plan, the drain, the report |

mod finish;
mod load;
mod open;

pub use load::SendError;

use crate::config::Config;
use crate::metrics::Metrics;
use crate::net::{Net, total_rss_kib};
use crate::report::PhaseReport;
use crate::setup::World;
use crate::viewer::{ConvState, PhaseCtx, Plan, Transport};
use rh_client::Client;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Time the edge gets to settle (allocator, lazy buffers) before its RSS is read.
const RSS_SETTLE: Duration = Duration::from_millis(1000);

/// Runs the scenario over `transport`; `world` was created by setup.
pub async fn run_phase(cfg: &Config, api: &Client, world: &World, transport: Transport) -> anyhow::Result<PhaseReport> {
    tracing::info!(transport = transport.name(), "phase starting");
    let mut phase = Phase::new(cfg, api, world, transport).await?;
    let mut sockets = phase.open_sockets().await?;
    let loaded = phase.load(&mut sockets).await;
    Ok(phase.finish(sockets, loaded).await)
}

/// What every step of one phase works with.
struct Phase<'a> {
    cfg: &'a Config,
    api: &'a Client,
    world: &'a World,
    transport: Transport,
    is_edge: bool,
    metrics: Arc<Metrics>,
    ctx: Arc<PhaseCtx>,
    plan: watch::Sender<Option<Arc<Plan>>>,
    cancel: CancellationToken,
    states: Vec<Arc<ConvState>>,
    /// Per conversation, its seq when the phase started (where monitors and initial viewers subscribe from).
    history: Vec<u64>,
    /// The edge processes whose memory is measured (none on a baseline).
    pids: Vec<u32>,
    /// The accounts whose first socket took the sidebar ([`Phase::sidebar`]).
    tabs: HashSet<String>,
}

impl<'a> Phase<'a> {
    async fn new(cfg: &'a Config, api: &'a Client, world: &'a World, transport: Transport) -> anyhow::Result<Self> {
        let is_edge = matches!(transport, Transport::Edge(_));
        let metrics = Arc::new(Metrics::new(cfg.violation_samples));
        let (plan, plan_rx) = watch::channel::<Option<Arc<Plan>>>(None);
        let cancel = CancellationToken::new();
        let ctx = Arc::new(PhaseCtx {
            metrics: metrics.clone(),
            net: Arc::new(Net::new(cfg.source_ips, cfg.read_buffer)),
            api: api.clone(),
            transport: transport.clone(),
            plan: plan_rx,
            cancel: cancel.clone(),
            response_time: cfg.response_time(),
            churn_pause: cfg.churn_pause,
            compact: !cfg.no_compact,
            grants: !cfg.no_grant,
            chaos: !cfg.chaos.is_empty(),
        });
        let states: Vec<Arc<ConvState>> = world.conversations.iter().map(|&c| ConvState::new(c)).collect();
        let mut history = Vec::with_capacity(states.len());
        for st in &states {
            history.push(api.history_seq(&world.owner.token, st.id).await?);
        }
        let pids = if is_edge { cfg.edge_pid.clone() } else { Vec::new() };
        Ok(Phase {
            cfg,
            api,
            world,
            transport,
            is_edge,
            metrics,
            ctx,
            plan,
            cancel,
            states,
            history,
            pids,
            tabs: HashSet::new(),
        })
    }

    fn name(&self) -> &'static str {
        self.transport.name()
    }

    /// The edge processes' RSS now (0 on a baseline).
    fn rss(&self) -> u64 {
        total_rss_kib(&self.pids).unwrap_or(0)
    }

    /// Whether a socket of `token`'s account takes sidebar frames. They go to every socket of a person; the
    /// scenario's accounts hold hundreds of sockets each (a person has a few), so by default only each account's
    /// first socket takes them, like one app tab.
    fn sidebar(&mut self, token: &str) -> bool {
        self.cfg.sidebar_every_socket || self.tabs.insert(token.to_owned())
    }
}
