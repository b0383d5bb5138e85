//! The result of a run: a JSON document (`--report`) and a human summary, both from [`Report`].

use crate::config::Config;
use crate::cpu::PhaseCpu;
use crate::metrics::{HistSummary, ViolationSample};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

/// The whole run.
#[derive(Debug, Serialize)]
pub struct Report {
    pub tool: &'static str,
    pub version: &'static str,
    /// Unix time (s) the run started.
    pub started_at: u64,
    pub machine: Machine,
    pub config: Config,
    /// `edge`, then each `--baseline` in the order given.
    pub phases: Vec<PhaseReport>,
    /// Edge vs each baseline that ran beside it.
    pub comparisons: Vec<Comparison>,
    /// No violation and no error in any phase.
    pub passed: bool,
}

/// Where it ran.
#[derive(Debug, Serialize, Default)]
pub struct Machine {
    pub hostname: String,
    pub cpus: usize,
    pub cpu_model: String,
    pub mem_total_kib: u64,
    pub kernel: String,
    pub fd_limit: u64,
}

impl Machine {
    pub fn probe(fd_limit: u64) -> Self {
        let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
        let cpuinfo = read("/proc/cpuinfo");
        let meminfo = read("/proc/meminfo");
        Machine {
            hostname: read("/proc/sys/kernel/hostname").trim().to_owned(),
            cpus: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
            cpu_model: cpuinfo
                .lines()
                .find_map(|l| {
                    l.strip_prefix("model name").and_then(|r| r.split_once(':')).map(|(_, v)| v.trim().to_owned())
                })
                .unwrap_or_default(),
            mem_total_kib: meminfo
                .lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|r| r.split_whitespace().next())
                .and_then(|n| n.parse().ok())
                .unwrap_or(0),
            kernel: read("/proc/sys/kernel/osrelease").trim().to_owned(),
            fd_limit,
        }
    }
}

/// Sockets of a phase.
#[derive(Debug, Serialize, Default, Clone)]
pub struct SocketCounts {
    pub monitors: usize,
    pub initial: usize,
    pub late_joiners: usize,
    pub idle: usize,
    /// Sockets that subscribed (out of all of the above).
    pub subscribed: u64,
    pub failed: u64,
    /// Planned (churn) and unplanned reconnects.
    pub reconnects: u64,
    /// Connects refused by a baseline's proxy and tried again (not errors; see `viewer`).
    pub connect_retries: u64,
}

/// Edge memory around the phase (sum over `--edge-pid`).
#[derive(Debug, Serialize, Default, Clone)]
pub struct Memory {
    pub pids: Vec<u32>,
    pub rss_before_kib: u64,
    pub rss_after_idle_kib: u64,
    pub rss_after_viewers_kib: u64,
    pub rss_peak_kib: u64,
    pub rss_end_kib: u64,
    /// (after idle − before) / idle sockets.
    pub per_idle_connection_bytes: Option<f64>,
    /// (after viewers − after idle) / viewer sockets (monitors + initial viewers).
    pub per_viewer_connection_bytes: Option<f64>,
}

/// One transport's run of the scenario.
#[derive(Debug, Serialize, Default)]
pub struct PhaseReport {
    pub transport: &'static str,
    pub sockets: SocketCounts,
    /// Seconds from the first message to the last response's end (as the monitors saw it).
    pub load_secs: f64,
    /// Seconds to open and subscribe all initial sockets.
    pub connect_phase_secs: f64,
    pub responses_sent: u64,
    pub responses_ended: u64,
    /// Delta frames received, over all viewers.
    pub deliveries: u64,
    pub deliveries_per_sec: f64,
    /// Deltas received (a merged delta counted as the deltas it stands for), over all viewers.
    pub deltas: u64,
    pub deltas_per_sec: f64,
    /// CPU over the load (first message → last viewer done).
    pub cpu: PhaseCpu,
    /// Highest one-second rate seen during the phase.
    pub peak_deliveries_per_sec: f64,
    pub events: u64,
    pub bytes_received: u64,
    /// Producer timestamp (`ts_us`) → receipt, per delta.
    pub latency_us: HistSummary,
    /// TCP connect + WebSocket handshake.
    pub connect_us: HistSummary,
    /// `subscribe` sent → `subscribed` (baseline: `SUB`+`PING` → `PONG`).
    pub subscribe_us: HistSummary,
    /// Late joiner: `subscribe` sent → the replay reached the live position of that moment.
    pub catchup_replay_us: HistSummary,
    /// Late joiner: `subscribe` sent → first event produced after it subscribed.
    pub catchup_live_us: HistSummary,
    /// Responder: message accepted → its response ended.
    pub response_time_us: HistSummary,
    pub viewers_checked: u64,
    pub viewers_all_completed: u64,
    pub completions_expected: u64,
    pub completions_ok: u64,
    /// Per viewer, the longest time between two events it received.
    pub silence_max_us: HistSummary,
    /// Summed over viewers: time spent in gaps between events longer than 500 ms (`silence::SILENT`).
    pub silent_secs: f64,
    /// Chaos runs: sockets lost, connects refused and sends retried because a process was killed.
    pub disruptions: u64,
    pub errors: BTreeMap<String, u64>,
    pub error_total: u64,
    pub violations: BTreeMap<&'static str, u64>,
    pub violation_total: u64,
    pub violation_samples: Vec<ViolationSample>,
    pub memory: Option<Memory>,
}

