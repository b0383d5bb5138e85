//! Typed settings from flags and environment (every flag has its `RH_*` variable). Secrets (`--database-url`,
//! `--jwt-secret`) are [`Secret`]s, so `Debug` output and logs never show them.

use clap::{Args, Parser, Subcommand};
use rh_auth::Secret;
use std::net::SocketAddr;
use std::path::PathBuf;

/// RelayHub api: REST API v1 (login, org directory, conversations, shares, settings, attachments, admin views)
/// and the `rh.api.*` NATS responders the edge relies on.
#[derive(Debug, Parser)]
#[command(name = "api", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub settings: Settings,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Subcommand)]
pub enum Command {
    /// Serve the API (the default).
    Serve,
    /// Create the demo orgs, people and one shared conversation (idempotent), then exit.
    SeedDemo,
}

/// Everything the api is configured with.
#[derive(Debug, Clone, Args)]
pub struct Settings {
    /// NATS server URL.
    #[arg(long, env = "RH_NATS_URL", default_value = "nats://127.0.0.1:4222", global = true)]
    pub nats_url: String,

    /// NATS credentials and TLS (`--nats-user`, `--nats-password`, `--nats-tls-ca`).
    #[command(flatten)]
    pub nats_auth: rh_bus::NatsAuth,

    /// Traces across NATS (`--otlp-endpoint`, `--trace-log`, `--trace-sample-ratio`); off by default.
    #[command(flatten)]
    pub trace: rh_telemetry::TraceArgs,

    /// Replicas of the streams and buckets the api creates when they are missing (`RH_CONV`, `RH_AUDIT`,
    /// `RH_JOBS`, `rh_stops`, `rh_attachments`): 3 on a 3-node JetStream cluster, so losing a node loses nothing.
    /// Streams that exist already keep theirs (raise them with `nats stream edit`).
    #[arg(long, env = "RH_STREAM_REPLICAS", default_value_t = 1, global = true, value_parser = clap::value_parser!(u8).range(1..=5))]
    pub stream_replicas: u8,

    /// Address of the public HTTP listener (also serves /metrics, /healthz, /readyz unless `--ops-listen` is
    /// set). Port 0 picks a free port.
    #[arg(long, env = "RH_API_LISTEN", default_value = "127.0.0.1:8080", global = true)]
    pub listen: SocketAddr,

    /// Address of a separate ops listener for /metrics, /healthz, /readyz; when set, the public listener serves
    /// none of them (so an ingress in front of it cannot expose /metrics).
    #[arg(long, env = "RH_API_OPS_LISTEN", global = true)]
    pub ops_listen: Option<SocketAddr>,

    /// PostgreSQL URL (`postgres://user:password@host:port/db`). Required (optional here only because clap
    /// cannot require a flag that may come before or after the subcommand).
    #[arg(long, env = "RH_DATABASE_URL", hide_env_values = true, global = true)]
    pub database_url: Option<Secret>,

    /// PostgreSQL over TLS (`--database-tls`, `--database-tls-ca`); off by default.
    #[command(flatten)]
    pub database_tls: rh_store::tls::DbTls,

    /// Key that signs login tokens (HS256), at least 32 bytes; the edge verifies with the same key. Required to
    /// serve.
    #[arg(long, env = "RH_JWT_SECRET", hide_env_values = true, global = true, value_parser = rh_auth::parse_jwt_secret)]
    pub jwt_secret: Option<Secret>,

    /// Lifetime of an access token, in seconds: how long a stolen one works, and how long a socket stays open
    /// without re-authenticating. The web client refreshes before it ends.
    #[arg(long, env = "RH_TOKEN_TTL_SECS", default_value_t = 900, global = true, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub token_ttl_secs: u64,

    /// How long a session lasts without being used, in seconds: each refresh moves its end this far ahead.
    #[arg(long, env = "RH_REFRESH_TTL_SECS", default_value_t = 30 * 86_400, global = true, value_parser = clap::value_parser!(u64).range(60..))]
    pub refresh_ttl_secs: u64,

