//! The outbox relay: publishes the rows every state change committed to `outbox` ([`rh_store::outbox`]), in
//! order, until NATS has them, then marks them published.
//!
//! **One leader.** Of all api replicas, the one holding a session advisory lock on a dedicated PostgreSQL
//! connection relays; the others try again every [`Settings::outbox_poll_ms`]. Chosen over `FOR UPDATE SKIP
//! LOCKED` workers because order is the point: one publisher reading in id order keeps every conversation's
//! events (and every sidebar's messages) in commit order with no per-conversation bookkeeping, and state changes
//! are human-rate (shares, renames, deletes), far below what one publisher sends. The lock dies with the
//! connection, so a crashed or partitioned leader is replaced within a poll interval; the leader reads and marks
//! on that same connection, so one that lost its lock cannot mark rows.
//!
//! **Exactly once in the stream.** Every row — a conversation event (`RH_CONV`) or a sidebar message (`RH_INBOX`)
//! — is published with a `Nats-Msg-Id` (the event id; `outbox-<row id>` for a sidebar message) and retried until
//! JetStream acks it; only then is the row marked. A crash between the ack and the mark (or a leader change)
//! publishes the row again, and JetStream's duplicate window stores it once and acks with the first copy's seq.
//! The window is finite (120 s by default), while a row can stay unmarked for as long as the api or PostgreSQL
//! is away, so the relay records each row's first attempt (`outbox.attempted_at`) before publishing it, and a row
//! whose first attempt is older than the stream's window (less [`WINDOW_MARGIN`]) is first looked for in the
//! stream by its id ([`rh_bus::lookup`]): found, it is marked with that seq and not published again.
//!
//! **Sidebars.** Sidebar messages are stored too (`RH_INBOX`), so an edge that reconnects to NATS after the relay
//! published reads back what it missed (`bins/edge/src/sidebar.rs`): nothing waits for edges to resubscribe.
//!
//! **Woken at commit.** A commit on this replica wakes the relay in-process; commits on other replicas reach the
//! leader by `NOTIFY rh_outbox` (sent at commit); a slow poll is the backstop.

use crate::config::Settings;
use crate::metrics::Metrics;
use async_nats::connection::State;
use async_nats::jetstream;
use rh_protocol::subjects;
use rh_store::Db;
use rh_store::outbox::{self, Leader, Pending};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, broadcast};
use tokio::time::Instant;
use uuid::Uuid;

/// Rows read per round.
const BATCH: i64 = 256;
/// Marked batches a waiter may fall behind by before it reads the table instead.
const MARKED_BACKLOG: usize = 64;
/// How long a waiter that hears no mark from this replica's relay waits before it reads the table (another replica
/// may lead).
const LOOK_EVERY: Duration = Duration::from_millis(50);
/// How long published rows are kept for [`Outbox::seqs`] lookups before they are pruned.
const KEEP_PUBLISHED_SECS: f64 = 600.0;
/// Longest pause between retries while NATS refuses.
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// A row first attempted this close to the end of the duplicate window is looked up before it is published again:
/// covers the time between reading the row's age and the publish reaching the server.
const WINDOW_MARGIN: Duration = Duration::from_secs(5);
/// How far before the first attempt (by the database's clock) the lookup starts reading the stream (by the NATS
/// server's clock): covers a skew between the two clocks.
const CLOCK_SKEW: Duration = Duration::from_secs(300);

/// Why a leader stepped down.
#[derive(Debug, thiserror::Error)]
enum RelayError {
    #[error("outbox store: {0}")]
    Store(#[from] rh_store::StoreError),
    #[error("the leader's database connection ended")]
    ConnectionLost,
}

/// The api's handle on its relay: wakes it after a commit, and waits for an event's seq. Cheap to clone.
#[derive(Clone)]
pub struct Outbox {
    db: Db,
    wake: Arc<Notify>,
    /// Each batch of events this replica's relay has marked published: (event id, stream seq).
    marked: broadcast::Sender<Arc<Vec<(Uuid, u64)>>>,
}

impl Outbox {
    pub fn new(db: Db) -> Self {
        Outbox { db, wake: Arc::new(Notify::new()), marked: broadcast::Sender::new(MARKED_BACKLOG) }
    }

    /// A transaction with outbox rows committed: publish now.
    pub fn committed(&self) {
        self.wake.notify_one();
    }

