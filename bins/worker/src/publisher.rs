//! Pipelined, ordered publishing of one job's events.
//!
//! A synchronous publish loop (publish, wait for the ack, publish the next) stalls at a few thousand messages per
//! second, so events are published back to back and their ack futures go, in order, to a background task that
//! awaits them. The first failed ack is remembered and signalled: the job then stops and is handed back to
//! JetStream, because a delta that might be missing must never be followed by a `response.completed`.

use async_nats::jetstream::{self, context::PublishAckFuture};
use rh_protocol::Envelope;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How many acks may be outstanding per job before `publish` waits (back-pressure).
const MAX_IN_FLIGHT: usize = 1024;

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
