//! The registry of followed conversations: this process's [`Feed`]s and the subscriptions joined to them. The
//! sockets' commands, presence and the sidebar work through it; the feeds' live subscriptions ([`super::live`])
//! start and end with it.
//!
//! ## Joining: catch-up, then live, with no gap and no duplicate
//! A subscription with `after_seq = S` joins its conversation's feed (created, unanchored, if this process did not
//! follow the conversation yet) under the feed's lock:
//! - if the feed is anchored and `S >= feed.last_seq` (it has delivered nothing newer than what the client has),
//!   it is live at once; the feed sends it every event with `seq > S`;
//! - otherwise it joins *catching up*: the feed skips it while [`Registry::catch_up`] waits for the anchor, then
//!   sends it the events in `(S, feed.last_seq]`, from the feed's in-memory tail or, for what is older than the
//!   tail, from JetStream. After each batch, under the feed's lock, the catch-up checks whether it reached
//!   `feed.last_seq`; if so the subscription turns live with `last_seq = <caught-up position>`. The feed only sends
//!   an entry events with `seq > entry.last_seq`, which removes any overlap at the boundary.
//!
//! ## Access changes
//! Events `participant.removed`, `participant.changed` and `conversation.deleted` act on the subscriptions whose
//! grant predates them (`seq > grant_seq`, the `history_seq` the api answered with): revoked subscriptions end with
//! `access_revoked`, changed ones get `permission_changed` and a new cached permission. The feed reports them for
//! entries that were joined when it saw the event (`Feed::deliver` returns them); a catch-up applies those it
//! sends from before it joined.
//!
//! Lock order: `Registry::feeds` → `Conn::subs` → `Feed::state`. No lock is held across an `.await`.

use super::feed::{Apply, Delivered, Entry, Feed, Phase};
use super::tail::{Effect, TailLimits};
use crate::lock;
use crate::metrics::Metrics;
use crate::presence::Touch;
use crate::socket::conn::{Conn, SendError};
use async_nats::jetstream;
use axum::extract::ws::Utf8Bytes;
use rh_protocol::ServerFrame;
use rh_protocol::frame::TYPING_TTL_MS;
use rh_protocol::frame::{RevokeReason, Viewer};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use uuid::Uuid;

/// Typing repeated sooner than this after the last accepted one is ignored (clients repeat every few seconds).
pub const TYPING_THROTTLE: Duration = Duration::from_secs(1);

/// The followed conversations of this process, and what their feeds need from the outside.
pub struct Registry {
    feeds: Mutex<HashMap<Uuid, Arc<Feed>>>,
    pub(super) nats: async_nats::Client,
    /// The conversation stream: anchors, gap repairs and catch-ups older than a feed's tail.
    pub(super) stream: jetstream::stream::Stream,
    pub(super) metrics: Metrics,
    pub(super) limits: TailLimits,
    /// Frames of a socket's queue a catch-up leaves free for control frames (presence, errors).
    pub(super) catch_up_reserve: usize,
    presence: mpsc::UnboundedSender<Touch>,
}

/// Outcome of [`Registry::join`].
pub enum Joined {
    /// Live at once.
    Live,
    /// Must catch up from `after_seq` (see [`Registry::catch_up`]); access events up to `joined_at` (`None`: the
    /// feed's anchor) are the catch-up's to apply.
    CatchUp { feed: Arc<Feed>, joined_at: Option<u64> },
    /// The subscription ended (unsubscribed, socket closed) before it could join.
    Gone,
}

impl Registry {
    pub fn new(
        nats: async_nats::Client,
        stream: jetstream::stream::Stream,
        metrics: Metrics,
        limits: TailLimits,
        socket_queue: usize,
        presence: mpsc::UnboundedSender<Touch>,
    ) -> Self {
        Registry {
            feeds: Mutex::new(HashMap::new()),
            nats,
            stream,
            metrics,
            limits,
            catch_up_reserve: (socket_queue / 4).max(4),
            presence,
        }
    }

    /// Tells presence that the local viewers of `conversation` may have changed; `greet` gets the current viewers
    /// even if they did not change (a new subscription).
    pub fn presence_touch(&self, conversation: Uuid, greet: Option<Arc<Conn>>) {
        let _ = self.presence.send(Touch { conversation, greet });
    }

    /// Joins the subscription `generation` of `conn` to the conversation's feed (created, and its live
    /// subscription started, if needed).
    pub fn join(
        self: &Arc<Self>,
        conn: &Arc<Conn>,
        conversation: Uuid,
        generation: u64,
        after_seq: u64,
        grant_seq: u64,
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
        let feed = match feeds.get(&conversation) {
            Some(f) if f.phase() != Phase::Failed => f.clone(),
            _ => {
                if let Some(failed) = feeds.remove(&conversation) {
                    failed.close();
                    self.metrics.feeds.dec();
                }
                let feed = Arc::new(Feed::new(conversation, self.limits));
                feeds.insert(conversation, feed.clone());
                self.metrics.feeds.inc();
                tracing::debug!(%conversation, "following the conversation");
                tokio::spawn(super::live::follow(self.clone(), feed.clone()));
                feed
            }
        };
        let (live, joined_at) = {
            let mut st = lock(&feed.state);
            let anchored = feed.phase() == Phase::Live;
            let live = anchored && after_seq >= st.last_seq;
            let entry = Entry { conn: conn.clone(), generation, last_seq: after_seq, live, grant_seq, compact };
            if st.add(conn.id, entry) {
                self.metrics.subscriptions.inc();
            }
            (live, anchored.then_some(st.last_seq))
        };
        drop(feeds);
        if live { Joined::Live } else { Joined::CatchUp { feed, joined_at } }
    }

