//! NATS and JetStream helpers shared by the RelayHub services.
//!
//! | item | purpose |
//! |---|---|
//! | [`connect`] | connect as a [`Role`] with its [`NatsAuth`] credentials and inbox prefix, retrying until the server answers |
//! | [`connect_once`] | a connection that never reconnects (a publisher's messages reach the stream as a prefix) |
//! | [`Topology`] / [`Topology::ensure`] | the streams and buckets (`RH_CONV`, `RH_AUDIT`, `RH_JOBS`, KV `rh_stops`, object store `rh_attachments`), created if missing (only the api may), in `topology` |
//! | [`wait_for_streams`] | the other services wait until the streams they use exist (`topology`) |
//! | [`source_seq`] | the `RH_CONV` seq of an event copied into `RH_AUDIT` (its `Nats-Stream-Source` header) |
//! | [`msg_headers`] | the headers of every JetStream publish: `Nats-Msg-Id` plus the trace context when tracing is on ([`rh_telemetry::trace`]) |
//! | [`publish_event`] | publish an [`Envelope`] on its conversation subject with `Nats-Msg-Id` = event id (dedupe on retry), without waiting for the ack |
//! | [`claims`] | who may end a response (a queued job the api can stop vs a worker's): compare-and-set in KV `rh_stops` |
//! | [`request`] / [`respond`] | typed JSON request/reply over `rh.api.*` with [`rh_protocol::rpc::Reply`] (a request carries the trace context when tracing is on) |
//! | [`erase`] | erasing a conversation: purge its subjects from every stream holding them, delete its objects |
//!
//! Errors follow the nats.rs shape: [`Error<Kind>`] with one kind enum per operation that callers match on.

mod auth;
pub mod claims;
pub mod erase;
pub mod lookup;
mod topology;

pub use auth::{NatsAuth, Role, redact_url};
pub use topology::{Topology, TopologyError, TopologyErrorKind, wait_for_streams};

use async_nats::jetstream::{self, context::PublishAckFuture};
use rh_protocol::Envelope;
use rh_protocol::rpc::{Reply, RpcError};
use rh_protocol::subjects;
use serde::{Serialize, de::DeserializeOwned};
use std::fmt;
use std::time::Duration;

/// An error of one operation: a kind to match on, plus the underlying cause.
#[derive(Debug)]
pub struct Error<K> {
    kind: K,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl<K: Copy> Error<K> {
    pub fn new(kind: K) -> Self {
        Error { kind, source: None }
    }
    pub fn with_source(kind: K, source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Error { kind, source: Some(source.into()) }
    }
    pub fn kind(&self) -> K {
        self.kind
    }
}

impl<K: fmt::Display> fmt::Display for Error<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.source {
            Some(s) => write!(f, "{}: {}", self.kind, s),
            None => write!(f, "{}", self.kind),
        }
    }
}

impl<K: fmt::Display + fmt::Debug> std::error::Error for Error<K> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_ref().map(|s| s.as_ref() as &(dyn std::error::Error + 'static))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublishErrorKind {
    Serialize,
    Publish,
}
impl fmt::Display for PublishErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Serialize => "serializing the event failed",
            Self::Publish => "publishing to JetStream failed",
        })
    }
}
pub type PublishError = Error<PublishErrorKind>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestErrorKind {
    /// Nobody answered in time, or no responder is listening.
    Unavailable,
    /// The request could not be sent, or the reply was not the expected JSON.
    Protocol,
    /// The responder answered with an error; see [`RequestError::rejection`].
    Rejected,
}
impl fmt::Display for RequestErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Unavailable => "no answer",
            Self::Protocol => "bad request or reply",
            Self::Rejected => "refused",
        })
    }
}

/// A failed request; a `Rejected` one carries the responder's [`RpcError`].
#[derive(Debug)]
pub struct RequestError {
    pub error: Error<RequestErrorKind>,
    pub rejection: Option<RpcError>,
}
impl RequestError {
    pub fn kind(&self) -> RequestErrorKind {
        self.error.kind()
    }
}
impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.rejection {
            Some(r) => write!(f, "refused: {r}"),
            None => write!(f, "{}", self.error),
        }
    }
}
impl std::error::Error for RequestError {}

/// Connects to NATS as `role` with `auth`, retrying with back-off until the server answers. A refused login is
/// retried too (a Secret being rolled out), but logged as an error. `url` may list several servers of one
/// cluster, comma-separated (`nats://a:4222,nats://b:4222`): the client starts with any that answers and
/// reconnects to the others (and to those the cluster announces) when its server goes away.
pub async fn connect(url: &str, auth: &NatsAuth, role: Role) -> async_nats::Client {
    let mut delay = Duration::from_millis(100);
    let shown = redact_url(url);
    loop {
        match auth.options(role).connection_timeout(Duration::from_secs(5)).connect(servers(url)).await {
            Ok(client) => {
                tracing::info!(url = %shown, user = role.user(), "connected to NATS");
                return client;
            }
            Err(e) if e.kind() == async_nats::ConnectErrorKind::AuthorizationViolation => {
                tracing::error!(url = %shown, user = role.user(), "NATS refused our credentials (RH_NATS_USER, RH_NATS_PASSWORD); retrying");
            }
            Err(e) => tracing::warn!(url = %shown, error = %e, "NATS not reachable yet, retrying"),
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(3));
    }
}

/// One attempt to connect as `role` on a connection that never reconnects ([`NatsAuth::options_once`]): for
/// publishers whose messages must reach the stream as a gapless prefix.
pub async fn connect_once(
    url: &str,
    auth: &NatsAuth,
    role: Role,
    timeout: Duration,
) -> Result<async_nats::Client, async_nats::ConnectError> {
    auth.options_once(role).connection_timeout(timeout).connect(servers(url)).await
}

