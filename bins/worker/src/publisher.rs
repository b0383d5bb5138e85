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

use async_nats::connection::State;
use async_nats::jetstream::{self, context::PublishAckFuture};
use rh_bus::{NatsAuth, Role};
use rh_protocol::Envelope;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How many acks may be outstanding per job before `publish` waits (back-pressure).
const MAX_IN_FLIGHT: usize = 1024;

/// How long a new publishing connection may take before the job is handed back.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

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
    pub async fn context(&self) -> Result<jetstream::Context, String> {
        let mut current = self.current.lock().await;
        if let Some(client) = current.as_ref()
            && client.connection_state() == State::Connected
        {
            return Ok(self.jetstream(client.clone()));
        }
        let client = rh_bus::connect_once(&self.url, &self.auth, Role::Worker, CONNECT_TIMEOUT)
            .await
            .map_err(|e| format!("no publishing connection to NATS: {e}"))?;
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

pub struct Publisher {
    js: jetstream::Context,
    tx: Option<mpsc::Sender<(Instant, PublishAckFuture)>>,
    task: Option<JoinHandle<()>>,
    broken: CancellationToken,
    error: Arc<Mutex<Option<String>>>,
}

impl Publisher {
    /// `ack_seconds` observes each publish's time to its ack.
    pub fn new(js: jetstream::Context, ack_seconds: prometheus::Histogram) -> Self {
        let (tx, mut rx) = mpsc::channel::<(Instant, PublishAckFuture)>(MAX_IN_FLIGHT);
        let broken = CancellationToken::new();
        let error = Arc::new(Mutex::new(None));
        let task = {
            let broken = broken.clone();
            let error = error.clone();
            tokio::spawn(async move {
                while let Some((sent, ack)) = rx.recv().await {
                    let acked = ack.await;
                    ack_seconds.observe(sent.elapsed().as_secs_f64());
                    if let Err(e) = acked {
                        if let Ok(mut slot) = error.lock() {
                            *slot = Some(format!("publish not acknowledged: {e}"));
                        }
                        broken.cancel();
                        return;
                    }
                }
            })
        };
        Publisher { js, tx: Some(tx), task: Some(task), broken, error }
    }

    /// Sends `envelope` without waiting for its ack. Fails if it could not be sent or an earlier ack failed.
    pub async fn publish(&mut self, envelope: &Envelope) -> Result<(), String> {
        if self.broken.is_cancelled() {
            return Err(self.error());
        }
        let sent = Instant::now();
        let ack = rh_bus::publish_event(&self.js, envelope).await.map_err(|e| e.to_string())?;
        let tx = self.tx.as_ref().ok_or_else(|| "publisher already finished".to_owned())?;
        tx.send((sent, ack)).await.map_err(|_| self.error())
    }

    /// Resolves when an ack failed (used in the job's `select!` to stop generating at once).
    pub async fn failed(&self) {
        self.broken.cancelled().await
    }

    /// Waits for every outstanding ack. `Ok` means everything published so far is stored in the stream.
    pub async fn finish(&mut self) -> Result<(), String> {
        self.tx.take();
        if let Some(task) = self.task.take()
            && let Err(e) = task.await
        {
            return Err(format!("ack task failed: {e}"));
        }
        if self.broken.is_cancelled() { Err(self.error()) } else { Ok(()) }
    }

    fn error(&self) -> String {
        self.error.lock().ok().and_then(|e| e.clone()).unwrap_or_else(|| "publishing failed".to_owned())
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
