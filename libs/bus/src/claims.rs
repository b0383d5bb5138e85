//! Response claims: who may end one AI response, kept in KV `rh_stops` under
//! [`rh_protocol::subjects::response_claim`] (the value is a [`ResponseClaim`]).
//!
//! The api writes `queued` before it queues the job; a worker that picks the job up swaps it to `running`; a stop
//! swaps `queued` to `stopped` (the api then ends the response itself) or `running` to `stop_requested` (the
//! worker ends it). Every change names the revision it read, so when a stop and a pickup race exactly one wins and
//! the loser reads the winner's state: a response is never ended twice, and never started after the api ended it.
//! The worker that ends a response removes its claim before acking the job; the removed claim tells a later
//! delivery of the job (its ack was lost, e.g. while the consumer had no leader) that the response has ended.

use async_nats::jetstream::kv;
use rh_protocol::rpc::ResponseClaim;
use std::time::Duration;

/// A claim could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum ClaimError {
    #[error("reading the response claim: {0}")]
    Read(#[from] kv::EntryError),
    #[error("reading the response claim: no answer in {READ_TIMEOUT:?}, {READ_TRIES} times")]
    ReadTimedOut,
    #[error("writing the response claim: {0}")]
    Create(#[from] kv::CreateError),
    /// Also a removal's (`kv::DeleteError` is the same type).
    #[error("writing the response claim: {0}")]
    Update(#[from] kv::UpdateError),
    #[error("unreadable response claim: {0}")]
    Decode(#[from] serde_json::Error),
}

/// How long one read of a claim may wait, and how often it is tried. A read is a direct get, which any replica of
/// the bucket may answer; in a cluster one can be routed to a server that has just died and go unanswered for the
/// whole request timeout (10 s: a person's stop answered 503), while asking again reaches a live replica.
const READ_TIMEOUT: Duration = Duration::from_secs(2);
const READ_TRIES: usize = 3;

/// A claim as stored, with the revision a compare-and-set must name.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    pub claim: ResponseClaim,
    pub revision: u64,
}

/// What is under a response's key.
#[derive(Debug, Clone, PartialEq)]
pub enum Found {
    /// No claim was ever written (or it expired with the bucket's max age).
    Nothing,
    /// The claim was removed: the response has ended (the bucket keeps the delete marker for its max age).
    Removed,
    Claim(Stored),
}

/// The claim under `key`; `None` when there is none (never written, ended and removed, or expired).
pub async fn read(kv: &kv::Store, key: &str) -> Result<Option<Stored>, ClaimError> {
    Ok(match find(kv, key).await? {
        Found::Claim(stored) => Some(stored),
        Found::Nothing | Found::Removed => None,
    })
}

/// The claim under `key`, telling a removed claim (an ended response) from one never written.
pub async fn find(kv: &kv::Store, key: &str) -> Result<Found, ClaimError> {
    Ok(match entry(kv, key).await? {
        Some(e) if e.operation == kv::Operation::Put => {
            Found::Claim(Stored { claim: serde_json::from_slice(&e.value)?, revision: e.revision })
        }
        Some(_) => Found::Removed,
        None => Found::Nothing,
    })
}

/// Writes `claim` if `key` is still at revision `expected` (`None`: if it has no claim). `Ok(false)`: someone
/// changed it first; read it again.
pub async fn swap(kv: &kv::Store, key: &str, expected: Option<u64>, claim: &ResponseClaim) -> Result<bool, ClaimError> {
    let value: bytes::Bytes = serde_json::to_vec(claim)?.into();
    match expected {
        Some(revision) => match kv.update(key, value, revision).await {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => Ok(false),
            Err(e) => Err(e.into()),
        },
        None => match kv.create(key, value).await {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(e.into()),
        },
    }
}

/// Removes the claim of a response that has ended (or will never be generated), before its job is acked: a later
/// delivery of the job (an ack that was lost) finds it [`Found::Removed`] and drops the job.
pub async fn remove(kv: &kv::Store, key: &str) -> Result<(), ClaimError> {
    Ok(kv.delete(key).await?)
}

/// [`remove`], only if `key` is still at `revision`. `Ok(false)`: someone changed it first.
pub async fn remove_at(kv: &kv::Store, key: &str, revision: u64) -> Result<bool, ClaimError> {
    match kv.delete_expect_revision(key, Some(revision)).await {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == kv::DeleteErrorKind::WrongLastRevision => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// The key's last entry, asked again when a read goes unanswered for [`READ_TIMEOUT`].
async fn entry(kv: &kv::Store, key: &str) -> Result<Option<kv::Entry>, ClaimError> {
    for _ in 0..READ_TRIES {
        if let Ok(read) = tokio::time::timeout(READ_TIMEOUT, kv.entry(key)).await {
            return Ok(read?);
        }
    }
    Err(ClaimError::ReadTimedOut)
}
