//! The `nats-ws` baseline: viewers subscribe straight to `rh.conv.<id>.*` through nats-server's own WebSocket
//! listener, speaking the NATS text protocol (`CONNECT`, `SUB`, `MSG`/`HMSG`, `PING`/`PONG`) over WebSocket
//! frames. No auth, no replay, no positions: it is the broker's bare fan-out, which the edge (auth, replay, presence,
//! per-socket batching) should match on the same machine in the same run.
//!
//! `nats-ws` subscribes the stored subjects, so nats-server hands each event to these viewers as the worker
//! publishes it, BEFORE JetStream has stored it; the edge only gets it once stored and republished
//! (`rh.live.conv.<id>.*`). `nats-ws-live` subscribes those republished subjects: the same input as the edge, so
//! `nats-ws-live` vs `edge` compares the two fan-outs, and `nats-ws` vs `nats-ws-live` is the store's share.
//!
//! NATS over WebSocket is a byte stream cut into frames at arbitrary points, so [`NatsParser`] buffers and parses
//! whole protocol operations out of it.

use crate::net::{Net, Target, Ws};
use bytes::{Buf, Bytes, BytesMut};
use futures::{SinkExt, StreamExt};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;
use uuid::Uuid;

/// A NATS protocol problem.
#[derive(Debug, thiserror::Error)]
pub enum ProtoError {
    #[error("bad NATS protocol line: {0}")]
    BadLine(String),
    #[error("server error: {0}")]
    Server(String),
    #[error("connection closed")]
    Closed,
    #[error("websocket: {0}")]
    Ws(#[from] tokio_tungstenite::tungstenite::Error),
    #[error("no answer from nats-server in time")]
    Timeout,
}

/// One operation from the server.
#[derive(Debug, PartialEq)]
pub enum Op {
    Info,
    /// A message's payload (headers, if any, stripped).
    Msg(Bytes),
    Ping,
    Pong,
    Ok,
}

/// Incremental parser of server → client NATS protocol bytes.
#[derive(Default)]
pub struct NatsParser {
    buf: BytesMut,
}

fn find_crlf(b: &[u8]) -> Option<usize> {
    b.windows(2).position(|w| w == b"\r\n")
}

impl NatsParser {
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The next complete operation, or `None` until more bytes arrive.
    pub fn next_op(&mut self) -> Result<Option<Op>, ProtoError> {
        let Some(eol) = find_crlf(&self.buf) else { return Ok(None) };
        let line = std::str::from_utf8(&self.buf[..eol]).map_err(|_| ProtoError::BadLine("not UTF-8".into()))?;
        let mut parts = line.split_ascii_whitespace();
        let verb = parts.next().unwrap_or_default().to_ascii_uppercase();
        let bad = || ProtoError::BadLine(line.chars().take(200).collect());
        match verb.as_str() {
            "MSG" | "HMSG" => {
                let args: Vec<&str> = parts.collect();
                // MSG <subject> <sid> [reply] <#bytes>; HMSG <subject> <sid> [reply] <#hdr> <#total>
                let (hdr, total) = if verb == "MSG" {
                    let n: usize = args.last().and_then(|s| s.parse().ok()).ok_or_else(bad)?;
                    if !(3..=4).contains(&args.len()) {
                        return Err(bad());
                    }
                    (0, n)
                } else {
                    if !(4..=5).contains(&args.len()) {
                        return Err(bad());
                    }
                    let total: usize = args[args.len() - 1].parse().map_err(|_| bad())?;
                    let hdr: usize = args[args.len() - 2].parse().map_err(|_| bad())?;
                    if hdr > total {
                        return Err(bad());
                    }
                    (hdr, total)
                };
                let need = eol + 2 + total + 2;
                if self.buf.len() < need {
                    return Ok(None);
                }
                self.buf.advance(eol + 2 + hdr);
                let payload = self.buf.split_to(total - hdr).freeze();
                self.buf.advance(2);
                Ok(Some(Op::Msg(payload)))
            }
            "PING" => {
                self.buf.advance(eol + 2);
                Ok(Some(Op::Ping))
            }
            "PONG" => {
                self.buf.advance(eol + 2);
                Ok(Some(Op::Pong))
            }
            "+OK" => {
                self.buf.advance(eol + 2);
                Ok(Some(Op::Ok))
            }
            "INFO" => {
                self.buf.advance(eol + 2);
                Ok(Some(Op::Info))
            }
            "-ERR" => {
                let msg = line[4..].trim().to_owned();
                self.buf.advance(eol + 2);
                Err(ProtoError::Server(msg))
            }
            _ => Err(bad()),
        }
    }
}

/// One subscriber socket on nats-server's WebSocket listener.
pub struct NatsWs {
    ws: Ws,
    parser: NatsParser,
}

/// The NATS login of the baseline's subscribers: nats-server's WebSocket listener asks for one like any client.
#[derive(Clone)]
pub struct NatsLogin {
    pub user: String,
    pub password: String,
}

impl std::fmt::Debug for NatsLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NatsLogin {{ user: {:?}, password: [redacted] }}", self.user)
    }
}

