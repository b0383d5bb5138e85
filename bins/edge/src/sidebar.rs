//! Sidebars: `rh.user.<id>.inbox` messages forwarded as `sidebar` frames to every socket of that user on this
//! node. A `removed` (or `deleted`) also ends that user's subscription to the conversation with `access_revoked`
//! (if the conversation's own `participant.removed` / `conversation.deleted` did not already), with the same
//! reason: the inbox message can overtake the stream event, and a deletion must never read as a removed access.
//!
//! ## One subscription per connected user
//! An edge receives only the inboxes of the users connected to it: the first socket of a user subscribes
//! `rh.live.user.<id>.inbox`, the last one to close unsubscribes. The subscription is registered at the server (a
//! flush) before the socket's upgrade is answered, so a client's sidebar is live as soon as its socket is open. It
//! costs one NATS subscription per connected user (its message channel, a few KiB of resident memory in the
//! client), paid once per user however many tabs they open.
//!
//! ## Nothing missed
//! Sidebar messages are stored in `RH_INBOX` (a few per user, for minutes) and republished live with their stream
//! `seq` and the user's previous one (`Nats-Last-Sequence`). The subscription is anchored at the user's last stored
//! message; each delivered message moves `last`. A message whose predecessor is after `last` (one was lost), or
//! the first after this edge reconnected to NATS, makes the edge read the user's messages after `last` from the
//! stream first, and [`RECONNECT_CHECK`] after a reconnect it reads them anyway: a share made while NATS was
//! down (the api's outbox publishes it when NATS returns) reaches an open sidebar whether the edge had
//! resubscribed by then or not. Duplicates (`seq <= last`) are dropped.
//!
//! Cost: one stored message per sidebar change (and per `activity` marker), the relay's publish waits for an ack
//! instead of a flush, and per connected user one `last_by_subj` read when their first socket opens; reads after
//! `last` happen only after a loss or a reconnect (`docs/delivery.md`, "Sidebars").