    /// How long after a refresh token was traded it may come back once more and get the same successor (two
    /// refreshes racing with one token), in seconds. Past it, or once the successor was used, presenting it ends
    /// the session as theft. 0 turns the grace off.
    #[arg(long, env = "RH_REFRESH_REUSE_GRACE_SECS", default_value_t = 10, global = true, value_parser = clap::value_parser!(u64).range(0..=300))]
    pub refresh_reuse_grace_secs: u64,

    /// Directory of the static web client, served at `/` (unknown paths fall back to its index.html).
    #[arg(long, env = "RH_WEB_DIR", global = true)]
    pub web_dir: Option<PathBuf>,

    /// WebSocket URL of the edge that `GET /api/v1/config` tells browsers (e.g. `wss://chat.example.com/ws`).
    #[arg(long, env = "RH_PUBLIC_WS_URL", global = true)]
    pub public_ws_url: Option<String>,

    /// Preferred model of new conversations, used when the worker pool serves it (else the pool's first model),
    /// and the one listed while no worker has answered `GET /models` yet.
    #[arg(long, env = "RH_DEFAULT_MODEL", default_value = "sim-1", global = true)]
    pub default_model: String,

    /// Largest attachment accepted, in bytes (larger uploads get 413).
    #[arg(long, env = "RH_MAX_ATTACHMENT_BYTES", default_value_t = 10 * 1024 * 1024, global = true)]
    pub max_attachment_bytes: u64,

    /// Most PostgreSQL connections the api holds.
    #[arg(long, env = "RH_DB_POOL_SIZE", default_value_t = 16, global = true)]
    pub db_pool_size: usize,

    /// Longest wait for a PostgreSQL connection (a free one from the pool, or a new one), in milliseconds; past
    /// it the request answers 503.
    #[arg(long, env = "RH_DB_CHECKOUT_TIMEOUT_MS", default_value_t = 5_000, global = true)]
    pub db_checkout_timeout_ms: u64,

    /// Longest time one HTTP request may take, in milliseconds; past it the request answers 503.
    #[arg(long, env = "RH_REQUEST_TIMEOUT_MS", default_value_t = 30_000, global = true)]
    pub request_timeout_ms: u64,

    /// Most bytes of context (system prompt, earlier turns, the new message) a generation job carries; the oldest
    /// turns are dropped to fit. Never more than the NATS server's max payload allows.
    #[arg(long, env = "RH_MAX_CONTEXT_BYTES", default_value_t = 768 * 1024, global = true)]
    pub max_context_bytes: usize,

    /// How long to wait for the worker pool to list its models, in milliseconds.
    #[arg(long, env = "RH_MODELS_TIMEOUT_MS", default_value_t = 1500, global = true)]
    pub models_timeout_ms: u64,

    /// Seconds after a delete when the erase job purges the conversation's subjects a last time (catching what a
    /// response that was generating at the delete published after the first purge); see docs/erasure.md.
    #[arg(long, env = "RH_ERASE_SETTLE_SECS", default_value_t = 60, global = true)]
    pub erase_settle_secs: u64,

    /// How often the retention task looks for conversations that their org's retention has expired, in seconds.
    #[arg(long, env = "RH_RETENTION_INTERVAL_SECS", default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..), global = true)]
    pub retention_interval_secs: u64,

    /// How often the share expiry task removes shares whose `expires_at` has passed, in milliseconds (access ends
    /// at `expires_at` regardless; this bounds how late sockets are cut and sidebars told).
    #[arg(long, env = "RH_SHARE_EXPIRY_CHECK_MS", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(10..), global = true)]
    pub share_expiry_check_ms: u64,

    /// Outbox relay: how often a replica that does not lead tries to take over, and the leader's backstop poll
    /// (commits wake it at once), in milliseconds.
    #[arg(long, env = "RH_OUTBOX_POLL_MS", default_value_t = 1000, global = true)]
    pub outbox_poll_ms: u64,

    /// How long a request that answers with its event's `seq` (create, rename, settings) waits for the relay to
    /// publish it; `seq` is null when it has not (NATS down: the change is stored and goes out later).
    #[arg(long, env = "RH_OUTBOX_SEQ_WAIT_MS", default_value_t = 1000, global = true)]
    pub outbox_seq_wait_ms: u64,

