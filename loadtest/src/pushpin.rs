//! The `pushpin` baseline: viewers connect over WebSocket to a private Pushpin (started by `bench.sh`), which
//! speaks WebSocket-over-HTTP to a tiny origin here. The origin answers `OPEN`, and a viewer's `subscribe` with a
//! GRIP control message subscribing the connection to its conversation's channel plus the `subscribed` frame.
//! Responses come from the same [`Script`]s as the `bare` baseline's, and every frame is published to Pushpin's
//! HTTP publish endpoint as a `ws-message` (one POST at a time, carrying everything queued since the last one,
//! so a channel's frames keep their order).
//!
//! WebSocket-over-HTTP bodies are events `TYPE[ LEN-HEX]\r\n[CONTENT\r\n]` (`OPEN`, `TEXT`, `CLOSE`, ...).

use crate::synth::{ConvSeq, Script, Source, StartReply, StartRequest, Streaming, subscribed_frame};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use rh_protocol::ClientFrame;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;
use uuid::Uuid;

/// Frames one publish POST carries at most.
const PUBLISH_BATCH: usize = 2000;
const EVENTS: &str = "application/websocket-events";

#[derive(Debug, thiserror::Error)]
pub enum PushpinError {
    #[error("bad WebSocket-over-HTTP body: {0}")]
    BadEvents(String),
    #[error("origin listener: {0}")]
    Listen(#[from] std::io::Error),
}

/// One WebSocket-over-HTTP event.
#[derive(Debug, PartialEq)]
pub struct WsEvent<'a> {
    pub kind: &'a str,
    pub content: Option<&'a [u8]>,
}

/// Splits a WebSocket-over-HTTP body into its events.
pub fn parse_events(mut body: &[u8]) -> Result<Vec<WsEvent<'_>>, PushpinError> {
    let bad = |why: &str| PushpinError::BadEvents(why.to_owned());
    let mut out = Vec::new();
    while !body.is_empty() {
        let eol = body.windows(2).position(|w| w == b"\r\n").ok_or_else(|| bad("line without CRLF"))?;
        let line = std::str::from_utf8(&body[..eol]).map_err(|_| bad("not UTF-8"))?;
        body = &body[eol + 2..];
        let (kind, content) = match line.split_once(' ') {
            None => (line, None),
            Some((kind, len)) => {
                let len = usize::from_str_radix(len, 16).map_err(|_| bad("length is not hex"))?;
                if body.len() < len + 2 || &body[len..len + 2] != b"\r\n" {
                    return Err(bad("content shorter than its length"));
                }
                let content = &body[..len];
                body = &body[len + 2..];
                (kind, Some(content))
            }
        };
        out.push(WsEvent { kind, content });
    }
    Ok(out)
}

