//! Command-line flags; every flag can also be set by its environment variable.

use clap::Parser;
use std::net::SocketAddr;

/// RelayHub audit writer: follows stream `RH_AUDIT` (the durable events of `RH_CONV`, kept until written) with the
/// durable consumer `audit` and writes the transcript (`messages`) and the audit log to PostgreSQL.
#[derive(Clone, Parser)]
#[command(name = "audit", version, about)]
pub struct Config {
    /// NATS server URL.
    #[arg(long, env = "RH_NATS_URL", default_value = "nats://127.0.0.1:4222")]
    pub nats_url: String,

    /// NATS credentials and TLS (`--nats-user`, `--nats-password`, `--nats-tls-ca`).
    #[command(flatten)]
    pub nats_auth: rh_bus::NatsAuth,

    /// Traces across NATS (`--otlp-endpoint`, `--trace-log`, `--trace-sample-ratio`); off by default.
    #[command(flatten)]
    pub trace: rh_telemetry::TraceArgs,

    /// Address of the ops endpoints (/metrics, /healthz, /readyz). Port 0 picks a free port.
    #[arg(long, env = "RH_AUDIT_OPS_LISTEN", default_value = "127.0.0.1:9103")]
    pub ops_listen: SocketAddr,

    /// PostgreSQL URL (`postgres://user:password@host:port/db`). Never logged.
    #[arg(long, env = "RH_DATABASE_URL", hide_env_values = true)]
    pub database_url: String,

    /// PostgreSQL over TLS (`--database-tls`, `--database-tls-ca`); off by default.
    #[command(flatten)]
    pub database_tls: rh_store::tls::DbTls,

    /// Most events written in one transaction. Events already delivered are grouped; a single event is never
    /// held back waiting for more.
    #[arg(long, env = "RH_AUDIT_BATCH_MAX", default_value_t = 64, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub batch_max: u16,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("nats_url", &rh_bus::redact_url(&self.nats_url))
            .field("nats_auth", &self.nats_auth)
            .field("ops_listen", &self.ops_listen)
            .field("database_url", &"<redacted>")
            .field("database_tls", &self.database_tls)
            .field("batch_max", &self.batch_max)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_redaction() {
        let config = Config::try_parse_from(["audit", "--database-url", "postgres://u:hunter2@h/db"]).unwrap();
        assert_eq!(config.ops_listen.port(), 9103);
        assert_eq!(config.batch_max, 64);
        assert!(!format!("{config:?}").contains("hunter2"));
        assert!(Config::try_parse_from(["audit", "--database-url", "x", "--batch-max", "0"]).is_err());
    }
}