    /// The stream seq of each event in `event_ids` that is published within `within` (absent: not yet, e.g.
    /// NATS is down; it still goes out later). The table is read once; after that this replica's relay hands over
    /// what it marks, and the table is read again only when no mark came for [`LOOK_EVERY`] (another replica leads)
    /// or the waiter fell behind: many requests waiting at once cost no query per mark.
    pub async fn seqs(&self, event_ids: &[Uuid], within: Duration) -> HashMap<Uuid, u64> {
        let deadline = Instant::now() + within;
        // Subscribed before the first read, so a batch marked in between is heard.
        let mut marked = self.marked.subscribe();
        let wanted: HashSet<Uuid> = event_ids.iter().copied().collect();
        let mut found = HashMap::new();
        let mut read_table = true;
        loop {
            if read_table {
                match outbox::published_seqs(&self.db, event_ids).await {
                    Ok(rows) => found.extend(rows.into_iter().map(|(id, seq)| (id, u64::try_from(seq).unwrap_or(0)))),
                    Err(e) => {
                        tracing::warn!(error = %e, "could not look up published events");
                        return found;
                    }
                }
            }
            let now = Instant::now();
            if found.len() >= wanted.len() || now >= deadline {
                return found;
            }
            read_table = match tokio::time::timeout((deadline - now).min(LOOK_EVERY), marked.recv()).await {
                Ok(Ok(batch)) => {
                    found.extend(batch.iter().filter(|(id, _)| wanted.contains(id)).copied());
                    false
                }
                // Fell behind (lagged), or no mark here lately: the table has it.
                Ok(Err(_)) | Err(_) => true,
            };
        }
    }
}

/// Runs the relay for the life of the process: leads when it gets the lock, otherwise waits and tries again.
pub async fn run(outbox: Outbox, nats: async_nats::Client, settings: Arc<Settings>, metrics: Metrics) {
    let js = jetstream::new(nats.clone());
    let poll = Duration::from_millis(settings.outbox_poll_ms);
    loop {
        match outbox::lead(&outbox.db).await {
            Ok(Some(leader)) => {
                tracing::info!("outbox relay: leading");
                let mut relay = Relay {
                    outbox: &outbox,
                    leader,
                    nats: &nats,
                    js: &js,
                    settings: &settings,
                    metrics: &metrics,
                    windows: HashMap::new(),
                };
                let e = relay.lead().await;
                tracing::warn!(error = %e, "outbox relay: stepped down");
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "outbox relay: cannot reach the database"),
        }
        tokio::time::sleep(poll).await;
    }
}

struct Relay<'a> {
    outbox: &'a Outbox,
    leader: Leader,
    nats: &'a async_nats::Client,
    js: &'a jetstream::Context,
    settings: &'a Settings,
    metrics: &'a Metrics,
    /// Each stream's duplicate window, read once per leadership (zero until read: every retry is looked up).
    windows: HashMap<&'static str, Duration>,
}

/// How far one round got.
enum Round {
    /// Everything read was published.
    Done,
    /// NATS refused; try again after a pause.
    Failed,
}

