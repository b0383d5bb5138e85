//! Subscribe grants: the api's answer to "may this person follow this conversation, and from which position",
//! signed, so the edge can take it without asking the api again (`rh.api.access`).
//!
//! `GET /conversations/{id}` checks access anyway; it returns a grant beside the history. The client subscribes
//! with it (`subscribe {grant}`) and the edge verifies the signature, the person, the conversation and the expiry
//! locally. Exactness rests on the same rule as the api's grant: the grant's `seq` is the conversation's position
//! read in the same statement as the permission, and every access change after it (a removal, a permission change,
//! the conversation's deletion) is an event past `seq` in the stream, which the subscription's catch-up applies.
//! The edge therefore takes a grant only for a subscription that starts at or before its `seq`; any other
//! subscribe asks the api as before. A grant is short-lived and bound to one person and one conversation.

use crate::{AuthError, TokenKeys};
use rh_protocol::Permission;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// How long a grant may be used after it was issued (a client subscribes right after loading the history).
pub const GRANT_TTL_SECS: u64 = 60;

/// The `typ` of a grant: an access token (no such field) never verifies as a grant, nor a grant as an access
/// token (no `sid`, `org`, ...).
const GRANT_TYPE: &str = "rh.subscribe";

/// What a subscribe grant says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubscribeGrant {
    typ: String,
    /// The person.
    pub sub: Uuid,
    pub conv: Uuid,
    pub permission: Permission,
    /// The conversation's position when the permission was read: access changes after it are events past it.
    pub seq: u64,
    /// Expiry, seconds since the Unix epoch.
    pub exp: u64,
}

impl SubscribeGrant {
    /// A grant valid for [`GRANT_TTL_SECS`].
    pub fn new(user: Uuid, conversation: Uuid, permission: Permission, seq: u64) -> Self {
        SubscribeGrant {
            typ: GRANT_TYPE.into(),
            sub: user,
            conv: conversation,
            permission,
            seq,
            exp: crate::expiry_in(GRANT_TTL_SECS),
        }
    }
}

impl TokenKeys {
    pub fn issue_grant(&self, grant: &SubscribeGrant) -> Result<String, AuthError> {
        self.issue_any(grant)
    }

    /// The grant if `token` is one, signed with these keys and not expired.
    pub fn verify_grant(&self, token: &str) -> Result<SubscribeGrant, AuthError> {
        self.verify_any::<SubscribeGrant>(token).filter(|g| g.typ == GRANT_TYPE).ok_or(AuthError::InvalidToken)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Claims, Role, Secret, expiry_in};

    #[test]
    fn a_grant_round_trips_and_is_no_access_token() {
        let keys = TokenKeys::new(&Secret::new("k1"));
        let g = SubscribeGrant::new(Uuid::new_v4(), Uuid::new_v4(), Permission::View, 42);
        let t = keys.issue_grant(&g).unwrap();
        assert_eq!(keys.verify_grant(&t).unwrap(), g);
        assert!(keys.verify(&t).is_err(), "a grant is not an access token");
        assert!(TokenKeys::new(&Secret::new("k2")).verify_grant(&t).is_err());
        let access = Claims {
            sub: g.sub,
            org: Uuid::new_v4(),
            name: "Ada".into(),
            email: "ada@x.io".into(),
            role: Role::Member,
            sid: Uuid::new_v4(),
            exp: expiry_in(60),
        };
        assert!(keys.verify_grant(&keys.issue(&access).unwrap()).is_err(), "an access token is not a grant");
        let expired = SubscribeGrant { exp: 1_000, ..g.clone() };
        assert!(keys.verify_grant(&keys.issue_grant(&expired).unwrap()).is_err());
        let other_type = SubscribeGrant { typ: "x".into(), ..g };
        assert!(keys.verify_grant(&keys.issue_grant(&other_type).unwrap()).is_err());
    }
}
