//! The streams and buckets RelayHub needs, and their limits: [`Topology`], created by the api
//! ([`Topology::ensure`]), waited for by the other services ([`wait_for_streams`]). `nats/README.md` describes them.

use crate::Error;
use async_nats::jetstream::{self, stream};
use rh_protocol::subjects;
use std::fmt;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopologyErrorKind {
    Stream,
    KeyValue,
    ObjectStore,
}
impl fmt::Display for TopologyErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Stream => "creating a stream failed",
            Self::KeyValue => "creating a key-value bucket failed",
            Self::ObjectStore => "creating an object store failed",
        })
    }
}
pub type TopologyError = Error<TopologyErrorKind>;

/// Waits until every stream in `names` exists (the api creates them, [`Topology::ensure`]; the other services
/// may only look them up), checking with back-off.
pub async fn wait_for_streams(js: &jetstream::Context, names: &[&str]) {
    for name in names {
        let mut delay = Duration::from_millis(100);
        while let Err(e) = js.get_stream(*name).await {
            tracing::info!(stream = name, error = %e, "waiting for the api to create the stream");
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(3));
        }
    }
}

/// Limits of the streams. The api calls [`Topology::ensure`] at start and creates what is missing (the other
/// services have no right to create streams: they [`wait_for_streams`]); existing streams are left as they are (change limits with the NATS tooling, not by restarting
/// a service with other flags).
#[derive(Debug, Clone)]
pub struct Topology {
    /// How long conversation events stay in `RH_CONV` (catch-up window; PostgreSQL keeps history forever).
    pub conv_max_age: Duration,
    /// Size cap of `RH_CONV` in bytes (oldest dropped first).
    pub conv_max_bytes: i64,
    /// Size cap of `RH_AUDIT`, the events not yet written by the audit writer. When full, copying from `RH_CONV`
    /// pauses (discard new) until the writer acks; nothing in `RH_AUDIT` is ever dropped by age or size. 1 GiB
    /// by default: JetStream reserves a stream's max bytes on disk, and durable events are a small share of the
    /// traffic (`nats/README.md`).
    pub audit_max_bytes: i64,
    /// How long an unclaimed generation job waits in `RH_JOBS`.
    pub jobs_max_age: Duration,
    /// Size cap of the attachment object store in bytes.
    pub attachments_max_bytes: i64,
    /// Copies of every stream and bucket kept by a JetStream cluster (1 on a single server; 3 on a 3-node
    /// cluster survives losing one node). Only used when a stream is created.
    pub replicas: usize,
    /// JetStream's duplicate window of `RH_CONV` and `RH_INBOX`: a publish repeated within it (same
    /// `Nats-Msg-Id`) is stored once. The api's outbox relay reads it from the stream and looks a row up in the
    /// stream before publishing it again once its first attempt is older (`bins/api/src/relay.rs`).
    pub duplicate_window: Duration,
    /// How long `RH_INBOX` keeps a sidebar message: long enough for an edge to read back what it missed while
    /// it reconnected to NATS, short because the messages name conversations (an erased one ages out).
    pub inbox_max_age: Duration,
    /// Sidebar messages `RH_INBOX` keeps per user (the oldest go first).
    pub inbox_max_per_user: i64,
    /// Size cap of `RH_INBOX` in bytes (oldest dropped first).
    pub inbox_max_bytes: i64,
}

impl Default for Topology {
    fn default() -> Self {
        Topology {
            conv_max_age: Duration::from_secs(7 * 24 * 3600),
            conv_max_bytes: 8 * 1024 * 1024 * 1024,
            audit_max_bytes: 1024 * 1024 * 1024,
            jobs_max_age: Duration::from_secs(24 * 3600),
            attachments_max_bytes: 8 * 1024 * 1024 * 1024,
            replicas: 1,
            duplicate_window: Duration::from_secs(120),
            inbox_max_age: Duration::from_secs(15 * 60),
            inbox_max_per_user: 100,
            inbox_max_bytes: 256 * 1024 * 1024,
        }
    }
}

