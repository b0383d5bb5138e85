//! Presence: who is watching each conversation, as unique users across all edge nodes, and which of them are
//! composing a message (`typing`, set by the client frame of that name through [`Registry::set_typing`]).
//!
//! One task per process owns all presence state, so announcements leave in the order the changes happened.
//! - Local changes (a subscription joined or ended) arrive as [`Touch`]es. If this node's set of viewers changed,
//!   the task publishes a [`PresenceAnnounce`] on `rh.presence.<conv>`.
//! - A node subscribes `rh.presence.<conv>` only while it has local viewers of the conversation (so it receives the
//!   presence of its own followed conversations, nothing else), and keeps each other node's latest announcement
//!   until its ttl expires. A node that hears from a node it did not know about for a conversation answers with its
//!   own viewers at once, so a node that just started following learns the others' viewers without waiting for
//!   their next periodic announcement.
//! - Every `ttl/2` the task re-announces its non-empty sets and drops expired ones.
//! - Whenever the merged set (this node ∪ live announcements of the others) changes, every local subscriber of the
//!   conversation gets a `presence` frame; a new subscription always gets the current set.

use crate::fanout::Registry;
use crate::socket::conn::Conn;
use axum::extract::ws::Utf8Bytes;
use futures::StreamExt;
use rh_protocol::frame::Viewer;
use rh_protocol::rpc::PresenceAnnounce;
use rh_protocol::{ServerFrame, subjects};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// "The local viewers of this conversation may have changed."
pub struct Touch {
    pub conversation: Uuid,
    /// A new subscription that must get the current viewers even if they did not change.
    pub greet: Option<Arc<Conn>>,
}

/// What the presence task needs.
pub struct Presence {
    pub registry: Arc<Registry>,
    pub nats: async_nats::Client,
    /// This process (announcements carry it; our own are ignored).
    pub node_id: Uuid,
    pub ttl: Duration,
    pub shutdown: CancellationToken,
}

#[derive(Default)]
struct ConvPresence {
    local: Vec<Viewer>,
    /// Other nodes' viewers with their expiry.
    remote: HashMap<Uuid, (Vec<Viewer>, Instant)>,
    merged: Vec<Viewer>,
    /// Ends the forwarding of `rh.presence.<conv>` (dropping its subscription) when cancelled or dropped.
    subscription: Option<tokio_util::sync::DropGuard>,
}

impl ConvPresence {
    fn merge(&self) -> Vec<Viewer> {
        let mut all: BTreeMap<Uuid, (&str, bool)> = BTreeMap::new();
        for v in self.local.iter().chain(self.remote.values().flat_map(|(v, _)| v.iter())) {
            // Typing on any node is typing.
            all.entry(v.user_id).or_insert((&v.name, false)).1 |= v.typing;
        }
        let mut out: Vec<Viewer> = all
            .into_iter()
            .map(|(user_id, (name, typing))| Viewer { user_id, name: name.to_owned(), typing })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name).then(a.user_id.cmp(&b.user_id)));
        out
    }
}

fn frame(conversation: Uuid, viewers: &[Viewer]) -> Utf8Bytes {
    ServerFrame::Presence { conversation_id: conversation, viewers: viewers.to_vec() }.to_json().into()
}

