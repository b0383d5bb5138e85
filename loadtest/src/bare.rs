//! The `bare` baseline: a minimal broadcaster (tokio + tungstenite, run as the `bare-fanout` binary) that writes
//! pre-serialized frames to WebSocket sockets. No NATS, no auth, no JSON on the hot path: each frame is made once
//! per event and the same bytes go to every socket of the conversation, each socket's writer taking everything
//! queued in one batch and flushing once (as the edge's writer does). It is the practical limit of the machine.
//!
//! The first text frame of a socket says what it is: a `subscribe` [`ClientFrame`] (a viewer; answered with
//! `subscribed`, then every event of its conversation), or a [`StartRequest`] (a responder's; answered with a
//! [`StartReply`], then the response streams from a [`Script`] of the same tokens, rate and coalescing).

use crate::synth::{ConvSeq, Script, Source, StartReply, StartRequest, Streaming, subscribed_frame};
use futures::{SinkExt, StreamExt};
use rh_protocol::ClientFrame;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

/// Frames one writer takes from its queue per batch.
const BATCH: usize = 256;

#[derive(Debug, thiserror::Error)]
pub enum BareError {
    #[error("websocket: {0}")]
    Ws(#[from] tokio_tungstenite::tungstenite::Error),
    #[error("the socket closed before its first frame")]
    NoHello,
    #[error("first frame is neither a subscribe nor a start: {0}")]
    BadHello(String),
    #[error("bad reply from the broadcaster: {0}")]
    BadReply(String),
}

#[derive(Default)]
struct Conv {
    seq: ConvSeq,
    sockets: Mutex<Vec<mpsc::UnboundedSender<Utf8Bytes>>>,
}

/// The broadcaster's state: conversations and their sockets.
#[derive(Default)]
pub struct Bare {
    convs: Mutex<HashMap<uuid::Uuid, Arc<Conv>>>,
    streaming: Streaming,
}

impl Bare {
    fn conv(&self, id: uuid::Uuid) -> Arc<Conv> {
        let mut convs = self.convs.lock().unwrap_or_else(|e| e.into_inner());
        convs.entry(id).or_default().clone()
    }

    /// Accepts sockets until the listener fails.
    pub async fn serve(self: Arc<Self>, listener: TcpListener) -> std::io::Result<()> {
        loop {
            let (tcp, _) = listener.accept().await?;
            let _ = tcp.set_nodelay(true);
            let me = self.clone();
            tokio::spawn(async move {
                if let Err(e) = me.socket(tcp).await {
                    tracing::debug!(error = %e, "socket ended");
                }
            });
        }
    }

    async fn socket(self: Arc<Self>, tcp: TcpStream) -> Result<(), BareError> {
        let mut ws = tokio_tungstenite::accept_async(tcp).await?;
        let hello = loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) => break t,
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(e.into()),
                None => return Err(BareError::NoHello),
            }
        };
        if let Ok(ClientFrame::Subscribe { conversation_id, .. }) = serde_json::from_str(&hello) {
            let conv = self.conv(conversation_id);
            let (tx, mut rx) = mpsc::unbounded_channel();
            {
                let mut sockets = conv.sockets.lock().unwrap_or_else(|e| e.into_inner());
                let _ = tx.send(subscribed_frame(conversation_id, conv.seq.current()).into());
                sockets.push(tx);
            }
            let (mut sink, mut stream) = ws.split();
            // Reads (and so answers pings and sees the close) until the client goes.
            let reader = tokio::spawn(async move { while let Some(Ok(_)) = stream.next().await {} });
            let mut batch = Vec::with_capacity(BATCH);
            while rx.recv_many(&mut batch, BATCH).await > 0 {
                for frame in batch.drain(..) {
                    sink.feed(Message::Text(frame)).await?;
                }
                sink.flush().await?;
            }
            reader.abort();
            return Ok(());
        }
        let start: StartRequest = serde_json::from_str(&hello).map_err(|e| BareError::BadHello(e.to_string()))?;
        let conv = self.conv(start.conversation_id);
        let reply = Source::reserve(&conv.seq);
        let text = serde_json::to_string(&reply).map_err(|e| BareError::BadReply(e.to_string()))?;
        ws.send(Message::Text(text.into())).await?;
        let _ = ws.close(None).await;
        let _streaming = self.streaming.enter();
        let script = Script::for_prompt(&start.prompt);
        let conversation_id = start.conversation_id;
        let window = || start.coalesce.window(self.streaming.current());
        Source::play(conversation_id, reply.response_id, &script, window, &conv.seq, |frame| {
            let frame = Utf8Bytes::from(frame);
            let mut sockets = conv.sockets.lock().unwrap_or_else(|e| e.into_inner());
            // A closed socket's writer is gone: forget it.
            sockets.retain(|tx| tx.send(frame.clone()).is_ok());
        })
        .await;
        Ok(())
    }
}

/// Asks the broadcaster at `url` to stream a response (the baseline's "send a message").
pub async fn start(url: &str, request: &StartRequest) -> Result<StartReply, BareError> {
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await?;
    let text = serde_json::to_string(request).map_err(|e| BareError::BadReply(e.to_string()))?;
    ws.send(Message::Text(text.into())).await?;
    let reply = loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => break t,
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(e.into()),
            None => return Err(BareError::BadReply("closed without a reply".into())),
        }
    };
    let _ = ws.close(None).await;
    serde_json::from_str(&reply).map_err(|e| BareError::BadReply(format!("{e}: {reply}")))
}
