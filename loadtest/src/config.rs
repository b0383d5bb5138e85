//! The scenario, from flags (every flag also an `RH_LOADTEST_*` environment variable).
//!
//! A scenario is: `conversations` conversations, each watched by `viewers_per_conversation` sockets from the start
//! plus `late_joiners` sockets that join once the first response is `join_after_tokens` tokens in; `responders`
//! people per conversation each send `messages` messages (one after another, each waiting for its response to
//! finish) through the REST API, asking the simulated provider for `tokens` tokens at `rate` tokens/s.

use clap::{Parser, ValueEnum};
use serde::Serialize;
use std::path::PathBuf;
use std::time::Duration;

/// Simulates many viewers of streamed AI responses against a running RelayHub stack, checks every delivery
/// (order, gaps, duplicates, final text) and measures latency, throughput, catch-up time and edge memory.
#[derive(Parser, Debug, Clone, Serialize)]
#[command(name = "loadtest", version)]
pub struct Config {
    /// Base URL of the api (`/api/v1` is appended).
    #[arg(long, env = "RH_LOADTEST_API", default_value = "http://127.0.0.1:8080")]
    pub api: String,

    /// WebSocket URL(s) of the edge(s), `ws://host:port/ws`; repeat the flag or give a comma list to spread the
    /// viewers over several edges (viewer i uses edge i mod n; a reconnect moves on to the next edge).
    #[arg(long, env = "RH_LOADTEST_WS", value_delimiter = ',', default_value = "ws://127.0.0.1:8081/ws")]
    pub ws: Vec<String>,

    /// Number of conversations.
    #[arg(long, env = "RH_LOADTEST_CONVERSATIONS", default_value_t = 1)]
    pub conversations: usize,

    /// Sockets per conversation that subscribe before the first message.
    #[arg(long, env = "RH_LOADTEST_VIEWERS_PER_CONVERSATION", default_value_t = 10)]
    pub viewers_per_conversation: usize,

    /// People per conversation sending messages (each a distinct user with `respond` permission).
    #[arg(long, env = "RH_LOADTEST_RESPONDERS", default_value_t = 1)]
    pub responders: usize,

    /// Messages each responder sends (one after another; each waits until its response has ended).
    #[arg(long, env = "RH_LOADTEST_MESSAGES", default_value_t = 1)]
    pub messages: usize,

    /// Tokens per response (sent to the simulated provider as `/sim tokens=N`).
    #[arg(long, env = "RH_LOADTEST_TOKENS", default_value_t = 100)]
    pub tokens: u32,

    /// Tokens per second of each response (sent as `/sim rate=R`).
    #[arg(long, env = "RH_LOADTEST_RATE", default_value_t = 20.0)]
    pub rate: f64,

    /// Extra sockets per conversation that join while the first response streams: they read the history `seq`
    /// over HTTP and subscribe with `after_seq`, so the edge replays the response so far, then continues live.
    #[arg(long, env = "RH_LOADTEST_LATE_JOINERS", default_value_t = 0)]
    pub late_joiners: usize,

    /// How far into the first response (in tokens, i.e. `N / rate` seconds after `response.started`) late
    /// joiners join.
    #[arg(long, env = "RH_LOADTEST_JOIN_AFTER_TOKENS", default_value_t = 50)]
    pub join_after_tokens: u32,

    /// Fraction (0..1) of the initial viewers that, during each response, disconnect at a random point, stay
    /// away for `churn_pause` and reconnect (to the next edge) with the last `seq` they saw.
    #[arg(long, env = "RH_LOADTEST_CHURN", default_value_t = 0.0)]
    pub churn: f64,

    /// How long a churning viewer stays disconnected.
    #[arg(long, env = "RH_LOADTEST_CHURN_PAUSE", default_value = "200ms", value_parser = parse_duration)]
    #[serde(serialize_with = "ser_duration")]
    pub churn_pause: Duration,

    /// Catch up exactly (every stored delta a late joiner or a reconnecting viewer missed, one frame each)
    /// instead of compactly (each run of missed deltas merged into one, what the web client asks for).
    #[arg(long, env = "RH_LOADTEST_NO_COMPACT")]
    pub no_compact: bool,

    /// Late joiners subscribe without the signed grant their history request returned, so the edge asks the api
    /// for access (`rh.api.access`) as before grants existed: the "before" of scenario (c).
    #[arg(long, env = "RH_LOADTEST_NO_GRANT")]
    pub no_grant: bool,

