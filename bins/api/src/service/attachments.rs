//! Reading an attachment: any participant downloads the files of a conversation they can see.

use super::access::{Need, check};
use crate::error::ApiError;
use crate::state::AppState;
use async_nats::jetstream::object_store::Object;
use rh_store::StoreError;
use rh_store::attachments::Attachment;
use uuid::Uuid;

/// The attachment `attachment_id` of `conversation_id` and its bytes (a stream from the object store), for
/// `user_id` if they may see the conversation: 404 otherwise, or for another conversation's attachment.
pub async fn open(
    state: &AppState,
    user_id: Uuid,
    conversation_id: Uuid,
    attachment_id: Uuid,
) -> Result<(Attachment, Object), ApiError> {
    let access = check(state, conversation_id, user_id, Need::See).await?;
    let attachment = rh_store::attachments::get(&state.db, access.id(), attachment_id).await.map_err(|e| match e {
        StoreError::NotFound => ApiError::NotFound("no such attachment".into()),
        other => other.into(),
    })?;
    let object = state
        .attachments
        .get(attachment.object_name.as_str())
        .await
        .map_err(|e| ApiError::Unavailable(format!("could not read the file: {e}")))?;
    Ok((attachment, object))
}
