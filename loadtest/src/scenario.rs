//! Runs one phase of the scenario over one transport:
//!
//! 1. edge RSS, then the idle sockets (edge only), edge RSS again;
//! 2. one monitor socket per conversation, then the initial viewers (ramped, bounded concurrency), edge RSS;
//! 3. the responders send their messages over REST; late joiners (edge only) join once the first response of
//!    their conversation is `join_after_tokens` in; a ticker drives the progress bar and samples the peak rate;
//! 4. once every responder is done, the [`Plan`] goes out and the viewers finish (or hit the drain deadline);
//! 5. the counters become a [`PhaseReport`].

use crate::config::Config;
use crate::metrics::Metrics;
use crate::net::{Net, total_rss_kib};
use crate::report::{Memory, PhaseReport, SocketCounts};
use crate::setup::World;
use crate::synth::{StartReply, StartRequest};
use crate::viewer::{self, ConvState, PhaseCtx, Plan, Planned, Role, Transport, ViewerSpec};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rh_client::{Accepted, Client};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Time the edge gets to settle (allocator, lazy buffers) before its RSS is read.
const RSS_SETTLE: Duration = Duration::from_millis(1000);

fn progress(cfg: &Config, len: u64) -> ProgressBar {
    if cfg.no_progress {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    if let Ok(style) =
        ProgressStyle::with_template("{spinner} {prefix:>8} [{elapsed_precise}] {wide_bar} {pos}/{len} {msg}")
    {
        bar.set_style(style);
    }
    bar
}

/// Opens `specs` with at most `concurrency` connects in flight, spread over `ramp`; returns how many subscribed.
async fn open_all(
    specs: Vec<ViewerSpec>,
    ctx: &Arc<PhaseCtx>,
    tasks: &mut JoinSet<()>,
    concurrency: usize,
    ramp: Duration,
    bar: &ProgressBar,
) -> (u64, u64) {
    let n = specs.len();
    if n == 0 {
        return (0, 0);
    }
    let sem = Arc::new(Semaphore::new(concurrency));
    let (tx, mut rx) = mpsc::unbounded_channel();
    let start = Instant::now();
    for (k, spec) in specs.into_iter().enumerate() {
        let at = start + ramp.mul_f64(k as f64 / n as f64);
        let (ctx, sem, tx) = (ctx.clone(), sem.clone(), tx.clone());
        tasks.spawn(async move {
            tokio::time::sleep_until(at).await;
            // The permit covers connect + subscribe only: released when `ready` fires.
            let permit = sem.acquire_owned().await.ok();
            let (rtx, mut rrx) = mpsc::unbounded_channel();
            let relay = tokio::spawn(async move {
                let ok = rrx.recv().await.unwrap_or(false);
                drop(permit);
                let _ = tx.send(ok);
            });
            viewer::run(spec, ctx, Some(rtx)).await;
            let _ = relay.await;
        });
    }
    drop(tx);
    let (mut ok, mut failed) = (0, 0);
    while let Some(r) = rx.recv().await {
        if r {
            ok += 1;
        } else {
            failed += 1;
        }
        bar.set_message(format!("{ok} subscribed, {failed} failed"));
        bar.set_position(ok + failed);
        if ok + failed == n as u64 {
            break;
        }
    }
    (ok, failed)
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

/// Runs the scenario over `transport`; `world` was created by setup.
pub async fn run_phase(cfg: &Config, api: &Client, world: &World, transport: Transport) -> anyhow::Result<PhaseReport> {
    let name = transport.name();
    let is_edge = matches!(transport, Transport::Edge(_));
    tracing::info!(transport = name, "phase starting");
    let metrics = Arc::new(Metrics::new(cfg.violation_samples));
    let (plan_tx, plan_rx) = watch::channel::<Option<Arc<Plan>>>(None);
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
    let rss = || total_rss_kib(&pids).unwrap_or(0);
    let mut mem = Memory { pids: pids.clone(), rss_before_kib: rss(), ..Memory::default() };

    // Sidebar frames go to every socket of a person; the scenario's accounts hold hundreds of sockets each (a
    // person has a few), so by default only each account's first socket takes them, like one app tab.
    let mut tabs = std::collections::HashSet::new();
    let mut sidebar = |token: &str| cfg.sidebar_every_socket || tabs.insert(token.to_owned());

    let mut tasks = JoinSet::new();
    let mut counts = SocketCounts::default();
    let mut idle_tasks = JoinSet::new();
    let connect_started = Instant::now();
    let bar = progress(cfg, 0);
    bar.set_prefix(name);

    // Idle sockets first, so their memory is measured alone.
    if is_edge && cfg.idle_connections > 0 {
        let specs: Vec<ViewerSpec> = (0..cfg.idle_connections)
            .map(|i| ViewerSpec {
                name: format!("idle/{i}"),
                index: 1_000_000 + i,
                conversation: world.idle_conversation,
                token: world.viewers[i % world.viewers.len()].token.clone(),
                role: Role::Idle,
                after_seq: None,
                sidebar: sidebar(&world.viewers[i % world.viewers.len()].token),
            })
            .collect();
        counts.idle = specs.len();
        bar.set_message("idle sockets");
        let (ok, failed) = open_all(specs, &ctx, &mut idle_tasks, cfg.connect_concurrency, Duration::ZERO, &bar).await;
        counts.subscribed += ok;
        counts.failed += failed;
        tokio::time::sleep(RSS_SETTLE).await;
    }
    mem.rss_after_idle_kib = rss();

    // Monitors: one per conversation, must all stand.
    let monitors: Vec<ViewerSpec> = states
        .iter()
        .enumerate()
        .map(|(c, st)| ViewerSpec {
            name: format!("c{c}/monitor"),
            index: c,
            conversation: st.id,
            token: world.owner.token.clone(),
            role: Role::Monitor(st.clone()),
            after_seq: Some(history[c]),
            sidebar: sidebar(&world.owner.token),
        })
        .collect();
    counts.monitors = monitors.len();
    let (ok, failed) = open_all(monitors, &ctx, &mut tasks, cfg.connect_concurrency, Duration::ZERO, &bar).await;
    counts.subscribed += ok;
    counts.failed += failed;
    if failed > 0 {
        cancel.cancel();
        anyhow::bail!(
            "{failed} of the {} monitor sockets could not subscribe ({name}): {:?}",
            states.len(),
            metrics.errors()
        );
    }

    // Initial viewers.
    let vpc = cfg.viewers_per_conversation;
    let churners = (cfg.churn * vpc as f64).round() as usize;
    let mut specs = Vec::with_capacity(states.len() * vpc);
    for (c, st) in states.iter().enumerate() {
        for v in 0..vpc {
            let index = states.len() + c * vpc + v;
            specs.push(ViewerSpec {
                name: format!("c{c}/v{v}"),
                index,
                conversation: st.id,
                token: world.viewers[index % world.viewers.len()].token.clone(),
                role: Role::Initial { churn: is_edge && v < churners },
                after_seq: Some(history[c]),
                sidebar: sidebar(&world.viewers[index % world.viewers.len()].token),
            });
        }
    }
    counts.initial = specs.len();
    bar.set_length(specs.len() as u64);
    let (ok, failed) = open_all(specs, &ctx, &mut tasks, cfg.connect_concurrency, cfg.ramp_up, &bar).await;
    counts.subscribed += ok;
    counts.failed += failed;
    let connect_phase_secs = connect_started.elapsed().as_secs_f64();
    tokio::time::sleep(if pids.is_empty() { Duration::ZERO } else { RSS_SETTLE }).await;
    mem.rss_after_viewers_kib = rss();
    tracing::info!(transport = name, subscribed = counts.subscribed, failed = counts.failed, "sockets open");

    // Load.
    let total_responses = (states.len() * cfg.responders * cfg.messages) as u64;
    bar.set_length(total_responses.max(1));
    bar.set_position(0);
    let load_started = Instant::now();
    let cpu_before = crate::cpu::snapshot(&cfg.cpu_pid);
    let accepted: Arc<Mutex<HashMap<Uuid, Vec<Accepted>>>> = Arc::new(Mutex::new(HashMap::new()));
    let mut responders = JoinSet::new();
    let n_resp = (states.len() * cfg.responders).max(1);
    for (c, st) in states.iter().enumerate() {
        for r in 0..cfg.responders {
            let (cfg, api, st, metrics, accepted, transport) =
                (cfg.clone(), api.clone(), st.clone(), metrics.clone(), accepted.clone(), transport.clone());
            let who = world.responders[r].clone();
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
                    let acc = match send(&cfg, &api, &transport, &who, st.id, &cfg.prompt(c, r, m), &metrics).await {
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

    // Late joiners.
    let load_done = CancellationToken::new();
    let mut late = JoinSet::new();
    if is_edge && cfg.late_joiners > 0 {
        let base = states.len() * (1 + vpc);
        for (c, st) in states.iter().enumerate() {
            let specs: Vec<ViewerSpec> = (0..cfg.late_joiners)
                .map(|j| {
                    let index = base + c * cfg.late_joiners + j;
                    ViewerSpec {
                        name: format!("c{c}/late{j}"),
                        index,
                        conversation: st.id,
                        token: world.viewers[index % world.viewers.len()].token.clone(),
                        role: Role::Late(st.clone()),
                        after_seq: None,
                        sidebar: sidebar(&world.viewers[index % world.viewers.len()].token),
                    }
                })
                .collect();
            counts.late_joiners += specs.len();
            let (ctx, st, concurrency, load_done) =
                (ctx.clone(), st.clone(), cfg.connect_concurrency, load_done.clone());
            let wait = Duration::from_secs_f64(f64::from(cfg.join_after_tokens) / cfg.rate);
            late.spawn(async move {
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
            });
        }
    }

    // Ticker: progress bar and the peak one-second delivery rate.
    let peak = Arc::new(AtomicU64::new(0));
    let rss_peak = Arc::new(AtomicU64::new(mem.rss_after_viewers_kib));
    let ticker = {
        let (metrics, bar, peak, rss_peak, pids) =
            (metrics.clone(), bar.clone(), peak.clone(), rss_peak.clone(), pids.clone());
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
    };

    while let Some(r) = responders.join_next().await {
        if let Err(e) = r {
            metrics.error("responder_panicked");
            tracing::error!(error = %e, "responder task failed");
        }
    }
    load_done.cancel();
    let mut late_sets = Vec::new();
    while let Some(r) = late.join_next().await {
        match r {
            Ok((ok, failed, set)) => {
                counts.subscribed += ok;
                counts.failed += failed;
                late_sets.push(set);
            }
            Err(e) => tracing::error!(error = %e, "late joiner task failed"),
        }
    }
    let last_end =
        states.iter().filter_map(|st| st.ends.borrow().values().map(|e| e.at).max()).max().unwrap_or_else(Instant::now);
    let load_secs = last_end.saturating_duration_since(load_started).as_secs_f64().max(1e-3);
    let deliveries_at_end = Metrics::get(&metrics.deliveries);
    let deltas_at_end = Metrics::get(&metrics.deltas);

    // The plan: every response, with the text its monitor saw.
    let mut responses: HashMap<Uuid, Vec<Planned>> = HashMap::new();
    let acc = accepted.lock().map(|a| a.clone()).unwrap_or_default();
    for st in &states {
        let ends = st.ends.borrow();
        let list = acc
            .get(&st.id)
            .into_iter()
            .flatten()
            .map(|a| Planned {
                response_id: a.response_id,
                msg_seq: a.seq,
                reference: ends.get(&a.response_id).map(|e| e.text_hash),
            })
            .collect();
        responses.insert(st.id, list);
    }
    let _ = plan_tx.send(Some(Arc::new(Plan { responses, deadline: Instant::now() + cfg.drain_timeout })));
    bar.set_message("draining");
    while tasks.join_next().await.is_some() {}
    for mut set in late_sets {
        while set.join_next().await.is_some() {}
    }
    let cpu_after = crate::cpu::snapshot(&cfg.cpu_pid);
    mem.rss_end_kib = rss();
    cancel.cancel();
    while idle_tasks.join_next().await.is_some() {}
    ticker.abort();
    bar.finish_and_clear();

    mem.rss_peak_kib = rss_peak.load(Ordering::Relaxed).max(mem.rss_end_kib);
    let per = |delta_kib: i64, n: usize| (n > 0).then(|| delta_kib as f64 * 1024.0 / n as f64);
    mem.per_idle_connection_bytes = per(mem.rss_after_idle_kib as i64 - mem.rss_before_kib as i64, counts.idle);
    mem.per_viewer_connection_bytes =
        per(mem.rss_after_viewers_kib as i64 - mem.rss_after_idle_kib as i64, counts.initial + counts.monitors);
    counts.reconnects = Metrics::get(&metrics.reconnects);
    counts.connect_retries = Metrics::get(&metrics.connect_retries);

    let errors = metrics.errors();
    Ok(PhaseReport {
        transport: name,
        sockets: counts,
        load_secs,
        connect_phase_secs,
        responses_sent: Metrics::get(&metrics.responses_sent),
        responses_ended: Metrics::get(&metrics.responses_ended),
        deliveries: Metrics::get(&metrics.deliveries),
        deliveries_per_sec: deliveries_at_end as f64 / load_secs,
        // A load shorter than the ticker's first second has no sampled peak: its average is the best estimate.
        peak_deliveries_per_sec: (peak.load(Ordering::Relaxed) as f64).max(deliveries_at_end as f64 / load_secs),
        deltas: Metrics::get(&metrics.deltas),
        deltas_per_sec: deltas_at_end as f64 / load_secs,
        cpu: crate::cpu::PhaseCpu::between(
            &cpu_before,
            &cpu_after,
            transport.server_process(),
            Metrics::get(&metrics.deltas),
        ),
        events: Metrics::get(&metrics.events),
        bytes_received: Metrics::get(&metrics.bytes),
        latency_us: metrics.latency.summary(),
        connect_us: metrics.connect.summary(),
        subscribe_us: metrics.subscribe.summary(),
        catchup_replay_us: metrics.catchup_replay.summary(),
        catchup_live_us: metrics.catchup_live.summary(),
        response_time_us: metrics.response_time.summary(),
        silence_max_us: metrics.silence_max.summary(),
        silent_secs: Metrics::get(&metrics.silent_us) as f64 / 1e6,
        disruptions: Metrics::get(&metrics.disruptions),
        viewers_checked: Metrics::get(&metrics.viewers_done),
        viewers_all_completed: Metrics::get(&metrics.viewers_all_completed),
        completions_expected: Metrics::get(&metrics.completions_expected),
        completions_ok: Metrics::get(&metrics.completions_ok),
        error_total: errors.values().sum(),
        errors,
        violation_total: metrics.violation_count(),
        violations: metrics.violations(),
        violation_samples: metrics.violation_samples(),
        memory: (!pids.is_empty()).then_some(mem),
    })
}
