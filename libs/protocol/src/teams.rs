//! Teams over REST (`/orgs/{id}/teams`, `/conversations/{id}/teams`), shared by the api and its clients.
//!
//! An org admin creates teams and adds and removes members; a conversation's owner shares it with a team, View Only
//! or Can Respond. Each member's permission is the highest of their personal share and their teams' shares.

use crate::permission::Permission;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// `POST /orgs/{id}/teams` body.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreateTeamRequest {
    #[cfg_attr(feature = "openapi", schema(pattern = "\\S", max_length = 80))]
    pub name: String,
}

/// `POST /orgs/{id}/teams/{team_id}/members` body: people of the org to add (already members are left as they are).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AddTeamMembersRequest {
    #[cfg_attr(feature = "openapi", schema(min_items = 1, max_items = 100))]
    pub user_ids: Vec<Uuid>,
}

/// A member of a team (removed members of the org are never listed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TeamMember {
    pub user_id: Uuid,
    pub name: String,
    pub email: String,
}

/// A team with its members, by name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Team {
    pub id: Uuid,
    pub org_id: Uuid,
    pub name: String,
    pub members: Vec<TeamMember>,
}

/// `GET /orgs/{id}/teams` reply: every team of the org, by name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TeamList {
    pub teams: Vec<Team>,
}

/// `PUT /conversations/{id}/teams/{team_id}` body: `view` or `respond`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TeamShareRequest {
    #[cfg_attr(feature = "openapi", schema(pattern = "^(view|respond)$"))]
    pub permission: String,
}

/// A team a conversation is shared with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TeamShare {
    pub team_id: Uuid,
    pub name: String,
    pub permission: Permission,
    /// How many people are in the team now.
    pub members: u32,
}

/// `GET /conversations/{id}/teams` and `PUT /conversations/{id}/teams/{team_id}` reply: the teams it is shared with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TeamShareList {
    pub teams: Vec<TeamShare>,
}