    /// Keep the responders sending (beyond `--messages`) until this long after the first message; the run then
    /// waits for the responses in flight.
    #[arg(long, env = "RH_LOADTEST_DURATION", value_parser = parse_duration)]
    #[serde(serialize_with = "ser_opt_duration")]
    pub duration: Option<Duration>,

    /// Spread the opening of the viewers' sockets evenly over this long.
    #[arg(long, env = "RH_LOADTEST_RAMP_UP", default_value = "0s", value_parser = parse_duration)]
    #[serde(serialize_with = "ser_duration")]
    pub ramp_up: Duration,

    /// Most socket connects in flight at once (keeps the listen backlog from overflowing).
    #[arg(long, env = "RH_LOADTEST_CONNECT_CONCURRENCY", default_value_t = 256)]
    pub connect_concurrency: usize,

    /// Pause between a responder's response ending and its next message.
    #[arg(long, env = "RH_LOADTEST_THINK_TIME", default_value = "0s", value_parser = parse_duration)]
    #[serde(serialize_with = "ser_duration")]
    pub think_time: Duration,

    /// After the last response ended (as the per-conversation monitor saw it), how long viewers may take to
    /// receive the rest before what they miss counts as a violation.
    #[arg(long, env = "RH_LOADTEST_DRAIN_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    #[serde(serialize_with = "ser_duration")]
    pub drain_timeout: Duration,

    /// Pid(s) of the edge process(es): their VmRSS (from /proc/<pid>/status) is read before and after the
    /// sockets open, giving memory per connection.
    #[arg(long, env = "RH_LOADTEST_EDGE_PID", value_delimiter = ',')]
    pub edge_pid: Vec<u32>,

    /// Sockets that authenticate, subscribe to a conversation without traffic and sit idle (opened before the
    /// viewers; the edge's memory per idle connection is measured over them).
    #[arg(long, env = "RH_LOADTEST_IDLE_CONNECTIONS", default_value_t = 0)]
    pub idle_connections: usize,

    /// Viewer accounts; many sockets share one account (as tabs and devices of one person do).
    #[arg(long, env = "RH_LOADTEST_VIEWER_USERS", default_value_t = 20)]
    pub viewer_users: usize,

    /// Every socket takes `sidebar` frames. By default only each account's first socket does and the others
    /// open with `?sidebar=off`: with hundreds of sockets per account in every conversation, each sidebar change
    /// would otherwise reach hundreds of sockets (in (b): 22 million frames, more than the answers' own).
    #[arg(long, env = "RH_LOADTEST_SIDEBAR_EVERY_SOCKET")]
    pub sidebar_every_socket: bool,

    /// Source addresses 127.1.0.1, 127.1.0.2, ... that sockets to a loopback target are bound to, so that the
    /// ~28k ephemeral ports of one source address do not cap the number of connections.
    #[arg(long, env = "RH_LOADTEST_SOURCE_IPS", default_value_t = 64)]
    pub source_ips: usize,

    /// Client read buffer per socket (bytes). tungstenite allocates it eagerly; the default 128 KiB would make
    /// 50k sockets cost 6 GiB in the load tool itself.
    #[arg(long, env = "RH_LOADTEST_READ_BUFFER", default_value_t = 4096)]
    pub read_buffer: usize,

    /// Write the JSON report here.
    #[arg(long, env = "RH_LOADTEST_REPORT")]
    pub report: Option<PathBuf>,

    /// Also run the same scenario against these baselines, one phase each after the edge's (comma list):
    /// `nats-ws` (viewers on nats-server's WebSocket listener, NATS protocol, the stack's real events as the worker
    /// publishes them), `nats-ws-live` (the same, as JetStream republishes them once stored: the edge's input),
    /// `pushpin` (viewers through a private Pushpin, `--pushpin-*`), `bare` (the `bare-fanout` broadcaster,
    /// `--bare-url`). No auth and no replay on any of them, so no late joiners and no churn.
    #[arg(long, env = "RH_LOADTEST_BASELINE", value_delimiter = ',')]
    pub baseline: Vec<Baseline>,

    /// The `bare-fanout` broadcaster's WebSocket URL.
    #[arg(long, env = "RH_LOADTEST_BARE_URL", default_value = "ws://127.0.0.1:9300/ws")]
    pub bare_url: String,

