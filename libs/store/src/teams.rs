//! `teams`, `team_members`, `team_shares` (`sql/V11__teams.sql`): groups of people of one org, and the
//! conversations shared with them. Written by the api only; org membership and ownership are checked by the api.
//!
//! Lock order, so that concurrent changes never deadlock and never miss a person: a change that touches a team
//! locks the team row first ([`lock`]), then the conversations involved, in id order ([`lock_conversations`]). A
//! change of one personal share locks only its conversation. So a team's members and shares are stable while a
//! change computes who gains or loses access ([`permissions`] before and after).

use crate::conversations::{self, ACCESS_PERMISSION, Conversation, Shares, permission_from};
use crate::{Db, Result, StoreError};
use deadpool_postgres::GenericClient;
use rh_protocol::Permission;
use rh_protocol::teams::{Team, TeamMember, TeamShare};
use std::collections::HashMap;
use std::sync::LazyLock;
use uuid::Uuid;

/// Maps a unique violation on `(org_id, lower(name))` to `Conflict`.
fn name_taken(e: tokio_postgres::Error) -> StoreError {
    let e = StoreError::Db(e);
    if e.is_unique_violation() { StoreError::Conflict("a team with this name already exists".into()) } else { e }
}

/// Creates an empty team.
pub async fn create(tx: &impl GenericClient, id: Uuid, org_id: Uuid, name: &str, created_by: Uuid) -> Result<Team> {
    tx.execute(
        "INSERT INTO teams (id, org_id, name, created_by) VALUES ($1, $2, $3, $4)",
        &[&id, &org_id, &name, &created_by],
    )
    .await
    .map_err(name_taken)?;
    Ok(Team { id, org_id, name: name.to_owned(), members: Vec::new() })
}

/// Locks team `team_id` of `org_id` for the rest of the caller's transaction; returns its name. `NotFound` when
/// the org has no such team.
pub async fn lock(tx: &impl GenericClient, org_id: Uuid, team_id: Uuid) -> Result<String> {
    let row = tx
        .query_opt("SELECT name FROM teams WHERE id = $1 AND org_id = $2 FOR UPDATE", &[&team_id, &org_id])
        .await?
        .ok_or(StoreError::NotFound)?;
    Ok(row.try_get(0)?)
}

/// The conversations shared with `team_id` (not deleted), locked in id order, as [`conversations::lock`] returns
/// them.
pub async fn lock_conversations(tx: &impl GenericClient, team_id: Uuid) -> Result<Vec<Conversation>> {
    let ids: Vec<Uuid> = tx
        .query(
            "SELECT c.id FROM team_shares ts JOIN conversations c ON c.id = ts.conversation_id \
             WHERE ts.team_id = $1 AND c.deleted_at IS NULL ORDER BY c.id FOR UPDATE OF c",
            &[&team_id],
        )
        .await?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<std::result::Result<_, _>>()?;
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        out.push(conversations::lock(tx, id).await?);
    }
    Ok(out)
}

/// The ids of the members of `team_id` who have not been removed from the org.
pub async fn member_ids(tx: &impl GenericClient, team_id: Uuid) -> Result<Vec<Uuid>> {
    let rows = tx
        .query(
            "SELECT tm.user_id FROM team_members tm JOIN users u ON u.id = tm.user_id \
             WHERE tm.team_id = $1 AND u.removed_at IS NULL",
            &[&team_id],
        )
        .await?;
    rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
}

/// Adds people to a team (those already in it stay as they are); returns the ones added.
pub async fn add_members(tx: &impl GenericClient, team_id: Uuid, user_ids: &[Uuid], by: Uuid) -> Result<Vec<Uuid>> {
    let rows = tx
        .query(
            "INSERT INTO team_members (team_id, user_id, added_by) SELECT $1, u, $3 FROM unnest($2::uuid[]) AS u \
             ON CONFLICT DO NOTHING RETURNING user_id",
            &[&team_id, &user_ids, &by],
        )
        .await?;
    rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
}

/// Takes a person out of a team. `NotFound` when they were not in it.
pub async fn remove_member(tx: &impl GenericClient, team_id: Uuid, user_id: Uuid) -> Result<()> {
    let n = tx.execute("DELETE FROM team_members WHERE team_id = $1 AND user_id = $2", &[&team_id, &user_id]).await?;
    if n == 0 { Err(StoreError::NotFound) } else { Ok(()) }
}

/// Takes a person out of every team (they were removed from the org).
pub async fn leave_all(db: &Db, user_id: Uuid) -> Result<u64> {
    Ok(db.client().await?.execute("DELETE FROM team_members WHERE user_id = $1", &[&user_id]).await?)
}

/// Deletes a team with its memberships and shares.
pub async fn delete(tx: &impl GenericClient, team_id: Uuid) -> Result<()> {
    tx.execute("DELETE FROM team_shares WHERE team_id = $1", &[&team_id]).await?;
    tx.execute("DELETE FROM teams WHERE id = $1", &[&team_id]).await?;
    Ok(())
}

