//! NATS subjects, streams, buckets and consumer names. `nats/README.md` explains the layout.
//!
//! Conversation events live in stream [`STREAM_CONV`] under `rh.conv.<conversation_id>.<kind>` with two kinds:
//! `delta` (only `response.delta`, the token traffic) and `event` (everything else). The split lets the audit
//! writer's durable consumer filter on [`AUDIT_FILTER`] so token traffic never reaches it, while the edge follows
//! `rh.conv.<id>.*` and sees one ordered sequence.
//!
//! The audit writer does not read [`STREAM_CONV`] itself: [`STREAM_AUDIT`] sources its [`AUDIT_FILTER`] events and
//! keeps each until the writer acks it, so the transcript cannot age out of `RH_CONV` unwritten (`nats/README.md`).

use uuid::Uuid;

/// Stream holding every conversation event; bounded by age and size (PostgreSQL keeps history forever).
pub const STREAM_CONV: &str = "RH_CONV";
/// Subjects captured by [`STREAM_CONV`].
pub const STREAM_CONV_SUBJECTS: &str = "rh.conv.>";
/// Work-queue stream of generation jobs.
pub const STREAM_JOBS: &str = "RH_JOBS";
/// Subjects captured by [`STREAM_JOBS`].
pub const STREAM_JOBS_SUBJECTS: &str = "rh.jobs.>";
/// One message per AI turn.
pub const JOBS_GENERATE: &str = "rh.jobs.generate";
/// Durable pull consumer shared by the worker pool.
pub const WORKER_CONSUMER: &str = "workers";
/// Work-queue stream that sources every [`AUDIT_FILTER`] event of [`STREAM_CONV`] and keeps it until the audit
/// writer acks it (discard new when full, no age limit). Each copy carries its `RH_CONV` seq in the
/// `Nats-Stream-Source` header.
pub const STREAM_AUDIT: &str = "RH_AUDIT";
/// Durable consumer of the audit writer (on [`STREAM_AUDIT`]).
pub const AUDIT_CONSUMER: &str = "audit";
/// Filter of the audit writer: every conversation event except token deltas.
pub const AUDIT_FILTER: &str = "rh.conv.*.event";
/// Key-value bucket: conversation id → time (µs) of the latest stop request, so a job that a worker picks up
/// (or picks up again after a crash) after a stop was asked for does not start generating.
pub const KV_STOPS: &str = "rh_stops";
/// Object store bucket holding attachment bytes (metadata lives in PostgreSQL).
pub const OBJECT_ATTACHMENTS: &str = "rh_attachments";

/// Queue group of the api's request/reply handlers, so api replicas share the load.
pub const API_QUEUE: &str = "api";
/// Edge → api: may this user see this conversation, and from which `seq` does its history continue?
pub const API_ACCESS: &str = "rh.api.access";
/// Edge → api: a message sent over a socket.
pub const API_SEND_MESSAGE: &str = "rh.api.send_message";
/// Edge → api: a stop sent over a socket.
pub const API_STOP: &str = "rh.api.stop";
/// Edge → api: a regenerate sent over a socket ([`crate::rpc::RegenerateRpc`]).
pub const API_REGENERATE: &str = "rh.api.regenerate";
/// Edge → api: check a socket's credential ([`crate::rpc::SocketCredential`]); reply
/// `Reply<`[`crate::rpc::SocketGrant`]`>`. A ticket works once.
pub const API_SOCKET_AUTH: &str = "rh.api.socket_auth";

/// Non-delta events of one conversation.
pub fn conv_event(conversation_id: Uuid) -> String {
    format!("rh.conv.{conversation_id}.event")
}

/// Token deltas of one conversation.
pub fn conv_delta(conversation_id: Uuid) -> String {
    format!("rh.conv.{conversation_id}.delta")
}

/// Everything of one conversation, in stream order.
pub fn conv_all(conversation_id: Uuid) -> String {
    format!("rh.conv.{conversation_id}.*")
}

/// Where [`STREAM_CONV`] republishes every event it stores (core NATS, with the `Nats-Sequence` and
/// `Nats-Last-Sequence` headers): `rh.conv.<id>.<kind>` → `rh.live.conv.<id>.<kind>`. An edge subscribes the
/// conversations its sockets follow here, so it receives only those.
pub const LIVE_CONV_SUBJECTS: &str = "rh.live.conv.>";

/// Everything of one conversation as republished live, in stream order.
pub fn live_conv_all(conversation_id: Uuid) -> String {
    format!("rh.live.conv.{conversation_id}.*")
}

