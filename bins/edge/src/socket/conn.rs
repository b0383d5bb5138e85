//! One socket's shared handle ([`Conn`]): who it is, its bounded outbound queue, and its subscriptions.
//!
//! Everything that wants to tell a client something (feeds, replay, commands, sidebar, presence) calls
//! [`Conn::send`], which never waits: a full queue means the client is too slow, and the socket is closed with a
//! `lagged` error instead of holding up the feed that fans out to thousands of other sockets.
//!
//! ## The outbound queue
//! A plain `Mutex<VecDeque>` plus the writer's waker, not a channel: a fan-out to 10,000 sockets is 10,000
//! `send`s per event, so each must be cheap. `send` wakes the writer only when it is parked (the first frame after
//! it drained the queue), and the writer takes EVERYTHING queued in one lock (swapping deques, so no allocation)
//! and writes it with one flush. Closing the socket is signalled through the same lock, so the writer waits on
//! one thing only instead of re-registering on cancellation tokens at every wake-up.

use crate::fanout::compact::Outgoing;
use axum::extract::ws::Utf8Bytes;
use rh_protocol::frame::ErrorCode;
use rh_protocol::{Permission, ServerFrame};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};
use std::task::{Context, Poll, Waker};
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

/// The outbound queue shared by the senders and the socket's writer.
struct Outbox {
    frames: VecDeque<Outgoing>,
    /// The writer's waker while it is parked on an empty queue; taken (and woken) by the next `send`/close.
    waker: Option<Waker>,
    closed: bool,
}

/// One open socket.
pub struct Conn {
    pub id: u64,
    pub user: User,
    outbox: Mutex<Outbox>,
    capacity: usize,
    /// Cancelled to close the socket (too slow, server shutting down, client gone).
    closed: CancellationToken,
    /// Set when the server is shutting down: the writer says goodbye with close code 1001.
    going_away: AtomicBool,
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
    /// A socket whose queue holds at most `queue` frames.
    pub fn new(id: u64, user: User, queue: usize) -> Self {
        Conn {
            id,
            user,
            outbox: Mutex::new(Outbox { frames: VecDeque::new(), waker: None, closed: false }),
            capacity: queue.max(1),
            closed: CancellationToken::new(),
            going_away: AtomicBool::new(false),
            farewell: OnceLock::new(),
            subs: Mutex::new(HashMap::new()),
        }
    }

    /// Queues a frame without waiting. On a full queue the socket is closed with a `lagged` error; returns
    /// `Err(Lagged)` only for the call that caused that (so a caller can count dropped sockets once).
    pub fn send(&self, frame: Utf8Bytes) -> Result<(), SendError> {
        self.send_outgoing(frame.into())
    }

    /// [`Conn::send`] for a frame that may carry a delta to merge ([`crate::fanout::compact`]).
    pub fn send_outgoing(&self, frame: Outgoing) -> Result<(), SendError> {
        let waker = {
            let mut out = crate::lock(&self.outbox);
            if out.closed {
                return Err(SendError::Closed);
            }
            if out.frames.len() >= self.capacity {
                None
            } else {
                out.frames.push_back(frame);
                Some(out.waker.take())
            }
        };
        match waker {
            Some(w) => {
                if let Some(w) = w {
                    w.wake();
                }
                Ok(())
            }
            None => {
                let first = self.close_with(ServerFrame::error(
                    ErrorCode::Lagged,
                    "this socket fell too far behind and was closed; reconnect and resubscribe with your last seq",
                    None,
                ));
                if first { Err(SendError::Lagged) } else { Err(SendError::Closed) }
            }
        }
    }

    /// The writer's wait: moves every queued frame into `batch` (which must be empty) and returns `Ready(true)`,
    /// or `Ready(false)` once the socket is closed (queued frames are then dropped, as the socket goes away).
    pub(crate) fn poll_take(&self, cx: &mut Context<'_>, batch: &mut VecDeque<Outgoing>) -> Poll<bool> {
        let mut out = crate::lock(&self.outbox);
        if out.closed {
            return Poll::Ready(false);
        }
        if !out.frames.is_empty() {
            std::mem::swap(&mut out.frames, batch);
            return Poll::Ready(true);
        }
        match &out.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => out.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    /// Serializes and queues a frame (see [`Conn::send`]).
    pub fn send_frame(&self, frame: &ServerFrame) -> Result<(), SendError> {
        self.send(frame.to_json().into())
    }

    /// Free slots of the outbound queue (replay leaves some room for live control frames).
    pub fn queue_room(&self) -> usize {
        self.capacity.saturating_sub(crate::lock(&self.outbox).frames.len())
    }

    /// Closes the socket after sending `last`. Returns false if a last frame was already set.
    pub fn close_with(&self, last: ServerFrame) -> bool {
        let first = self.farewell.set(last.to_json().into()).is_ok();
        self.close();
        first
    }

    /// Closes the socket without a last frame.
    pub fn close(&self) {
        let waker = {
            let mut out = crate::lock(&self.outbox);
            out.closed = true;
            out.frames.clear();
            out.waker.take()
        };
        self.closed.cancel();
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Closes the socket because the server is shutting down (the writer sends close code 1001).
    pub fn go_away(&self) {
        self.going_away.store(true, Ordering::Relaxed);
        self.close();
    }

    pub(crate) fn is_going_away(&self) -> bool {
        self.going_away.load(Ordering::Relaxed)
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