/// Why a row did not go out this round.
#[derive(Debug, thiserror::Error)]
enum PublishError {
    #[error("publishing: {0}")]
    Publish(#[from] async_nats::jetstream::context::PublishError),
    #[error("no ack in time")]
    Timeout,
    #[error("looking for an earlier copy: {0}")]
    Lookup(#[from] rh_bus::lookup::LookupError),
    #[error("a stream seq beyond i64")]
    Seq,
}

/// The stream a row's subject is stored in.
fn stream_of(subject: &str) -> &'static str {
    if subject.starts_with("rh.user.") { subjects::STREAM_INBOX } else { subjects::STREAM_CONV }
}

impl Relay<'_> {
    async fn lead(&mut self) -> RelayError {
        let poll = Duration::from_millis(self.settings.outbox_poll_ms);
        let mut backoff = Duration::from_millis(50);
        let mut last_prune = Instant::now();
        loop {
            let (count, oldest) = match outbox::backlog(&self.leader).await {
                Ok(b) => b,
                Err(e) => return e.into(),
            };
            self.metrics.outbox_backlog.set(count);
            self.metrics.outbox_oldest_seconds.set(oldest);
            if last_prune.elapsed() > Duration::from_secs(60) {
                last_prune = Instant::now();
                if let Err(e) = outbox::prune(&self.leader, KEEP_PUBLISHED_SECS).await {
                    return e.into();
                }
            }
            let pause = match self.round().await {
                Err(e) => return e,
                Ok(Round::Done) if count == 0 => poll,
                Ok(Round::Done) => {
                    backoff = Duration::from_millis(50);
                    continue;
                }
                Ok(Round::Failed) => {
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    backoff
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = self.outbox.wake.notified() => {}
                alive = self.leader.woken() => if !alive { return RelayError::ConnectionLost },
            }
            if !self.leader.is_alive() {
                return RelayError::ConnectionLost;
            }
        }
    }

    /// Publishes the pending rows in order, stopping at the first that cannot go out now, and marks what went.
    async fn round(&mut self) -> Result<Round, RelayError> {
        let rows = outbox::pending(&self.leader, BATCH).await?;
        if rows.is_empty() || self.nats.connection_state() != State::Connected {
            return Ok(if rows.is_empty() { Round::Done } else { Round::Failed });
        }
        let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
        outbox::mark_attempted(&self.leader, &ids).await?;
        let mut published = Vec::with_capacity(rows.len());
        let mut events = Vec::new();
        let mut outcome = Round::Done;
        for row in &rows {
            if self.nats.connection_state() != State::Connected {
                outcome = Round::Failed;
                break;
            }
            match self.publish(row).await {
                Ok(seq) => {
                    published.push((row.id, seq));
                    if let Some(id) = row.msg_id {
                        events.push((id, u64::try_from(seq).unwrap_or(0)));
                    }
                }
                Err(e) => {
                    self.metrics.outbox_publish_failures.inc();
                    tracing::warn!(kind = %row.kind, subject = %row.subject, error = %e, "outbox relay: publish failed, will retry");
                    outcome = Round::Failed;
                    break;
                }
            }
            if self.settings.outbox_crash_after.as_deref() == Some(row.kind.as_str()) {
                // Test-only failpoint (off by default): die between the publish and the mark.
                tracing::error!(kind = %row.kind, "outbox failpoint: aborting after publish");
                std::process::abort();
            }
        }
        if !published.is_empty() {
            outbox::mark_published(&self.leader, &published).await?;
            self.metrics.outbox_published.inc_by(published.len() as u64);
            // No receiver (nobody waiting) is not an error.
            let _ = self.outbox.marked.send(Arc::new(events));
        }
        Ok(outcome)
    }

    /// Publishes one row (or finds the copy an earlier attempt stored); its stream seq.
    async fn publish(&mut self, row: &Pending) -> Result<i64, PublishError> {
        let stream = stream_of(&row.subject);
        let msg_id = match row.msg_id {
            Some(id) => id.to_string(),
            None => format!("outbox-{}", row.id),
        };
        if let Some((first, age)) = row.attempted
            && Duration::from_secs_f64(age.max(0.0)) + WINDOW_MARGIN >= self.window(stream).await
        {
            let since = first - CLOCK_SKEW;
            if let Some(seq) = rh_bus::lookup::find_msg_id(self.nats, stream, &row.subject, &msg_id, since).await? {
                tracing::info!(kind = %row.kind, seq, "outbox relay: an earlier attempt is in the stream, not publishing again");
                self.metrics.outbox_found_in_stream.inc();
                return i64::try_from(seq).map_err(|_| PublishError::Seq);
            }
        }
        let headers = rh_bus::msg_headers(&msg_id);
        let payload = bytes::Bytes::copy_from_slice(&row.payload);
        let ack = self.js.publish_with_headers(row.subject.clone(), headers, payload).await?;
        let ack = tokio::time::timeout(Duration::from_secs(5), ack).await.map_err(|_| PublishError::Timeout)??;
        i64::try_from(ack.sequence).map_err(|_| PublishError::Seq)
    }

    /// The duplicate window of `stream`, read from the server once (zero while it cannot be read).
    async fn window(&mut self, stream: &'static str) -> Duration {
        if let Some(w) = self.windows.get(stream) {
            return *w;
        }
        match self.js.get_stream(stream).await {
            Ok(s) => {
                let window = s.cached_info().config.duplicate_window;
                self.windows.insert(stream, window);
                window
            }
            Err(e) => {
                tracing::warn!(stream, error = %e, "could not read the duplicate window");
                Duration::ZERO
            }
        }
    }
}
