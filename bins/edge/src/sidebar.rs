//! Sidebars: `rh.user.<id>.inbox` messages forwarded as `sidebar` frames to every socket of that user on this
//! node. A `removed` (or `deleted`) also ends that user's subscription to the conversation with `access_revoked`
//! (if the conversation's own `participant.removed` / `conversation.deleted` did not already), with the same
//! reason: the inbox message can overtake the stream event, and a deletion must never read as a removed access.
//!
//! ## One subscription per connected user
//! An edge receives only the inboxes of the users connected to it: the first socket of a user subscribes
//! `rh.user.<id>.inbox`, the last one to close unsubscribes. The subscription is registered at the server (a flush)
//! before the socket's upgrade is answered, so a client's sidebar is live as soon as its socket is open. It costs
//! one NATS subscription per connected user (its message channel, a few KiB of resident memory in the client),
//! paid once per user however many tabs they open.

use crate::fanout::Registry;
use crate::lock;
use crate::socket::conn::Conn;
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

#[derive(Debug, thiserror::Error)]
enum InboxError {
    #[error("subscribing: {0}")]
    Subscribe(#[from] async_nats::SubscribeError),
    #[error("registering the subscription: {0}")]
    Flush(#[from] async_nats::client::FlushError),
    #[error("the server did not confirm the subscription in time")]
    Timeout,
}

/// Local sockets by user, each user with its inbox subscription.
pub struct Inboxes {
    nats: async_nats::Client,
    registry: Arc<Registry>,
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
    pub fn new(nats: async_nats::Client, registry: Arc<Registry>) -> Self {
        Inboxes { nats, registry, users: Mutex::new(HashMap::new()), next_id: AtomicU64::new(1) }
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
                Ok(sub) => {
                    tokio::spawn(self.clone().route(user, id, sub, stop));
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

    async fn subscribe(&self, user: Uuid) -> Result<async_nats::Subscriber, InboxError> {
        let sub = self.nats.subscribe(subjects::user_inbox(user)).await?;
        tokio::time::timeout(ATTACH_TIMEOUT, self.nats.flush()).await.map_err(|_| InboxError::Timeout)??;
        Ok(sub)
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

    /// The user's sockets, if `id` is still their current subscription.
    fn sockets_of(&self, user: Uuid, id: u64) -> Vec<Arc<Conn>> {
        lock(&self.users).get(&user).filter(|i| i.id == id).map(|i| i.conns.clone()).unwrap_or_default()
    }

    async fn route(self: Arc<Self>, user: Uuid, id: u64, mut sub: async_nats::Subscriber, stop: CancellationToken) {
        loop {
            let msg = tokio::select! {
                _ = stop.cancelled() => return,
                m = sub.next() => match m { Some(m) => m, None => return },
            };
            let m: InboxMessage = match serde_json::from_slice(&msg.payload) {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(%user, error = %e, "not an inbox message");
                    continue;
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
            for conn in self.sockets_of(user, id) {
                let _ = conn.send(frame.clone());
                match m.action {
                    SidebarAction::Removed => {
                        self.registry.revoke(&conn, m.conversation_id, None, RevokeReason::Removed)
                    }
                    SidebarAction::Deleted => {
                        self.registry.revoke(&conn, m.conversation_id, None, RevokeReason::Deleted)
                    }
                    SidebarAction::Added | SidebarAction::Changed | SidebarAction::Activity => {}
                }
            }
        }
    }
}