/// Shares a conversation with a team or changes the team's permission; returns the permission it had before.
pub async fn share(
    tx: &impl GenericClient,
    conversation_id: Uuid,
    team_id: Uuid,
    permission: Permission,
    granted_by: Uuid,
) -> Result<Option<Permission>> {
    let before = tx
        .query_opt(
            "SELECT permission FROM team_shares WHERE conversation_id = $1 AND team_id = $2",
            &[&conversation_id, &team_id],
        )
        .await?
        .map(|r| r.try_get::<_, String>(0))
        .transpose()?;
    tx.execute(
        "INSERT INTO team_shares (conversation_id, team_id, permission, granted_by) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (conversation_id, team_id) DO UPDATE \
           SET permission = EXCLUDED.permission, granted_by = EXCLUDED.granted_by, updated_at = now()",
        &[&conversation_id, &team_id, &permission.as_str(), &granted_by],
    )
    .await?;
    Ok(before.as_deref().map(permission_from))
}

/// Stops sharing a conversation with a team. `NotFound` when it was not.
pub async fn unshare(tx: &impl GenericClient, conversation_id: Uuid, team_id: Uuid) -> Result<()> {
    let n = tx
        .execute("DELETE FROM team_shares WHERE conversation_id = $1 AND team_id = $2", &[&conversation_id, &team_id])
        .await?;
    if n == 0 { Err(StoreError::NotFound) } else { Ok(()) }
}

/// The teams `conversation_id` is shared with, by name, with their current member counts.
pub async fn shares_on(client: &impl GenericClient, conversation_id: Uuid) -> Result<Vec<TeamShare>> {
    let rows = client
        .query(
            "SELECT t.id, t.name, ts.permission, \
                    (SELECT count(*) FROM team_members tm JOIN users u ON u.id = tm.user_id \
                     WHERE tm.team_id = t.id AND u.removed_at IS NULL) AS members \
             FROM team_shares ts JOIN teams t ON t.id = ts.team_id \
             WHERE ts.conversation_id = $1 ORDER BY lower(t.name), t.id",
            &[&conversation_id],
        )
        .await?;
    rows.iter()
        .map(|row| {
            let permission: String = row.try_get("permission")?;
            let members: i64 = row.try_get("members")?;
            Ok(TeamShare {
                team_id: row.try_get("id")?,
                name: row.try_get("name")?,
                permission: permission_from(&permission),
                members: u32::try_from(members).unwrap_or(u32::MAX),
            })
        })
        .collect()
}

/// The teams of `org_id` (just `team_id` when given) with their members who have not been removed, by name.
pub async fn list(db: &Db, org_id: Uuid, team_id: Option<Uuid>) -> Result<Vec<Team>> {
    let client = db.client().await?;
    let rows = client
        .query(
            "SELECT t.id, t.name, u.id AS user_id, u.name AS user_name, u.email \
             FROM teams t LEFT JOIN team_members tm ON tm.team_id = t.id \
             LEFT JOIN users u ON u.id = tm.user_id AND u.removed_at IS NULL \
             WHERE t.org_id = $1 AND ($2::uuid IS NULL OR t.id = $2) \
             ORDER BY lower(t.name), t.id, lower(u.name), u.email",
            &[&org_id, &team_id],
        )
        .await?;
    let mut teams: Vec<Team> = Vec::new();
    for row in &rows {
        let id: Uuid = row.try_get("id")?;
        if teams.last().is_none_or(|t| t.id != id) {
            teams.push(Team { id, org_id, name: row.try_get("name")?, members: Vec::new() });
        }
        if let (Some(user_id), Some(team)) = (row.try_get::<_, Option<Uuid>>("user_id")?, teams.last_mut()) {
            team.members.push(TeamMember { user_id, name: row.try_get("user_name")?, email: row.try_get("email")? });
        }
    }
    Ok(teams)
}

/// Names and emails of people by id, for the `participant.added` events of those who gained access.
pub async fn people(tx: &impl GenericClient, ids: &[Uuid]) -> Result<HashMap<Uuid, TeamMember>> {
    let rows = tx.query("SELECT id, name, email FROM users WHERE id = ANY($1)", &[&ids]).await?;
    rows.iter()
        .map(|r| {
            let user_id: Uuid = r.try_get(0)?;
            Ok((user_id, TeamMember { user_id, name: r.try_get(1)?, email: r.try_get(2)? }))
        })
        .collect()
}

/// The permission of each person of `user_ids` on each conversation of `conversation_ids` as they were last told
/// (the access rule of [`crate::conversations::access`], counting personal shares that expired but whose removal
/// was not announced yet); absent pairs may not see it. Run before and after a change
/// of shares, teams or team members, in its transaction, it says who gained, lost or changed access.
pub async fn permissions(
    tx: &impl GenericClient,
    conversation_ids: &[Uuid],
    user_ids: &[Uuid],
) -> Result<HashMap<(Uuid, Uuid), Permission>> {
    static SQL: LazyLock<String> = LazyLock::new(|| {
        format!(
            "SELECT c.id, asked.user_id, {ACCESS_PERMISSION} \
             FROM unnest($2::uuid[]) AS asked(user_id) JOIN conversations c ON c.id = ANY($1) {} \
             WHERE c.deleted_at IS NULL AND (c.owner_id = asked.user_id OR s.permission IS NOT NULL)",
            conversations::shared_permission("asked.user_id", Shares::Announced)
        )
    });
    if conversation_ids.is_empty() || user_ids.is_empty() {
        return Ok(HashMap::new());
    }
    let statement = tx.prepare_cached(&SQL).await?;
    let rows = tx.query(&statement, &[&conversation_ids, &user_ids]).await?;
    rows.iter()
        .map(|r| {
            let permission: String = r.try_get(2)?;
            Ok(((r.try_get(0)?, r.try_get(1)?), permission_from(&permission)))
        })
        .collect()
}
