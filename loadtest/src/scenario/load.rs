//! Step 3: the responders send their messages (one at a time, each after the previous answer ended), the late
//! joiners join once their conversation's first response is `--join-after-tokens` in, and a ticker samples the
//! peak delivery rate and the edge's peak RSS.

use super::Phase;
use super::open::{Sockets, open_all};
use crate::config::Config;
use crate::cpu::Snapshot;
use crate::metrics::Metrics;
use crate::net::total_rss_kib;
use crate::synth::{StartReply, StartRequest};
use crate::viewer::{ConvState, PhaseCtx, Role, Transport, ViewerSpec};
use indicatif::ProgressBar;
use rh_client::{Accepted, Client};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// What the load step leaves for the finish.
pub(super) struct Loaded {
    /// Per conversation, the responses the stack accepted.
    pub accepted: HashMap<Uuid, Vec<Accepted>>,
    pub late_sets: Vec<JoinSet<()>>,
    pub load_secs: f64,
    pub deliveries_at_end: u64,
    pub deltas_at_end: u64,
    pub cpu_before: Snapshot,
    pub peak: Arc<AtomicU64>,
    pub rss_peak: Arc<AtomicU64>,
    pub ticker: JoinHandle<()>,
}

/// Accepted responses by conversation, filled by the responders.
type AcceptedMap = Arc<Mutex<HashMap<Uuid, Vec<Accepted>>>>;

impl Phase<'_> {
    /// Runs the load until every responder is done and every late joiner has joined.
    pub(super) async fn load(&mut self, sockets: &mut Sockets) -> Loaded {
        let total_responses = (self.states.len() * self.cfg.responders * self.cfg.messages) as u64;
        sockets.bar.set_length(total_responses.max(1));
        sockets.bar.set_position(0);
        let load_started = Instant::now();
        let cpu_before = crate::cpu::snapshot(&self.cfg.cpu_pid);
        let accepted: AcceptedMap = Arc::new(Mutex::new(HashMap::new()));
        let mut responders = self.spawn_responders(load_started, &accepted);
        let load_done = CancellationToken::new();
        let mut late = self.spawn_late_joiners(&mut sockets.counts.late_joiners, &load_done);
        let peak = Arc::new(AtomicU64::new(0));
        let rss_peak = Arc::new(AtomicU64::new(sockets.mem.rss_after_viewers_kib));
        let ticker = tick(self.metrics.clone(), sockets.bar.clone(), peak.clone(), rss_peak.clone(), self.pids.clone());

        while let Some(r) = responders.join_next().await {
            if let Err(e) = r {
                self.metrics.error("responder_panicked");
                tracing::error!(error = %e, "responder task failed");
            }
        }
        load_done.cancel();
        let mut late_sets = Vec::new();
        while let Some(r) = late.join_next().await {
            match r {
                Ok((ok, failed, set)) => {
                    sockets.counts.subscribed += ok;
                    sockets.counts.failed += failed;
                    late_sets.push(set);
                }
                Err(e) => tracing::error!(error = %e, "late joiner task failed"),
            }
        }
        let last_end = self
            .states
            .iter()
            .filter_map(|st| st.ends.borrow().values().map(|e| e.at).max())
            .max()
            .unwrap_or_else(Instant::now);
        let accepted = accepted.lock().map(|a| a.clone()).unwrap_or_default();
        Loaded {
            accepted,
            late_sets,
            load_secs: last_end.saturating_duration_since(load_started).as_secs_f64().max(1e-3),
            deliveries_at_end: Metrics::get(&self.metrics.deliveries),
            deltas_at_end: Metrics::get(&self.metrics.deltas),
            cpu_before,
            peak,
            rss_peak,
            ticker,
        }
    }

    /// `--responders` per conversation, each sending `--messages` (or for `--duration`), one at a time.
    fn spawn_responders(&self, load_started: Instant, accepted: &AcceptedMap) -> JoinSet<()> {
        let mut responders = JoinSet::new();
        let cfg = self.cfg;
        let n_resp = (self.states.len() * cfg.responders).max(1);
        for (c, st) in self.states.iter().enumerate() {
            for r in 0..cfg.responders {
                let (cfg, api, st, metrics, accepted, transport) = (
                    cfg.clone(),
                    self.api.clone(),
                    st.clone(),
                    self.metrics.clone(),
                    accepted.clone(),
                    self.transport.clone(),
                );
                let who = self.world.responders[r].clone();
                // Stagger first messages over up to a second so conversations do not all tick in lockstep.
                let offset = Duration::from_secs(1)
                    .min(cfg.response_time())
                    .mul_f64((c * cfg.responders + r) as f64 / n_resp as f64);
                responders.spawn(async move {
                    tokio::time::sleep(offset).await;
                    let mut ends = st.ends.subscribe();
                    let mut m = 0;
                    while m < cfg.messages || cfg.duration.is_some_and(|d| load_started.elapsed() < d) {
                        let sent = Instant::now();
                        let text = cfg.prompt(c, r, m);
                        let acc = match send(&cfg, &api, &transport, &who, st.id, &text, &metrics).await {
                            Ok(a) => a,
                            Err(e) => {
                                metrics.error("send_message");
                                tracing::warn!(conversation = %st.id, error = %format!("{e:#}"), "send failed");
                                break;
                            }
                        };
                        Metrics::inc(&metrics.responses_sent);
                        if let Ok(mut a) = accepted.lock() {
                            a.entry(st.id).or_default().push(acc);
                        }
                        let limit = cfg.response_time() * 3 + Duration::from_secs(60);
                        let rid = acc.response_id;
                        match tokio::time::timeout(limit, ends.wait_for(|m| m.contains_key(&rid))).await {
                            Ok(Ok(_)) => {
                                Metrics::inc(&metrics.responses_ended);
                                metrics.response_time.record(c, sent.elapsed().as_micros() as u64);
                            }
                            _ => {
                                metrics.error("response_timeout");
                                break;
                            }
                        }
                        m += 1;
                        tokio::time::sleep(cfg.think_time).await;
                    }
                });
            }
        }
        responders
    }

    /// `--late-joiners` per conversation (edge only), each set joining once its conversation's first response is
    /// `--join-after-tokens` in. Each task returns (subscribed, failed, the set's tasks).
    fn spawn_late_joiners(&mut self, count: &mut usize, load_done: &CancellationToken) -> JoinSet<LateSet> {
        let mut late = JoinSet::new();
        if !self.is_edge || self.cfg.late_joiners == 0 {
            return late;
        }
        let base = self.states.len() * (1 + self.cfg.viewers_per_conversation);
        let wait = Duration::from_secs_f64(f64::from(self.cfg.join_after_tokens) / self.cfg.rate);
        for c in 0..self.states.len() {
            let st = self.states[c].clone();
            let specs: Vec<ViewerSpec> = (0..self.cfg.late_joiners)
                .map(|j| {
                    let index = base + c * self.cfg.late_joiners + j;
                    let token = self.world.viewers[index % self.world.viewers.len()].token.clone();
                    ViewerSpec {
                        name: format!("c{c}/late{j}"),
                        index,
                        conversation: st.id,
                        sidebar: self.sidebar(&token),
                        token,
                        role: Role::Late(st.clone()),
                        after_seq: None,
                    }
                })
                .collect();
            *count += specs.len();
            late.spawn(join_late(specs, self.ctx.clone(), st, self.cfg.connect_concurrency, wait, load_done.clone()));
        }
        late
    }
}