/// The servers of a `--nats-url`: one URL, or several of one cluster comma-separated.
fn servers(url: &str) -> Vec<&str> {
    url.split(',').map(str::trim).filter(|s| !s.is_empty()).collect()
}

/// The `RH_CONV` seq of a message that JetStream copied into `RH_AUDIT`, from its `Nats-Stream-Source` header
/// (`RH_CONV <seq> <filter> > <subject> <id>`; older servers write fewer fields after the seq). `None` when the
/// header is missing or names another stream.
pub fn source_seq(headers: Option<&async_nats::HeaderMap>) -> Option<u64> {
    let value = headers?.get("Nats-Stream-Source")?.as_str();
    let mut fields = value.split_whitespace();
    // A source from another domain or account is written `NAME:hash`.
    let stream = fields.next()?.split(':').next()?;
    if stream != subjects::STREAM_CONV {
        return None;
    }
    fields.next()?.parse().ok()
}

/// Headers for a JetStream publish: `Nats-Msg-Id` = `msg_id` (JetStream stores a retry once), plus the current
/// span's trace context when tracing is on (nothing more when it is off: this is on every delta's path).
pub fn msg_headers(msg_id: &str) -> async_nats::HeaderMap {
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Msg-Id", msg_id);
    rh_telemetry::trace::inject_nats(&mut headers);
    headers
}

/// Publishes `envelope` on its conversation subject (`.delta` or `.event`) with [`msg_headers`] (`Nats-Msg-Id` =
/// event id). Returns the ack future without awaiting it, so callers can pipeline many publishes and await acks
/// later.
pub async fn publish_event(js: &jetstream::Context, envelope: &Envelope) -> Result<PublishAckFuture, PublishError> {
    let payload = serde_json::to_vec(envelope).map_err(|e| Error::with_source(PublishErrorKind::Serialize, e))?;
    let headers = msg_headers(&envelope.event_id.to_string());
    js.publish_with_headers(envelope.subject(), headers, payload.into())
        .await
        .map_err(|e| Error::with_source(PublishErrorKind::Publish, e))
}

/// Publishes `envelope` and waits for JetStream to store it; returns its stream sequence (`seq`).
pub async fn publish_event_acked(js: &jetstream::Context, envelope: &Envelope) -> Result<u64, PublishError> {
    let ack = publish_event(js, envelope).await?;
    let ack = ack.await.map_err(|e| Error::with_source(PublishErrorKind::Publish, e))?;
    Ok(ack.sequence)
}

/// Sends `req` as JSON on `subject` and decodes a [`Reply<Resp>`], waiting at most `timeout`.
pub async fn request<Req: Serialize, Resp: DeserializeOwned>(
    client: &async_nats::Client,
    subject: &str,
    req: &Req,
    timeout: Duration,
) -> Result<Resp, RequestError> {
    let fail = |kind, e: Box<dyn std::error::Error + Send + Sync>| RequestError {
        error: Error::with_source(kind, e),
        rejection: None,
    };
    let payload = serde_json::to_vec(req).map_err(|e| fail(RequestErrorKind::Protocol, e.into()))?;
    let call = async {
        if rh_telemetry::trace::enabled() {
            let mut headers = async_nats::HeaderMap::new();
            rh_telemetry::trace::inject_nats(&mut headers);
            client.request_with_headers(subject.to_owned(), headers, payload.into()).await
        } else {
            client.request(subject.to_owned(), payload.into()).await
        }
    };
    let msg = tokio::time::timeout(timeout, call)
        .await
        .map_err(|e| fail(RequestErrorKind::Unavailable, e.into()))?
        .map_err(|e| {
            let kind = match e.kind() {
                async_nats::RequestErrorKind::TimedOut | async_nats::RequestErrorKind::NoResponders => {
                    RequestErrorKind::Unavailable
                }
                _ => RequestErrorKind::Protocol,
            };
            fail(kind, e.into())
        })?;
    match serde_json::from_slice::<Reply<Resp>>(&msg.payload) {
        Ok(Reply::Ok(resp)) => Ok(resp),
        Ok(Reply::Error(rejection)) => {
            Err(RequestError { error: Error::new(RequestErrorKind::Rejected), rejection: Some(rejection) })
        }
        Err(e) => Err(fail(RequestErrorKind::Protocol, e.into())),
    }
}

/// Answers a request with a [`Reply`]. A request without a reply subject is ignored.
pub async fn respond<T: Serialize>(client: &async_nats::Client, request: &async_nats::Message, reply: &Reply<T>) {
    let Some(to) = request.reply.clone() else { return };
    match serde_json::to_vec(reply) {
        Ok(body) => {
            if let Err(e) = client.publish(to, body.into()).await {
                tracing::warn!(error = %e, "could not send reply");
            }
        }
        Err(e) => tracing::error!(error = %e, "could not serialize reply"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(value: &str) -> async_nats::HeaderMap {
        let mut h = async_nats::HeaderMap::new();
        h.insert("Nats-Stream-Source", value);
        h
    }

    #[test]
    fn source_seq_reads_the_origin_position() {
        // As nats-server 2.15 writes it.
        let h = headers("RH_CONV 42 rh.conv.*.event > rh.conv.abc.event CR5jwSnL");
        assert_eq!(source_seq(Some(&h)), Some(42));
        assert_eq!(source_seq(Some(&headers("RH_CONV:3c8d 7 rh.conv.*.event"))), Some(7));
        assert_eq!(source_seq(Some(&headers("OTHER 42 x"))), None);
        assert_eq!(source_seq(Some(&headers("RH_CONV x"))), None);
        assert_eq!(source_seq(Some(&async_nats::HeaderMap::new())), None);
        assert_eq!(source_seq(None), None);
    }
}
