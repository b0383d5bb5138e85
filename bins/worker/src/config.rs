//! Command-line flags; every flag can also be set by its environment variable.

use clap::{Parser, ValueEnum};
use rh_llm::ApiKey;
use std::net::SocketAddr;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProviderKind {
    /// Built-in deterministic text (offline; the default and the load test's engine).
    Simulated,
    /// An OpenAI-compatible `/v1/chat/completions` endpoint (OpenAI, vLLM, Ollama, llama.cpp, LM Studio).
    Openai,
}

/// RelayHub worker: pulls generation jobs from JetStream and streams the provider's tokens onto the
/// conversation's subject.
#[derive(Debug, Clone, Parser)]
#[command(name = "worker", version, about)]
pub struct Config {
    #[arg(long, env = "RH_NATS_URL", default_value = "nats://127.0.0.1:4222")]
    pub nats_url: String,

    /// NATS credentials and TLS (`--nats-user`, `--nats-password`, `--nats-tls-ca`).
    #[command(flatten)]
    pub nats_auth: rh_bus::NatsAuth,

    /// Traces across NATS (`--otlp-endpoint`, `--trace-log`, `--trace-sample-ratio`); off by default.
    #[command(flatten)]
    pub trace: rh_telemetry::TraceArgs,
    /// Ops HTTP listener: /metrics, /healthz, /readyz.
    #[arg(long, env = "RH_WORKER_OPS_LISTEN", default_value = "127.0.0.1:9092")]
    pub ops_listen: SocketAddr,
    #[arg(long, env = "RH_PROVIDER", value_enum, default_value = "simulated")]
    pub provider: ProviderKind,
    /// Simulated provider: tokens per second (a job's `/sim rate=R` line overrides it).
    #[arg(long, env = "RH_SIM_TOKENS_PER_SEC", default_value_t = 30.0)]
    pub sim_tokens_per_sec: f64,
    /// Simulated provider: tokens per response (a job's `/sim tokens=N` line overrides it).
    #[arg(long, env = "RH_SIM_TOKENS", default_value_t = 80)]
    pub sim_tokens: u32,
    /// Simulated provider: model names it serves.
    #[arg(long, env = "RH_SIM_MODELS", default_value = "sim-1,sim-2", value_delimiter = ',')]
    pub sim_models: Vec<String>,
    /// OpenAI-compatible provider: base URL, e.g. `https://api.openai.com` or `http://127.0.0.1:11434`.
    #[arg(long, env = "RH_OPENAI_BASE_URL")]
    pub openai_base_url: Option<String>,
    /// OpenAI-compatible provider: API key (sent as a bearer token; never logged).
    #[arg(long, env = "RH_OPENAI_API_KEY", hide_env_values = true)]
    pub openai_api_key: Option<ApiKey>,
    /// OpenAI-compatible provider: the models offered to users (comma list); required with `--provider openai`,
    /// the only names a job may ask the endpoint for.
    #[arg(long, env = "RH_OPENAI_MODELS", value_delimiter = ',')]
    pub openai_models: Vec<String>,
    /// How long a job may go without a sign of life before JetStream hands it to another worker. The worker
    /// sends in-progress acks every third of this while it generates, so only a dead worker's jobs move.
    #[arg(long, env = "RH_JOB_ACK_WAIT_SECS", default_value_t = 30)]
    pub job_ack_wait_secs: u64,
    /// How long the worker waits for JetStream to acknowledge an event it published before it gives the attempt up
    /// and hands the job back. A late ack is not a lost message (an attempt's events go out in order on one
    /// connection that never reconnects, and a dead connection fails at once), so this only bounds a stream that
    /// stopped answering (a leader change in a cluster). Too short, and a busy broker's slow acks would hand back
    /// attempts whose end was already stored: the next attempt would answer the question again.
    #[arg(long, env = "RH_PUBLISH_ACK_TIMEOUT_SECS", default_value_t = 30)]
    pub publish_ack_timeout_secs: u64,
    /// Jobs generated at the same time by this process.
    #[arg(long, env = "RH_WORKER_CONCURRENCY", default_value_t = 64)]
    pub concurrency: usize,
    /// Coalescing (`--coalesce-ms`, `--coalesce-max-ms`, `--coalesce-busy-streams`).
    #[command(flatten)]
    pub coalesce: rh_llm::Coalesce,
    /// On SIGTERM, how long running jobs may take to finish; the rest are handed back for redelivery.
    #[arg(long, env = "RH_WORKER_SHUTDOWN_GRACE_SECS", default_value_t = 20)]
    pub shutdown_grace_secs: u64,
    /// `max_ack_pending` of the shared `workers` consumer: jobs in flight across the whole pool. Must cover the
    /// sum of every worker's concurrency, or workers sit idle while jobs wait.
    #[arg(long, env = "RH_WORKER_MAX_ACK_PENDING", default_value_t = 10_000)]
    pub max_ack_pending: i64,
}

impl Config {
    pub fn ack_wait(&self) -> Duration {
        Duration::from_secs(self.job_ack_wait_secs.max(1))
    }

    pub fn publish_ack_timeout(&self) -> Duration {
        Duration::from_secs(self.publish_ack_timeout_secs.max(1))
    }

    pub fn concurrency(&self) -> usize {
        self.concurrency.max(1)
    }

    pub fn grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_secs)
    }
}

/// Drops empty entries, so `RH_OPENAI_MODELS=""` means "no list" rather than a model named "".
pub fn clean_list(list: &[String]) -> Vec<String> {
    list.iter().map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect()
}