    /// Pushpin's WebSocket URL (its HTTP port).
    #[arg(long, env = "RH_LOADTEST_PUSHPIN_URL", default_value = "ws://127.0.0.1:7999/ws")]
    pub pushpin_url: String,

    /// Pushpin's HTTP publish endpoint.
    #[arg(long, env = "RH_LOADTEST_PUSHPIN_PUBLISH_URL", default_value = "http://127.0.0.1:5561/publish/")]
    pub pushpin_publish_url: String,

    /// Where the load tool serves Pushpin's origin (the address Pushpin's route points to, `over_http`).
    #[arg(long, env = "RH_LOADTEST_PUSHPIN_ORIGIN", default_value = "127.0.0.1:9301")]
    pub pushpin_origin: String,

    /// The worker's coalescing (`--coalesce-ms`, `--coalesce-max-ms`, `--coalesce-busy-streams`, the same flags and
    /// variables): the synthetic responses of `bare` and `pushpin` cut their tokens into deltas the same way (the
    /// window follows the responses their source streams at once).
    #[command(flatten)]
    pub coalesce: rh_llm::Coalesce,

    /// `NAME=PID` of processes whose CPU (with their children) each phase reports (comma list; bench.sh passes
    /// edge, nats-server, worker, api, pushpin, bare-fanout). CPU per million deltas is given for the phase's own
    /// fan-out process and for the whole machine.
    #[arg(long, env = "RH_LOADTEST_CPU_PID", value_delimiter = ',', value_parser = crate::cpu::parse_named_pid)]
    pub cpu_pid: Vec<crate::cpu::NamedPid>,

    /// nats-server's WebSocket listener (`websocket { port: 9222 no_tls: true }` in nats/nats-server.conf).
    #[arg(long, env = "RH_LOADTEST_NATS_WS_URL", default_value = "ws://127.0.0.1:9222")]
    pub nats_ws_url: String,

    /// NATS user of the baseline's subscribers (with `--nats-ws-password`).
    #[arg(long, env = "RH_LOADTEST_NATS_WS_USER")]
    pub nats_ws_user: Option<String>,

    /// NATS password of the baseline's subscribers. Never printed nor written to the report.
    #[arg(long, env = "RH_LOADTEST_NATS_WS_PASSWORD", hide_env_values = true)]
    #[serde(skip)]
    pub nats_ws_password: Option<rh_auth::Secret>,

    /// Run only the baseline phase (needs `--baseline`).
    #[arg(long, env = "RH_LOADTEST_BASELINE_ONLY", default_value_t = false)]
    pub baseline_only: bool,

    /// No progress bar (it is hidden anyway when stderr is not a terminal).
    #[arg(long, env = "RH_LOADTEST_NO_PROGRESS", default_value_t = false)]
    pub no_progress: bool,

    /// Violations printed (and kept in the report) in full; all are counted.
    #[arg(long, env = "RH_LOADTEST_VIOLATION_SAMPLES", default_value_t = 50)]
    pub violation_samples: usize,

    /// Chaos run: `loadtest/bench.sh` kills (SIGKILL) and restarts a random process of these kinds every
    /// `--chaos-every` while the tool runs. The tool then rides the faults out — sockets reconnect and resume,
    /// refused sends are retried — counting them as disruptions, not errors; violations still fail the run.
    #[arg(long, env = "RH_LOADTEST_CHAOS", value_delimiter = ',')]
    pub chaos: Vec<ChaosTarget>,

    /// Time between two chaos kills (read by bench.sh; recorded in the report).
    #[arg(long, env = "RH_LOADTEST_CHAOS_EVERY", default_value = "10s", value_parser = parse_duration)]
    pub chaos_every: Duration,
}

/// What a chaos run kills.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChaosTarget {
    Edge,
    Worker,
    Nats,
}

/// A comparison run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Baseline {
    /// nats-server's own WebSocket listener, NATS text protocol, on the stored subjects: each event as the worker
    /// publishes it, before JetStream stores it.
    NatsWs,
    /// The same on the republished subjects (`rh.live.conv.<id>.*`): each event once JetStream stored it, i.e. the
    /// edge's own input. The fair broker for the edge's latency; `nats-ws` minus this is the store's share.
    NatsWsLive,
    /// Pushpin, a real-time push proxy, in front of an origin and publisher in the load tool.
    Pushpin,
    /// A minimal tokio + tungstenite broadcaster of pre-serialized frames: the machine's limit.
    Bare,
}