/// `CONNECT` options: no echo of our own publishes (we never publish), no headers (payload only).
#[derive(serde::Serialize)]
struct Connect<'a> {
    verbose: bool,
    pedantic: bool,
    tls_required: bool,
    name: &'a str,
    lang: &'a str,
    version: &'a str,
    protocol: u8,
    headers: bool,
    no_responders: bool,
    echo: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pass: Option<&'a str>,
}

fn connect_line(login: Option<&NatsLogin>) -> String {
    let options = Connect {
        verbose: false,
        pedantic: false,
        tls_required: false,
        name: "rh-loadtest",
        lang: "rust",
        version: "0.1.0",
        protocol: 1,
        headers: false,
        no_responders: false,
        echo: false,
        user: login.map(|l| l.user.as_str()),
        pass: login.map(|l| l.password.as_str()),
    };
    // A struct of strings and booleans always serializes.
    format!("CONNECT {}", serde_json::to_string(&options).unwrap_or_default())
}

impl NatsWs {
    /// Connects, subscribes to every subject of `conversation` (with `live`, the subjects `RH_CONV` republishes
    /// them on once stored, as the edge does), and waits until the server answered a `PING`
    /// sent after the `SUB` (so the subscription is in place). Returns the socket, the connect time (TCP +
    /// WebSocket handshake) and the subscribe time.
    pub async fn connect(
        net: &Net,
        target: &Target,
        login: Option<&NatsLogin>,
        conversation: Uuid,
        live: bool,
    ) -> anyhow::Result<(Self, Duration, Duration)> {
        let (ws, connect_time) = net.websocket(target, &target.url, true).await?;
        let mut s = NatsWs { ws, parser: NatsParser::default() };
        let started = Instant::now();
        let subject = if live {
            rh_protocol::subjects::live_conv_all(conversation)
        } else {
            rh_protocol::subjects::conv_all(conversation)
        };
        let hello = format!("{}\r\nSUB {subject} 1\r\nPING\r\n", connect_line(login));
        s.ws.send(Message::Binary(Bytes::from(hello))).await?;
        let waited = tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                match s.next_op().await? {
                    Op::Pong => return Ok::<(), ProtoError>(()),
                    Op::Msg(_) => {} // nothing can be published before we subscribed; ignore
                    _ => {}
                }
            }
        })
        .await;
        match waited {
            Ok(Ok(())) => Ok((s, connect_time, started.elapsed())),
            Ok(Err(e)) => Err(e.into()),
            Err(_) => Err(ProtoError::Timeout.into()),
        }
    }

    async fn next_op(&mut self) -> Result<Op, ProtoError> {
        loop {
            if let Some(op) = self.parser.next_op()? {
                if op == Op::Ping {
                    self.ws.send(Message::Binary(Bytes::from_static(b"PONG\r\n"))).await?;
                    continue;
                }
                return Ok(op);
            }
            match self.ws.next().await {
                Some(Ok(Message::Binary(b))) => self.parser.push(&b),
                Some(Ok(Message::Text(t))) => self.parser.push(t.as_bytes()),
                Some(Ok(Message::Close(_))) | None => return Err(ProtoError::Closed),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.into()),
            }
        }
    }

    /// The next message payload (an event envelope); also returns the bytes it took on the wire.
    pub async fn next_payload(&mut self) -> Result<Bytes, ProtoError> {
        loop {
            if let Op::Msg(p) = self.next_op().await? {
                return Ok(p);
            }
        }
    }

    pub async fn close(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(2), self.ws.close(None)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ops_split_anywhere() {
        let wire = b"INFO {\"server_id\":\"x\"}\r\nPING\r\nMSG rh.conv.a.delta 1 5\r\nhello\r\nHMSG rh.conv.a.event 1 _INBOX.x 12 17\r\nNATS/1.0\r\n\r\nworld\r\n+OK\r\n";
        for cut in 1..wire.len() {
            let mut p = NatsParser::default();
            let mut ops = Vec::new();
            p.push(&wire[..cut]);
            while let Some(op) = p.next_op().unwrap() {
                ops.push(op);
            }
            p.push(&wire[cut..]);
            while let Some(op) = p.next_op().unwrap() {
                ops.push(op);
            }
            assert_eq!(
                ops,
                vec![
                    Op::Info,
                    Op::Ping,
                    Op::Msg(Bytes::from_static(b"hello")),
                    Op::Msg(Bytes::from_static(b"world")),
                    Op::Ok
                ],
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn payloads_may_contain_crlf_and_errors_surface() {
        let mut p = NatsParser::default();
        p.push(b"MSG s 1 4\r\na\r\nb\r\n-ERR 'Authorization Violation'\r\n");
        assert_eq!(p.next_op().unwrap(), Some(Op::Msg(Bytes::from_static(b"a\r\nb"))));
        assert!(matches!(p.next_op(), Err(ProtoError::Server(m)) if m.contains("Authorization")));
        let mut p = NatsParser::default();
        p.push(b"WHAT\r\n");
        assert!(p.next_op().is_err());
    }
}
