//! One socket's life: two tasks. The reader (the upgrade task itself) parses client frames and applies commands;
//! the writer drains the socket's bounded queue, writing everything pending together (`feed` each frame, one
//! `flush`), so a burst costs one syscall rather than one per frame (tungstenite writes out on its own only when
//! its write buffer passes [`super::server`]'s `WS_WRITE_BUFFER_BYTES`).
//!
//! Either side ending ends the other: the reader closes the [`Conn`] when the client goes away or the server
//! shuts down (close code 1001, "going away"), the writer when a write fails; a queue overflow (`lagged`) closes
//! it from the sending side. The writer waits on the queue alone (`Conn::poll_take`), which also reports the
//! close, so a delivery costs it one lock and no cancellation-token bookkeeping.

use super::cmd::Command;
use super::conn::Conn;
use super::rate::CommandRate;
use crate::fanout::compact::Outgoing;
use crate::hub::Hub;
use crate::sidebar::Attached;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, close_code};
use futures::stream::SplitSink;
use futures::{SinkExt, StreamExt};
use rh_protocol::ServerFrame;
use rh_protocol::frame::ErrorCode;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::OwnedSemaphorePermit;

/// Serves one upgraded socket until it closes. `inbox` routes its user's inbox to it until dropped
/// ([`super::server`] attached it before the upgrade); `_permit` is the connection-limit slot, returned on drop.
pub async fn run(hub: Arc<Hub>, socket: WebSocket, conn: Arc<Conn>, inbox: Attached, _permit: OwnedSemaphorePermit) {
    hub.metrics().connections.inc();
    tracing::debug!(conn = conn.id, user = %conn.user.id, "socket open");

    let (sink, mut stream) = socket.split();
    let writer = tokio::spawn(write_loop(hub.clone(), conn.clone(), sink));
    let mut rate = CommandRate::new(hub.config().commands_burst, hub.config().commands_per_sec, Instant::now());

    loop {
        let msg = tokio::select! {
            _ = conn.closed().cancelled() => break,
            _ = hub.shutdown().cancelled() => {
                conn.go_away();
                break;
            }
            _ = conn.expired() => {
                hub.metrics().sockets_ended.with_label_values(&["token_expired"]).inc();
                conn.close_for(ErrorCode::TokenExpired, "your token expired; reconnect with a new ticket (or send auth before it expires)");
                break;
            }
            m = stream.next() => m,
        };
        if let Some(Ok(Message::Text(_) | Message::Binary(_))) = &msg
            && let Err(wait) = rate.take(Instant::now())
        {
            hub.metrics().frames_refused.with_label_values(&[ErrorCode::RateLimited.as_str()]).inc();
            let message = "too many commands on this socket; slow down";
            let _ = conn.send_frame(&ServerFrame::rate_limited(message, wait.as_millis() as u64 + 1, None));
            continue;
        }
        match msg {
            Some(Ok(Message::Text(text))) => match Command::parse(text.as_str()) {
                Ok(cmd) => cmd.apply(&hub, &conn),
                Err(refusal) => {
                    hub.metrics().frames_refused.with_label_values(&[refusal.code.as_str()]).inc();
                    let _ = conn.send_frame(&refusal.frame());
                }
            },
            Some(Ok(Message::Binary(_))) => {
                hub.metrics().frames_refused.with_label_values(&[ErrorCode::BadRequest.as_str()]).inc();
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
    hub.registry().disconnect(&conn);
    drop(inbox);
    let _ = writer.await;
    hub.metrics().connections.dec();
    tracing::debug!(conn = conn.id, "socket closed");
}

async fn write_loop(hub: Arc<Hub>, conn: Arc<Conn>, mut sink: SplitSink<WebSocket, Message>) {
    let mut batch = VecDeque::new();
    loop {
        if !std::future::poll_fn(|cx| conn.poll_take(cx, &mut batch)).await {
            break;
        }
        let folded = crate::fanout::compact::merge_runs(&mut batch);
        if folded > 0 {
            hub.metrics().deltas_merged.inc_by(folded as u64);
        }
        // A client that stops reading blocks the write; closing the conn (e.g. when its queue overflows) must
        // still end it. `biased`: the write usually completes at once, and the close branch is then never polled.
        let wrote = tokio::select! {
            biased;
            r = write_batch(&mut sink, &mut batch) => r,
            _ = conn.closed().cancelled() => Err(()),
        };
        match wrote {
            Ok(n) => hub.metrics().frames_out.inc_by(n as u64),
            Err(()) => {
                conn.close();
                break;
            }
        }
    }
    let close = if conn.is_going_away() {
        CloseFrame { code: close_code::AWAY, reason: Utf8Bytes::from_static("server shutting down; reconnect") }
    } else if conn.farewell().is_some() {
        // The farewell `error` frame says why (lagged, token_expired, unauthorized).
        CloseFrame { code: close_code::POLICY, reason: Utf8Bytes::from_static("closed; see the last error frame") }
    } else {
        CloseFrame { code: close_code::NORMAL, reason: Utf8Bytes::from_static("") }
    };
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

/// Writes every frame of `batch` (emptying it, keeping its allocation), then flushes once.
async fn write_batch(sink: &mut SplitSink<WebSocket, Message>, batch: &mut VecDeque<Outgoing>) -> Result<usize, ()> {
    let n = batch.len();
    while let Some(out) = batch.pop_front() {
        if sink.feed(Message::Text(out.frame)).await.is_err() {
            batch.clear();
            return Err(());
        }
    }
    sink.flush().await.map_err(|_| ())?;
    Ok(n)
}
