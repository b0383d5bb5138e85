//! `typing {conversation_id, typing}`: the person is composing (or stopped); presence shows it to the
//! conversation's viewers ([`crate::fanout::Registry::set_typing`]: throttled, expiring). Only on a subscription
//! the socket may respond in: View Only is refused (`forbidden`) and never appears typing, and a conversation the
//! socket does not follow is `not_found` (its access was never checked). Sent while the subscription's access is
//! still being checked, it waits for the check ([`TypingGate`]). No reply on success.

use crate::hub::Hub;
use crate::socket::conn::{Conn, TypingGate};
use rh_protocol::ServerFrame;
use rh_protocol::frame::ErrorCode;
use std::sync::Arc;
use uuid::Uuid;

#[derive(Debug)]
pub struct Typing {
    pub conversation_id: Uuid,
    pub typing: bool,
}

impl Typing {
    pub fn apply(self, hub: &Arc<Hub>, conn: &Arc<Conn>) {
        let conv = self.conversation_id;
        let refusal = match conn.hold_typing(conv, self.typing) {
            Some(TypingGate::Held(_)) => return,
            Some(TypingGate::Open) => match conn.permission(conv) {
                Some(p) if p.can_respond() => None,
                Some(_) => Some((ErrorCode::Forbidden, "view only: you cannot write in this conversation")),
                None => Some((ErrorCode::NotFound, "subscribe to the conversation first")),
            },
            None => Some((ErrorCode::NotFound, "subscribe to the conversation first")),
        };
        if let Some((code, message)) = refusal {
            // Withdrawing is always fine (e.g. right after the permission went down to view).
            if self.typing {
                let _ = conn.send_frame(&ServerFrame::error(code, message, Some(conv.to_string())));
            }
            return;
        }
        hub.registry().set_typing(conn, conv, self.typing);
    }
}