use crate::fanout::Registry;
use crate::lock;
use crate::metrics::Metrics;
use crate::socket::conn::Conn;
use async_nats::jetstream::stream::{RawMessageErrorKind, Stream};
use futures::StreamExt;
use rh_protocol::frame::{RevokeReason, SidebarAction};
use rh_protocol::rpc::InboxMessage;
use rh_protocol::{ServerFrame, subjects};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// How long a socket's upgrade waits for its user's inbox subscription to be registered.
const ATTACH_TIMEOUT: Duration = Duration::from_secs(5);
/// How long after a reconnect to NATS (with no message since) a sidebar reads what it missed from the stream.
const RECONNECT_CHECK: Duration = Duration::from_secs(1);
/// Longest pause between attempts to read missed messages while NATS does not answer.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
enum InboxError {
    #[error("subscribing: {0}")]
    Subscribe(#[from] async_nats::SubscribeError),
    #[error("registering the subscription: {0}")]
    Flush(#[from] async_nats::client::FlushError),
    #[error("the server did not confirm the subscription in time")]
    Timeout,
    #[error("reading the user's sidebar messages: {0}")]
    Read(#[from] async_nats::jetstream::stream::RawMessageError),
}

/// Local sockets by user, each user with its inbox subscription.
pub struct Inboxes {
    nats: async_nats::Client,
    /// `RH_INBOX`: where missed messages are read back.
    stream: Stream,
    registry: Arc<Registry>,
    metrics: Metrics,
    users: Mutex<HashMap<Uuid, UserInbox>>,
    next_id: AtomicU64,
}

struct UserInbox {
    /// Tells this subscription from a later one of the same user (after all their sockets closed in between).
    id: u64,
    conns: Vec<Arc<Conn>>,
    /// True once the subscription is registered at the server.
    ready: watch::Receiver<bool>,
    /// Cancelled when the user's last socket closes: the subscription ends.
    stop: CancellationToken,
}

/// A socket's attachment to its user's inbox; detaches when dropped.
pub struct Attached {
    inboxes: Arc<Inboxes>,
    conn: Arc<Conn>,
}

impl Drop for Attached {
    fn drop(&mut self) {
        self.inboxes.detach(&self.conn);
    }
}

impl Inboxes {
    pub fn new(nats: async_nats::Client, stream: Stream, registry: Arc<Registry>, metrics: Metrics) -> Self {
        Inboxes { nats, stream, registry, metrics, users: Mutex::new(HashMap::new()), next_id: AtomicU64::new(1) }
    }

    /// Routes the user's inbox to this socket from now on, subscribing it if this is the user's first socket here.
    /// Returns once the subscription is registered at the server (or after `ATTACH_TIMEOUT`, logged).
    pub async fn attach(self: &Arc<Self>, conn: &Arc<Conn>) -> Attached {
        let user = conn.user.id;
        let (mut ready, start) = {
            let mut users = lock(&self.users);
            match users.get_mut(&user) {
                Some(inbox) => {
                    inbox.conns.push(conn.clone());
                    (inbox.ready.clone(), None)
                }
                None => {
                    let (tx, rx) = watch::channel(false);
                    let (id, stop) = (self.next_id.fetch_add(1, Ordering::Relaxed), CancellationToken::new());
                    let inbox = UserInbox { id, conns: vec![conn.clone()], ready: rx.clone(), stop: stop.clone() };
                    users.insert(user, inbox);
                    (rx, Some((tx, id, stop)))
                }
            }
        };
        let attached = Attached { inboxes: self.clone(), conn: conn.clone() };
        if let Some((tx, id, stop)) = start {
            match self.subscribe(user).await {
                Ok((sub, last)) => {
                    let route = Route { inboxes: self.clone(), user, id, last, connects: self.connects() };
                    tokio::spawn(route.run(sub, stop));
                }
                Err(e) => tracing::warn!(%user, error = %e, "could not subscribe the user's inbox"),
            }
            tx.send_replace(true);
        }
        if tokio::time::timeout(ATTACH_TIMEOUT, ready.wait_for(|r| *r)).await.is_err() {
            tracing::warn!(%user, "the user's inbox subscription is not confirmed yet");
        }
        attached
    }

    /// Subscribes the user's live inbox, then anchors it: the seq of their last stored message (0: none; `None`:
    /// unknown, the stream could not be read, so the first message delivered sets it).
    async fn subscribe(&self, user: Uuid) -> Result<(async_nats::Subscriber, Option<u64>), InboxError> {
        let sub = self.nats.subscribe(subjects::live_user_inbox(user)).await?;
        tokio::time::timeout(ATTACH_TIMEOUT, self.nats.flush()).await.map_err(|_| InboxError::Timeout)??;
        let last = match self.stream.get_last_raw_message_by_subject(&subjects::user_inbox(user)).await {
            Ok(m) => Some(m.sequence),
            Err(e) if e.kind() == RawMessageErrorKind::NoMessageFound => Some(0),
            Err(e) => {
                tracing::warn!(%user, error = %e, "could not anchor the user's sidebar; a loss before its first message goes unseen");
                None
            }
        };
        Ok((sub, last))
    }

    fn connects(&self) -> u64 {
        self.nats.statistics().connects.load(Ordering::Relaxed)
    }

    /// Stops routing to a closing socket; the user's last socket ends the subscription.
    fn detach(&self, conn: &Arc<Conn>) {
        let mut users = lock(&self.users);
        if let Some(inbox) = users.get_mut(&conn.user.id) {
            inbox.conns.retain(|c| !Arc::ptr_eq(c, conn));
            if inbox.conns.is_empty() {
                inbox.stop.cancel();
                users.remove(&conn.user.id);
            }
        }
    }

    /// Closes `user`'s sockets of session `session` (all of theirs when `None`): the session ended.
    pub fn end_session(&self, user: Uuid, session: Option<Uuid>) -> usize {
        let conns = lock(&self.users).get(&user).map(|i| i.conns.clone()).unwrap_or_default();
        let mut closed = 0;
        for conn in conns.iter().filter(|c| session.is_none_or(|s| s == c.user.session)) {
            conn.close_for(rh_protocol::frame::ErrorCode::Unauthorized, "your session ended; sign in again");
            closed += 1;
        }
        closed
    }

    /// The user's sockets, if `id` is still their current subscription: all of them, or only those that show the
    /// sidebar. A program may hold hundreds of `?sidebar=off` sockets; a message they take no part in must not
    /// cost one `Arc` clone each (in load test (b) it was a tenth of the edge's CPU).
    fn sockets_of(&self, user: Uuid, id: u64, all: bool) -> Vec<Arc<Conn>> {
        match lock(&self.users).get(&user).filter(|i| i.id == id) {
            Some(i) => i.conns.iter().filter(|c| all || c.user.sidebar).cloned().collect(),
            None => Vec::new(),
        }
    }

    /// Sends one stored sidebar message to the user's sockets (if `id` is still their subscription).
    fn deliver(&self, user: Uuid, id: u64, payload: &[u8]) {
        let m: InboxMessage = match serde_json::from_slice(payload) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(%user, error = %e, "not an inbox message");
                return;
            }
        };
        let frame: axum::extract::ws::Utf8Bytes = ServerFrame::Sidebar {
            action: m.action,
            conversation_id: m.conversation_id,
            conversation: m.conversation,
            responding: m.responding,
        }
        .to_json()
        .into();
        let revokes = matches!(m.action, SidebarAction::Removed | SidebarAction::Deleted);
        for conn in self.sockets_of(user, id, revokes) {
            if conn.user.sidebar {
                let _ = conn.send(frame.clone());
            }
            match m.action {
                SidebarAction::Removed => self.registry.revoke(&conn, m.conversation_id, None, RevokeReason::Removed),
                SidebarAction::Deleted => self.registry.revoke(&conn, m.conversation_id, None, RevokeReason::Deleted),
                SidebarAction::Added | SidebarAction::Changed | SidebarAction::Activity => {}
            }
        }
    }
}

/// One user's subscription: delivers their sidebar messages in stream order, each once (see the module docs).
struct Route {
    inboxes: Arc<Inboxes>,
    user: Uuid,
    id: u64,
    /// Every message up to this seq was delivered (or predates the subscription); `None`: not known yet.
    last: Option<u64>,
    /// The NATS client's connection count when the stream was last known to be caught up with.
    connects: u64,
}

impl Route {
    async fn run(mut self, mut sub: async_nats::Subscriber, stop: CancellationToken) {
        loop {
            let msg = tokio::select! {
                _ = stop.cancelled() => return,
                m = sub.next() => match m { Some(m) => Some(m), None => return },
                // Restarted by every message: fires once the sidebar has been quiet for RECONNECT_CHECK.
                _ = tokio::time::sleep(RECONNECT_CHECK) => None,
            };
            let reconnected = self.inboxes.connects() != self.connects;
            let Some(msg) = msg else {
                if reconnected {
                    self.read_missed(&stop).await;
                }
                continue;
            };
            let header = |name: &str| msg.headers.as_ref()?.get(name)?.as_str().parse::<u64>().ok();
            let Some(seq) = header("Nats-Sequence") else {
                tracing::warn!(subject = %msg.subject, "sidebar message without Nats-Sequence, skipped");
                continue;
            };
            let previous = header("Nats-Last-Sequence").unwrap_or(0);
            match self.last {
                Some(last) if seq <= last => {}
                Some(last) if reconnected || previous > last => {
                    tracing::info!(user = %self.user, seq, previous, last, "sidebar message missed; reading it back");
                    self.read_missed(&stop).await;
                }
                _ => {
                    self.inboxes.deliver(self.user, self.id, &msg.payload);
                    self.last = Some(seq);
                }
            }
        }
    }

