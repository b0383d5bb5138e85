//! Edge frames, as the edge, the `bare` broadcaster and Pushpin send them: the subscribe handshake and every
//! frame after it.

use super::socket::Conn;
use super::{Catchup, Next, Role, Viewer};
use crate::check::WireFrame;
use crate::metrics::Metrics;
use crate::net::{Target, Ws};
use futures::{SinkExt, StreamExt};
use rh_protocol::{ClientFrame, ServerFrame};
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

/// How long a subscribe may take to be confirmed.
const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(30);

impl Viewer {
    pub(super) async fn connect_edge(
        &mut self,
        target: &Target,
        after_seq: Option<u64>,
    ) -> Result<Conn, (String, String)> {
        let (mut ws, took) = self
            .ctx
            .net
            .websocket(target, &self.spec.token, self.spec.sidebar)
            .await
            .map_err(|e| ("connect_failed".to_owned(), format!("{e:#}")))?;
        let m = self.metrics();
        m.connect.record(self.spec.index, took.as_micros() as u64);
        Metrics::inc(&m.connections_opened);
        if let (Role::Late(state), None) = (&self.spec.role, self.initial_after) {
            let live_seq = state.last_seq.load(Ordering::Acquire);
            self.catchup = Some(Catchup {
                sent: Instant::now(),
                sent_us: rh_protocol::now_us(),
                live_seq,
                replay_done: false,
                live_done: false,
            });
        }
        let seq = self.subscribe(&mut ws, after_seq).await?;
        if self.initial_after.is_none() {
            self.initial_after = Some(seq);
        }
        self.checker.start_after(seq);
        if let Some(c) = &mut self.catchup
            && c.live_seq <= seq
        {
            // Nothing to replay: caught up as soon as the subscription stands.
            c.replay_done = true;
            self.ctx.metrics.catchup_replay.record(self.spec.index, c.sent.elapsed().as_micros() as u64);
        }
        Ok(Conn::Edge(ws))
    }

    /// Sends `subscribe` and waits for `subscribed` (event frames before it are kept for later).
    async fn subscribe(&mut self, ws: &mut Ws, after_seq: Option<u64>) -> Result<u64, (String, String)> {
        let frame = ClientFrame::Subscribe {
            conversation_id: self.spec.conversation,
            after_seq,
            compact: self.ctx.compact,
            grant: self.grant.take(),
        };
        let text = serde_json::to_string(&frame).map_err(|e| ("internal".to_owned(), e.to_string()))?;
        let sent = Instant::now();
        ws.send(Message::Text(text.into())).await.map_err(|e| ("subscribe_send".to_owned(), e.to_string()))?;
        let deadline = sent + SUBSCRIBE_TIMEOUT;
        loop {
            let msg = match tokio::time::timeout_at(deadline, ws.next()).await {
                Err(_) => return Err(("subscribe_timeout".into(), "no subscribed frame in time".into())),
                Ok(None) => return Err(("subscribe_closed".into(), "socket ended".into())),
                Ok(Some(Err(e))) => return Err(("subscribe_closed".into(), e.to_string())),
                Ok(Some(Ok(m))) => m,
            };
            let text = match msg {
                Message::Text(t) => t.as_str().to_owned(),
                Message::Close(c) => return Err(("subscribe_closed".into(), format!("{c:?}"))),
                _ => continue,
            };
            let Ok(head) = serde_json::from_str::<WireFrame>(&text) else {
                return Err(("bad_frame".into(), text.chars().take(200).collect()));
            };
            match head.kind.as_ref() {
                "subscribed" if head.conversation_id == Some(self.spec.conversation) => {
                    self.metrics().subscribe.record(self.spec.index, sent.elapsed().as_micros() as u64);
                    return head.seq.ok_or_else(|| ("bad_frame".into(), "subscribed without seq".into()));
                }
                "event" => self.early.push(text),
                "error" => {
                    let (code, message) = match serde_json::from_str::<ServerFrame>(&text) {
                        Ok(ServerFrame::Error { code, message, .. }) => (code, message),
                        _ => ("unknown".to_owned(), text.clone()),
                    };
                    return Err((format!("subscribe_refused_{code}"), message));
                }
                _ => {}
            }
        }
    }

    /// An edge text frame.
    pub(super) fn on_frame(&mut self, text: &str) -> Next {
        let head: WireFrame = match serde_json::from_str(text) {
            Ok(h) => h,
            Err(e) => {
                self.violation("malformed_frame", format!("{e}: {}", text.chars().take(200).collect::<String>()));
                return Next::Continue;
            }
        };
        match head.kind.as_ref() {
            "event" => {
                if head.conversation_id != Some(self.spec.conversation) {
                    return Next::Continue;
                }
                let Some(raw) = head.event else {
                    self.violation("malformed_frame", "event frame without event".into());
                    return Next::Continue;
                };
                match head.seq {
                    Some(seq) => self.on_envelope(Some(seq), raw.get().as_bytes()),
                    None => {
                        self.violation("malformed_frame", "event frame without seq".into());
                        Next::Continue
                    }
                }
            }
            "error" => {
                let code = match serde_json::from_str::<ServerFrame>(text) {
                    Ok(ServerFrame::Error { code, .. }) => code,
                    _ => "unknown".to_owned(),
                };
                self.metrics().error(format!("error_frame_{code}"));
                match code.as_str() {
                    "lagged" => Next::Resubscribe,
                    "cannot_recover" => Next::Stop,
                    _ => Next::Continue,
                }
            }
            "access_revoked" => {
                self.metrics().error("access_revoked");
                Next::Stop
            }
            _ => Next::Continue, // subscribed (after a resubscribe), presence, sidebar, pong, ...
        }
    }
}
