//! The hub: this process's followed conversations ([`Feed`]s) and the subscriptions joined to them.
//!
//! Events reach feeds through the process-wide [`crate::tap`]; subscribers behind the live position catch up
//! through [`crate::catch_up`].
//!
//! ## Joining: catch-up, then live, with no gap and no duplicate
//! A subscription with `after_seq = S` joins its conversation's feed (created at the tap's position if this
//! process did not follow the conversation yet) under the feed's lock:
//! - if `S >= feed.last_seq` (the feed has delivered nothing newer than what the client has), it is live at once;
//!   the feed sends it every event with `seq > S`;
//! - otherwise it joins *catching up*: the feed skips it while [`Hub::catch_up`] sends it the events in
//!   `(S, feed.last_seq]`, from the feed's in-memory tail or, for what is older than the tail, from JetStream.
//!   After each batch, under the feed's lock, the catch-up checks whether it reached `feed.last_seq`; if so the
//!   subscription turns live with `last_seq = <caught-up position>`. The feed only sends an entry events with
//!   `seq > entry.last_seq`, which removes any overlap at the boundary.
//!
//! ## Access changes
//! Events `participant.removed`, `participant.changed` and `conversation.deleted` act on the subscriptions whose
//! grant predates them (`seq > grant_seq`, the `history_seq` the api answered with): revoked subscriptions end with
//! `access_revoked`, changed ones get `permission_changed` and a new cached permission. The feed applies them to
//! entries that were joined when it saw the event; a catch-up applies those it sends from before it joined.
//!
//! Lock order: `Hub::feeds` → `Conn::subs` → `Feed::state`. No lock is held across an `.await`.

use crate::Config;
use crate::conn::{Conn, SendError};
use crate::feed::{Effect, Entry, Feed, TailLimits};
use crate::lock;
use crate::metrics::Metrics;
use crate::presence::Touch;
use crate::sidebar::Inboxes;
use async_nats::jetstream;
use axum::extract::ws::Utf8Bytes;
use rh_protocol::ServerFrame;
use rh_protocol::rpc::AccessGrant;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use uuid::Uuid;

/// Shared state of the process.
pub struct Hub {
    pub config: Config,
    pub nats: async_nats::Client,
    pub js: jetstream::Context,
    /// The conversation stream, for catch-ups older than a feed's tail.
    pub(crate) stream: jetstream::stream::Stream,
    pub metrics: Metrics,
    /// Random id of this process (presence announcements, the tap's consumer name).
    pub node_id: Uuid,
    /// Cancelled on SIGTERM: sockets say goodbye and close.
    pub shutdown: tokio_util::sync::CancellationToken,
    pub(crate) inboxes: Inboxes,
    pub(crate) feeds: Mutex<Feeds>,
    presence_tx: mpsc::UnboundedSender<Touch>,
    next_id: AtomicU64,
}

/// The followed conversations and the tap's position, under one lock (see [`crate::tap`]).
pub(crate) struct Feeds {
    pub map: HashMap<Uuid, Arc<Feed>>,
    /// Last stream seq the tap processed.
    pub tap_seq: u64,
}

/// Outcome of [`Hub::join`].
pub enum Joined {
    /// Live at once.
    Live,
    /// Must catch up from `after_seq`; access events up to `joined_at` are the catch-up's to apply.
    CatchUp { feed: Arc<Feed>, joined_at: u64 },
    /// The subscription ended (unsubscribed, socket closed) before it could join.
    Gone,
}

impl Hub {
    /// A hub whose tap starts after stream position `tap_seq`.
    pub fn new(
        config: Config,
        nats: async_nats::Client,
        stream: jetstream::stream::Stream,
        tap_seq: u64,
        metrics: Metrics,
        shutdown: tokio_util::sync::CancellationToken,
        presence_tx: mpsc::UnboundedSender<Touch>,
    ) -> Self {
        let js = jetstream::new(nats.clone());
        Hub {
            config,
            nats,
            js,
            stream,
            metrics,
            node_id: Uuid::new_v4(),
            shutdown,
            inboxes: Inboxes::default(),
            feeds: Mutex::new(Feeds { map: HashMap::new(), tap_seq }),
            presence_tx,
            next_id: AtomicU64::new(1),
        }
    }

