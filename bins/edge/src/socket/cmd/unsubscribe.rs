//! `unsubscribe {conversation_id}`: ends the socket's subscription (no reply; unknown ones are ignored, so a
//! client may unsubscribe blindly).

use crate::hub::Hub;
use crate::socket::conn::Conn;
use std::sync::Arc;
use uuid::Uuid;

#[derive(Debug)]
pub struct Unsubscribe {
    pub conversation_id: Uuid,
}

impl Unsubscribe {
    pub fn apply(self, hub: &Arc<Hub>, conn: &Arc<Conn>) {
        hub.registry().end_subscription(conn, self.conversation_id, None);
    }
}
