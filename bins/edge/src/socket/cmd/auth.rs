//! `auth {token}`: re-authenticates the socket with a fresh access token of the SAME person and session (the web
//! client sends it after a silent refresh), so the socket outlives its first token. The api checks the token and
//! that its session is open (`rh.api.socket_auth`); any other token closes the socket.

use crate::hub::Hub;
use crate::socket::conn::Conn;
use rh_protocol::frame::ErrorCode;
use rh_protocol::rpc::{SocketCredential, SocketGrant};
use rh_protocol::{ServerFrame, subjects};
use std::sync::Arc;

pub struct Auth {
    pub token: String,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Auth([redacted])")
    }
}

impl Auth {
    pub fn apply(self, hub: &Arc<Hub>, conn: &Arc<Conn>) {
        let (hub, conn) = (hub.clone(), conn.clone());
        tokio::spawn(async move {
            let req = SocketCredential::Token(self.token);
            let res: Result<SocketGrant, _> =
                rh_bus::request(hub.nats(), subjects::API_SOCKET_AUTH, &req, hub.request_timeout()).await;
            match res {
                Ok(g) if g.user_id == conn.user.id && g.session_id == conn.user.session => {
                    conn.reauthenticate(g.expires_at);
                    let _ = conn.send_frame(&ServerFrame::Authenticated { expires_at: conn.expires_at() });
                }
                Ok(_) => conn.close_for(ErrorCode::Unauthorized, "that token belongs to another session"),
                Err(e) if e.rejection.is_some() => {
                    conn.close_for(ErrorCode::Unauthorized, "invalid or expired token, or the session ended")
                }
                // The api did not answer: the socket keeps its current expiry; the client may retry.
                Err(e) => {
                    let _ = conn.send_frame(&super::request_error(&e, "auth".into()));
                }
            }
        });
    }
}
