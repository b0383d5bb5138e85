//! Pipelined, ordered, gapless publishing of one job's events.
//!
//! A synchronous publish loop (publish, wait for the ack, publish the next) stalls at a few thousand messages per
//! second, so events are published back to back and their ack futures go, in order, to a background task that
//! awaits them. The first failed ack is remembered and signalled: the job then stops and is handed back to
//! JetStream, because a delta that might be missing must never be followed by a `response.completed`.
//!
//! Pipelining must not leave a hole in the stream. On an ordinary, reconnecting NATS client it can: when the
//! connection dies, what sat in its write buffer (or in the dead server's socket) is lost, while what was queued
//! behind it goes out on the new connection and is stored, so delta N+1 is in the stream without delta N, and every
//! viewer shows the hole until the next attempt. So events go out on a [`Connection`] that never reconnects
//! ([`rh_bus::connect_once`]): one TCP connection carries the whole attempt, the server stores it in order, and
//! once that connection is gone every later publish of the attempt fails. The stream holds a gapless prefix of the
//! attempt; the job is handed back and its next attempt (a new `response.started`) replaces the prefix for every
//! viewer. The next job takes a new connection.
//!
//! One connection is not enough in a cluster. While `RH_CONV` elects a new leader (its old one died), a publish can
//! vanish without an answer, and once the new leader serves, the attempt's later events are stored and acked: a hole
//! in the middle of the stream that no connection loss shows. So an ack that has not come [`PROBE_AFTER`] after its
//! publish (or twice the attempt's slowest ack) is *probed*: the same event is published again with the same
//! `Nats-Msg-Id`. JetStream answers a duplicate if it stored the first (the ack is just late: a busy or paused
//! broker), and stores it anew if it did not: the event was lost, and the attempt is given up. And the end event goes
//! out only once every earlier event is stored ([`Publisher::finish`]): a `response.completed` never follows a hole.
//!
//! A core NATS subscriber of `rh.conv.>` (not the stream) sees a probe as the same event twice; the edges read the
//! stream's republish, which stores and republishes an event once.

use async_nats::connection::State;
use async_nats::jetstream::{self, context::PublishAckFuture};
use rh_bus::{NatsAuth, Role};
use rh_protocol::Envelope;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How many acks may be outstanding per job before `publish` waits (back-pressure).
const MAX_IN_FLIGHT: usize = 1024;