    /// Test-only failpoint: abort the process right after the relay published an event of this kind and before
    /// it marked it published (e.g. `participant.removed`). Off unless set.
    #[arg(long, env = "RH_OUTBOX_CRASH_AFTER", hide = true, global = true)]
    pub outbox_crash_after: Option<String>,

    /// After this many seconds with no worker starting an answer, every viewer is told the AI is unavailable
    /// (`response.delayed`; the job stays queued) and the answer counts in `responses_waiting_for_worker`.
    #[arg(long, env = "RH_AI_WAIT_SECS", default_value_t = 15, global = true)]
    pub ai_wait_secs: u64,

    #[command(flatten)]
    pub limits: LimitSettings,

    #[command(flatten)]
    pub sso: SsoSettings,
}

/// Single sign-on (each org sets its own provider over the API; these are the server's side of it).
#[derive(Debug, Clone, Args)]
pub struct SsoSettings {
    /// The URL people open the web client at (e.g. `https://chat.example.com`): an org's SSO redirect URI is
    /// `{public_url}/`. SSO cannot be set up without it.
    #[arg(long, env = "RH_PUBLIC_URL", global = true)]
    pub public_url: Option<String>,

    /// Issuer URL prefixes orgs may use, comma-separated (e.g. `https://login.example.com/`). Empty: any `https://`
    /// issuer. Only a listed prefix allows `http://` (a provider on this machine, in tests). The api fetches the
    /// issuer's discovery document and keys, so this also bounds where an org admin can make it connect.
    #[arg(long, env = "RH_SSO_ALLOWED_ISSUERS", value_delimiter = ',', global = true)]
    pub allowed_issuers: Vec<String>,

    /// How long a sign-in at the provider may take, in seconds (its state, nonce and PKCE verifier expire).
    #[arg(long, env = "RH_SSO_LOGIN_TTL_SECS", default_value_t = 600, global = true, value_parser = clap::value_parser!(u64).range(10..=3600))]
    pub login_ttl_secs: u64,

    /// Longest wait for the provider (discovery, keys, token endpoint), in milliseconds.
    #[arg(long, env = "RH_SSO_HTTP_TIMEOUT_MS", default_value_t = 10_000, global = true)]
    pub http_timeout_ms: u64,
}

/// Limits on abuse, shared by every replica (see [`crate::service::limits`]). A token bucket holds at most
/// its burst and refills at its rate; a burst of 0 turns that limit off.
#[derive(Debug, Clone, Args)]
pub struct LimitSettings {
    /// AI replies one person may start at once (token bucket size).
    #[arg(long, env = "RH_LIMIT_USER_REPLIES_BURST", default_value_t = 20, global = true)]
    pub user_replies_burst: u32,

    /// AI replies per minute one person gets back (bucket refill).
    #[arg(long, env = "RH_LIMIT_USER_REPLIES_PER_MIN", default_value_t = 10.0, global = true)]
    pub user_replies_per_min: f64,

    /// AI replies one organization may start at once (token bucket size).
    #[arg(long, env = "RH_LIMIT_ORG_REPLIES_BURST", default_value_t = 200, global = true)]
    pub org_replies_burst: u32,

    /// AI replies per minute one organization gets back (bucket refill).
    #[arg(long, env = "RH_LIMIT_ORG_REPLIES_PER_MIN", default_value_t = 100.0, global = true)]
    pub org_replies_per_min: f64,

    /// `max_tokens` of a generation job whose request names none.
    #[arg(long, env = "RH_DEFAULT_MAX_TOKENS", default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..), global = true)]
    pub default_max_tokens: u32,

    /// Largest `max_tokens` a request may ask for (more is a 400).
    #[arg(long, env = "RH_MAX_TOKENS_LIMIT", default_value_t = 4096, value_parser = clap::value_parser!(u32).range(1..), global = true)]
    pub max_tokens_limit: u32,

