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
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::task::{Context, Poll, Waker};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// The authenticated person behind a socket (from the api's `socket_auth` grant).
#[derive(Debug)]
pub struct User {
    pub id: Uuid,
    pub name: String,
    /// The login session: the socket closes when it ends (`rh.ctl.session.ended`).
    pub session: Uuid,
    /// The socket asked for `sidebar` frames (the default; `?sidebar=off` is for programs that only follow
    /// conversations). Revocations reach it either way.
    pub sidebar: bool,
}

/// This socket's view of one of its subscriptions.
#[derive(Debug, Clone)]
pub struct SubState {
    /// Distinguishes a subscription from an earlier one to the same conversation on the same socket, so a late
    /// answer for an ended subscription never touches the new one.
    pub generation: u64,
    /// `None` until the api granted access.
    pub permission: Option<Permission>,
    /// Where the socket's `typing` for the conversation goes.
    pub typing: TypingGate,
    /// Cancelled when the subscription ends (stops its replay).
    pub cancel: CancellationToken,
}

/// A subscription's `typing`, before and after it joined its conversation's feed.
///
/// A client may send `typing` right after `subscribe` (the web client does when someone types at once in a
/// conversation they just opened). Until the access check has answered and the subscription has joined the feed,
/// the frame can be neither refused (access is not known yet; a `not_found` would read as the subscribe's refusal)
/// nor shown (presence counts only joined subscriptions), so the last one waits and applies when it joins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TypingGate {
    /// Not joined yet: the last `typing` sent meanwhile, if any.
    Held(Option<bool>),
    /// Joined: `typing` applies at once.
    Open,
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
    /// When the socket's access token expires (Unix seconds): it closes then, unless an `auth` frame moved it.
    expires_at: AtomicU64,
    /// Woken when `expires_at` moves.
    reauthenticated: tokio::sync::Notify,
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
    pub fn new(id: u64, user: User, queue: usize, expires_at: u64) -> Self {
        Conn {
            id,
            user,
            outbox: Mutex::new(Outbox { frames: VecDeque::new(), waker: None, closed: false }),
            capacity: queue.max(1),
            closed: CancellationToken::new(),
            going_away: AtomicBool::new(false),
            farewell: OnceLock::new(),
            subs: Mutex::new(HashMap::new()),
            expires_at: AtomicU64::new(expires_at),
            reauthenticated: tokio::sync::Notify::new(),
        }
    }

    /// When the socket's token expires (Unix seconds).
    pub fn expires_at(&self) -> u64 {
        self.expires_at.load(Ordering::Relaxed)
    }

    /// A fresh token of the same session was presented: the socket lives until `expires_at`.
    pub fn reauthenticate(&self, expires_at: u64) {
        self.expires_at.fetch_max(expires_at, Ordering::Relaxed);
        self.reauthenticated.notify_waiters();
    }

    /// Resolves when the token expires (and no `auth` frame extended it).
    pub async fn expired(&self) {
        loop {
            let woken = self.reauthenticated.notified();
            let now =
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
            let left = self.expires_at().saturating_sub(now);
            if left == 0 {
                return;
            }
            tokio::select! {
                _ = tokio::time::sleep(std::time::Duration::from_secs(left)) => {}
                _ = woken => {}
            }
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

    /// Closes the socket with an `error` frame (e.g. its session ended, its token expired).
    pub fn close_for(&self, code: ErrorCode, message: &str) {
        self.close_with(ServerFrame::error(code, message, None));
    }

    pub(crate) fn farewell(&self) -> Option<Utf8Bytes> {
        self.farewell.get().cloned()
    }

    /// The cached permission on a subscribed conversation (`None`: not subscribed, or access not granted yet).
    pub fn permission(&self, conversation: Uuid) -> Option<Permission> {
        crate::lock(&self.subs).get(&conversation).and_then(|s| s.permission)
    }

    /// Holds `typing` while the subscription to `conversation` has not joined its feed. `Some(gate)` is the gate it
    /// met (`Held`: kept, to apply on joining); `None`: the socket does not follow the conversation.
    pub fn hold_typing(&self, conversation: Uuid, typing: bool) -> Option<TypingGate> {
        let mut subs = crate::lock(&self.subs);
        let sub = subs.get_mut(&conversation)?;
        if let TypingGate::Held(held) = &mut sub.typing {
            *held = Some(typing);
        }
        Some(sub.typing)
    }

    /// The subscription `generation` joined its feed: `typing` applies at once from now on. Returns the `typing`
    /// held until now.
    pub fn open_typing(&self, conversation: Uuid, generation: u64) -> Option<bool> {
        let mut subs = crate::lock(&self.subs);
        let sub = subs.get_mut(&conversation).filter(|s| s.generation == generation)?;
        match std::mem::replace(&mut sub.typing, TypingGate::Open) {
            TypingGate::Held(held) => held,
            TypingGate::Open => None,
        }
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