/// How long a new publishing connection may take before the job is handed back.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// How long an ack may be outstanding before the event is probed (published again with its `Nats-Msg-Id`), at
/// least: twice the attempt's slowest ack so far when that is longer, so that a broker that is only slow (every ack
/// seconds late under overload) is not sent every end event twice.
pub const PROBE_AFTER: Duration = Duration::from_secs(2);
/// How long a probe's own answer is awaited; without one (no stream leader yet) the event is probed again.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// No publishing connection could be made: the job is handed back.
#[derive(Debug, thiserror::Error)]
#[error("no publishing connection to NATS: {0}")]
pub struct ConnectError(#[from] async_nats::ConnectError);

/// Why an attempt's events cannot all be stored: the job is handed back and its next attempt starts over.
#[derive(Debug, thiserror::Error)]
pub enum PublishFailure {
    #[error("publishing an event: {0}")]
    Send(#[from] rh_bus::PublishError),
    #[error("an event was not acknowledged: {0}")]
    NotAcknowledged(#[from] jetstream::context::PublishError),
    #[error("an event was lost (JetStream stored it only when published again: it had no stream leader then)")]
    Lost,
    /// The cause was logged when it happened (the acks are checked in the background).
    #[error("an event of the attempt was not stored")]
    EarlierFailed,
    #[error("the ack task ended abnormally: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// The process's publishing connection: shared by the jobs, replaced by a new one once it is gone.
pub struct Connection {
    url: String,
    auth: NatsAuth,
    /// The publish ack timeout of every attempt's context (`--publish-ack-timeout-secs`).
    ack_timeout: Duration,
    current: tokio::sync::Mutex<Option<async_nats::Client>>,
}

impl Connection {
    /// Connects lazily: the first job (and the first after an outage) makes the connection.
    pub fn new(url: String, auth: NatsAuth, ack_timeout: Duration) -> Self {
        Connection { url, auth, ack_timeout, current: tokio::sync::Mutex::new(None) }
    }

    /// The live connection for an attempt, or a new one if the last one is gone (then the earlier attempts on it
    /// fail, as they must).
    pub async fn context(&self) -> Result<jetstream::Context, ConnectError> {
        let mut current = self.current.lock().await;
        if let Some(client) = current.as_ref()
            && client.connection_state() == State::Connected
        {
            return Ok(self.jetstream(client.clone()));
        }
        let client = rh_bus::connect_once(&self.url, &self.auth, Role::Worker, CONNECT_TIMEOUT).await?;
        tracing::info!("new publishing connection to NATS");
        *current = Some(client.clone());
        Ok(self.jetstream(client))
    }

    fn jetstream(&self, client: async_nats::Client) -> jetstream::Context {
        let mut js = jetstream::new(client);
        js.set_timeout(self.ack_timeout);
        js
    }
}

/// One attempt's publisher: events go out back to back, their acks are awaited in order by a background task.
pub struct Publisher {
    js: jetstream::Context,
    tx: Option<mpsc::Sender<Outstanding>>,
    /// Returns the attempt's slowest ack.
    task: Option<JoinHandle<Result<Duration, PublishFailure>>>,
    broken: CancellationToken,
    ack_seconds: prometheus::Histogram,
}

/// A published event whose ack has not been checked yet.
struct Outstanding {
    envelope: Envelope,
    sent: Instant,
    ack: PublishAckFuture,
}

impl Publisher {
    /// `ack_seconds` observes each publish's time to its ack.
    pub fn new(js: jetstream::Context, ack_seconds: prometheus::Histogram) -> Self {
        let (tx, mut rx) = mpsc::channel::<Outstanding>(MAX_IN_FLIGHT);
        let broken = CancellationToken::new();
        let task = {
            let (js, broken, ack_seconds) = (js.clone(), broken.clone(), ack_seconds.clone());
            tokio::spawn(async move {
                let mut quiet_since = Instant::now();
                let mut slowest = Duration::ZERO;
                while let Some(outstanding) = rx.recv().await {
                    let since = quiet_since.max(outstanding.sent);
                    match settle(&js, outstanding, since, slowest, &ack_seconds).await {
                        Ok(took) => slowest = slowest.max(took),
                        Err(e) => {
                            tracing::warn!(error = %e, "an event of this attempt is not stored");
                            broken.cancel();
                            return Err(e);
                        }
                    }
                    quiet_since = Instant::now();
                }
                Ok(slowest)
            })
        };
        Publisher { js, tx: Some(tx), task: Some(task), broken, ack_seconds }
    }

    /// Sends `envelope` without waiting for its ack. Fails if it could not be sent or an earlier event failed.
    pub async fn publish(&mut self, envelope: Envelope) -> Result<(), PublishFailure> {
        if self.broken.is_cancelled() {
            return Err(PublishFailure::EarlierFailed);
        }
        let outstanding = send(&self.js, envelope).await?;
        let tx = self.tx.as_ref().ok_or(PublishFailure::EarlierFailed)?;
        tx.send(outstanding).await.map_err(|_| PublishFailure::EarlierFailed)
    }

    /// Resolves when an event was not stored (used in the job's `select!` to stop generating at once).
    pub async fn failed(&self) -> PublishFailure {
        self.broken.cancelled().await;
        PublishFailure::EarlierFailed
    }

    /// Waits until every event published so far is stored, then publishes `end` and waits until it is stored too.
    /// `Ok`: the attempt, `end` included, is in the stream without a gap.
    pub async fn finish(&mut self, end: Envelope) -> Result<(), PublishFailure> {
        self.tx.take();
        let slowest = match self.task.take() {
            Some(task) => task.await??,
            None => Duration::ZERO,
        };
        let outstanding = send(&self.js, end).await?;
        let sent = outstanding.sent;
        settle(&self.js, outstanding, sent, slowest, &self.ack_seconds).await?;
        Ok(())
    }
}

/// Publishes `envelope` and keeps it with its ack future: a probe publishes it again.
async fn send(js: &jetstream::Context, envelope: Envelope) -> Result<Outstanding, PublishFailure> {
    let sent = Instant::now();
    let ack = rh_bus::publish_event(js, &envelope).await?;
    Ok(Outstanding { envelope, sent, ack })
}

/// Waits for one event's ack (returning how long it took), probing the event once no ack has come for
/// [`PROBE_AFTER`] (or twice the attempt's `slowest` ack) since `since`: its publish, or the previous ack if later,
/// so a broker that acks late but steadily is not probed at every event.
async fn settle(
    js: &jetstream::Context,
    outstanding: Outstanding,
    since: Instant,
    slowest: Duration,
    ack_seconds: &prometheus::Histogram,
) -> Result<Duration, PublishFailure> {
    let Outstanding { envelope, sent, ack } = outstanding;
    let mut ack = std::future::IntoFuture::into_future(ack);
    let patience = PROBE_AFTER.max(slowest * 2);
    let mut probe_at = tokio::time::Instant::from_std(since + patience);
    let mut probing = true;
    loop {
        tokio::select! {
            biased;
            acked = &mut ack => {
                let took = sent.elapsed();
                ack_seconds.observe(took.as_secs_f64());
                return acked.map(|_| took).map_err(PublishFailure::from);
            }
            _ = tokio::time::sleep_until(probe_at), if probing => match probe(js, &envelope).await {
                Probe::Stored => probing = false,
                Probe::Lost => return Err(PublishFailure::Lost),
                Probe::Unknown => probe_at = tokio::time::Instant::now() + patience,
            },
        }
    }
}

enum Probe {
    /// JetStream had stored the event: its ack is only late.
    Stored,
    /// JetStream stored it now: the first publish was lost.
    Lost,
    /// No answer (no stream leader yet) or an error: ask again later.
    Unknown,
}

async fn probe(js: &jetstream::Context, envelope: &Envelope) -> Probe {
    let answer = async { rh_bus::publish_event(js, envelope).await.ok()?.await.ok() };
    match tokio::time::timeout(PROBE_TIMEOUT, answer).await {
        Ok(Some(ack)) if ack.duplicate => Probe::Stored,
        Ok(Some(_)) => Probe::Lost,
        Ok(None) | Err(_) => Probe::Unknown,
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        // A job abandoned mid-way: nobody will look at the remaining acks.
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