    /// Sign-in and sign-up attempts one client address may make at once (token bucket size).
    #[arg(long, env = "RH_LIMIT_SIGNIN_ADDR_BURST", default_value_t = 50, global = true)]
    pub signin_addr_burst: u32,

    /// Sign-in and sign-up attempts per minute one client address gets back.
    #[arg(long, env = "RH_LIMIT_SIGNIN_ADDR_PER_MIN", default_value_t = 20.0, global = true)]
    pub signin_addr_per_min: f64,

    /// Sign-in and sign-up attempts for one email at once (token bucket size).
    #[arg(long, env = "RH_LIMIT_SIGNIN_EMAIL_BURST", default_value_t = 10, global = true)]
    pub signin_email_burst: u32,

    /// Sign-in and sign-up attempts per minute one email gets back.
    #[arg(long, env = "RH_LIMIT_SIGNIN_EMAIL_PER_MIN", default_value_t = 3.0, global = true)]
    pub signin_email_per_min: f64,

    /// Answers being generated at once in one conversation; more sends wait (429). 0: no bound.
    #[arg(long, env = "RH_LIMIT_CONVERSATION_RESPONSES", default_value_t = 10, global = true)]
    pub conversation_responses: u32,

    /// Answers being generated at once in one organization's conversations; more sends wait (429). 0: no bound.
    #[arg(long, env = "RH_LIMIT_ORG_RESPONSES", default_value_t = 100, global = true)]
    pub org_responses: u32,

    /// After this many seconds an answer whose end never came (its job lost) no longer holds its slot.
    #[arg(long, env = "RH_RESPONSE_SLOT_TTL_SECS", default_value_t = 900, value_parser = clap::value_parser!(u64).range(1..), global = true)]
    pub response_slot_ttl_secs: u64,

    /// Attachment bytes one organization may store (its conversations not deleted); past it uploads get 413
    /// `quota_exceeded`. 0: no quota.
    #[arg(long, env = "RH_LIMIT_ORG_ATTACHMENT_BYTES", default_value_t = 1 << 30, global = true)]
    pub org_attachment_bytes: u64,

    /// Header holding the client's address, set by the proxy in front (e.g. `x-forwarded-for`: its last entry is
    /// used). Unset: the TCP peer's address. Set it only behind a proxy that sets it: a client can forge it.
    #[arg(long, env = "RH_CLIENT_IP_HEADER", global = true)]
    pub client_ip_header: Option<String>,

    /// Password hashes (Argon2, ~19 MiB each) one api process runs at once; more wait for a slot.
    #[arg(long, env = "RH_MAX_CONCURRENT_HASHES", default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..), global = true)]
    pub max_concurrent_hashes: u32,

    /// Longest wait for a password-hash slot, in milliseconds; past it the request gets 429.
    #[arg(long, env = "RH_HASH_WAIT_MS", default_value_t = 5_000, global = true)]
    pub hash_wait_ms: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_redaction() {
        let key = "s3cret-s3cret-s3cret-s3cret-s3cret";
        let cli = Cli::try_parse_from(["api", "--database-url", "postgres://u:hunter2@h/db", "--jwt-secret", key])
            .expect("parses");
        assert_eq!(cli.command, None);
        assert_eq!(cli.settings.listen.port(), 8080);
        assert_eq!(cli.settings.default_model, "sim-1");
        assert_eq!(cli.settings.max_attachment_bytes, 10 * 1024 * 1024);
        assert_eq!(cli.settings.limits.default_max_tokens, 1024);
        let printed = format!("{cli:?}");
        assert!(!printed.contains("hunter2") && !printed.contains("s3cret"), "{printed}");
        let short = Cli::try_parse_from(["api", "--jwt-secret", "s3cret"]).expect_err("too short");
        assert!(short.to_string().contains("at least 32 bytes"), "{short}");
    }

    #[test]
    fn seed_demo_subcommand() {
        let cli = Cli::try_parse_from(["api", "seed-demo", "--database-url", "postgres://h/db"]).expect("parses");
        assert_eq!(cli.command, Some(Command::SeedDemo));
        assert!(cli.settings.database_url.is_some());
    }
}
