//! Client commands, one file each (as in mini-redis): a frame is parsed into a [`Command`], which is applied to
//! the hub on behalf of one socket.
//!
//! Applying a command never blocks the socket's reader: commands that need the api (`subscribe`,
//! `send_message`, `regenerate`, `stop`) answer in a task of their own. A frame that cannot be parsed gets an `error` frame and
//! changes nothing else.

mod auth;
mod ping;
mod send_message;
mod stop;
mod subscribe;
mod typing;
mod unsubscribe;

pub use auth::Auth;
pub use ping::Ping;
pub use send_message::{Ask, SendMessage};
pub use stop::Stop;
pub use subscribe::Subscribe;
pub use typing::Typing;
pub use unsubscribe::Unsubscribe;

use crate::hub::Hub;
use crate::socket::conn::Conn;
use rh_bus::{RequestError, RequestErrorKind};
use rh_protocol::frame::{ErrorCode, MAX_CLIENT_FRAME_BYTES};
use rh_protocol::rpc::RpcError;
use rh_protocol::{ClientFrame, ServerFrame};
use std::sync::Arc;

/// The frame types a client may send.
const KNOWN_TYPES: [&str; 8] =
    ["subscribe", "unsubscribe", "send_message", "regenerate", "stop", "typing", "auth", "ping"];

#[derive(Debug)]
pub enum Command {
    Subscribe(Subscribe),
    Unsubscribe(Unsubscribe),
    SendMessage(SendMessage),
    Stop(Stop),
    Typing(Typing),
    Auth(Auth),
    Ping(Ping),
}

/// A refused frame: the code and message of its `error` frame, and its `ref` when known.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    pub code: ErrorCode,
    pub message: String,
    pub reference: Option<String>,
}

impl Refusal {
    pub fn frame(&self) -> ServerFrame {
        ServerFrame::error(self.code, self.message.clone(), self.reference.clone())
    }
}

impl Command {
    /// Parses one text frame.
    pub fn parse(text: &str) -> Result<Command, Refusal> {
        if text.len() > MAX_CLIENT_FRAME_BYTES {
            return Err(Refusal {
                code: ErrorCode::FrameTooLarge,
                message: format!("frames are limited to {MAX_CLIENT_FRAME_BYTES} bytes, this one has {}", text.len()),
                reference: None,
            });
        }
        match serde_json::from_str::<ClientFrame>(text) {
            Ok(frame) => Ok(Command::from(frame)),
            Err(e) => Err(classify(text, e)),
        }
    }

    pub fn apply(self, hub: &Arc<Hub>, conn: &Arc<Conn>) {
        match self {
            Command::Subscribe(c) => c.apply(hub, conn),
            Command::Unsubscribe(c) => c.apply(hub, conn),
            Command::SendMessage(c) => c.apply(hub, conn),
            Command::Stop(c) => c.apply(hub, conn),
            Command::Typing(c) => c.apply(hub, conn),
            Command::Auth(c) => c.apply(hub, conn),
            Command::Ping(c) => c.apply(conn),
        }
    }
}

impl From<ClientFrame> for Command {
    fn from(frame: ClientFrame) -> Self {
        match frame {
            ClientFrame::Subscribe { conversation_id, after_seq, compact, grant } => {
                Command::Subscribe(Subscribe { conversation_id, after_seq, compact, grant })
            }
            ClientFrame::Unsubscribe { conversation_id } => Command::Unsubscribe(Unsubscribe { conversation_id }),
            ClientFrame::SendMessage { conversation_id, text, client_msg_id, edit_of } => {
                Command::SendMessage(SendMessage {
                    conversation_id,
                    client_msg_id,
                    ask: Ask::Message { text, edit_of },
                })
            }
            ClientFrame::Regenerate { conversation_id, client_msg_id, message_id } => {
                Command::SendMessage(SendMessage {
                    conversation_id,
                    client_msg_id,
                    ask: Ask::Regenerate { message_id },
                })
            }
            ClientFrame::Stop { conversation_id, response_id } => Command::Stop(Stop { conversation_id, response_id }),
            ClientFrame::Typing { conversation_id, typing } => Command::Typing(Typing { conversation_id, typing }),
            ClientFrame::Auth { token } => Command::Auth(Auth { token }),
            ClientFrame::Ping => Command::Ping(Ping),
        }
    }
}

