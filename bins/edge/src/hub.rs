//! The hub: this process's conversation feeds and the subscriptions joined to them.
//!
//! ## One feed per conversation per process
//! A [`Feed`] is ONE JetStream ordered push consumer on `rh.conv.<id>.*` (stream `RH_CONV`), shared by every local
//! socket subscribed to that conversation. We use a JetStream consumer rather than a core subscription because
//! live messages must carry their stream `seq` (a core subscription does not get it), and because an ordered
//! consumer detects gaps and recreates itself from the last seq it saw, so the live feed itself is gapless.
//! Each event is turned into its `event` frame ONCE ([`rh_protocol::frame::event_frame_json`] around the stored
//! bytes, untouched) and the same [`Utf8Bytes`] (reference counted) is queued on every socket.
//!
//! The feed starts at a *floor*: the first subscriber's `after_seq` (capped by the api's `history_seq`, so a
//! bogus position cannot push the feed into the future). Every event above the floor arrives through the feed.
//!
//! ## Replay, then live, with no gap and no duplicate
//! A subscription with `after_seq = S` joins the feed under the feed's lock:
//! - if `S >= feed.last_seq` (nothing delivered by the feed is newer than what the client has), it is live at once;
//!   the feed sends it every event with `seq > S`;
//! - otherwise it joins *replaying*: the feed skips it, and a short-lived ordered consumer starting at `S + 1`
//!   sends it the stored events one by one. After each, still under the feed's lock, the replay checks whether it
//!   reached `feed.last_seq`; if so the subscription turns live with `last_seq = <replayed position>`. The feed
//!   only sends an entry events with `seq > entry.last_seq`, which removes the overlap at the boundary.
//!
//! ## Access changes
//! Events `participant.removed`, `participant.changed` and `conversation.deleted` act on the subscriptions whose
//! grant predates them (`seq > grant_seq`, the `history_seq` the api answered with): revoked subscriptions end with
//! `access_revoked`, changed ones get `permission_changed` and a new cached permission. The feed applies them to
//! entries that were joined when it saw the event; a replay applies those it replays from before it joined.
//!
//! Lock order: `Hub::feeds` → `Conn::subs` → `Feed::state`. No lock is held across an `.await`.

use crate::Config;
use crate::conn::{Conn, SendError};
use crate::lock;
use crate::metrics::Metrics;
use crate::presence::Touch;
use crate::sidebar::Inboxes;
use anyhow::Context as _;
use async_nats::jetstream::{self, consumer::DeliverPolicy, consumer::push};
use axum::extract::ws::Utf8Bytes;
use futures::StreamExt;
use rh_protocol::frame::{ErrorCode, event_frame_json};
use rh_protocol::rpc::AccessGrant;
use rh_protocol::{Envelope, Event, Permission, ServerFrame, subjects};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio::task::AbortHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// A replay that receives nothing for this long while behind the live feed gives up (the stream lost data).
const REPLAY_STALL: Duration = Duration::from_secs(10);

/// Shared state of the process.
pub struct Hub {
    pub config: Config,
    pub nats: async_nats::Client,
    pub js: jetstream::Context,
    pub metrics: Metrics,
    /// Random id of this process (presence announcements, consumer names).
    pub node_id: Uuid,
    /// Cancelled on SIGTERM: sockets say goodbye and close.
    pub shutdown: CancellationToken,
    pub(crate) inboxes: Inboxes,
    feeds: Mutex<HashMap<Uuid, Arc<Feed>>>,
    presence_tx: mpsc::UnboundedSender<Touch>,
    next_id: AtomicU64,
}

/// One conversation followed from JetStream by this process.
pub struct Feed {
    conversation: Uuid,
    consumer_name: String,
    state: Mutex<FeedState>,
    task: Mutex<Option<AbortHandle>>,
}

struct FeedState {
    /// Highest seq the feed has delivered (the floor before the first event).
    last_seq: u64,
    /// By socket id (a socket has at most one subscription per conversation).
    entries: HashMap<u64, Entry>,
    /// Entries per user (with the user's name), kept with `entries` so presence asks for the unique viewers without
    /// walking every entry: presence asks after every join, and walking 10,000 entries per join was quadratic.
    users: HashMap<Uuid, (usize, String)>,
    /// Removed from the hub; no more entries may join.
    closed: bool,
}

