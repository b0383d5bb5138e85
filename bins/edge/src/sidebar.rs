//! Sidebars: `rh.user.<id>.inbox` messages forwarded as `sidebar` frames to every socket of that user on this
//! node. A `removed` also ends that user's subscription to the conversation with `access_revoked` (if the
//! conversation's own `participant.removed` did not already).
//!
//! ## One wildcard subscription per process, not one per user
//! Each process subscribes `rh.user.*.inbox` once and routes by the user id in the subject to its local sockets;
//! messages for users with no socket here are dropped after one map lookup, without decoding. A NATS subscription
//! per user costs about 8 KiB of resident memory in the client (its message channel), which alone would be
//! 40 % of the 20 KiB budget of an idle connection; inbox traffic is human-rate (shares, revocations, deletes),
//! so receiving all of it on every node is cheap. It also makes a new socket's sidebar live at once: the
//! subscription exists before the edge reports ready.

use crate::conn::Conn;
use crate::hub::Hub;
use crate::lock;
use futures::StreamExt;
use rh_protocol::frame::SidebarAction;
use rh_protocol::rpc::InboxMessage;
use rh_protocol::{ServerFrame, subjects};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use uuid::Uuid;

/// Local sockets by user.
#[derive(Default)]
pub struct Inboxes {
    users: Mutex<HashMap<Uuid, Vec<Arc<Conn>>>>,
}

impl Inboxes {
    /// Routes the user's inbox to this socket from now on.
    pub fn attach(&self, conn: &Arc<Conn>) {
        lock(&self.users).entry(conn.user.id).or_default().push(conn.clone());
    }

    /// Stops routing to a closing socket.
    pub fn detach(&self, conn: &Arc<Conn>) {
        let mut users = lock(&self.users);
        if let Some(conns) = users.get_mut(&conn.user.id) {
            conns.retain(|c| !Arc::ptr_eq(c, conn));
            if conns.is_empty() {
                users.remove(&conn.user.id);
            }
        }
    }

    fn sockets_of(&self, user: Uuid) -> Vec<Arc<Conn>> {
        lock(&self.users).get(&user).cloned().unwrap_or_default()
    }
}

/// `rh.user.<id>.inbox` → the id.
fn user_of(subject: &str) -> Option<Uuid> {
    let mut parts = subject.split('.');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some("rh"), Some("user"), Some(id), Some("inbox")) => Uuid::parse_str(id).ok(),
        _ => None,
    }
}

/// Subscribes `rh.user.*.inbox` (before the edge reports ready) and returns the task to spawn.
pub async fn start(hub: Arc<Hub>) -> anyhow::Result<impl std::future::Future<Output = ()>> {
    let sub = hub.nats.subscribe(subjects::USER_INBOX_ALL).await?;
    Ok(run(hub, sub))
}

async fn run(hub: Arc<Hub>, mut sub: async_nats::Subscriber) {
    while let Some(msg) = sub.next().await {
        let Some(user) = user_of(msg.subject.as_str()) else { continue };
        let targets = hub.inboxes.sockets_of(user);
        if targets.is_empty() {
            continue;
        }
        let m: InboxMessage = match serde_json::from_slice(&msg.payload) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(%user, error = %e, "not an inbox message");
                continue;
            }
        };
        let frame: axum::extract::ws::Utf8Bytes =
            ServerFrame::Sidebar { action: m.action, conversation_id: m.conversation_id, conversation: m.conversation }
                .to_json()
                .into();
        for conn in targets {
            let _ = conn.send(frame.clone());
            if m.action == SidebarAction::Removed {
                hub.revoke(&conn, m.conversation_id, None);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_from_subject() {
        let id = Uuid::new_v4();
        assert_eq!(user_of(&subjects::user_inbox(id)), Some(id));
        assert_eq!(user_of("rh.user.x.inbox"), None);
        assert_eq!(user_of("rh.conv.x.event"), None);
    }
}
