//! The socket grants (`rh.api.access`), answered in batches.
//!
//! Every socket subscribe asks for one, so they come in bursts: a thousand viewers joining a streaming response at
//! once, every socket of an edge that restarted. Answered one at a time, each is a pool checkout, a statement and a
//! search of the transcript, and a burst queues on the pool. Here the requests wait in one queue; whenever one of
//! [`SLOTS`] batch slots is free, everything queued so far is taken at once and answered with ONE statement per
//! conversation ([`rh_store::history::grants`]): the transcript is searched once for all of its subscribers.
//!
//! The batches run on a pool of their own ([`SLOTS`] connections, beside the api's main pool): in a burst of
//! people opening a conversation, each loads its history over HTTP and then subscribes, and a grant queued in the
//! shared pool behind hundreds of history reads waited for all of them; on its own pool it waits only for the
//! CPU.
//!
//! Nothing waits on a timer: a lone request is answered at once, as a batch of one, and only requests that arrive
//! while batches are running gather into the next one — the busier the api, the larger the batches. Nothing is
//! cached either: every answer comes from PostgreSQL, after the request arrived.

use crate::error::ApiError;
use rh_protocol::rpc::AccessGrant;
use rh_store::Db;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::{Semaphore, mpsc, oneshot};
use uuid::Uuid;

/// Batches answered at the same time. A few keep PostgreSQL busy (each batch checks out one pooled connection per
/// conversation in it) while a burst gathers into large batches behind them.
pub const SLOTS: usize = 4;
/// Most requests taken into one batch.
pub const MAX_BATCH: usize = 1024;

/// The queue of `rh.api.access` requests; cheap to clone.
#[derive(Clone)]
pub struct Grants {
    queue: mpsc::UnboundedSender<Asked>,
}

struct Asked {
    conversation_id: Uuid,
    user_id: Uuid,
    answer: oneshot::Sender<Result<Option<AccessGrant>, ApiError>>,
}

impl Grants {
    /// Starts answering; runs until every clone of the returned handle is dropped. `batch_size` observes the size
    /// of each batch.
    pub fn spawn(db: Db, batch_size: prometheus::Histogram) -> Self {
        let (queue, requests) = mpsc::unbounded_channel();
        tokio::spawn(answer_in_batches(db, requests, batch_size));
        Grants { queue }
    }

    /// `user_id`'s permission on the conversation and the `seq` their HTTP history covers; `not_found` when they
    /// may not see it.
    pub async fn ask(&self, conversation_id: Uuid, user_id: Uuid) -> Result<AccessGrant, ApiError> {
        let (answer, answered) = oneshot::channel();
        let gone = || ApiError::Unavailable("the api is shutting down".into());
        self.queue.send(Asked { conversation_id, user_id, answer }).map_err(|_| gone())?;
        answered.await.map_err(|_| gone())??.ok_or_else(ApiError::conversation_not_found)
    }
}

async fn answer_in_batches(db: Db, mut requests: mpsc::UnboundedReceiver<Asked>, batch_size: prometheus::Histogram) {
    let slots = Arc::new(Semaphore::new(SLOTS));
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else { return };
        let mut batch = Vec::new();
        if requests.recv_many(&mut batch, MAX_BATCH).await == 0 {
            return;
        }
        batch_size.observe(batch.len() as f64);
        let db = db.clone();
        tokio::spawn(async move {
            answer(&db, batch).await;
            drop(slot);
        });
    }
}

/// One statement per conversation of the batch, run concurrently; every request gets its answer.
async fn answer(db: &Db, batch: Vec<Asked>) {
    let mut by_conversation: HashMap<Uuid, Vec<Asked>> = HashMap::new();
    for asked in batch {
        by_conversation.entry(asked.conversation_id).or_default().push(asked);
    }
    futures::future::join_all(by_conversation.into_iter().map(|(conversation_id, asked)| async move {
        let users: Vec<Uuid> = asked.iter().map(|a| a.user_id).collect();
        match rh_store::history::grants(db, conversation_id, &users).await {
            Ok(rows) => {
                let granted: HashMap<Uuid, AccessGrant> = rows
                    .into_iter()
                    .map(|(user, permission, seq)| {
                        (user, AccessGrant { permission, history_seq: u64::try_from(seq).unwrap_or(0) })
                    })
                    .collect();
                for a in asked {
                    let _ = a.answer.send(Ok(granted.get(&a.user_id).cloned()));
                }
            }
            Err(e) => {
                tracing::error!(%conversation_id, error = %e, "socket grants failed");
                for a in asked {
                    let _ = a.answer.send(Err(ApiError::Unavailable("database unavailable".into())));
                }
            }
        }
    }))
    .await;
}
