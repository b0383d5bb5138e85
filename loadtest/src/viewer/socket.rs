//! The socket of any transport: connecting (and counting what failed), reconnecting, and the next thing off it.

use super::{Transport, Viewer};
use crate::baseline::NatsWs;
use crate::metrics::Metrics;
use crate::net::Ws;
use futures::StreamExt;
use std::time::Duration;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

/// In a chaos run, how long a viewer keeps trying to get back onto an edge.
const CHAOS_RECONNECT_FOR: Duration = Duration::from_secs(60);

pub(super) enum Conn {
    Edge(Ws),
    Nats(NatsWs),
}

impl Conn {
    pub(super) async fn close(self) {
        match self {
            Conn::Edge(mut ws) => {
                let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(None)).await;
            }
            Conn::Nats(n) => n.close().await,
        }
    }
}

/// What came off a socket.
pub(super) enum Inbound {
    Frame(tokio_tungstenite::tungstenite::Utf8Bytes),
    Envelope(bytes::Bytes),
    Nothing,
    Closed(String),
}

pub(super) async fn next_inbound(conn: &mut Conn) -> Inbound {
    match conn {
        Conn::Edge(ws) => match ws.next().await {
            Some(Ok(Message::Text(t))) => Inbound::Frame(t),
            Some(Ok(Message::Binary(b))) => match tokio_tungstenite::tungstenite::Utf8Bytes::try_from(b) {
                Ok(s) => Inbound::Frame(s),
                Err(_) => Inbound::Closed("binary frame that is not UTF-8".into()),
            },
            Some(Ok(Message::Close(c))) => Inbound::Closed(format!("closed by the server: {c:?}")),
            Some(Ok(_)) => Inbound::Nothing,
            Some(Err(e)) => Inbound::Closed(format!("socket error: {e}")),
            None => Inbound::Closed("socket ended".into()),
        },
        Conn::Nats(n) => match n.next_payload().await {
            Ok(p) => Inbound::Envelope(p),
            Err(e) => Inbound::Closed(e.to_string()),
        },
    }
}

impl Viewer {
    /// Connects and subscribes (after `after_seq` on the edge). Counts failures; `None` if it failed.
    pub(super) async fn connect(&mut self, after_seq: Option<u64>) -> Option<Conn> {
        let attempt = self.connects as usize;
        self.connects += 1;
        let ctx = self.ctx.clone();
        let res = match &ctx.transport {
            Transport::Edge(_) | Transport::Bare(_) | Transport::Pushpin(..) => {
                let target = ctx.transport.target(self.spec.index, attempt);
                let mut res = self.connect_edge(target, after_seq).await;
                // Under a burst of connects Pushpin's proxy answers some upgrades with 502 itself (the origin never
                // sees them) or resets a socket right after it opened: like a browser, try again, counted as
                // `connect_retries` rather than as errors (the summary shows them).
                let mut tries = 0;
                while matches!(ctx.transport, Transport::Pushpin(..)) && tries < 5 && res.is_err() {
                    tries += 1;
                    Metrics::inc(&self.metrics().connect_retries);
                    tokio::time::sleep(Duration::from_millis(100 * tries)).await;
                    res = self.connect_edge(target, after_seq).await;
                }
                res
            }
            Transport::NatsWs(target, login, live) => {
                match NatsWs::connect(&self.ctx.net, target, login.as_ref(), self.spec.conversation, *live).await {
                    Ok((n, connect, subscribe)) => {
                        let m = self.metrics();
                        m.connect.record(self.spec.index, connect.as_micros() as u64);
                        m.subscribe.record(self.spec.index, subscribe.as_micros() as u64);
                        Metrics::inc(&m.connections_opened);
                        Ok(Conn::Nats(n))
                    }
                    Err(e) => Err(("connect_failed".to_owned(), e.to_string())),
                }
            }
        };
        match res {
            Ok(c) => Some(c),
            Err((kind, detail)) => {
                if self.ctx.chaos {
                    Metrics::inc(&self.metrics().disruptions);
                } else {
                    self.metrics().error(kind);
                }
                tracing::debug!(viewer = self.spec.name, detail, "connect failed");
                None
            }
        }
    }

    /// After a failed reconnect: once more after a pause, or, in a chaos run, until the edge is back (up to
    /// [`CHAOS_RECONNECT_FOR`]). Failures are counted by `connect`.
    pub(super) async fn reconnect_again(&mut self, last: u64) -> Option<Conn> {
        let give_up = Instant::now() + if self.ctx.chaos { CHAOS_RECONNECT_FOR } else { Duration::ZERO };
        loop {
            self.reconnects += 1;
            tokio::time::sleep(Duration::from_millis(500)).await;
            if let Some(c) = self.connect(Some(last)).await {
                return Some(c);
            }
            if Instant::now() >= give_up {
                if self.ctx.chaos {
                    self.metrics().error("reconnect_gave_up");
                }
                return None;
            }
        }
    }
}