    /// A process-unique number (socket ids, subscription generations).
    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.config.request_timeout_ms)
    }

    /// Last stream seq the tap processed.
    pub fn tap_seq(&self) -> u64 {
        lock(&self.feeds).tap_seq
    }

    fn tail_limits(&self) -> TailLimits {
        TailLimits { max_bytes: self.config.feed_tail_bytes, max_age: Duration::from_secs(self.config.feed_tail_secs) }
    }

    /// Tells presence that the local viewers of `conversation` may have changed; `greet` gets the current viewers
    /// even if they did not change (a new subscription).
    pub fn presence_touch(&self, conversation: Uuid, greet: Option<Arc<Conn>>) {
        let _ = self.presence_tx.send(Touch { conversation, greet });
    }

    /// Joins the subscription `generation` of `conn` to the conversation's feed (created if needed).
    pub fn join(
        &self,
        conn: &Arc<Conn>,
        conversation: Uuid,
        generation: u64,
        after_seq: u64,
        grant: &AccessGrant,
        compact: bool,
    ) -> Joined {
        let mut feeds = lock(&self.feeds);
        {
            let subs = lock(&conn.subs);
            match subs.get(&conversation) {
                Some(s) if s.generation == generation && !conn.is_closed() => {}
                _ => return Joined::Gone,
            }
        }
        let tap_seq = feeds.tap_seq;
        let feed = feeds
            .map
            .entry(conversation)
            .or_insert_with(|| {
                self.metrics.feeds.inc();
                tracing::debug!(%conversation, position = tap_seq, "following the conversation");
                Arc::new(Feed::new(conversation, tap_seq, self.tail_limits()))
            })
            .clone();
        let mut st = lock(&feed.state);
        let live = after_seq >= st.last_seq;
        let joined_at = st.last_seq;
        let entry =
            Entry { conn: conn.clone(), generation, last_seq: after_seq, live, grant_seq: grant.history_seq, compact };
        if st.add(conn.id, entry) {
            self.metrics.subscriptions.inc();
        }
        drop(st);
        drop(feeds);
        if live { Joined::Live } else { Joined::CatchUp { feed, joined_at } }
    }

    /// Removes one socket's entry from a feed; stops following the conversation when it was the last.
    fn remove_entry(&self, conversation: Uuid, conn_id: u64, generation: u64) {
        let mut feeds = lock(&self.feeds);
        let Some(feed) = feeds.map.get(&conversation).cloned() else { return };
        let mut st = lock(&feed.state);
        if st.entries.get(&conn_id).is_some_and(|e| e.generation == generation) {
            st.remove(conn_id);
            self.metrics.subscriptions.dec();
        }
        if st.entries.is_empty() {
            st.closed = true;
            drop(st);
            feeds.map.remove(&conversation);
            self.metrics.feeds.dec();
            tracing::debug!(%conversation, "last local subscriber left; feed dropped");
        }
    }

    /// Ends a socket's subscription (any generation if `generation` is `None`). Returns whether there was one.
    pub fn end_subscription(&self, conn: &Conn, conversation: Uuid, generation: Option<u64>) -> bool {
        let sub = {
            let mut subs = lock(&conn.subs);
            match subs.get(&conversation) {
                Some(s) if generation.is_none_or(|g| s.generation == g) => subs.remove(&conversation),
                _ => None,
            }
        };
        let Some(sub) = sub else { return false };
        sub.cancel.cancel();
        self.remove_entry(conversation, conn.id, sub.generation);
        self.presence_touch(conversation, None);
        true
    }

    /// Ends a subscription because access is gone, and tells the client (once).
    pub fn revoke(&self, conn: &Conn, conversation: Uuid, generation: Option<u64>) {
        if self.end_subscription(conn, conversation, generation) {
            let _ = conn.send_frame(&ServerFrame::AccessRevoked { conversation_id: conversation });
            tracing::info!(user = %conn.user.id, %conversation, "access revoked; subscription ended");
        }
    }

    /// Ends every subscription of a closing socket.
    pub fn disconnect(&self, conn: &Arc<Conn>) {
        let subs: Vec<Uuid> = lock(&conn.subs).keys().copied().collect();
        for conversation in subs {
            self.end_subscription(conn, conversation, None);
        }
        self.inboxes.detach(conn);
    }

    pub(crate) fn apply(&self, effect: Effect, conn: &Conn, conversation: Uuid, generation: u64) {
        match effect {
            Effect::Revoke(_) => self.revoke(conn, conversation, Some(generation)),
            Effect::Permission(_, permission) => {
                conn.set_permission(conversation, generation, permission);
                let _ = conn.send_frame(&ServerFrame::PermissionChanged { conversation_id: conversation, permission });
            }
        }
    }

    /// Unique users subscribed to `conversation` on this node.
    pub fn local_viewers(&self, conversation: Uuid) -> Vec<rh_protocol::frame::Viewer> {
        let feed = lock(&self.feeds).map.get(&conversation).cloned();
        let Some(feed) = feed else { return Vec::new() };
        let st = lock(&feed.state);
        let users: BTreeMap<Uuid, &str> = st.users.iter().map(|(id, (_, name))| (*id, name.as_str())).collect();
        users.into_iter().map(|(user_id, name)| rh_protocol::frame::Viewer { user_id, name: name.to_owned() }).collect()
    }

    /// Sends a frame to every local subscriber of `conversation`.
    pub fn broadcast(&self, conversation: Uuid, frame: &Utf8Bytes) {
        let feed = lock(&self.feeds).map.get(&conversation).cloned();
        let Some(feed) = feed else { return };
        let st = lock(&feed.state);
        for e in st.entries.values() {
            if e.conn.send(frame.clone()) == Err(SendError::Lagged) {
                self.metrics.slow_consumers_dropped.inc();
            }
        }
    }

    /// Conversations with local subscribers (for the periodic presence announcement).
    pub fn conversations(&self) -> Vec<Uuid> {
        lock(&self.feeds).map.keys().copied().collect()
    }
}
