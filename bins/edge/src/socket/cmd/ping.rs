//! `ping` → `pong`: lets a client check the socket end to end.

use crate::socket::conn::Conn;
use rh_protocol::ServerFrame;

#[derive(Debug)]
pub struct Ping;

impl Ping {
    pub fn apply(self, conn: &Conn) {
        let _ = conn.send_frame(&ServerFrame::Pong);
    }
}
