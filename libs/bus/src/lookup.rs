//! Finding a message in a stream by its `Nats-Msg-Id`, for a publisher that cannot rely on JetStream's duplicate
//! window any more (its first attempt is older than the window): the outbox relay (`bins/api/src/relay.rs`).
//!
//! JetStream keeps message ids only for the duplicate window, so the search reads the subject's messages stored
//! since a time (`$JS.API.DIRECT.GET` with `start_time` and `next_by_subj`, one message per request) and compares
//! their `Nats-Msg-Id` headers. It is meant for the rare retry after a long outage, on subjects that carry few
//! messages (one conversation's events, one user's sidebar), not for every publish.

use async_nats::StatusCode;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::time::Duration;

/// How long one read may take.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a search could not finish; the caller tries again later (publishing instead could store a duplicate).
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    #[error("reading the stream: {0}")]
    Request(#[from] async_nats::RequestError),
    #[error("reading the stream timed out")]
    Timeout,
    #[error("the stream answered {0}: {1}")]
    Refused(StatusCode, String),
    #[error("encoding the request: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("a stored message without Nats-Sequence")]
    NoSequence,
}

#[derive(Serialize)]
struct Get<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    seq: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    start_time: Option<DateTime<Utc>>,
    next_by_subj: &'a str,
}

/// The stream seq of the message on `subject` whose `Nats-Msg-Id` is `msg_id`, stored at or after `since`;
/// `None` when there is none (it was never stored, or the stream has dropped it since).
pub async fn find_msg_id(
    client: &async_nats::Client,
    stream: &str,
    subject: &str,
    msg_id: &str,
    since: DateTime<Utc>,
) -> Result<Option<u64>, LookupError> {
    let api = format!("$JS.API.DIRECT.GET.{stream}");
    let mut get = Get { seq: None, start_time: Some(since), next_by_subj: subject };
    loop {
        let payload = serde_json::to_vec(&get)?;
        let reply = tokio::time::timeout(READ_TIMEOUT, client.request(api.clone(), payload.into()))
            .await
            .map_err(|_| LookupError::Timeout)??;
        match reply.status {
            None | Some(StatusCode::OK) => {}
            Some(StatusCode::NOT_FOUND) => return Ok(None),
            Some(status) => {
                let why = reply.description.unwrap_or_default();
                return Err(LookupError::Refused(status, why));
            }
        }
        let header = |name: &str| reply.headers.as_ref().and_then(|h| h.get(name)).map(|v| v.as_str().to_owned());
        let seq: u64 = header("Nats-Sequence").and_then(|s| s.parse().ok()).ok_or(LookupError::NoSequence)?;
        if header("Nats-Msg-Id").as_deref() == Some(msg_id) {
            return Ok(Some(seq));
        }
        get = Get { seq: Some(seq + 1), start_time: None, next_by_subj: subject };
    }
}
