//! Response claims: who may end one AI response, kept in KV `rh_stops` under
//! [`rh_protocol::subjects::response_claim`] (the value is a [`ResponseClaim`]).
//!
//! The api writes `queued` before it queues the job; a worker that picks the job up swaps it to `running`; a stop
//! swaps `queued` to `stopped` (the api then ends the response itself) or `running` to `stop_requested` (the
//! worker ends it). Every change names the revision it read, so when a stop and a pickup race exactly one wins and
//! the loser reads the winner's state: a response is never ended twice, and never started after the api ended it.

use async_nats::jetstream::kv;
use rh_protocol::rpc::ResponseClaim;

/// A claim could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum ClaimError {
    #[error("reading the response claim: {0}")]
    Read(#[from] kv::EntryError),
    #[error("writing the response claim: {0}")]
    Write(String),
    #[error("unreadable response claim: {0}")]
    Decode(#[from] serde_json::Error),
}

/// A claim as stored, with the revision a compare-and-set must name.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    pub claim: ResponseClaim,
    pub revision: u64,
}

/// The claim under `key`; `None` when there is none (never written, ended and deleted, or expired).
pub async fn read(kv: &kv::Store, key: &str) -> Result<Option<Stored>, ClaimError> {
    match kv.entry(key).await? {
        Some(e) if e.operation == kv::Operation::Put => {
            Ok(Some(Stored { claim: serde_json::from_slice(&e.value)?, revision: e.revision }))
        }
        _ => Ok(None),
    }
}

/// Writes `claim` if `key` is still at revision `expected` (`None`: if it has no claim). `Ok(false)`: someone
/// changed it first; read it again.
pub async fn swap(kv: &kv::Store, key: &str, expected: Option<u64>, claim: &ResponseClaim) -> Result<bool, ClaimError> {
    let value: bytes::Bytes = serde_json::to_vec(claim)?.into();
    match expected {
        Some(revision) => match kv.update(key, value, revision).await {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => Ok(false),
            Err(e) => Err(ClaimError::Write(e.to_string())),
        },
        None => match kv.create(key, value).await {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(ClaimError::Write(e.to_string())),
        },
    }
}

/// Removes the claim of a response that has ended (its job is acked).
pub async fn remove(kv: &kv::Store, key: &str) -> Result<(), ClaimError> {
    kv.delete(key).await.map_err(|e| ClaimError::Write(e.to_string()))
}
