//! Access levels of a person on a conversation.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// What a person may do in a conversation. Ordered: `View < Respond < Owner`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Permission {
    /// View Only: read history and watch responses live; nothing else.
    View,
    /// Can Respond: send messages, change model and settings, attach files, stop a response.
    Respond,
    /// The conversation's owner: everything, plus sharing and deleting.
    Owner,
}

impl Permission {
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::View => "view",
            Permission::Respond => "respond",
            Permission::Owner => "owner",
        }
    }

    /// May send messages, change settings, attach files and stop responses.
    pub fn can_respond(self) -> bool {
        self >= Permission::Respond
    }

    /// May share, change others' access and delete.
    pub fn is_owner(self) -> bool {
        self == Permission::Owner
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unknown permission {0:?}: expected \"view\" or \"respond\"")]
pub struct ParsePermissionError(pub String);

impl FromStr for Permission {
    type Err = ParsePermissionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "view" => Ok(Permission::View),
            "respond" => Ok(Permission::Respond),
            "owner" => Ok(Permission::Owner),
            other => Err(ParsePermissionError(other.to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_and_rights() {
        assert!(!Permission::View.can_respond());
        assert!(Permission::Respond.can_respond());
        assert!(Permission::Owner.can_respond());
        assert!(!Permission::Respond.is_owner());
        assert_eq!("respond".parse::<Permission>().unwrap(), Permission::Respond);
        assert!("admin".parse::<Permission>().is_err());
    }
}