impl PhaseReport {
    pub fn passed(&self) -> bool {
        self.violation_total == 0 && self.error_total == 0
    }
}

/// Edge vs one baseline, same run.
#[derive(Debug, Serialize)]
pub struct Comparison {
    pub baseline: &'static str,
    pub edge_deltas_per_sec: f64,
    pub baseline_deltas_per_sec: f64,
    /// edge / baseline deltas per second.
    pub throughput_ratio: f64,
    pub edge_p99_us: u64,
    pub baseline_p99_us: u64,
    /// edge / baseline CPU seconds per million deltas of the fan-out process.
    pub server_cpu_ratio: Option<f64>,
}

impl Report {
    pub fn compare(phases: &[PhaseReport]) -> Vec<Comparison> {
        let Some(edge) = phases.iter().find(|p| p.transport == "edge") else { return Vec::new() };
        phases
            .iter()
            .filter(|p| p.transport != "edge")
            .map(|base| Comparison {
                baseline: base.transport,
                edge_deltas_per_sec: edge.deltas_per_sec,
                baseline_deltas_per_sec: base.deltas_per_sec,
                throughput_ratio: if base.deltas_per_sec > 0.0 {
                    edge.deltas_per_sec / base.deltas_per_sec
                } else {
                    0.0
                },
                edge_p99_us: edge.latency_us.p99_us,
                baseline_p99_us: base.latency_us.p99_us,
                server_cpu_ratio: edge
                    .cpu
                    .server_secs_per_million
                    .zip(base.cpu.server_secs_per_million)
                    .filter(|(_, b)| *b > 0.0)
                    .map(|(e, b)| e / b),
            })
            .collect()
    }

    pub fn write_json(&self, path: &Path) -> anyhow::Result<()> {
        let json = serde_json::to_string_pretty(self)?;
        std::fs::write(path, json + "\n")?;
        Ok(())
    }

