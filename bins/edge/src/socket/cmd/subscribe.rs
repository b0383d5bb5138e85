//! `subscribe {conversation_id, after_seq?, grant?}`: asks the api whether the user may see the conversation
//! (`rh.api.access`) — or takes the signed grant the client got with the history, when it is this person's, for
//! this conversation, unexpired, and the subscription starts at or before its position ([`rh_auth::SubscribeGrant`]
//! says why that is as exact as asking) — answers `subscribed {conversation_id, permission, seq}` (seq = `after_seq`, or the
//! `history_seq` the api reports), then catches the client up on what it missed and continues live (see [`crate::fanout::registry`]).
//! A refusal is an `error` frame (`not_found` / `forbidden`) with `ref` = the conversation id.
//!
//! Subscribing again to a conversation the socket already follows replaces the old subscription.

use crate::fanout::Joined;
use crate::fanout::catch_up::CatchUpFrom;
use crate::hub::Hub;
use crate::lock;
use crate::socket::conn::{Conn, SubState, TypingGate};
use rh_protocol::frame::ErrorCode;
use rh_protocol::rpc::{AccessGrant, AccessRequest};
use rh_protocol::{ServerFrame, subjects};
use std::sync::Arc;
use std::time::Instant;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Most conversations one socket may follow at once (a sidebar shows one conversation, a few tabs a few).
pub const MAX_SUBSCRIPTIONS_PER_SOCKET: usize = 64;

#[derive(Debug)]
pub struct Subscribe {
    pub conversation_id: Uuid,
    pub after_seq: Option<u64>,
    /// Merge runs of missed deltas into one (see [`crate::fanout::catch_up`]).
    pub compact: bool,
    /// A signed grant from `GET /conversations/{id}`.
    pub grant: Option<String>,
}

impl Subscribe {
    pub fn apply(self, hub: &Arc<Hub>, conn: &Arc<Conn>) {
        let conv = self.conversation_id;
        hub.registry().end_subscription(conn, conv, None);
        let generation = hub.next_id();
        let cancel = CancellationToken::new();
        {
            let mut subs = lock(&conn.subs);
            if subs.len() >= MAX_SUBSCRIPTIONS_PER_SOCKET {
                drop(subs);
                let _ = conn.send_frame(&ServerFrame::error(
                    ErrorCode::BadRequest,
                    format!("a socket follows at most {MAX_SUBSCRIPTIONS_PER_SOCKET} conversations"),
                    Some(conv.to_string()),
                ));
                return;
            }
            subs.insert(
                conv,
                SubState { generation, permission: None, typing: TypingGate::Held(None), cancel: cancel.clone() },
            );
        }
        let (hub, conn) = (hub.clone(), conn.clone());
        tokio::spawn(async move { self.run(&hub, &conn, generation, cancel).await });
    }

    async fn run(self, hub: &Arc<Hub>, conn: &Arc<Conn>, generation: u64, cancel: CancellationToken) {
        let conv = self.conversation_id;
        let started = Instant::now();
        let signed = self.signed_grant(hub, conn);
        let grant = match signed.clone() {
            Some(g) => {
                hub.metrics().signed_grants.inc();
                Ok(g)
            }
            None => {
                let req = AccessRequest { user_id: conn.user.id, conversation_id: conv };
                let grant = tokio::select! {
                    _ = cancel.cancelled() => return,
                    r = rh_bus::request::<_, AccessGrant>(hub.nats(), subjects::API_ACCESS, &req, hub.request_timeout()) => r,
                };
                hub.metrics().access_seconds.observe(started.elapsed().as_secs_f64());
                grant
            }
        };
        let grant = match grant {
            Ok(g) => g,
            Err(e) => {
                // Forget the pending subscription, but only if it is still this one.
                let still_ours = {
                    let mut subs = lock(&conn.subs);
                    let ours = subs.get(&conv).is_some_and(|s| s.generation == generation);
                    if ours {
                        subs.remove(&conv);
                    }
                    ours
                };
                if still_ours {
                    let _ = conn.send_frame(&super::request_error(&e, conv.to_string()));
                }
                return;
            }
        };
        conn.set_permission(conv, generation, grant.permission);
        let after_seq = self.after_seq.unwrap_or(grant.history_seq);
        // `subscribed` first, so it precedes every event of the subscription.
        let subscribed =
            ServerFrame::Subscribed { conversation_id: conv, permission: grant.permission, seq: after_seq };
        if conn.send_frame(&subscribed).is_err() {
            return;
        }
        let registry = hub.registry();
        match registry.join(conn, conv, generation, after_seq, grant.history_seq, self.compact) {
            Joined::Gone => {}
            Joined::Live => {
                hub.metrics().catch_up_seconds.observe(started.elapsed().as_secs_f64());
                open_typing(hub, conn, conv, generation);
                registry.presence_touch(conv, Some(conn.clone()));
            }
            Joined::CatchUp { feed, joined_at } => {
                open_typing(hub, conn, conv, generation);
                registry.presence_touch(conv, Some(conn.clone()));
                let how = CatchUpFrom {
                    after_seq,
                    grant_seq: grant.history_seq,
                    joined_at,
                    compact: self.compact,
                    signed: signed.is_some(),
                };
                registry.catch_up(feed, conn, generation, how, cancel, started).await;
            }
        }
    }

    /// The client's signed grant, if it holds for this subscription: else the api is asked.
    fn signed_grant(&self, hub: &Hub, conn: &Conn) -> Option<AccessGrant> {
        let g = hub.keys().verify_grant(self.grant.as_deref()?).ok()?;
        let fits = g.sub == conn.user.id
            && g.conv == self.conversation_id
            // Access changes after the grant are events past `g.seq`: the catch-up must pass them.
            && self.after_seq.is_none_or(|after| after <= g.seq);
        fits.then_some(AccessGrant { permission: g.permission, history_seq: g.seq })
    }
}

/// The subscription has joined its feed: `typing` applies at once from now on, and one sent before (while access
/// was being checked) applies now.
fn open_typing(hub: &Arc<Hub>, conn: &Arc<Conn>, conversation_id: Uuid, generation: u64) {
    if let Some(typing) = conn.open_typing(conversation_id, generation) {
        super::Typing { conversation_id, typing }.apply(hub, conn);
    }
}
