//! One socket's shared handle ([`Conn`]): who it is, its bounded outbound queue, and its subscriptions.
//!
//! Everything that wants to tell a client something (feeds, replay, commands, sidebar, presence) calls
//! [`Conn::send`], which never waits: a full queue means the client is too slow, and the socket is closed with a
//! `lagged` error instead of holding up the feed that fans out to thousands of other sockets.

use axum::extract::ws::Utf8Bytes;
use rh_protocol::frame::ErrorCode;
use rh_protocol::{Permission, ServerFrame};
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// The authenticated person behind a socket (from the token's claims).
#[derive(Debug)]
pub struct User {
    pub id: Uuid,
    pub name: String,
}

/// This socket's view of one of its subscriptions.
#[derive(Debug, Clone)]
pub struct SubState {
    /// Distinguishes a subscription from an earlier one to the same conversation on the same socket, so a late
    /// answer for an ended subscription never touches the new one.
    pub generation: u64,
    /// `None` until the api granted access.
    pub permission: Option<Permission>,
    /// Cancelled when the subscription ends (stops its replay).
    pub cancel: CancellationToken,
}

/// One open socket.
pub struct Conn {
    pub id: u64,
    pub user: User,
    tx: mpsc::Sender<Utf8Bytes>,
    /// Cancelled to close the socket (too slow, server shutting down, client gone).
    closed: CancellationToken,
    /// The last frame to send before closing (e.g. the `lagged` error), set once.
    farewell: OnceLock<Utf8Bytes>,
    pub subs: Mutex<HashMap<Uuid, SubState>>,
}

/// Why [`Conn::send`] did not queue a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendError {
    /// The queue was full: the socket is being closed as too slow.
    Lagged,
    /// The socket is closed.
    Closed,
}

impl Conn {
    pub fn new(id: u64, user: User, queue: usize) -> (Self, mpsc::Receiver<Utf8Bytes>) {
        let (tx, rx) = mpsc::channel(queue);
        let conn = Conn {
            id,
            user,
            tx,
            closed: CancellationToken::new(),
            farewell: OnceLock::new(),
            subs: Mutex::new(HashMap::new()),
        };
        (conn, rx)
    }

    /// Queues a frame without waiting. On a full queue the socket is closed with a `lagged` error; returns
    /// `Err(Lagged)` only for the call that caused that (so a caller can count dropped sockets once).
    pub fn send(&self, frame: Utf8Bytes) -> Result<(), SendError> {
        match self.tx.try_send(frame) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(_)) => {
                if self.is_closed() {
                    return Err(SendError::Closed);
                }
                let first = self.close_with(ServerFrame::error(
                    ErrorCode::Lagged,
                    "this socket fell too far behind and was closed; reconnect and resubscribe with your last seq",
                    None,
                ));
                if first { Err(SendError::Lagged) } else { Err(SendError::Closed) }
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Err(SendError::Closed),
        }
    }

    /// Serializes and queues a frame (see [`Conn::send`]).
    pub fn send_frame(&self, frame: &ServerFrame) -> Result<(), SendError> {
        self.send(frame.to_json().into())
    }

    /// Free slots of the outbound queue (replay leaves some room for live control frames).
    pub fn queue_room(&self) -> usize {
        self.tx.capacity()
    }

    /// Closes the socket after sending `last`. Returns false if a last frame was already set.
    pub fn close_with(&self, last: ServerFrame) -> bool {
        let first = self.farewell.set(last.to_json().into()).is_ok();
        self.closed.cancel();
        first
    }

    /// Closes the socket without a last frame.
    pub fn close(&self) {
        self.closed.cancel();
    }

    pub fn closed(&self) -> &CancellationToken {
        &self.closed
    }

    pub fn is_closed(&self) -> bool {
        self.closed.is_cancelled()
    }

    pub(crate) fn farewell(&self) -> Option<Utf8Bytes> {
        self.farewell.get().cloned()
    }

    /// The cached permission on a subscribed conversation (`None`: not subscribed, or access not granted yet).
    pub fn permission(&self, conversation: Uuid) -> Option<Permission> {
        crate::lock(&self.subs).get(&conversation).and_then(|s| s.permission)
    }

    /// Sets the cached permission if `generation` is still the current subscription.
    pub fn set_permission(&self, conversation: Uuid, generation: u64, permission: Permission) {
        if let Some(s) = crate::lock(&self.subs).get_mut(&conversation)
            && s.generation == generation
        {
            s.permission = Some(permission);
        }
    }
}