impl FeedState {
    fn add(&mut self, conn_id: u64, entry: Entry) -> bool {
        let conn = entry.conn.clone();
        match self.entries.insert(conn_id, entry) {
            Some(_) => false, // the same socket again: same user
            None => {
                self.users.entry(conn.user.id).or_insert_with(|| (0, conn.user.name.clone())).0 += 1;
                true
            }
        }
    }

    fn remove(&mut self, conn_id: u64) {
        if let Some(e) = self.entries.remove(&conn_id)
            && let std::collections::hash_map::Entry::Occupied(mut u) = self.users.entry(e.conn.user.id)
        {
            u.get_mut().0 -= 1;
            if u.get().0 == 0 {
                u.remove();
            }
        }
    }
}

struct Entry {
    conn: Arc<Conn>,
    generation: u64,
    /// Highest seq sent to this socket.
    last_seq: u64,
    /// False while its replay runs; the feed only sends to live entries.
    live: bool,
    /// `history_seq` of the grant: access events at or below it were already reflected in the grant.
    grant_seq: u64,
}

/// Outcome of [`Hub::join`].
pub enum Joined {
    /// Live at once.
    Live,
    /// Must replay from `after_seq`; access events up to `joined_at` are the replay's to apply.
    Replay { feed: Arc<Feed>, joined_at: u64 },
    /// The subscription ended (unsubscribed, socket closed) before it could join.
    Gone,
}

/// What an event does to subscriptions, besides being delivered.
#[derive(Debug, Clone, Copy)]
enum Effect {
    /// End subscriptions of this user, or of everyone (`None`: the conversation was deleted).
    Revoke(Option<Uuid>),
    Permission(Uuid, Permission),
}

impl Effect {
    /// Only `.event` subjects carry access events; deltas (the bulk of the traffic) are never decoded.
    fn of(subject: &str, json: &str) -> Option<Effect> {
        if !subject.ends_with(".event") || !(json.contains("participant.") || json.contains("conversation.deleted")) {
            return None;
        }
        let env: Envelope = serde_json::from_str(json).ok()?;
        match env.event {
            Event::ParticipantRemoved { user_id } => Some(Effect::Revoke(Some(user_id))),
            Event::ConversationDeleted {} => Some(Effect::Revoke(None)),
            Event::ParticipantChanged { user_id, permission } => Some(Effect::Permission(user_id, permission)),
            _ => None,
        }
    }

    fn affects(&self, user: Uuid) -> bool {
        match self {
            Effect::Revoke(None) => true,
            Effect::Revoke(Some(u)) | Effect::Permission(u, _) => *u == user,
        }
    }
}

/// A stream message ready to send.
struct Decoded {
    seq: u64,
    frame: Utf8Bytes,
    effect: Option<Effect>,
}

fn decode(conversation: Uuid, msg: &jetstream::Message) -> Option<Decoded> {
    let seq = match msg.info() {
        Ok(info) => info.stream_sequence,
        Err(e) => {
            tracing::warn!(error = %e, "stream message without JetStream info, skipped");
            return None;
        }
    };
    let Ok(json) = std::str::from_utf8(&msg.payload) else {
        tracing::warn!(seq, %conversation, "event is not UTF-8, skipped");
        return None;
    };
    let effect = Effect::of(msg.subject.as_str(), json);
    Some(Decoded { seq, frame: event_frame_json(conversation, seq, json).into(), effect })
}

/// Consecutive failures of a feed's consumer (without any event delivered in between) before giving up.
const FEED_RETRIES: u32 = 5;

fn ordered_config(deliver_subject: String, name: String, conversation: Uuid, start: u64) -> push::OrderedConfig {
    push::OrderedConfig {
        deliver_subject,
        name: Some(name),
        filter_subject: subjects::conv_all(conversation),
        deliver_policy: DeliverPolicy::ByStartSequence { start_sequence: start.max(1) },
        ..Default::default()
    }
}

impl Hub {
    pub fn new(
        config: Config,
        nats: async_nats::Client,
        metrics: Metrics,
        shutdown: CancellationToken,
        presence_tx: mpsc::UnboundedSender<Touch>,
    ) -> Self {
        let js = jetstream::new(nats.clone());
        Hub {
            config,
            nats,
            js,
            metrics,
            node_id: Uuid::new_v4(),
            shutdown,
            inboxes: Inboxes::default(),
            feeds: Mutex::new(HashMap::new()),
            presence_tx,
            next_id: AtomicU64::new(1),
        }
    }