fn push_event(out: &mut Vec<u8>, kind: &str, content: Option<&str>) {
    match content {
        None => out.extend_from_slice(format!("{kind}\r\n").as_bytes()),
        Some(c) => {
            out.extend_from_slice(format!("{kind} {:x}\r\n", c.len()).as_bytes());
            out.extend_from_slice(c.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
    }
}

#[derive(Serialize)]
struct Control<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    channel: &'a str,
}

#[derive(Serialize)]
struct PublishBody {
    items: Vec<PublishItem>,
}

#[derive(Serialize)]
struct PublishItem {
    channel: String,
    formats: Formats,
}

#[derive(Serialize)]
struct Formats {
    #[serde(rename = "ws-message")]
    ws_message: WsMessage,
}

#[derive(Serialize)]
struct WsMessage {
    content: String,
}

/// The origin and publisher of one pushpin phase.
pub struct Pushpin {
    convs: Mutex<HashMap<Uuid, Arc<ConvSeq>>>,
    publish: mpsc::UnboundedSender<PublishItem>,
    streaming: Streaming,
}

impl Pushpin {
    /// Serves the origin on `origin` (the address Pushpin's route points to) and publishes to `publish_url`
    /// (`http://127.0.0.1:PORT/publish/`).
    pub async fn start(origin: &str, publish_url: String) -> Result<Arc<Self>, PushpinError> {
        let (tx, rx) = mpsc::unbounded_channel();
        let me = Arc::new(Pushpin { convs: Mutex::new(HashMap::new()), publish: tx, streaming: Streaming::default() });
        let listener = tokio::net::TcpListener::bind(origin).await?;
        let app = axum::Router::new().fallback(axum::routing::post(Self::origin)).with_state(me.clone());
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "pushpin origin stopped");
            }
        });
        tokio::spawn(publisher(rx, publish_url));
        Ok(me)
    }

    fn seq(&self, conversation: Uuid) -> Arc<ConvSeq> {
        let mut convs = self.convs.lock().unwrap_or_else(|e| e.into_inner());
        convs.entry(conversation).or_default().clone()
    }

    /// One WebSocket-over-HTTP request from Pushpin.
    async fn origin(State(me): State<Arc<Self>>, body: Bytes) -> Response {
        let events = match parse_events(&body) {
            Ok(e) => e,
            Err(e) => return (axum::http::StatusCode::BAD_REQUEST, e.to_string()).into_response(),
        };
        let mut out = Vec::new();
        for ev in events {
            match (ev.kind, ev.content) {
                ("OPEN", _) => push_event(&mut out, "OPEN", None),
                ("TEXT", Some(text)) => {
                    if let Ok(ClientFrame::Subscribe { conversation_id, .. }) = serde_json::from_slice(text) {
                        let channel = conversation_id.to_string();
                        let control = Control { kind: "subscribe", channel: &channel };
                        let control = format!("c:{}", serde_json::to_string(&control).unwrap_or_default());
                        push_event(&mut out, "TEXT", Some(&control));
                        let seq = me.seq(conversation_id).current();
                        push_event(&mut out, "TEXT", Some(&subscribed_frame(conversation_id, seq)));
                    }
                }
                ("CLOSE", _) => push_event(&mut out, "CLOSE", None),
                _ => {}
            }
        }
        let mut response = out.into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(EVENTS));
        // GRIP on, no prefix on ordinary messages (ours start with `{`; control messages with `c:`).
        headers.insert("sec-websocket-extensions", HeaderValue::from_static("grip; message-prefix=\"\""));
        response
    }

    /// Streams a response into the conversation's channel (the baseline's "send a message").
    pub fn start_response(self: &Arc<Self>, request: &StartRequest) -> StartReply {
        let seq = self.seq(request.conversation_id);
        let reply = Source::reserve(&seq);
        let (me, conversation_id, request) = (self.clone(), request.conversation_id, request.clone());
        tokio::spawn(async move {
            let _streaming = me.streaming.enter();
            let script = Script::for_prompt(&request.prompt);
            let channel = conversation_id.to_string();
            let window = || request.coalesce.window(me.streaming.current());
            Source::play(conversation_id, reply.response_id, &script, window, &seq, |content| {
                let item =
                    PublishItem { channel: channel.clone(), formats: Formats { ws_message: WsMessage { content } } };
                let _ = me.publish.send(item);
            })
            .await;
        });
        reply
    }
}

/// Publishes queued frames, one POST at a time.
async fn publisher(mut rx: mpsc::UnboundedReceiver<PublishItem>, url: String) {
    let http = reqwest::Client::new();
    let mut items = Vec::with_capacity(PUBLISH_BATCH);
    while rx.recv_many(&mut items, PUBLISH_BATCH).await > 0 {
        let body = PublishBody { items: std::mem::take(&mut items) };
        match http.post(&url).json(&body).send().await {
            Ok(r) if r.status().is_success() => {}
            Ok(r) => tracing::error!(status = %r.status(), "pushpin refused a publish"),
            Err(e) => tracing::error!(error = %e, "publishing to pushpin failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip() {
        let mut body = Vec::new();
        push_event(&mut body, "OPEN", None);
        push_event(&mut body, "TEXT", Some("héllo\r\nworld"));
        push_event(&mut body, "CLOSE", None);
        let events = parse_events(&body).unwrap();
        assert_eq!(events.len(), 3);
        assert_eq!(events[0], WsEvent { kind: "OPEN", content: None });
        assert_eq!(events[1].content, Some("héllo\r\nworld".as_bytes()));
        assert_eq!(events[2].kind, "CLOSE");
        assert!(parse_events(b"TEXT 10\r\nshort\r\n").is_err());
        assert!(parse_events(b"TEXT zz\r\n").is_err());
    }
}
