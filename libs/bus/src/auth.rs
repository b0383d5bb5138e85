//! Who a service is on the bus: its NATS user and password, its own inbox prefix, and optional TLS.
//!
//! The server's `authorization` block (`nats/auth.conf`) gives each [`Role`] only the subjects it uses; the
//! inbox prefix is part of that: replies and JetStream deliveries to a service go to `_INBOX_<role>.>`, which no
//! other service may subscribe to.

use rh_auth::Secret;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// A RelayHub service, as the NATS server knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Api,
    Edge,
    Worker,
    Audit,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Api, Role::Edge, Role::Worker, Role::Audit];

    /// The NATS user name (also the default of `--nats-user`).
    pub fn user(self) -> &'static str {
        match self {
            Role::Api => "api",
            Role::Edge => "edge",
            Role::Worker => "worker",
            Role::Audit => "audit",
        }
    }

    /// Prefix of this service's reply subjects; only this service may subscribe below it.
    pub fn inbox_prefix(self) -> &'static str {
        match self {
            Role::Api => "_INBOX_api",
            Role::Edge => "_INBOX_edge",
            Role::Worker => "_INBOX_worker",
            Role::Audit => "_INBOX_audit",
        }
    }
}

/// The NATS credentials flags every service takes (flatten into its clap config).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct NatsAuth {
    /// NATS user of this service (default: the service's own name: api, edge, worker, audit).
    #[arg(long, env = "RH_NATS_USER")]
    pub nats_user: Option<String>,

    /// NATS password of this service. Without it the service connects anonymously, which a RelayHub NATS
    /// server refuses.
    #[arg(long, env = "RH_NATS_PASSWORD", hide_env_values = true)]
    pub nats_password: Option<Secret>,

    /// PEM file of the CA that signed the NATS server's certificate. When set, the connection must use TLS.
    #[arg(long, env = "RH_NATS_TLS_CA")]
    pub nats_tls_ca: Option<PathBuf>,
}

impl NatsAuth {
    /// Connect options for `role`: name, inbox prefix, credentials, TLS.
    pub fn options(&self, role: Role) -> async_nats::ConnectOptions {
        let mut options = async_nats::ConnectOptions::new();
        if let Some((user, password)) = self.credentials(role) {
            options = options.user_and_password(user, password);
        }
        self.identity(role, options)
    }

    /// Options for a connection that never reconnects: once its TCP connection is gone, the client is closed and
    /// every later publish fails instead of waiting in its buffer for a new connection. Whatever was sent on it
    /// thus reaches the server as a prefix: nothing sent after a message the server lost is ever stored. Only the
    /// first login is allowed (the reconnect's login is refused on our side), so the one reconnect attempt that
    /// `max_reconnects(1)` permits fails, and the client gives up.
    pub fn options_once(&self, role: Role) -> async_nats::ConnectOptions {
        let credentials = self.credentials(role);
        let used = Arc::new(AtomicBool::new(false));
        let options = async_nats::ConnectOptions::with_auth_callback(move |_nonce| {
            let first = !used.swap(true, Ordering::SeqCst);
            let credentials = credentials.clone();
            async move {
                if !first {
                    return Err(async_nats::AuthError::new("this connection does not reconnect"));
                }
                let mut auth = async_nats::Auth::new();
                if let Some((user, password)) = credentials {
                    auth.username = Some(user);
                    auth.password = Some(password);
                }
                Ok(auth)
            }
        });
        self.identity(role, options.max_reconnects(1))
    }

    fn credentials(&self, role: Role) -> Option<(String, String)> {
        let password = self.nats_password.as_ref()?;
        let user = self.nats_user.clone().unwrap_or_else(|| role.user().to_owned());
        Some((user, password.expose().to_owned()))
    }

    /// The role's name and inbox prefix, and TLS.
    fn identity(&self, role: Role, options: async_nats::ConnectOptions) -> async_nats::ConnectOptions {
        let mut options = options.name(role.user()).custom_inbox_prefix(role.inbox_prefix());
        if let Some(ca) = &self.nats_tls_ca {
            options = options.add_root_certificates(ca.clone()).require_tls(true);
        }
        options
    }
}

/// `url` without any `user:password@` part, for logs.
pub fn redact_url(url: &str) -> String {
    if url.contains(',') {
        return url.split(',').map(redact_url).collect::<Vec<_>>().join(",");
    }
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => format!("{}[redacted]@{}", &url[..scheme + 3], &url[at + 1..]),
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_their_credentials_in_logs() {
        assert_eq!(redact_url("nats://api:hunter2@nats:4222"), "nats://[redacted]@nats:4222");
        assert_eq!(redact_url("nats://nats:4222"), "nats://nats:4222");
        assert_eq!(
            redact_url("nats://a:pw@n1:4222,nats://a:pw@n2:4222"),
            "nats://[redacted]@n1:4222,nats://[redacted]@n2:4222"
        );
    }

    #[test]
    fn the_password_never_shows_in_debug_output() {
        let auth = NatsAuth { nats_password: Some(Secret::new("hunter2")), ..Default::default() };
        assert!(!format!("{auth:?}").contains("hunter2"));
    }
}
