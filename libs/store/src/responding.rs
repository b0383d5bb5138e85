//! `responding`: the answers asked for and not ended yet (written by the audit writer in [`crate::transcript`]),
//! read for the sidebar's "responding…" marker.

use crate::{Db, Result};
use uuid::Uuid;

/// Whether an answer is being generated in a conversation now, and who sees it in their sidebar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Activity {
    pub conversation_id: Uuid,
    pub responding: bool,
    /// The owner and everyone the conversation is shared with (shares that have not expired, and team members).
    pub audience: Vec<Uuid>,
}

/// [`Activity`] of each of `conversations` that is not deleted.
pub async fn activity(db: &Db, conversations: &[Uuid]) -> Result<Vec<Activity>> {
    static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!(
            "SELECT c.id, EXISTS (SELECT 1 FROM responding r WHERE r.conversation_id = c.id) AS responding, \
                    array_prepend(c.owner_id, ARRAY(SELECT s.user_id FROM shares s \
                      WHERE s.conversation_id = c.id {} \
                      UNION SELECT tm.user_id FROM team_shares ts JOIN team_members tm ON tm.team_id = ts.team_id \
                      WHERE ts.conversation_id = c.id)) AS audience \
             FROM conversations c WHERE c.id = ANY($1) AND c.deleted_at IS NULL",
            crate::conversations::SHARE_LIVE
        )
    });
    let client = db.client().await?;
    let statement = client.prepare_cached(&SQL).await?;
    let rows = client.query(&statement, &[&conversations]).await?;
    rows.iter()
        .map(|row| {
            Ok(Activity { conversation_id: row.try_get(0)?, responding: row.try_get(1)?, audience: row.try_get(2)? })
        })
        .collect()
}

/// Whether an answer asked for in the conversation has not ended yet (as far as the transcript has been written).
pub async fn any(db: &Db, conversation_id: Uuid) -> Result<bool> {
    let client = db.client().await?;
    let row = client
        .query_one("SELECT EXISTS (SELECT 1 FROM responding WHERE conversation_id = $1)", &[&conversation_id])
        .await?;
    Ok(row.try_get(0)?)
}