/// Why a frame did not parse: not JSON / no type (`bad_request`), a type we do not know (`unknown_type`), or a
/// known type with missing or malformed fields (`bad_request`, with `ref` if the frame names one).
fn classify(text: &str, error: serde_json::Error) -> Refusal {
    let Ok(value) = serde_json::from_str::<serde_json::Value>(text) else {
        return Refusal { code: ErrorCode::BadRequest, message: format!("not JSON: {error}"), reference: None };
    };
    let reference = ["client_msg_id", "conversation_id"]
        .iter()
        .find_map(|k| value.get(k).and_then(|v| v.as_str()))
        .map(|s| s.chars().take(128).collect::<String>());
    match value.get("type").and_then(|t| t.as_str()) {
        None => Refusal {
            code: ErrorCode::BadRequest,
            message: "a frame is a JSON object with a string \"type\"".into(),
            reference,
        },
        Some(t) if !KNOWN_TYPES.contains(&t) => Refusal {
            code: ErrorCode::UnknownType,
            message: format!(
                "unknown frame type {:?}; expected one of {}",
                t.chars().take(64).collect::<String>(),
                KNOWN_TYPES.join(", ")
            ),
            reference,
        },
        Some(t) => Refusal { code: ErrorCode::BadRequest, message: format!("bad {t} frame: {error}"), reference },
    }
}

/// The error frame for a failed `rh.api.*` request.
pub(crate) fn request_error(e: &RequestError, reference: String) -> ServerFrame {
    let (code, message) = match (&e.rejection, e.kind()) {
        (Some(RpcError { retry_after_ms: Some(ms), message, .. }), _) => {
            return ServerFrame::rate_limited(message.clone(), *ms, Some(reference));
        }
        (Some(r), _) => (r.code, r.message.clone()),
        (None, RequestErrorKind::Unavailable) => (ErrorCode::Unavailable, "the api did not answer; try again".into()),
        (None, _) => (ErrorCode::Internal, "unexpected answer from the api".into()),
    };
    if e.rejection.is_none() {
        tracing::warn!(error = %e, "api request failed");
    }
    ServerFrame::error(code, message, Some(reference))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(text: &str) -> ErrorCode {
        Command::parse(text).expect_err("refused").code
    }

    #[test]
    fn refusals() {
        assert_eq!(code("this is not json"), ErrorCode::BadRequest);
        assert_eq!(code("[1,2]"), ErrorCode::BadRequest);
        assert_eq!(code(r#"{"type":"teleport","to":"mars"}"#), ErrorCode::UnknownType);
        let r = Command::parse(r#"{"type":"subscribe","conversation_id":"not-a-uuid"}"#).unwrap_err();
        assert_eq!((r.code, r.reference.as_deref()), (ErrorCode::BadRequest, Some("not-a-uuid")));
        let r = Command::parse(r#"{"type":"send_message","conversation_id":"x","client_msg_id":"m1"}"#).unwrap_err();
        assert_eq!(r.reference.as_deref(), Some("m1"));
        let huge = format!(r#"{{"type":"ping","pad":"{}"}}"#, "x".repeat(MAX_CLIENT_FRAME_BYTES));
        assert_eq!(code(&huge), ErrorCode::FrameTooLarge);
        assert!(matches!(Command::parse(r#"{"type":"ping"}"#), Ok(Command::Ping(_))));
    }

    #[test]
    fn a_rate_limited_reply_becomes_a_rate_limited_frame_with_its_wait() {
        let rejection = RpcError { retry_after_ms: Some(1500), ..RpcError::new(ErrorCode::RateLimited, "slow down") };
        let e = RequestError { error: rh_bus::Error::new(RequestErrorKind::Rejected), rejection: Some(rejection) };
        let frame = serde_json::to_value(request_error(&e, "m1".into())).unwrap();
        assert_eq!(
            frame,
            serde_json::json!({"type": "error", "code": "rate_limited", "message": "slow down", "ref": "m1", "retry_after_ms": 1500})
        );
    }
}
