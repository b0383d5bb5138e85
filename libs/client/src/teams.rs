//! Teams: typed calls of `/orgs/{id}/teams` and `/conversations/{id}/teams` (`rh_protocol::teams`).

use crate::{Client, Error, Method, Session, StatusCode, decode};
use rh_protocol::teams::{AddTeamMembersRequest, CreateTeamRequest, Team, TeamList, TeamShareList, TeamShareRequest};
use serde_json::json;
use uuid::Uuid;

impl Client {
    /// `POST /orgs/{id}/teams` → 201 [`Team`] as `admin` (an empty team of the admin's org).
    pub async fn create_team(&self, admin: &Session, name: &str) -> Result<Team, Error> {
        const OP: &str = "create team";
        let path = format!("/orgs/{}/teams", admin.org_id);
        let body = json!(CreateTeamRequest { name: name.to_owned() });
        let bytes =
            self.expect(OP, Some(StatusCode::CREATED), Method::POST, &path, Some(&admin.token), Some(body)).await?;
        decode(OP, &bytes)
    }

    /// `GET /orgs/{id}/teams` → 200 [`TeamList`] as `who` (their own org's teams).
    pub async fn teams(&self, who: &Session) -> Result<TeamList, Error> {
        const OP: &str = "list teams";
        let path = format!("/orgs/{}/teams", who.org_id);
        let bytes = self.expect(OP, Some(StatusCode::OK), Method::GET, &path, Some(&who.token), None).await?;
        decode(OP, &bytes)
    }

    /// `POST /orgs/{id}/teams/{team_id}/members` → 200 [`Team`] as `admin`.
    pub async fn add_team_members(&self, admin: &Session, team: Uuid, users: &[Uuid]) -> Result<Team, Error> {
        const OP: &str = "add team members";
        let path = format!("/orgs/{}/teams/{team}/members", admin.org_id);
        let body = json!(AddTeamMembersRequest { user_ids: users.to_vec() });
        let bytes = self.expect(OP, Some(StatusCode::OK), Method::POST, &path, Some(&admin.token), Some(body)).await?;
        decode(OP, &bytes)
    }

    /// `DELETE /orgs/{id}/teams/{team_id}/members/{user_id}` → 204 as `admin`.
    pub async fn remove_team_member(&self, admin: &Session, team: Uuid, user: Uuid) -> Result<(), Error> {
        let path = format!("/orgs/{}/teams/{team}/members/{user}", admin.org_id);
        let ok = Some(StatusCode::NO_CONTENT);
        self.expect("remove team member", ok, Method::DELETE, &path, Some(&admin.token), None).await.map(|_| ())
    }

    /// `PUT /conversations/{id}/teams/{team_id}` → 200 [`TeamShareList`] as `owner` (`permission`: `view` or
    /// `respond`).
    pub async fn share_with_team(
        &self,
        owner: &Session,
        conversation: Uuid,
        team: Uuid,
        permission: &str,
    ) -> Result<TeamShareList, Error> {
        const OP: &str = "share with team";
        let path = format!("/conversations/{conversation}/teams/{team}");
        let body = json!(TeamShareRequest { permission: permission.to_owned() });
        let bytes = self.expect(OP, Some(StatusCode::OK), Method::PUT, &path, Some(&owner.token), Some(body)).await?;
        decode(OP, &bytes)
    }

    /// `DELETE /conversations/{id}/teams/{team_id}` → 204 as `owner`.
    pub async fn unshare_team(&self, owner: &Session, conversation: Uuid, team: Uuid) -> Result<(), Error> {
        let path = format!("/conversations/{conversation}/teams/{team}");
        let ok = Some(StatusCode::NO_CONTENT);
        self.expect("unshare team", ok, Method::DELETE, &path, Some(&owner.token), None).await.map(|_| ())
    }
}