impl Topology {
    /// Creates the streams and buckets that do not exist yet.
    pub async fn ensure(&self, js: &jetstream::Context) -> Result<(), TopologyError> {
        js.get_or_create_stream(stream::Config {
            name: subjects::STREAM_CONV.to_owned(),
            subjects: vec![subjects::STREAM_CONV_SUBJECTS.to_owned()],
            retention: stream::RetentionPolicy::Limits,
            discard: stream::DiscardPolicy::Old,
            max_age: self.conv_max_age,
            max_bytes: self.conv_max_bytes,
            storage: stream::StorageType::File,
            duplicate_window: self.duplicate_window,
            allow_direct: true,
            // Live fan-out: edges subscribe the conversations they follow on the republished subjects.
            republish: Some(stream::Republish {
                source: subjects::STREAM_CONV_SUBJECTS.to_owned(),
                destination: subjects::LIVE_CONV_SUBJECTS.to_owned(),
                headers_only: false,
            }),
            num_replicas: self.replicas,
            ..Default::default()
        })
        .await
        .map_err(|e| Error::with_source(TopologyErrorKind::Stream, e))?;
        js.get_or_create_stream(self.audit_stream())
            .await
            .map_err(|e| Error::with_source(TopologyErrorKind::Stream, e))?;
        js.get_or_create_stream(self.inbox_stream())
            .await
            .map_err(|e| Error::with_source(TopologyErrorKind::Stream, e))?;
        js.get_or_create_stream(stream::Config {
            name: subjects::STREAM_JOBS.to_owned(),
            subjects: vec![subjects::STREAM_JOBS_SUBJECTS.to_owned()],
            retention: stream::RetentionPolicy::WorkQueue,
            max_age: self.jobs_max_age,
            storage: stream::StorageType::File,
            duplicate_window: Duration::from_secs(120),
            num_replicas: self.replicas,
            ..Default::default()
        })
        .await
        .map_err(|e| Error::with_source(TopologyErrorKind::Stream, e))?;
        if js.get_key_value(subjects::KV_STOPS).await.is_err() {
            js.create_key_value(jetstream::kv::Config {
                bucket: subjects::KV_STOPS.to_owned(),
                history: 1,
                max_age: Duration::from_secs(24 * 3600),
                storage: stream::StorageType::File,
                num_replicas: self.replicas,
                ..Default::default()
            })
            .await
            .map_err(|e| Error::with_source(TopologyErrorKind::KeyValue, e))?;
        }
        if js.get_object_store(subjects::OBJECT_ATTACHMENTS).await.is_err() {
            js.create_object_store(jetstream::object_store::Config {
                bucket: subjects::OBJECT_ATTACHMENTS.to_owned(),
                max_bytes: self.attachments_max_bytes,
                storage: stream::StorageType::File,
                num_replicas: self.replicas,
                ..Default::default()
            })
            .await
            .map_err(|e| Error::with_source(TopologyErrorKind::ObjectStore, e))?;
        }
        Ok(())
    }
}

impl Topology {
    /// `RH_AUDIT`: a copy of every durable event of `RH_CONV` (`rh.conv.*.event`, never deltas), kept until the
    /// audit writer acks it (work queue). No age limit, and discard new: when it is full the server pauses the
    /// copying and retries, rather than drop an event the writer has not written (`nats/README.md` says why).
    pub fn audit_stream(&self) -> stream::Config {
        stream::Config {
            name: subjects::STREAM_AUDIT.to_owned(),
            retention: stream::RetentionPolicy::WorkQueue,
            discard: stream::DiscardPolicy::New,
            max_bytes: self.audit_max_bytes,
            storage: stream::StorageType::File,
            allow_direct: true,
            sources: Some(vec![stream::Source {
                name: subjects::STREAM_CONV.to_owned(),
                filter_subject: Some(subjects::AUDIT_FILTER.to_owned()),
                ..Default::default()
            }]),
            num_replicas: self.replicas,
            ..Default::default()
        }
    }

    /// `RH_INBOX`: every user's recent sidebar messages (`rh.user.<id>.inbox`), republished live with their seq,
    /// so an edge resumes a sidebar where it left off (`bins/edge/src/sidebar.rs`).
    pub fn inbox_stream(&self) -> stream::Config {
        stream::Config {
            name: subjects::STREAM_INBOX.to_owned(),
            subjects: vec![subjects::USER_INBOX_ALL.to_owned()],
            retention: stream::RetentionPolicy::Limits,
            discard: stream::DiscardPolicy::Old,
            max_age: self.inbox_max_age,
            max_bytes: self.inbox_max_bytes,
            max_messages_per_subject: self.inbox_max_per_user,
            storage: stream::StorageType::File,
            duplicate_window: self.duplicate_window.min(self.inbox_max_age),
            allow_direct: true,
            republish: Some(stream::Republish {
                source: subjects::USER_INBOX_ALL.to_owned(),
                destination: subjects::LIVE_INBOX_DESTINATION.to_owned(),
                headers_only: false,
            }),
            num_replicas: self.replicas,
            ..Default::default()
        }
    }
}
