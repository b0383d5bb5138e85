//! NATS request/reply for the edge, in queue group `api` (replicas share the load): `rh.api.access`,
//! `rh.api.send_message`, `rh.api.regenerate`, `rh.api.stop`, `rh.api.socket_auth`. Each calls the same domain function as the REST route, so permissions
//! and effects are identical on both paths. Replies are [`Reply`]s; errors carry the REST error codes
//! (`not_found` for a conversation the user cannot see, `forbidden` for View Only, ...).

use crate::error::ApiError;
use crate::extract::json_from_slice;
use crate::service;
use crate::state::AppState;
use futures::StreamExt;
use rh_protocol::api::conversations::{RegenerateRequest, SendRequest};
use rh_protocol::rpc::{
    AccessRequest, RegenerateRpc, Reply, SendMessageRequest, SocketCredential, StopAccepted, StopRequest,
};
use rh_protocol::subjects;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::future::Future;
use tokio::task::JoinHandle;
use tracing::Instrument;

/// Subscribes the responders; each runs until the NATS client closes.
pub async fn spawn(state: AppState) -> anyhow::Result<Vec<JoinHandle<()>>> {
    Ok(vec![
        serve(state.clone(), subjects::API_ACCESS, |state, req: AccessRequest| async move {
            service::access::grant(&state, req.conversation_id, req.user_id).await
        })
        .await?,
        serve(state.clone(), subjects::API_SEND_MESSAGE, |state, req: SendMessageRequest| async move {
            let SendMessageRequest { user_id, conversation_id, text, client_msg_id, max_tokens, edit_of } = req;
            let request = SendRequest { text, client_msg_id, max_tokens, edit_of };
            service::messages::send(&state, user_id, conversation_id, request).await
        })
        .await?,
        serve(state.clone(), subjects::API_REGENERATE, |state, req: RegenerateRpc| async move {
            let request = RegenerateRequest { message_id: req.message_id, max_tokens: None };
            service::versions::regenerate(&state, req.user_id, req.conversation_id, request).await
        })
        .await?,
        serve(state.clone(), subjects::API_SOCKET_AUTH, |state, req: SocketCredential| async move {
            service::sessions::socket_auth(&state, req).await
        })
        .await?,
        serve(state, subjects::API_STOP, |state, req: StopRequest| async move {
            service::stops::stop(&state, req.user_id, req.conversation_id, req.response_id)
                .await
                .map(|()| StopAccepted {})
        })
        .await?,
    ])
}

/// Answers every request on `subject` with `handler`, each request in its own task (a slow database call for
/// one conversation does not hold up the others).
async fn serve<Req, Resp, F, Fut>(state: AppState, subject: &'static str, handler: F) -> anyhow::Result<JoinHandle<()>>
where
    Req: DeserializeOwned + Send + 'static,
    Resp: Serialize + Send + Sync + 'static,
    F: Fn(AppState, Req) -> Fut + Send + Sync + Copy + 'static,
    Fut: Future<Output = Result<Resp, ApiError>> + Send + 'static,
{
    let mut sub = state.nats.queue_subscribe(subject, subjects::API_QUEUE.to_owned()).await?;
    tracing::info!(subject, "responder subscribed");
    Ok(tokio::spawn(async move {
        while let Some(msg) = sub.next().await {
            let state = state.clone();
            let received = std::time::Instant::now();
            let span = rh_telemetry::hop_span!("rpc", subject);
            rh_telemetry::trace::follow_nats(&span, msg.headers.as_ref());
            let answer = async move {
                // The same checks as a REST body (NUL characters included): a socket's frame arrives this way.
                let result = match json_from_slice::<Req>(&msg.payload) {
                    Ok(req) => handler(state.clone(), req).await,
                    Err(e) => Err(ApiError::BadRequest(format!("bad {subject} request: {}", e.public_message()))),
                };
                let reply = match result {
                    Ok(resp) => {
                        state.metrics.rpc_requests.with_label_values(&[subject, "ok"]).inc();
                        Reply::Ok(resp)
                    }
                    Err(e) => {
                        state.metrics.rpc_requests.with_label_values(&[subject, e.code().as_str()]).inc();
                        Reply::Error(e.to_rpc())
                    }
                };
                rh_bus::respond(&state.nats, &msg, &reply).await;
                state.metrics.rpc_latency.with_label_values(&[subject]).observe(received.elapsed().as_secs_f64());
            };
            tokio::spawn(answer.instrument(span));
        }
        tracing::info!(subject, "responder ended");
    }))
}
