//! Per-organization retention: an org admin sets "erase conversations not updated for N days"; this task, on every
//! api replica, deletes the expired ones through the same path as the owner's delete ([`super::erase::delete`]),
//! so they are erased the same way and each erasure is audited (`conversation.erased`, reason `retention`).
//! Replicas do not collide: marking a conversation deleted succeeds for exactly one of them; the others see 404.

use super::erase;
use crate::error::ApiError;
use crate::extract::AuthUser;
use crate::state::AppState;
use rh_protocol::admin::RetentionSettings;
use rh_store::StoreError;
use rh_store::erase::Reason;
use std::time::Duration;
use uuid::Uuid;

/// Conversations handled per query; a full batch is followed by the next one at once.
const BATCH: i64 = 100;
/// The longest retention accepted (100 years), as the database's CHECK has it.
pub const MAX_DAYS: u32 = 36_500;

/// The org's retention (admins of that org only).
pub async fn get(state: &AppState, caller: &AuthUser, org_id: Uuid) -> Result<RetentionSettings, ApiError> {
    super::access::org_admin(caller, org_id, "see its retention")?;
    let days = rh_store::retention::days(&state.db, org_id).await?;
    Ok(RetentionSettings { retention_days: days.and_then(|d| u32::try_from(d).ok()) })
}

/// Sets the org's retention (admins of that org only): 1 to [`MAX_DAYS`] days, or `None` to turn it off.
pub async fn set(
    state: &AppState,
    caller: &AuthUser,
    org_id: Uuid,
    settings: RetentionSettings,
) -> Result<RetentionSettings, ApiError> {
    super::access::org_admin(caller, org_id, "change its retention")?;
    let days = match settings.retention_days {
        None => None,
        Some(d @ 1..=MAX_DAYS) => Some(d as i32),
        Some(d) => {
            return Err(ApiError::Validation(format!(
                "retention_days must be between 1 and {MAX_DAYS}, or null to keep conversations (got {d})"
            )));
        }
    };
    rh_store::retention::set_days(&state.db, org_id, days).await?;
    tracing::info!(%org_id, ?days, "retention changed");
    Ok(settings)
}

/// Starts the retention task: a pass at once, then one every `--retention-interval-secs`.
pub fn spawn(state: AppState) {
    tokio::spawn(async move {
        let every = Duration::from_secs(state.settings.retention_interval_secs);
        loop {
            if let Err(e) = pass(&state).await {
                tracing::warn!(error = %e, "retention pass failed, trying again next time");
            }
            if let Err(e) = crate::service::limits::forget_idle(&state).await {
                tracing::warn!(error = %e, "forgetting idle rate buckets failed, trying again next time");
            }
            tokio::time::sleep(every).await;
        }
    });
}

/// Deletes every conversation its org's retention has expired; returns how many this replica deleted.
async fn pass(state: &AppState) -> Result<usize, ApiError> {
    let mut deleted = 0;
    loop {
        let expired = rh_store::retention::expired(&state.db, BATCH).await?;
        let full = expired.len() as i64 == BATCH;
        for id in expired {
            let conversation = match rh_store::conversations::get(&state.db, id).await {
                Ok(c) => c,
                Err(StoreError::NotFound) => continue,
                Err(e) => return Err(e.into()),
            };
            match erase::delete(state, &conversation, None, Reason::Retention).await {
                Ok(()) => deleted += 1,
                // Another replica deleted it first.
                Err(ApiError::NotFound(_)) => {}
                // Marked and enqueued, but not announced (NATS down): viewers learn it at their next access check.
                Err(e) => tracing::warn!(conversation_id = %id, error = %e, "retention delete not announced"),
            }
        }
        if !full {
            break;
        }
    }
    if deleted > 0 {
        tracing::info!(deleted, "retention deleted expired conversations");
    }
    Ok(deleted)
}
