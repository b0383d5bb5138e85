//! Erasing a conversation from NATS (issue 17): its subjects purged from every stream that holds conversation
//! events, its attachment objects deleted. Both are idempotent, so an erase job can repeat them until they
//! succeed.

use crate::Error;
use async_nats::jetstream::{self, object_store};
use rh_protocol::subjects;
use std::fmt;
use uuid::Uuid;

/// The streams that hold `rh.conv.<id>.*` messages: every one is purged of an erased conversation. A stream added
/// to [`crate::Topology`] that stores or sources conversation subjects belongs here.
pub const CONVERSATION_STREAMS: &[&str] = &[subjects::STREAM_CONV, subjects::STREAM_AUDIT];

/// JetStream's "stream not found" error code: nothing to purge there.
const STREAM_NOT_FOUND: u64 = 10059;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EraseErrorKind {
    /// A stream could not be purged.
    Purge,
    /// An object could not be deleted.
    Object,
}
impl fmt::Display for EraseErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Purge => "purging a stream failed",
            Self::Object => "deleting an attachment object failed",
        })
    }
}
pub type EraseError = Error<EraseErrorKind>;

/// Purges every message on `rh.conv.<id>.>` from each of [`CONVERSATION_STREAMS`] (a stream that does not exist
/// is skipped). Returns how many messages were removed.
pub async fn purge_conversation(js: &jetstream::Context, conversation_id: Uuid) -> Result<u64, EraseError> {
    // `>` rather than `*`: whatever subject a later version adds under the conversation goes too.
    let filter = format!("rh.conv.{conversation_id}.>");
    let mut purged = 0;
    for name in CONVERSATION_STREAMS {
        let stream = js.get_stream_no_info(*name).await.map_err(|e| Error::with_source(EraseErrorKind::Purge, e))?;
        match stream.purge().filter(filter.as_str()).await {
            Ok(response) => purged += response.purged,
            Err(e) if stream_not_found(&e) => {}
            Err(e) => return Err(Error::with_source(EraseErrorKind::Purge, e)),
        }
    }
    Ok(purged)
}

fn stream_not_found(e: &jetstream::stream::PurgeError) -> bool {
    matches!(e.kind(), jetstream::stream::PurgeErrorKind::JetStream(j) if j.error_code().0 == STREAM_NOT_FOUND)
}

/// Deletes the named objects from `store`; one already deleted, or never stored, counts as deleted.
pub async fn delete_objects(store: &object_store::ObjectStore, names: &[String]) -> Result<(), EraseError> {
    for name in names {
        match store.delete(name).await {
            Ok(()) => {}
            Err(e) if e.kind() == object_store::DeleteErrorKind::NotFound => {}
            Err(e) => return Err(Error::with_source(EraseErrorKind::Object, e)),
        }
    }
    Ok(())
}