impl Presence {
    /// Runs until shutdown, then withdraws this node's viewers.
    pub async fn run(self, mut rx: mpsc::UnboundedReceiver<Touch>) {
        let (heard_tx, mut heard) = mpsc::unbounded_channel::<async_nats::Message>();
        let mut state: HashMap<Uuid, ConvPresence> = HashMap::new();
        let mut tick = tokio::time::interval(self.ttl / 2);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                touch = rx.recv() => {
                    let Some(touch) = touch else { return };
                    self.touched(&mut state, touch, &heard_tx).await;
                }
                msg = heard.recv() => {
                    let Some(msg) = msg else { return };
                    self.heard(&mut state, msg).await;
                }
                _ = tick.tick() => {
                    let now = Instant::now();
                    for (conv, cp) in state.iter_mut() {
                        cp.remote.retain(|_, (_, exp)| *exp > now);
                        self.announce(*conv, &cp.local).await;
                        self.refresh(*conv, cp);
                    }
                }
                _ = self.shutdown.cancelled() => {
                    // Withdraw this node's viewers so other nodes update at once instead of after the ttl.
                    for conv in state.keys() {
                        self.announce(*conv, &[]).await;
                    }
                    let _ = self.nats.flush().await;
                    return;
                }
            }
        }
    }

    async fn touched(
        &self,
        state: &mut HashMap<Uuid, ConvPresence>,
        touch: Touch,
        heard: &mpsc::UnboundedSender<async_nats::Message>,
    ) {
        let conv = touch.conversation;
        let local = self.registry.local_viewers(conv);
        if local.is_empty() {
            // Nobody here follows it any more: withdraw, and stop listening to the others.
            if let Some(cp) = state.remove(&conv)
                && !cp.local.is_empty()
            {
                self.announce(conv, &[]).await;
            }
            return;
        }
        let cp = state.entry(conv).or_default();
        if cp.subscription.is_none() {
            cp.subscription = self.listen(conv, heard.clone()).await;
        }
        if cp.local != local {
            cp.local = local;
            self.announce(conv, &cp.local).await;
        }
        let pushed = self.refresh(conv, cp);
        if let Some(conn) = touch.greet
            && !pushed
            && !cp.merged.is_empty()
        {
            let _ = conn.send(frame(conv, &cp.merged));
        }
    }

    /// Subscribes `rh.presence.<conv>`, forwarding what it hears to the task.
    async fn listen(
        &self,
        conv: Uuid,
        heard: mpsc::UnboundedSender<async_nats::Message>,
    ) -> Option<tokio_util::sync::DropGuard> {
        let mut sub = match self.nats.subscribe(subjects::presence(conv)).await {
            Ok(sub) => sub,
            Err(e) => {
                tracing::warn!(%conv, error = %e, "could not subscribe to presence");
                return None;
            }
        };
        let stop = CancellationToken::new();
        let guard = stop.clone().drop_guard();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    m = sub.next() => {
                        let Some(m) = m else { return };
                        if heard.send(m).is_err() {
                            return;
                        }
                    }
                }
            }
        });
        Some(guard)
    }

    async fn heard(&self, state: &mut HashMap<Uuid, ConvPresence>, msg: async_nats::Message) {
        let Ok(a) = serde_json::from_slice::<PresenceAnnounce>(&msg.payload) else {
            tracing::debug!(subject = %msg.subject, "not a presence announcement");
            return;
        };
        if a.node_id == self.node_id {
            return;
        }
        let Some(cp) = state.get_mut(&a.conversation_id) else { return };
        if a.viewers.is_empty() {
            cp.remote.remove(&a.node_id);
        } else {
            let expires = Instant::now() + Duration::from_millis(a.ttl_ms.min(10 * 60 * 1000));
            let new_node = cp.remote.insert(a.node_id, (a.viewers, expires)).is_none();
            if new_node && !cp.local.is_empty() {
                self.announce(a.conversation_id, &cp.local).await;
            }
        }
        self.refresh(a.conversation_id, cp);
    }

    /// Recomputes the merged set; pushes it to local subscribers if it changed. Returns whether it pushed.
    fn refresh(&self, conv: Uuid, cp: &mut ConvPresence) -> bool {
        let merged = cp.merge();
        if merged == cp.merged {
            return false;
        }
        cp.merged = merged;
        self.registry.broadcast(conv, &frame(conv, &cp.merged));
        true
    }

    async fn announce(&self, conv: Uuid, viewers: &[Viewer]) {
        let a = PresenceAnnounce {
            node_id: self.node_id,
            conversation_id: conv,
            viewers: viewers.to_vec(),
            ttl_ms: self.ttl.as_millis() as u64,
        };
        match serde_json::to_vec(&a) {
            Ok(body) => {
                if let Err(e) = self.nats.publish(subjects::presence(conv), body.into()).await {
                    tracing::warn!(error = %e, "could not announce presence");
                }
            }
            Err(e) => tracing::error!(error = %e, "could not serialize presence"),
        }
    }
}
