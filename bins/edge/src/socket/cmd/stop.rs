//! `stop {conversation_id, response_id?}`: asks the api (`rh.api.stop`) to stop that answer (without
//! `response_id`, every answer of the conversation). View-only
//! subscribers are refused here already (`forbidden`); the api enforces it again. Success has no frame of its
//! own: the `response.stopped` event follows on the subscription.

use crate::hub::Hub;
use crate::socket::conn::Conn;
use rh_protocol::frame::ErrorCode;
use rh_protocol::rpc::{StopAccepted, StopRequest};
use rh_protocol::{ServerFrame, subjects};
use std::sync::Arc;
use tracing::Instrument;
use uuid::Uuid;

#[derive(Debug)]
pub struct Stop {
    pub conversation_id: Uuid,
    pub response_id: Option<Uuid>,
}

impl Stop {
    pub fn apply(self, hub: &Arc<Hub>, conn: &Arc<Conn>) {
        let conv = self.conversation_id;
        if conn.permission(conv).is_some_and(|p| !p.can_respond()) {
            let _ = conn.send_frame(&ServerFrame::error(
                ErrorCode::Forbidden,
                "view only: you cannot stop responses in this conversation",
                Some(conv.to_string()),
            ));
            return;
        }
        let (hub, conn) = (hub.clone(), conn.clone());
        let span = rh_telemetry::hop_span!("socket_command", command = "stop", conversation = %conv);
        rh_telemetry::trace::start(&span);
        let stop = async move {
            let req = StopRequest { user_id: conn.user.id, conversation_id: conv, response_id: self.response_id };
            let res: Result<StopAccepted, _> =
                rh_bus::request(hub.nats(), subjects::API_STOP, &req, hub.request_timeout()).await;
            if let Err(e) = res {
                let _ = conn.send_frame(&super::request_error(&e, conv.to_string()));
            }
        };
        tokio::spawn(stop.instrument(span));
    }
}
