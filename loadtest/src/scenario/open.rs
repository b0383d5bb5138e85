//! Steps 1–2: the idle sockets, the monitors and the initial viewers, each set opened with at most
//! `--connect-concurrency` connects in flight.

use super::{Phase, RSS_SETTLE};
use crate::config::Config;
use crate::report::{Memory, SocketCounts};
use crate::viewer::{self, PhaseCtx, Role, ViewerSpec};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio::time::Instant;

/// The phase's open sockets and what opening them measured.
pub(super) struct Sockets {
    /// Monitors and initial viewers (late joiners have sets of their own).
    pub tasks: JoinSet<()>,
    pub idle_tasks: JoinSet<()>,
    pub counts: SocketCounts,
    pub mem: Memory,
    pub connect_phase_secs: f64,
    pub bar: ProgressBar,
}

pub(super) fn progress(cfg: &Config, len: u64) -> ProgressBar {
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

impl Phase<'_> {
    /// Opens the idle sockets (edge only), the monitors (all must stand) and the initial viewers, measuring the
    /// edge's memory before and after each.
    pub(super) async fn open_sockets(&mut self) -> anyhow::Result<Sockets> {
        let connect_started = Instant::now();
        let bar = progress(self.cfg, 0);
        bar.set_prefix(self.name());
        let mem = Memory { pids: self.pids.clone(), rss_before_kib: self.rss(), ..Memory::default() };
        let mut s = Sockets {
            tasks: JoinSet::new(),
            idle_tasks: JoinSet::new(),
            counts: SocketCounts::default(),
            mem,
            connect_phase_secs: 0.0,
            bar,
        };
        let concurrency = self.cfg.connect_concurrency;

        // Idle sockets first, so their memory is measured alone.
        if self.is_edge && self.cfg.idle_connections > 0 {
            let specs = self.idle_specs();
            s.counts.idle = specs.len();
            s.bar.set_message("idle sockets");
            let (ok, failed) = open_all(specs, &self.ctx, &mut s.idle_tasks, concurrency, Duration::ZERO, &s.bar).await;
            s.counts.subscribed += ok;
            s.counts.failed += failed;
            tokio::time::sleep(RSS_SETTLE).await;
        }
        s.mem.rss_after_idle_kib = self.rss();

        let monitors = self.monitor_specs();
        s.counts.monitors = monitors.len();
        let (ok, failed) = open_all(monitors, &self.ctx, &mut s.tasks, concurrency, Duration::ZERO, &s.bar).await;
        s.counts.subscribed += ok;
        s.counts.failed += failed;
        if failed > 0 {
            self.cancel.cancel();
            anyhow::bail!(
                "{failed} of the {} monitor sockets could not subscribe ({}): {:?}",
                self.states.len(),
                self.name(),
                self.metrics.errors()
            );
        }

        let specs = self.initial_specs();
        s.counts.initial = specs.len();
        s.bar.set_length(specs.len() as u64);
        let (ok, failed) = open_all(specs, &self.ctx, &mut s.tasks, concurrency, self.cfg.ramp_up, &s.bar).await;
        s.counts.subscribed += ok;
        s.counts.failed += failed;
        s.connect_phase_secs = connect_started.elapsed().as_secs_f64();
        tokio::time::sleep(if self.pids.is_empty() { Duration::ZERO } else { RSS_SETTLE }).await;
        s.mem.rss_after_viewers_kib = self.rss();
        tracing::info!(
            transport = self.name(),
            subscribed = s.counts.subscribed,
            failed = s.counts.failed,
            "sockets open"
        );
        Ok(s)
    }

    fn idle_specs(&mut self) -> Vec<ViewerSpec> {
        (0..self.cfg.idle_connections)
            .map(|i| {
                let token = self.world.viewers[i % self.world.viewers.len()].token.clone();
                ViewerSpec {
                    name: format!("idle/{i}"),
                    index: 1_000_000 + i,
                    conversation: self.world.idle_conversation,
                    sidebar: self.sidebar(&token),
                    token,
                    role: Role::Idle,
                    after_seq: None,
                }
            })
            .collect()
    }

    /// One monitor per conversation, as its owner.
    fn monitor_specs(&mut self) -> Vec<ViewerSpec> {
        let token = self.world.owner.token.clone();
        (0..self.states.len())
            .map(|c| ViewerSpec {
                name: format!("c{c}/monitor"),
                index: c,
                conversation: self.states[c].id,
                token: token.clone(),
                role: Role::Monitor(self.states[c].clone()),
                after_seq: Some(self.history[c]),
                sidebar: self.sidebar(&token),
            })
            .collect()
    }

    /// `--viewers-per-conversation` per conversation, the first `--churn` of them churning (edge only).
    fn initial_specs(&mut self) -> Vec<ViewerSpec> {
        let vpc = self.cfg.viewers_per_conversation;
        let churners = (self.cfg.churn * vpc as f64).round() as usize;
        let n = self.states.len();
        let mut specs = Vec::with_capacity(n * vpc);
        for c in 0..n {
            for v in 0..vpc {
                let index = n + c * vpc + v;
                let token = self.world.viewers[index % self.world.viewers.len()].token.clone();
                specs.push(ViewerSpec {
                    name: format!("c{c}/v{v}"),
                    index,
                    conversation: self.states[c].id,
                    sidebar: self.sidebar(&token),
                    token,
                    role: Role::Initial { churn: self.is_edge && v < churners },
                    after_seq: Some(self.history[c]),
                });
            }
        }
        specs
    }
}

/// Opens `specs` with at most `concurrency` connects in flight, spread over `ramp`; returns how many subscribed.
pub(super) async fn open_all(
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