    /// The human summary.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        let c = &self.config;
        if !c.chaos.is_empty() {
            let _ = writeln!(s, "CHAOS: a random one of {:?} killed and restarted every {:?}", c.chaos, c.chaos_every);
        }
        let _ = writeln!(
            s,
            "RelayHub load test: {} conversation(s) × {} viewer(s) (+{} late, churn {:.0}%), {} responder(s) × {} message(s), {} tokens at {}/s",
            c.conversations,
            c.viewers_per_conversation,
            c.late_joiners,
            c.churn * 100.0,
            c.responders,
            c.messages,
            c.tokens,
            c.rate
        );
        let _ = writeln!(
            s,
            "machine: {} ({} cpus, {}, {} MiB RAM, fd limit {})",
            self.machine.hostname,
            self.machine.cpus,
            self.machine.cpu_model,
            self.machine.mem_total_kib / 1024,
            self.machine.fd_limit
        );
        for p in &self.phases {
            let _ = writeln!(s, "\n== {} ==", p.transport);
            let k = &p.sockets;
            let _ = writeln!(
                s,
                "sockets      {} subscribed, {} failed ({} monitors, {} initial, {} late, {} idle), {} reconnects, {} connects retried; opened in {:.1}s",
                k.subscribed,
                k.failed,
                k.monitors,
                k.initial,
                k.late_joiners,
                k.idle,
                k.reconnects,
                k.connect_retries,
                p.connect_phase_secs
            );
            let _ = writeln!(
                s,
                "responses    {} sent, {} ended; viewers {}/{} saw every response completed ({}/{} completions)",
                p.responses_sent,
                p.responses_ended,
                p.viewers_all_completed,
                p.viewers_checked,
                p.completions_ok,
                p.completions_expected
            );
            let _ = writeln!(
                s,
                "deliveries   {} in {:.1}s = {:.0}/s (peak {:.0}/s), {} events, {:.1} MiB",
                p.deliveries,
                p.load_secs,
                p.deliveries_per_sec,
                p.peak_deliveries_per_sec,
                p.events,
                p.bytes_received as f64 / 1048576.0
            );
            let _ = writeln!(
                s,
                "deltas       {} = {:.0}/s (a merged delta counted as the deltas it stands for)",
                p.deltas, p.deltas_per_sec
            );
            line(&mut s, "latency", &p.latency_us);
            let per_m = |v: Option<f64>| v.map(|x| format!("{x:.2}")).unwrap_or_else(|| "-".into());
            let procs: Vec<String> = p.cpu.secs.iter().map(|(k, v)| format!("{k} {v:.1}")).collect();
            let _ = writeln!(
                s,
                "cpu          s per million deltas: {} {}, machine {}; seconds: {}, machine {:.1}, steal {:.1}",
                p.cpu.server,
                per_m(p.cpu.server_secs_per_million),
                per_m(p.cpu.machine_secs_per_million),
                procs.join(", "),
                p.cpu.machine_secs,
                p.cpu.steal_secs
            );
            line(&mut s, "connect", &p.connect_us);
            line(&mut s, "subscribe", &p.subscribe_us);
            if p.catchup_replay_us.count > 0 || p.catchup_live_us.count > 0 {
                line(&mut s, "catch-up", &p.catchup_replay_us);
                line(&mut s, "to-live", &p.catchup_live_us);
            }
            line(&mut s, "response", &p.response_time_us);
            line(&mut s, "silence", &p.silence_max_us);
            let viewers = p.silence_max_us.count.max(1) as f64;
            let _ = writeln!(
                s,
                "without events {:.1}s over all viewers ({:.2}s per viewer) in gaps > 500 ms; {} disruptions",
                p.silent_secs,
                p.silent_secs / viewers,
                p.disruptions
            );
            if let Some(m) = &p.memory {
                let _ = writeln!(
                    s,
                    "edge memory  before {} KiB, +idle {} KiB, +viewers {} KiB, peak {} KiB, end {} KiB",
                    m.rss_before_kib, m.rss_after_idle_kib, m.rss_after_viewers_kib, m.rss_peak_kib, m.rss_end_kib
                );
                let per = |v: Option<f64>| v.map(|b| format!("{:.1} KiB", b / 1024.0)).unwrap_or_else(|| "-".into());
                let _ = writeln!(
                    s,
                    "             per idle connection {}, per viewer connection {}",
                    per(m.per_idle_connection_bytes),
                    per(m.per_viewer_connection_bytes)
                );
            }
            if p.error_total > 0 {
                let _ = writeln!(s, "ERRORS       {}: {:?}", p.error_total, p.errors);
            } else {
                let _ = writeln!(s, "errors       0");
            }
            if p.violation_total > 0 {
                let _ = writeln!(s, "VIOLATIONS   {}: {:?}", p.violation_total, p.violations);
                for v in &p.violation_samples {
                    let _ = writeln!(s, "  [{}] {} in {}: {}", v.kind, v.viewer, v.conversation, v.detail);
                }
            } else {
                let _ = writeln!(s, "violations   0 (order, gaps, duplicates, final text all checked per viewer)");
            }
        }
        for cmp in &self.comparisons {
            let cpu = cmp.server_cpu_ratio.map(|r| format!(", fan-out CPU per delta ×{r:.2}")).unwrap_or_default();
            let _ = writeln!(
                s,
                "{}edge vs {}: {:.0} vs {:.0} deltas/s (×{:.2}), p99 {:.1} ms vs {:.1} ms{cpu}",
                if std::ptr::eq(cmp, &self.comparisons[0]) { "\n" } else { "" },
                cmp.baseline,
                cmp.edge_deltas_per_sec,
                cmp.baseline_deltas_per_sec,
                cmp.throughput_ratio,
                cmp.edge_p99_us as f64 / 1000.0,
                cmp.baseline_p99_us as f64 / 1000.0
            );
        }
        let _ = writeln!(s, "\nresult: {}", if self.passed { "PASS" } else { "FAIL" });
        s
    }
}

fn ms(us: u64) -> String {
    format!("{:.1}", us as f64 / 1000.0)
}

fn line(s: &mut String, name: &str, h: &HistSummary) {
    if h.count == 0 {
        let _ = writeln!(s, "{name:<12} -");
        return;
    }
    let _ = writeln!(
        s,
        "{name:<12} ms p50 {} p90 {} p99 {} p99.9 {} max {} (n={})",
        ms(h.p50_us),
        ms(h.p90_us),
        ms(h.p99_us),
        ms(h.p999_us),
        ms(h.max_us),
        h.count
    );
}