/// A set of late joiners: (subscribed, failed, their tasks).
type LateSet = (u64, u64, JoinSet<()>);

async fn join_late(
    specs: Vec<ViewerSpec>,
    ctx: Arc<PhaseCtx>,
    st: Arc<ConvState>,
    concurrency: usize,
    wait: Duration,
    load_done: CancellationToken,
) -> LateSet {
    let mut started = st.first_started.subscribe();
    let at = tokio::select! {
        r = started.wait_for(|s| s.is_some()) => r.ok().and_then(|s| *s),
        _ = load_done.cancelled() => None,
    };
    let Some(at) = at else {
        ctx.metrics.error("late_join_no_response_started");
        return (0, specs.len() as u64, JoinSet::new());
    };
    tokio::time::sleep_until(at + wait).await;
    if !st.ends.borrow().is_empty() {
        tracing::warn!(conversation = %st.id, "the first response ended before the late joiners joined (raise --tokens or lower --join-after-tokens)");
    }
    let mut set = JoinSet::new();
    let (ok, failed) = open_all(specs, &ctx, &mut set, concurrency, Duration::ZERO, &ProgressBar::hidden()).await;
    (ok, failed, set)
}

/// Every second: the delivery rate (its peak), the edge's RSS (its peak), and the progress bar.
fn tick(
    metrics: Arc<Metrics>,
    bar: ProgressBar,
    peak: Arc<AtomicU64>,
    rss_peak: Arc<AtomicU64>,
    pids: Vec<u32>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut last = Metrics::get(&metrics.deliveries);
        let mut t = Instant::now();
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let now = Metrics::get(&metrics.deliveries);
            let rate = (now - last) as f64 / t.elapsed().as_secs_f64();
            t = Instant::now();
            last = now;
            peak.fetch_max(rate as u64, Ordering::Relaxed);
            if let Some(r) = total_rss_kib(&pids) {
                rss_peak.fetch_max(r, Ordering::Relaxed);
            }
            bar.set_position(Metrics::get(&metrics.responses_ended));
            bar.set_message(format!(
                "{} sockets, {:.0} deliveries/s, {} violations, {} errors",
                Metrics::get(&metrics.connections_open),
                rate,
                metrics.violation_count(),
                metrics.error_count()
            ));
        }
    })
}

/// Why a responder's message was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error(transparent)]
    Api(#[from] rh_client::Error),
    #[error(transparent)]
    Bare(#[from] crate::bare::BareError),
}

/// Sends a message: over REST to the stack, or, on the `bare` and `pushpin` baselines, to their synthetic source
/// (the same prompt, so the same tokens, rate and coalescing). In a chaos run a refused send (the api cannot reach
/// NATS while it restarts, ...) is retried for up to a minute, each refusal counted as a disruption.
async fn send(
    cfg: &Config,
    api: &Client,
    transport: &Transport,
    who: &rh_client::Session,
    conversation: Uuid,
    text: &str,
    metrics: &Metrics,
) -> Result<Accepted, SendError> {
    let synthetic = |r: StartReply| Accepted { message_id: Uuid::nil(), response_id: r.response_id, seq: r.seq };
    let coalesce = cfg.coalesce;
    let start = || StartRequest { conversation_id: conversation, prompt: text.to_owned(), coalesce };
    match transport {
        Transport::Bare(target) => return Ok(synthetic(crate::bare::start(&target.url, &start()).await?)),
        Transport::Pushpin(_, pushpin) => return Ok(synthetic(pushpin.start_response(&start()))),
        Transport::Edge(_) | Transport::NatsWs(..) => {}
    }
    let give_up = Instant::now() + Duration::from_secs(60);
    loop {
        match api.send_message(who, conversation, text).await {
            Err(e) if !cfg.chaos.is_empty() && Instant::now() < give_up => {
                Metrics::inc(&metrics.disruptions);
                tracing::debug!(%conversation, error = %e, "send refused during chaos; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            result => return Ok(result?),
        }
    }
}