/// Sidebar changes for one user (shared with you, permission changed, revoked, deleted, responding), stored in
/// [`STREAM_INBOX`] so that an edge that missed one reads it back.
pub fn user_inbox(user_id: Uuid) -> String {
    format!("rh.user.{user_id}.inbox")
}

/// Wildcard over every user's inbox: the subjects of [`STREAM_INBOX`].
pub const USER_INBOX_ALL: &str = "rh.user.*.inbox";

/// Stream keeping each user's recent sidebar messages (a few per user, minutes long): the edge resumes a user's
/// sidebar from the last one it delivered after a NATS outage or a lost message (`bins/edge/src/sidebar.rs`).
pub const STREAM_INBOX: &str = "RH_INBOX";

/// Where [`STREAM_INBOX`] republishes every sidebar message it stores (with `Nats-Sequence` and
/// `Nats-Last-Sequence`, the user's previous message): an edge subscribes its connected users here.
pub const LIVE_INBOX_SUBJECTS: &str = "rh.live.user.*.inbox";
/// [`LIVE_INBOX_SUBJECTS`] as `RH_INBOX`'s republish destination (a subject transform).
pub const LIVE_INBOX_DESTINATION: &str = "rh.live.user.{{wildcard(1)}}.inbox";

/// One user's sidebar messages as republished live.
pub fn live_user_inbox(user_id: Uuid) -> String {
    format!("rh.live.user.{user_id}.inbox")
}

/// Stop requests for one conversation, seen by the worker generating for it. Core NATS.
pub fn stop_control(conversation_id: Uuid) -> String {
    format!("rh.ctl.{conversation_id}.stop")
}

/// Sessions that ended (logout, a removed member, a reset password, a reused refresh token): the api publishes
/// [`crate::rpc::SessionEnded`]; every edge closes the matching sockets.
pub const SESSION_ENDED: &str = "rh.ctl.session.ended";

/// The KV `rh_stops` key of one response's [`crate::rpc::ResponseClaim`].
pub fn response_claim(conversation_id: Uuid, response_id: Uuid) -> String {
    format!("response.{conversation_id}.{response_id}")
}

/// KV key filter over the response claims of one conversation.
pub fn response_claims_of(conversation_id: Uuid) -> String {
    format!("response.{conversation_id}.*")
}

/// KV key filter over every response claim.
pub const RESPONSE_CLAIMS_ALL: &str = "response.>";

/// The (conversation, response) of a [`response_claim`] key.
pub fn parse_response_claim(key: &str) -> Option<(Uuid, Uuid)> {
    let mut parts = key.split('.');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some("response"), Some(c), Some(r), None) => Some((Uuid::parse_str(c).ok()?, Uuid::parse_str(r).ok()?)),
        _ => None,
    }
}

/// Presence of one conversation (core NATS): each edge node publishes a [`crate::rpc::PresenceAnnounce`] with its
/// local viewers whenever they change (and periodically), and every node merges what all nodes announce.
pub fn presence(conversation_id: Uuid) -> String {
    format!("rh.presence.{conversation_id}")
}

/// Wildcard over every conversation's presence subject.
pub const PRESENCE_ALL: &str = "rh.presence.*";

/// Api → every worker: which models do you serve? Each worker replies `Reply<ModelList>` (no queue group: the
/// api gathers the answers and merges them).
pub const WORKER_MODELS: &str = "rh.worker.models";

/// The conversation id inside a `rh.conv.<id>.<kind>` subject.
pub fn conversation_of(subject: &str) -> Option<Uuid> {
    let mut parts = subject.split('.');
    match (parts.next(), parts.next(), parts.next()) {
        (Some("rh"), Some("conv"), Some(id)) => Uuid::parse_str(id).ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_round_trip() {
        let id = Uuid::new_v4();
        assert_eq!(conversation_of(&conv_delta(id)), Some(id));
        assert_eq!(conversation_of(&conv_event(id)), Some(id));
        assert_eq!(conversation_of("rh.jobs.generate"), None);
        assert!(conv_all(id).ends_with(".*"));
        assert_eq!(live_conv_all(id), format!("rh.live.{}", conv_all(id).trim_start_matches("rh.")));
        let r = Uuid::new_v4();
        assert_eq!(parse_response_claim(&response_claim(id, r)), Some((id, r)));
        assert_eq!(parse_response_claim(&id.to_string()), None);
    }
}