    /// Delivers the user's stored messages after `last`, retrying until it succeeds or the subscription ends.
    async fn read_missed(&mut self, stop: &CancellationToken) {
        let Some(mut last) = self.last else {
            self.connects = self.inboxes.connects();
            return;
        };
        let subject = subjects::user_inbox(self.user);
        let mut failures = 0u32;
        loop {
            // Counted before reading: a reconnect during the read is caught up with at the next check.
            let connects = self.inboxes.connects();
            match self.read_after(&subject, &mut last).await {
                Ok(()) => {
                    self.connects = connects;
                    break;
                }
                Err(e) => {
                    failures += 1;
                    tracing::warn!(user = %self.user, error = %e, failures, "reading missed sidebar messages failed; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep((Duration::from_millis(100) * failures).min(MAX_BACKOFF)) => {}
                        _ = stop.cancelled() => break,
                    }
                }
            }
        }
        self.last = Some(last);
    }

    async fn read_after(&self, subject: &str, last: &mut u64) -> Result<(), InboxError> {
        loop {
            let read = self.inboxes.stream.raw_message_builder().sequence(*last + 1).next_by_subject(subject);
            let msg = match read.send().await {
                Ok(msg) => msg,
                Err(e) if e.kind() == RawMessageErrorKind::NoMessageFound => return Ok(()),
                Err(e) => return Err(e.into()),
            };
            self.inboxes.metrics.sidebar_repaired.inc();
            self.inboxes.deliver(self.user, self.id, &msg.payload);
            *last = msg.sequence;
        }
    }
}
