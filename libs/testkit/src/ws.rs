//! A WebSocket client speaking the edge's protocol.

use anyhow::{Context, bail};
use futures::{SinkExt, StreamExt};
use rh_protocol::{ClientFrame, ServerFrame};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;
use uuid::Uuid;

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// One socket to the edge.
pub struct WsClient {
    socket: Socket,
}

impl WsClient {
    /// Connects to `ws_url` (`ws://host:port/ws`) with `Authorization: Bearer <token>`.
    pub async fn connect(ws_url: &str, token: &str) -> anyhow::Result<Self> {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut req = ws_url.into_client_request().context("websocket url")?;
        req.headers_mut().insert("authorization", format!("Bearer {token}").parse().context("token")?);
        Self::connect_request(req).await
    }

    /// Connects to `ws_url` with a one-time socket ticket (`?ticket=`), as the web client does.
    pub async fn connect_ticket(ws_url: &str, ticket: &str) -> anyhow::Result<Self> {
        Self::connect_request(format!("{ws_url}?ticket={ticket}")).await
    }

    /// The HTTP status of an upgrade to `url` (with `Authorization: Bearer` when `bearer`): 101 when it opened
    /// (the socket is closed again), else the refusal's status.
    pub async fn upgrade_status(url: &str, bearer: Option<&str>) -> anyhow::Result<u16> {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        crate::init_crypto();
        let mut req = url.into_client_request().context("websocket url")?;
        if let Some(t) = bearer {
            req.headers_mut().insert("authorization", format!("Bearer {t}").parse().context("token")?);
        }
        match tokio_tungstenite::connect_async(req).await {
            Ok((mut ws, resp)) => {
                let _ = ws.close(None).await;
                Ok(resp.status().as_u16())
            }
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => Ok(resp.status().as_u16()),
            Err(e) => Err(e.into()),
        }
    }

    async fn connect_request(
        req: impl tokio_tungstenite::tungstenite::client::IntoClientRequest + Unpin,
    ) -> anyhow::Result<Self> {
        crate::init_crypto();
        let (socket, _) = tokio_tungstenite::connect_async(req).await.context("websocket connect")?;
        Ok(WsClient { socket })
    }

    pub async fn send(&mut self, frame: &ClientFrame) -> anyhow::Result<()> {
        self.send_text(&serde_json::to_string(frame)?).await
    }

    /// Sends any text (including broken frames).
    pub async fn send_text(&mut self, text: &str) -> anyhow::Result<()> {
        self.socket.send(Message::Text(text.into())).await?;
        Ok(())
    }

    pub async fn subscribe(&mut self, conversation_id: Uuid, after_seq: Option<u64>) -> anyhow::Result<()> {
        self.send(&ClientFrame::Subscribe { conversation_id, after_seq, compact: false, grant: None }).await
    }

    /// `subscribe` asking for a compact catch-up (each run of missed deltas merged into one), as the web client does.
    pub async fn subscribe_compact(&mut self, conversation_id: Uuid, after_seq: Option<u64>) -> anyhow::Result<()> {
        self.send(&ClientFrame::Subscribe { conversation_id, after_seq, compact: true, grant: None }).await
    }

    /// The next server frame (pings and pongs of the WebSocket layer are skipped).
    pub async fn next_frame(&mut self, timeout: Duration) -> anyhow::Result<ServerFrame> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let msg = tokio::time::timeout_at(deadline, self.socket.next())
                .await
                .context("no frame in time")?
                .context("socket closed")??;
            match msg {
                Message::Text(t) => {
                    return serde_json::from_str(t.as_str()).with_context(|| format!("not a server frame: {t}"));
                }
                Message::Close(c) => bail!("socket closed: {c:?}"),
                _ => continue,
            }
        }
    }

    /// The next server frame, or `Err(code)` once the server closed the socket (`None`: without a close frame, e.g.
    /// its process was killed). Errors only on a timeout or a frame that is not a server frame.
    pub async fn next_or_close(&mut self, timeout: Duration) -> anyhow::Result<Result<ServerFrame, Option<u16>>> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let msg = match tokio::time::timeout_at(deadline, self.socket.next()).await.context("no frame in time")? {
                None | Some(Err(_)) => return Ok(Err(None)),
                Some(Ok(m)) => m,
            };
            match msg {
                Message::Text(t) => {
                    let f = serde_json::from_str(t.as_str()).with_context(|| format!("not a server frame: {t}"))?;
                    return Ok(Ok(f));
                }
                Message::Close(c) => return Ok(Err(c.map(|c| u16::from(c.code)))),
                _ => continue,
            }
        }
    }

    /// Reads frames until `pred` accepts one (returned); the frames before it are returned too.
    pub async fn until(
        &mut self,
        timeout: Duration,
        mut pred: impl FnMut(&ServerFrame) -> bool,
    ) -> anyhow::Result<(ServerFrame, Vec<ServerFrame>)> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut before = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let f = self
                .next_frame(left)
                .await
                .with_context(|| format!("after {} frames: {:?}", before.len(), before.last()))?;
            if pred(&f) {
                return Ok((f, before));
            }
            before.push(f);
        }
    }

    pub async fn close(mut self) {
        let _ = self.socket.close(None).await;
    }
}