    /// Removes one socket's entry from a feed; stops following the conversation when it was the last.
    fn remove_entry(&self, conversation: Uuid, conn_id: u64, generation: u64) {
        let mut feeds = lock(&self.feeds);
        let Some(feed) = feeds.get(&conversation).cloned() else { return };
        let mut st = lock(&feed.state);
        if st.entries.get(&conn_id).is_some_and(|e| e.generation == generation) {
            st.remove(conn_id);
            self.metrics.subscriptions.dec();
        }
        if st.entries.is_empty() {
            drop(st);
            feed.close();
            feeds.remove(&conversation);
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

    /// Ends a subscription because access is gone, and tells the client (once) why.
    pub fn revoke(&self, conn: &Conn, conversation: Uuid, generation: Option<u64>, reason: RevokeReason) {
        if self.end_subscription(conn, conversation, generation) {
            let _ =
                conn.send_frame(&ServerFrame::AccessRevoked { conversation_id: conversation, reason: Some(reason) });
            tracing::info!(user = %conn.user.id, %conversation, "access revoked; subscription ended");
        }
    }

    /// Ends every subscription of a closing socket.
    pub fn disconnect(&self, conn: &Conn) {
        let subs: Vec<Uuid> = lock(&conn.subs).keys().copied().collect();
        for conversation in subs {
            self.end_subscription(conn, conversation, None);
        }
    }

    /// Applies what a feed's delivery left to do.
    pub(super) fn settle(&self, conversation: Uuid, delivered: Delivered) {
        self.metrics.slow_consumers_dropped.inc_by(delivered.dropped);
        for Apply { conn, generation, effect } in delivered.apply {
            self.apply(effect, &conn, conversation, generation);
        }
    }

    pub(super) fn apply(&self, effect: Effect, conn: &Conn, conversation: Uuid, generation: u64) {
        match effect {
            Effect::Revoke(who) => {
                let reason = if who.is_some() { RevokeReason::Removed } else { RevokeReason::Deleted };
                self.revoke(conn, conversation, Some(generation), reason)
            }
            Effect::Permission(_, permission) => {
                conn.set_permission(conversation, generation, permission);
                if !permission.can_respond() {
                    self.clear_typing(conn, conversation);
                }
                let _ = conn.send_frame(&ServerFrame::PermissionChanged { conversation_id: conversation, permission });
            }
        }
    }

    /// [`Registry::set_typing`] `false`, without the expiry timer (no `Arc` needed).
    pub fn clear_typing(&self, conn: &Conn, conversation: Uuid) {
        let feed = lock(&self.feeds).get(&conversation).cloned();
        let Some(feed) = feed else { return };
        if lock(&feed.state).typing.remove(&conn.id).is_some() {
            self.presence_touch(conversation, None);
        }
    }

    /// Unique users subscribed to `conversation` on this node, each marked typing while one of their sockets here
    /// is (expired typing is dropped on the way).
    pub fn local_viewers(&self, conversation: Uuid) -> Vec<Viewer> {
        let feed = lock(&self.feeds).get(&conversation).cloned();
        let Some(feed) = feed else { return Vec::new() };
        let mut st = lock(&feed.state);
        let now = Instant::now();
        st.typing.retain(|_, (_, until)| *until > now);
        let typing: HashSet<Uuid> = st.typing.values().map(|(user, _)| *user).collect();
        let users: BTreeMap<Uuid, &str> = st.users.iter().map(|(id, (_, name))| (*id, name.as_str())).collect();
        users
            .into_iter()
            .map(|(user_id, name)| Viewer { user_id, name: name.to_owned(), typing: typing.contains(&user_id) })
            .collect()
    }

    /// Records that `conn`'s person is composing in `conversation` (or stopped), for presence. Only for a
    /// subscription of this socket (the caller checks that it may respond). A repeat within [`TYPING_THROTTLE`]
    /// changes nothing; otherwise presence is told, and told again when the typing would expire, so it ends
    /// without a word from the client too.
    pub fn set_typing(self: &Arc<Self>, conn: &Conn, conversation: Uuid, typing: bool) {
        let feed = lock(&self.feeds).get(&conversation).cloned();
        let Some(feed) = feed else { return };
        let now = Instant::now();
        let ttl = Duration::from_millis(TYPING_TTL_MS);
        let changed = {
            let mut st = lock(&feed.state);
            if !st.entries.contains_key(&conn.id) {
                return;
            }
            match (typing, st.typing.get(&conn.id)) {
                (true, Some((_, until))) if *until > now && *until + TYPING_THROTTLE > now + ttl => false,
                (true, _) => st.typing.insert(conn.id, (conn.user.id, now + ttl)).is_none_or(|(_, u)| u <= now),
                (false, _) => st.typing.remove(&conn.id).is_some(),
            }
        };
        if typing {
            let registry = self.clone();
            tokio::spawn(async move {
                tokio::time::sleep(ttl + Duration::from_millis(50)).await;
                registry.presence_touch(conversation, None);
            });
        }
        if changed {
            self.presence_touch(conversation, None);
        }
    }

    /// Sends a frame to every local subscriber of `conversation`.
    pub fn broadcast(&self, conversation: Uuid, frame: &Utf8Bytes) {
        let feed = lock(&self.feeds).get(&conversation).cloned();
        let Some(feed) = feed else { return };
        let st = lock(&feed.state);
        for e in st.entries.values() {
            if e.conn.send(frame.clone()) == Err(SendError::Lagged) {
                self.metrics.slow_consumers_dropped.inc();
            }
        }
    }
}