    /// A process-unique number (socket ids, subscription generations, consumer names).
    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    fn consumer_name(&self, kind: &str, serial: u64) -> String {
        let node = self.node_id.simple().to_string();
        format!("edge-{}-{kind}{serial}", &node[..12])
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.config.request_timeout_ms)
    }

    /// Tells presence that the local viewers of `conversation` may have changed; `greet` gets the current viewers
    /// even if they did not change (a new subscription).
    pub fn presence_touch(&self, conversation: Uuid, greet: Option<Arc<Conn>>) {
        let _ = self.presence_tx.send(Touch { conversation, greet });
    }

    /// Joins the subscription `generation` of `conn` to the conversation's feed (started if needed).
    pub fn join(
        self: &Arc<Self>,
        conn: &Arc<Conn>,
        conversation: Uuid,
        generation: u64,
        after_seq: u64,
        grant: &AccessGrant,
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
            Some(f) => f.clone(),
            None => {
                let f = self.start_feed(conversation, after_seq.min(grant.history_seq));
                feeds.insert(conversation, f.clone());
                f
            }
        };
        let mut st = lock(&feed.state);
        let live = after_seq >= st.last_seq;
        let joined_at = st.last_seq;
        let entry = Entry { conn: conn.clone(), generation, last_seq: after_seq, live, grant_seq: grant.history_seq };
        if st.add(conn.id, entry) {
            self.metrics.subscriptions.inc();
        }
        drop(st);
        drop(feeds);
        if live { Joined::Live } else { Joined::Replay { feed, joined_at } }
    }

    fn start_feed(self: &Arc<Self>, conversation: Uuid, floor: u64) -> Arc<Feed> {
        let feed = Arc::new(Feed {
            conversation,
            consumer_name: self.consumer_name("f", self.next_id()),
            state: Mutex::new(FeedState {
                last_seq: floor,
                entries: HashMap::new(),
                users: HashMap::new(),
                closed: false,
            }),
            task: Mutex::new(None),
        });
        let handle = tokio::spawn(self.clone().run_feed(feed.clone(), floor)).abort_handle();
        *lock(&feed.task) = Some(handle);
        self.metrics.feeds.inc();
        tracing::debug!(%conversation, floor, "feed started");
        feed
    }

    /// Removes one socket's entry from a feed; drops the feed (and its consumer) when it was the last.
    fn remove_entry(&self, conversation: Uuid, conn_id: u64, generation: u64) {
        let mut feeds = lock(&self.feeds);
        let Some(feed) = feeds.get(&conversation).cloned() else { return };
        let mut st = lock(&feed.state);
        if st.entries.get(&conn_id).is_some_and(|e| e.generation == generation) {
            st.remove(conn_id);
            self.metrics.subscriptions.dec();
        }
        if st.entries.is_empty() {
            st.closed = true;
            drop(st);
            feeds.remove(&conversation);
            drop(feeds);
            self.metrics.feeds.dec();
            if let Some(task) = lock(&feed.task).take() {
                task.abort();
            }
            self.delete_consumer(feed.consumer_name.clone());
            tracing::debug!(%conversation, "last local subscriber left; feed dropped");
        }
    }

    /// Deletes an ephemeral consumer now instead of leaving it to the server's inactivity timer.
    fn delete_consumer(&self, name: String) {
        let js = self.js.clone();
        tokio::spawn(async move {
            let _ = js.delete_consumer_from_stream(&name, subjects::STREAM_CONV).await;
        });
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

    /// The feed's task: follows the conversation until dropped; on failure, ends its subscriptions with an
    /// `unavailable` error so clients resubscribe (and get a fresh feed).
    /// Follows the conversation until the feed is dropped. An interrupted consumer (missed heartbeats under load,
    /// a NATS reconnect) is re-created from the feed's last delivered position, so subscribers see nothing of it:
    /// delivery dedupes by seq. Only after [`FEED_RETRIES`] failures in a row without progress are the
    /// subscribers told to subscribe again.
    async fn run_feed(self: Arc<Self>, feed: Arc<Feed>, floor: u64) {
        let conversation = feed.conversation;
        let mut from = floor;
        let mut failures = 0u32;
        let error = loop {
            let error = match self.follow(&feed, from).await {
                Ok(()) => "the feed ended".to_owned(),
                Err(e) => format!("{e:#}"),
            };
            let (closed, last) = {
                let st = lock(&feed.state);
                (st.closed, st.last_seq)
            };
            if closed {
                return;
            }
            failures = if last > from { 1 } else { failures + 1 };
            if failures > FEED_RETRIES {
                break error;
            }
            tracing::info!(%conversation, %error, failures, last, "conversation feed interrupted; resuming");
            let _ = self.js.delete_consumer_from_stream(&feed.consumer_name, subjects::STREAM_CONV).await;
            tokio::time::sleep(Duration::from_millis(100 * u64::from(failures))).await;
            from = last;
        };
        tracing::warn!(%conversation, %error, "conversation feed failed");
        let victims: Vec<(Arc<Conn>, u64)> = {
            let mut feeds = lock(&self.feeds);
            if feeds.get(&conversation).is_some_and(|f| Arc::ptr_eq(f, &feed)) {
                feeds.remove(&conversation);
                self.metrics.feeds.dec();
            }
            let mut st = lock(&feed.state);
            st.closed = true;
            st.users.clear();
            st.entries.drain().map(|(_, e)| (e.conn, e.generation)).collect()
        };
        self.metrics.subscriptions.sub(victims.len() as i64);
        self.delete_consumer(feed.consumer_name.clone());
        let frame = ServerFrame::error(
            ErrorCode::Unavailable,
            "the live feed of this conversation failed; subscribe again with your last seq",
            Some(conversation.to_string()),
        );
        for (conn, generation) in victims {
            if self.end_subscription(&conn, conversation, Some(generation)) {
                let _ = conn.send_frame(&frame);
            }
        }
    }

    async fn follow(&self, feed: &Arc<Feed>, floor: u64) -> anyhow::Result<()> {
        let config = ordered_config(self.nats.new_inbox(), feed.consumer_name.clone(), feed.conversation, floor + 1);
        let consumer = self
            .js
            .create_consumer_on_stream(config, subjects::STREAM_CONV)
            .await
            .context("creating the feed's consumer")?;
        let mut messages = consumer.messages().await.context("subscribing to the feed")?;
        while let Some(msg) = messages.next().await {
            let msg = msg.context("reading the feed")?;
            self.metrics.events_in.inc();
            if let Some(d) = decode(feed.conversation, &msg) {
                self.deliver(feed, d);
            }
        }
        Ok(())
    }

    /// Fans one event out to the live entries, then applies its access effect.
    fn deliver(&self, feed: &Feed, d: Decoded) {
        let mut affected: Vec<(Arc<Conn>, u64)> = Vec::new();
        {
            let mut st = lock(&feed.state);
            if d.seq > st.last_seq {
                st.last_seq = d.seq;
            }
            for e in st.entries.values_mut() {
                if e.live && e.last_seq < d.seq {
                    e.last_seq = d.seq;
                    if e.conn.send(d.frame.clone()) == Err(SendError::Lagged) {
                        self.metrics.slow_consumers_dropped.inc();
                        tracing::info!(user = %e.conn.user.id, "slow socket closed");
                    }
                }
            }
            if let Some(effect) = d.effect {
                for e in st.entries.values() {
                    if d.seq > e.grant_seq && effect.affects(e.conn.user.id) {
                        affected.push((e.conn.clone(), e.generation));
                    }
                }
            }
        }
        if let Some(effect) = d.effect {
            for (conn, generation) in affected {
                self.apply(effect, &conn, feed.conversation, generation);
            }
        }
    }

    fn apply(&self, effect: Effect, conn: &Conn, conversation: Uuid, generation: u64) {
        match effect {
            Effect::Revoke(_) => self.revoke(conn, conversation, Some(generation)),
            Effect::Permission(_, permission) => {
                conn.set_permission(conversation, generation, permission);
                let _ = conn.send_frame(&ServerFrame::PermissionChanged { conversation_id: conversation, permission });
            }
        }
    }

    /// Replays what a subscription missed, then turns it live (see the module docs). Runs in the subscribe
    /// command's task; ends early when the subscription or the socket ends.
    #[allow(clippy::too_many_arguments)]
    pub async fn replay(
        &self,
        feed: Arc<Feed>,
        conn: &Arc<Conn>,
        conversation: Uuid,
        generation: u64,
        after_seq: u64,
        grant_seq: u64,
        joined_at: u64,
        cancel: CancellationToken,
    ) {
        let started = Instant::now();
        let name = self.consumer_name("r", self.next_id());
        let result = tokio::select! {
            _ = cancel.cancelled() => Ok(false),
            _ = conn.closed().cancelled() => Ok(false),
            r = self.replay_inner(&feed, conn, &name, generation, after_seq, grant_seq, joined_at) => r,
        };
        self.delete_consumer(name);
        match result {
            Ok(true) => {
                self.metrics.replay_seconds.observe(started.elapsed().as_secs_f64());
            }
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(%conversation, error = %format!("{e:#}"), "replay failed");
                if self.end_subscription(conn, conversation, Some(generation)) {
                    let _ = conn.send_frame(&ServerFrame::error(
                        ErrorCode::Unavailable,
                        "could not replay this conversation; subscribe again with your last seq",
                        Some(conversation.to_string()),
                    ));
                }
            }
        }
    }

    /// Returns `Ok(true)` once live, `Ok(false)` if the subscription ended.
    #[allow(clippy::too_many_arguments)]
    async fn replay_inner(
        &self,
        feed: &Feed,
        conn: &Arc<Conn>,
        name: &str,
        generation: u64,
        after_seq: u64,
        grant_seq: u64,
        joined_at: u64,
    ) -> anyhow::Result<bool> {
        let conversation = feed.conversation;
        let config = ordered_config(self.nats.new_inbox(), name.to_owned(), conversation, after_seq + 1);
        let consumer = self
            .js
            .create_consumer_on_stream(config, subjects::STREAM_CONV)
            .await
            .context("creating the replay consumer")?;
        let mut messages = consumer.messages().await.context("subscribing to the replay")?;
        // Leave room in the socket's queue for control frames (presence, errors) while replaying.
        let reserve = (self.config.socket_queue as usize / 4).max(4);
        let mut pos = after_seq;
        loop {
            {
                let mut st = lock(&feed.state);
                if st.closed {
                    return Ok(false);
                }
                let feed_seq = st.last_seq;
                match st.entries.get_mut(&conn.id) {
                    Some(e) if e.generation == generation => {
                        if pos >= feed_seq {
                            e.live = true;
                            e.last_seq = pos;
                            return Ok(true);
                        }
                    }
                    _ => return Ok(false),
                }
            }
            let msg = match tokio::time::timeout(REPLAY_STALL, messages.next()).await {
                Err(_) => anyhow::bail!("no stored event after seq {pos} within {REPLAY_STALL:?}"),
                Ok(None) => anyhow::bail!("the replay consumer ended"),
                Ok(Some(m)) => m.context("reading the replay")?,
            };
            let Some(d) = decode(conversation, &msg) else { continue };
            if d.seq <= pos {
                continue;
            }
            while conn.queue_room() < reserve {
                if conn.is_closed() {
                    return Ok(false);
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            if conn.send(d.frame).is_err() {
                return Ok(false);
            }
            pos = d.seq;
            if let Some(effect) = d.effect
                && d.seq > grant_seq
                && d.seq <= joined_at
                && effect.affects(conn.user.id)
            {
                self.apply(effect, conn, conversation, generation);
                if matches!(effect, Effect::Revoke(_)) {
                    return Ok(false);
                }
            }
        }
    }

    /// Unique users subscribed to `conversation` on this node.
    pub fn local_viewers(&self, conversation: Uuid) -> Vec<rh_protocol::frame::Viewer> {
        let feed = lock(&self.feeds).get(&conversation).cloned();
        let Some(feed) = feed else { return Vec::new() };
        let st = lock(&feed.state);
        let users: BTreeMap<Uuid, &str> = st.users.iter().map(|(id, (_, name))| (*id, name.as_str())).collect();
        users.into_iter().map(|(user_id, name)| rh_protocol::frame::Viewer { user_id, name: name.to_owned() }).collect()
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

    /// Conversations with local subscribers (for the periodic presence announcement).
    pub fn conversations(&self) -> Vec<Uuid> {
        lock(&self.feeds).keys().copied().collect()
    }
}
