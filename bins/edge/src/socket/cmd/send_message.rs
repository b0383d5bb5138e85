//! `send_message {conversation_id, text, client_msg_id, edit_of?}`: posts a message (or, with `edit_of`, a new
//! version of the last one) through the api (`rh.api.send_message`), and `regenerate {conversation_id,
//! client_msg_id, message_id?}`: asks for another answer to the last message (`rh.api.regenerate`). Both answer
//! `message_accepted` (the `message.created` / `response.requested` event follows on the subscription) or an
//! `error` frame with `ref` = `client_msg_id`.
//!
//! The cached permission of a subscription refuses view-only senders without a round trip; a socket that is not
//! subscribed asks `rh.api.access` first. The api checks again either way: the edge's check only saves work.

use crate::hub::Hub;
use crate::socket::conn::Conn;
use rh_protocol::frame::ErrorCode;
use rh_protocol::rpc::{AccessGrant, AccessRequest, MessageAccepted, RegenerateRpc, SendMessageRequest};
use rh_protocol::{Permission, ServerFrame, subjects};
use std::sync::Arc;
use tracing::Instrument;
use uuid::Uuid;

#[derive(Debug)]
pub struct SendMessage {
    pub conversation_id: Uuid,
    pub client_msg_id: String,
    pub ask: Ask,
}

/// What the frame asks the api for.
#[derive(Debug)]
pub enum Ask {
    /// A message, or with `edit_of` a new version of the last one.
    Message { text: String, edit_of: Option<Uuid> },
    /// Another answer to the last message (`message_id`: the one the client sees as last).
    Regenerate { message_id: Option<Uuid> },
}

fn forbidden(client_msg_id: &str) -> ServerFrame {
    ServerFrame::error(
        ErrorCode::Forbidden,
        "view only: you cannot send messages in this conversation",
        Some(client_msg_id.to_owned()),
    )
}

impl SendMessage {
    pub fn apply(self, hub: &Arc<Hub>, conn: &Arc<Conn>) {
        // Sending ends composing, also a `typing` still waiting for the subscription's access check.
        conn.hold_typing(self.conversation_id, false);
        hub.registry().clear_typing(conn, self.conversation_id);
        let cached = conn.permission(self.conversation_id);
        if cached == Some(Permission::View) {
            let _ = conn.send_frame(&forbidden(&self.client_msg_id));
            return;
        }
        let (hub, conn) = (hub.clone(), conn.clone());
        // With tracing on, the message's trace starts here: the api, the worker and every edge continue it.
        let command = match self.ask {
            Ask::Message { .. } => "send_message",
            Ask::Regenerate { .. } => "regenerate",
        };
        let span = rh_telemetry::hop_span!("socket_command", command, conversation = %self.conversation_id);
        rh_telemetry::trace::start(&span);
        tokio::spawn(async move { self.run(&hub, &conn, cached).await }.instrument(span));
    }

    async fn run(self, hub: &Hub, conn: &Conn, cached: Option<Permission>) {
        let conv = self.conversation_id;
        if cached.is_none() {
            let req = AccessRequest { user_id: conn.user.id, conversation_id: conv };
            match rh_bus::request::<_, AccessGrant>(hub.nats(), subjects::API_ACCESS, &req, hub.request_timeout()).await
            {
                Ok(g) if !g.permission.can_respond() => {
                    let _ = conn.send_frame(&forbidden(&self.client_msg_id));
                    return;
                }
                Ok(_) => {}
                Err(e) => {
                    let _ = conn.send_frame(&super::request_error(&e, self.client_msg_id));
                    return;
                }
            }
        }
        let (user_id, timeout) = (conn.user.id, hub.request_timeout());
        let accepted = match self.ask {
            Ask::Message { text, edit_of } => {
                let client_msg_id = Some(self.client_msg_id.clone());
                let req = SendMessageRequest {
                    user_id,
                    conversation_id: conv,
                    text,
                    client_msg_id,
                    max_tokens: None,
                    edit_of,
                };
                rh_bus::request::<_, MessageAccepted>(hub.nats(), subjects::API_SEND_MESSAGE, &req, timeout).await
            }
            Ask::Regenerate { message_id } => {
                let req = RegenerateRpc { user_id, conversation_id: conv, message_id };
                rh_bus::request::<_, MessageAccepted>(hub.nats(), subjects::API_REGENERATE, &req, timeout).await
            }
        };
        match accepted {
            Ok(ok) => {
                let _ = conn.send_frame(&ServerFrame::MessageAccepted {
                    conversation_id: conv,
                    client_msg_id: self.client_msg_id,
                    message_id: ok.message_id,
                    response_id: ok.response_id,
                });
            }
            Err(e) => {
                let _ = conn.send_frame(&super::request_error(&e, self.client_msg_id));
            }
        }
    }
}
