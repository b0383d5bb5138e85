//! One socket's life: two tasks. The reader (the upgrade task itself) parses client frames and applies commands;
//! the writer drains the socket's bounded queue, writing everything pending together (`feed` each frame, one
//! `flush`), so a burst costs one syscall rather than one per frame.
//!
//! Either side ending ends the other: the reader closes the [`Conn`] when the client goes away, the writer when a
//! write fails, the queue overflows (`lagged`) or the server shuts down (close code 1001, "going away").

use crate::cmd::Command;
use crate::conn::{Conn, User};
use crate::hub::Hub;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, close_code};
use futures::stream::SplitSink;
use futures::{SinkExt, StreamExt};
use rh_auth::Claims;
use rh_protocol::ServerFrame;
use rh_protocol::frame::ErrorCode;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, mpsc};

/// Most frames written between two flushes.
const WRITE_BATCH: usize = 64;

/// Serves one upgraded socket until it closes. `_permit` is the connection-limit slot, returned on drop.
pub async fn run(hub: Arc<Hub>, socket: WebSocket, claims: Claims, _permit: OwnedSemaphorePermit) {
    let user = User { id: claims.sub, name: claims.name };
    let (conn, rx) = Conn::new(hub.next_id(), user, hub.config.socket_queue as usize);
    let conn = Arc::new(conn);
    hub.metrics.connections.inc();
    tracing::debug!(conn = conn.id, user = %conn.user.id, "socket open");

    hub.inboxes.attach(&conn);
    let (sink, mut stream) = socket.split();
    let writer = tokio::spawn(write_loop(hub.clone(), conn.clone(), sink, rx));

    loop {
        let msg = tokio::select! {
            _ = conn.closed().cancelled() => break,
            m = stream.next() => m,
        };
        match msg {
            Some(Ok(Message::Text(text))) => match Command::parse(text.as_str()) {
                Ok(cmd) => cmd.apply(&hub, &conn),
                Err(refusal) => {
                    hub.metrics.frames_refused.with_label_values(&[refusal.code.as_str()]).inc();
                    let _ = conn.send_frame(&refusal.frame());
                }
            },
            Some(Ok(Message::Binary(_))) => {
                hub.metrics.frames_refused.with_label_values(&[ErrorCode::BadRequest.as_str()]).inc();
                let _ = conn.send_frame(&ServerFrame::error(
                    ErrorCode::BadRequest,
                    "binary frames are not supported; send JSON text frames",
                    None,
                ));
            }
            Some(Ok(Message::Close(_))) | None => break,
            Some(Ok(_)) => {} // ping/pong are answered by the WebSocket layer
            Some(Err(e)) => {
                tracing::debug!(conn = conn.id, error = %e, "socket read failed");
                break;
            }
        }
    }

    conn.close();
    hub.disconnect(&conn);
    let _ = writer.await;
    hub.metrics.connections.dec();
    tracing::debug!(conn = conn.id, "socket closed");
}

async fn write_loop(
    hub: Arc<Hub>,
    conn: Arc<Conn>,
    mut sink: SplitSink<WebSocket, Message>,
    mut rx: mpsc::Receiver<Utf8Bytes>,
) {
    let mut close = CloseFrame { code: close_code::NORMAL, reason: Utf8Bytes::from_static("") };
    loop {
        tokio::select! {
            biased;
            _ = hub.shutdown.cancelled() => {
                close = CloseFrame { code: close_code::AWAY, reason: Utf8Bytes::from_static("server shutting down; reconnect") };
                break;
            }
            _ = conn.closed().cancelled() => {
                if conn.farewell().is_some() {
                    close = CloseFrame { code: close_code::POLICY, reason: Utf8Bytes::from_static("lagged") };
                }
                break;
            }
            first = rx.recv() => {
                let Some(first) = first else { break };
                // A client that stops reading blocks the write; closing the conn (e.g. when its queue overflows)
                // must still end it.
                let wrote = tokio::select! {
                    r = write_batch(&mut sink, &mut rx, first) => r,
                    _ = conn.closed().cancelled() => Err(0),
                };
                match wrote {
                    Ok(n) => hub.metrics.frames_out.inc_by(n as u64),
                    Err(_) => {
                        conn.close();
                        break;
                    }
                }
            }
        }
    }
    // Best effort goodbye: the reason frame (e.g. `lagged`), then a close frame.
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        if let Some(last) = conn.farewell() {
            sink.send(Message::Text(last)).await?;
        }
        sink.send(Message::Close(Some(close))).await
    })
    .await;
    conn.close();
}

/// Writes `first` and whatever else is queued (up to [`WRITE_BATCH`]), then flushes once.
async fn write_batch(
    sink: &mut SplitSink<WebSocket, Message>,
    rx: &mut mpsc::Receiver<Utf8Bytes>,
    first: Utf8Bytes,
) -> Result<usize, usize> {
    sink.feed(Message::Text(first)).await.map_err(|_| 0usize)?;
    let mut n = 1;
    while n < WRITE_BATCH {
        match rx.try_recv() {
            Ok(frame) => {
                sink.feed(Message::Text(frame)).await.map_err(|_| n)?;
                n += 1;
            }
            Err(_) => break,
        }
    }
    sink.flush().await.map_err(|_| n)?;
    Ok(n)
}
