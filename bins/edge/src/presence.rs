//! Presence: who is watching each conversation, as unique users across all edge nodes.
//!
//! One task per process owns all presence state, so announcements leave in the order the changes happened.
//! - Local changes (a subscription joined or ended) arrive as [`Touch`]es. If this node's set of viewers changed,
//!   the task publishes a [`PresenceAnnounce`] on `rh.presence.<conv>`.
//! - Every node subscribes `rh.presence.*` and keeps each other node's latest announcement until its ttl expires.
//! - Every `ttl/2` the task re-announces its non-empty sets and drops expired ones.
//! - Whenever the merged set (this node ∪ live announcements of the others) changes, every local subscriber of the
//!   conversation gets a `presence` frame; a new subscription always gets the current set.

use crate::conn::Conn;
use crate::hub::Hub;
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
use uuid::Uuid;

/// "The local viewers of this conversation may have changed."
pub struct Touch {
    pub conversation: Uuid,
    /// A new subscription that must get the current viewers even if they did not change.
    pub greet: Option<Arc<Conn>>,
}

#[derive(Default)]
struct ConvPresence {
    local: Vec<Viewer>,
    /// Other nodes' viewers with their expiry.
    remote: HashMap<Uuid, (Vec<Viewer>, Instant)>,
    merged: Vec<Viewer>,
}

impl ConvPresence {
    fn merge(&self) -> Vec<Viewer> {
        let mut all: BTreeMap<Uuid, &str> = BTreeMap::new();
        for v in self.local.iter().chain(self.remote.values().flat_map(|(v, _)| v.iter())) {
            all.entry(v.user_id).or_insert(&v.name);
        }
        let mut out: Vec<Viewer> =
            all.into_iter().map(|(user_id, name)| Viewer { user_id, name: name.to_owned() }).collect();
        out.sort_by(|a, b| a.name.cmp(&b.name).then(a.user_id.cmp(&b.user_id)));
        out
    }

    fn is_empty(&self) -> bool {
        self.local.is_empty() && self.remote.is_empty()
    }
}

fn frame(conversation: Uuid, viewers: &[Viewer]) -> Utf8Bytes {
    ServerFrame::Presence { conversation_id: conversation, viewers: viewers.to_vec() }.to_json().into()
}

/// Subscribes `rh.presence.*` (before the edge reports ready) and returns the task to spawn.
pub async fn start(
    hub: Arc<Hub>,
    rx: mpsc::UnboundedReceiver<Touch>,
) -> anyhow::Result<impl std::future::Future<Output = ()>> {
    let sub = hub.nats.subscribe(subjects::PRESENCE_ALL).await?;
    Ok(run(hub, rx, sub))
}

async fn run(hub: Arc<Hub>, mut rx: mpsc::UnboundedReceiver<Touch>, mut sub: async_nats::Subscriber) {
    let ttl = Duration::from_millis(hub.config.presence_ttl_ms);
    let mut state: HashMap<Uuid, ConvPresence> = HashMap::new();
    let mut tick = tokio::time::interval(ttl / 2);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            touch = rx.recv() => {
                let Some(touch) = touch else { return };
                let conv = touch.conversation;
                let local = hub.local_viewers(conv);
                let cp = state.entry(conv).or_default();
                if cp.local != local {
                    cp.local = local;
                    announce(&hub, conv, &cp.local, ttl).await;
                }
                let pushed = refresh(&hub, conv, cp);
                if let Some(conn) = touch.greet
                    && !pushed
                    && !cp.merged.is_empty()
                {
                    let _ = conn.send(frame(conv, &cp.merged));
                }
                if cp.is_empty() {
                    state.remove(&conv);
                }
            }
            msg = sub.next() => {
                let Some(msg) = msg else { return };
                let Ok(a) = serde_json::from_slice::<PresenceAnnounce>(&msg.payload) else {
                    tracing::debug!(subject = %msg.subject, "not a presence announcement");
                    continue;
                };
                if a.node_id == hub.node_id {
                    continue;
                }
                let cp = state.entry(a.conversation_id).or_default();
                if a.viewers.is_empty() {
                    cp.remote.remove(&a.node_id);
                } else {
                    let expires = Instant::now() + Duration::from_millis(a.ttl_ms.min(10 * 60 * 1000));
                    cp.remote.insert(a.node_id, (a.viewers, expires));
                }
                refresh(&hub, a.conversation_id, cp);
                if cp.is_empty() {
                    state.remove(&a.conversation_id);
                }
            }
            _ = tick.tick() => {
                let now = Instant::now();
                let mut empty = Vec::new();
                for (conv, cp) in state.iter_mut() {
                    cp.remote.retain(|_, (_, exp)| *exp > now);
                    if !cp.local.is_empty() {
                        announce(&hub, *conv, &cp.local, ttl).await;
                    }
                    refresh(&hub, *conv, cp);
                    if cp.is_empty() {
                        empty.push(*conv);
                    }
                }
                for conv in empty {
                    state.remove(&conv);
                }
            }
            _ = hub.shutdown.cancelled() => {
                // Withdraw this node's viewers so other nodes update at once instead of after the ttl.
                for (conv, cp) in &state {
                    if !cp.local.is_empty() {
                        announce(&hub, *conv, &[], ttl).await;
                    }
                }
                let _ = hub.nats.flush().await;
                return;
            }
        }
    }
}

/// Recomputes the merged set; pushes it to local subscribers if it changed. Returns whether it pushed.
fn refresh(hub: &Hub, conv: Uuid, cp: &mut ConvPresence) -> bool {
    let merged = cp.merge();
    if merged == cp.merged {
        return false;
    }
    cp.merged = merged;
    hub.broadcast(conv, &frame(conv, &cp.merged));
    true
}

async fn announce(hub: &Hub, conv: Uuid, viewers: &[Viewer], ttl: Duration) {
    let a = PresenceAnnounce {
        node_id: hub.node_id,
        conversation_id: conv,
        viewers: viewers.to_vec(),
        ttl_ms: ttl.as_millis() as u64,
    };
    match serde_json::to_vec(&a) {
        Ok(body) => {
            if let Err(e) = hub.nats.publish(subjects::presence(conv), body.into()).await {
                tracing::warn!(error = %e, "could not announce presence");
            }
        }
        Err(e) => tracing::error!(error = %e, "could not serialize presence"),
    }
}