impl Config {
    /// The baseline's login, when both its user and password are set.
    pub fn nats_ws_login(&self) -> Option<crate::baseline::NatsLogin> {
        Some(crate::baseline::NatsLogin {
            user: self.nats_ws_user.clone()?,
            password: self.nats_ws_password.as_ref()?.expose().to_owned(),
        })
    }

    /// A small scenario with defaults (used by tests before they adjust fields).
    pub fn new(api: impl Into<String>, ws: Vec<String>) -> Self {
        let mut c = Config::parse_from(["loadtest"]);
        c.api = api.into();
        c.ws = ws;
        c.no_progress = true;
        c
    }

    /// Refuses scenarios that cannot run, before anything is created.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.ws.is_empty() && !self.baseline_only {
            return Err(ConfigError("at least one --ws URL is needed".into()));
        }
        if self.conversations == 0 {
            return Err(ConfigError("--conversations must be at least 1".into()));
        }
        if self.responders == 0 {
            return Err(ConfigError("--responders must be at least 1".into()));
        }
        if !(self.rate > 0.0 && self.rate.is_finite()) {
            return Err(ConfigError("--rate must be a positive number".into()));
        }
        if self.tokens == 0 {
            return Err(ConfigError("--tokens must be at least 1".into()));
        }
        if !(0.0..=1.0).contains(&self.churn) {
            return Err(ConfigError("--churn is a fraction between 0 and 1".into()));
        }
        if self.baseline_only && self.baseline.is_empty() {
            return Err(ConfigError("--baseline-only needs --baseline".into()));
        }
        if self.viewer_users == 0 || self.source_ips == 0 || self.connect_concurrency == 0 {
            return Err(ConfigError(
                "--viewer-users, --source-ips and --connect-concurrency must be at least 1".into(),
            ));
        }
        Ok(())
    }

    /// The prompt of a message: the `/sim` directive the simulated provider honours, then a unique line.
    pub fn prompt(&self, conversation: usize, responder: usize, message: usize) -> String {
        format!(
            "/sim tokens={} rate={}\nLoad test: conversation {conversation}, responder {responder}, message {message}.",
            self.tokens, self.rate
        )
    }

    /// How long one response should take to stream.
    pub fn response_time(&self) -> Duration {
        Duration::from_secs_f64(f64::from(self.tokens) / self.rate)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("invalid scenario: {0}")]
pub struct ConfigError(pub String);

/// `250ms`, `30s`, `2m`, `1h`, or a bare number of seconds (`1.5`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
        Some(i) => (&s[..i], s[i..].trim()),
        None => (s, "s"),
    };
    let n: f64 = num.parse().map_err(|_| format!("not a duration: {s:?} (use e.g. 250ms, 30s, 2m)"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" | "" => n,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("unknown unit {unit:?} in {s:?} (ms, s, m, h)")),
    };
    if !secs.is_finite() || secs < 0.0 {
        return Err(format!("not a duration: {s:?}"));
    }
    Ok(Duration::from_secs_f64(secs))
}

fn ser_duration<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

fn ser_opt_duration<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_f64(d.as_secs_f64()),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("1.5").unwrap(), Duration::from_millis(1500));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("3 weeks").is_err());
    }

    #[test]
    fn flags_and_comma_lists() {
        let c = Config::parse_from([
            "loadtest",
            "--ws",
            "ws://127.0.0.1:1/ws,ws://127.0.0.1:2/ws",
            "--ws",
            "ws://127.0.0.1:3/ws",
            "--edge-pid",
            "10,11",
            "--baseline",
            "nats-ws,bare",
            "--cpu-pid",
            "edge=10,pushpin=11",
            "--churn",
            "0.1",
        ]);
        assert_eq!(c.ws.len(), 3);
        assert_eq!(c.edge_pid, vec![10, 11]);
        assert_eq!(c.baseline, vec![Baseline::NatsWs, Baseline::Bare]);
        assert_eq!(c.cpu_pid[1], crate::cpu::NamedPid { name: "pushpin".into(), pid: 11 });
        c.validate().unwrap();
        assert!(c.prompt(0, 0, 0).starts_with("/sim tokens=100 rate=20\n"));
    }

    #[test]
    fn bad_scenarios_are_refused() {
        let mut c = Config::new("http://x", vec!["ws://x/ws".into()]);
        c.churn = 2.0;
        assert!(c.validate().is_err());
    }
}
