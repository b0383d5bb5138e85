//! Sessions that end: the api publishes `rh.ctl.session.ended` on logout, a removed member, a reset password or a
//! replayed refresh token, and every edge closes that session's sockets here (with an `unauthorized` error
//! frame). One subscription per edge: these events are rare, and any edge may hold the sockets.

use crate::hub::Hub;
use futures::StreamExt;
use rh_protocol::rpc::SessionEnded;
use rh_protocol::subjects;
use std::sync::Arc;

/// Subscribes (registered at the server before returning) and closes sockets as sessions end, until NATS closes.
pub async fn watch(hub: Arc<Hub>) -> Result<tokio::task::JoinHandle<()>, async_nats::SubscribeError> {
    let mut sub = hub.nats().subscribe(subjects::SESSION_ENDED).await?;
    let _ = hub.nats().flush().await;
    Ok(tokio::spawn(async move {
        while let Some(msg) = sub.next().await {
            match serde_json::from_slice::<SessionEnded>(&msg.payload) {
                Ok(ended) => {
                    let n = hub.inboxes().end_session(ended.user_id, ended.session_id);
                    hub.metrics().sockets_ended.with_label_values(&["session_ended"]).inc_by(n as u64);
                    tracing::debug!(user = %ended.user_id, sockets = n, "session ended");
                }
                Err(e) => tracing::warn!(error = %e, "not a session_ended message"),
            }
        }
    }))
}
