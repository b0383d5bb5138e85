//! What the load tool's tests share: a small crowd's scenario on the real stack, a nats-server with its WebSocket
//! listener, and what a clean phase is.

// Each test binary uses only part of this module.
#![allow(dead_code)]

use loadtest::{Config, PhaseReport};
use rh_testkit::{NatsServer, Stack, StackOptions};

/// A small crowd: `conversations` of `viewers` viewers each, signed in as `viewer_users` people; each conversation
/// asks `messages` answers of `tokens` tokens, streamed at 100 a second.
pub struct Crowd {
    pub conversations: usize,
    pub viewers: usize,
    pub viewer_users: usize,
    pub messages: usize,
    pub tokens: u32,
}

impl Crowd {
    /// The scenario against the api at `api` and the edge socket at `ws`.
    pub fn config(&self, api: String, ws: String) -> Config {
        let mut cfg = Config::new(api, vec![ws]);
        cfg.conversations = self.conversations;
        cfg.viewers_per_conversation = self.viewers;
        cfg.viewer_users = self.viewer_users;
        cfg.messages = self.messages;
        cfg.tokens = self.tokens;
        cfg.rate = 100.0;
        cfg
    }

    /// The real stack (nats-server, PostgreSQL, api, edge, audit, worker as processes) and the scenario against it.
    pub async fn on_stack(&self) -> anyhow::Result<(Stack, Config)> {
        let stack = Stack::start(StackOptions::default()).await?;
        let cfg = self.config(stack.api.http_url(), stack.ws_url());
        Ok((stack, cfg))
    }
}

/// A nats-server with its WebSocket listener (no TLS) on a free port, and that listener's URL as the server wrote
/// it in its ports file.
pub async fn nats_with_websocket() -> anyhow::Result<(NatsServer, String)> {
    let nats =
        NatsServer::start_with_config(Some("websocket {\n  host: 127.0.0.1\n  port: -1\n  no_tls: true\n}\n")).await?;
    let ports_file = std::fs::read_dir(nats.dir())?
        .flatten()
        .find(|e| e.file_name().to_string_lossy().ends_with(".ports"))
        .ok_or_else(|| anyhow::anyhow!("no ports file"))?;
    let ports: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(ports_file.path())?)?;
    let url = ports["websocket"][0].as_str().ok_or_else(|| anyhow::anyhow!("no websocket port in {ports}"))?.to_owned();
    Ok((nats, url))
}

/// Asserts that a phase ran clean for `sockets` viewers: no violation, no error, no failed socket, every viewer
/// checked and every one saw every response it should see completed.
pub fn assert_clean(p: &PhaseReport, sockets: u64) {
    assert_eq!(p.violation_total, 0, "{}: violations {:?}\n{:#?}", p.transport, p.violations, p.violation_samples);
    assert_eq!(p.error_total, 0, "{}: errors {:?}", p.transport, p.errors);
    assert_eq!(p.sockets.failed, 0);
    assert_eq!(p.viewers_checked, sockets, "{}: every socket was checked", p.transport);
    assert_eq!(p.viewers_all_completed, sockets, "{}: every viewer saw every response completed", p.transport);
    assert!(p.completions_expected > 0);
    assert_eq!(p.completions_ok, p.completions_expected);
}
