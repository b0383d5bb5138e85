//! `conversations`: metadata and settings, written by the api; `applied_seq` is raised by the audit writer.
//!
//! Who may see a conversation is decided here, in one query ([`access`]): its owner, or a person it is shared
//! with (`shares`), directly or through a team (`team_shares`, `team_members`). Nobody else — not an org admin, not a teammate — and never a deleted conversation; callers turn
//! `None` into 404 so a conversation's existence is never revealed.

use crate::{Db, Result, StoreError};
use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use rh_protocol::Permission;
use serde::Serialize;
use std::sync::LazyLock;
use tokio_postgres::Row;
use uuid::Uuid;

/// Appended to the `ON` of a join of `shares s`: a share grants nothing from its `expires_at` on, even before the
/// api's expiry task has removed it (and announced it like a revoke). A macro so `concat!` can use it.
macro_rules! share_live {
    () => {
        "AND (s.expires_at IS NULL OR s.expires_at > now())"
    };
}

/// [`share_live!`] as a constant, for the other queries that join `shares s`.
pub const SHARE_LIVE: &str = share_live!();

/// One conversation with its owner's name.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Conversation {
    pub id: Uuid,
    pub org_id: Uuid,
    pub owner_id: Uuid,
    pub owner_name: String,
    pub title: String,
    pub model: String,
    pub temperature: Option<f32>,
    pub system_prompt: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
    /// Stream position of `conversation.created`.
    pub created_seq: i64,
    /// Highest stream position the audit writer has applied.
    pub applied_seq: i64,
}

/// A conversation to create.
#[derive(Debug, Clone)]
pub struct NewConversation<'a> {
    pub id: Uuid,
    pub org_id: Uuid,
    pub owner_id: Uuid,
    pub title: &'a str,
    pub model: &'a str,
}

/// Settings to store (the complete result of a change, not a patch).
#[derive(Debug, Clone, PartialEq)]
pub struct SettingsUpdate<'a> {
    pub model: &'a str,
    pub temperature: Option<f32>,
    pub system_prompt: Option<&'a str>,
}

const COLUMNS: &str = "c.id, c.org_id, c.owner_id, o.name AS owner_name, c.title, c.model, c.temperature, \
     c.system_prompt, c.created_at, c.updated_at, c.deleted_at, c.created_seq, c.applied_seq";

fn conversation_from(row: &Row) -> Result<Conversation> {
    Ok(Conversation {
        id: row.try_get("id")?,
        org_id: row.try_get("org_id")?,
        owner_id: row.try_get("owner_id")?,
        owner_name: row.try_get("owner_name")?,
        title: row.try_get("title")?,
        model: row.try_get("model")?,
        temperature: row.try_get("temperature")?,
        system_prompt: row.try_get("system_prompt")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        deleted_at: row.try_get("deleted_at")?,
        created_seq: row.try_get("created_seq")?,
        applied_seq: row.try_get("applied_seq")?,
    })
}

/// `owner`, `respond` or `view` as stored; anything else (impossible under the CHECK constraint) is the least.
pub(crate) fn permission_from(s: &str) -> Permission {
    s.parse().unwrap_or(Permission::View)
}

/// Inserts a conversation, in the transaction that also queues its `conversation.created` event.
pub async fn insert(tx: &impl GenericClient, new: &NewConversation<'_>) -> Result<()> {
    tx.execute(
        "INSERT INTO conversations (id, org_id, owner_id, title, model) VALUES ($1, $2, $3, $4, $5)",
        &[&new.id, &new.org_id, &new.owner_id, &new.title, &new.model],
    )
    .await?;
    Ok(())
}

/// Locks a conversation that is not deleted for the rest of the caller's transaction and returns it (`NotFound`
/// when it is gone). Every state change of a conversation takes this lock first, so changes of one conversation
/// commit one after the other — and their outbox rows in the order of their ids (see [`crate::outbox`]).
pub async fn lock(tx: &impl GenericClient, id: Uuid) -> Result<Conversation> {
    static SQL: LazyLock<String> = LazyLock::new(|| {
        format!(
            "SELECT {COLUMNS} FROM conversations c JOIN users o ON o.id = c.owner_id \
             WHERE c.id = $1 AND c.deleted_at IS NULL FOR UPDATE OF c"
        )
    });
    let statement = tx.prepare_cached(&SQL).await?;
    let row = tx.query_opt(&statement, &[&id]).await?.ok_or(StoreError::NotFound)?;
    conversation_from(&row)
}

/// Renames a locked conversation ([`lock`]); returns it as it is now.
pub async fn rename(tx: &impl GenericClient, id: Uuid, title: &str) -> Result<Conversation> {
    tx.execute("UPDATE conversations SET title = $2, updated_at = now() WHERE id = $1", &[&id, &title]).await?;
    get_on(tx, id).await
}

/// A conversation that is not deleted, whoever asks (callers check access first).
pub async fn get(db: &Db, id: Uuid) -> Result<Conversation> {
    get_on(&db.client().await?, id).await
}

/// [`get`] on a connection (or transaction) the caller holds.
pub async fn get_on(client: &impl GenericClient, id: Uuid) -> Result<Conversation> {
    let sql = format!(
        "SELECT {COLUMNS} FROM conversations c JOIN users o ON o.id = c.owner_id \
         WHERE c.id = $1 AND c.deleted_at IS NULL"
    );
    let row = client.query_opt(&sql, &[&id]).await?.ok_or(StoreError::NotFound)?;
    conversation_from(&row)
}

/// Which personal shares count in [`shared_permission`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shares {
    /// Only those that have not expired: what a person may do now (every access check).
    Live,
    /// Every row, expired or not: what a person was last told they may do (a share that expired is announced
    /// when the expiry task removes its row, like a revoke), for the before and after of a change.
    Announced,
}

/// A person's permission from shares (not ownership), for conversation `c` and person `{person}`: a
/// `LEFT JOIN LATERAL` yielding `s.permission` — `respond` when their personal share or the share of any team they
/// are in says so, else `view` when any does, else NULL. The highest wins, so removing one share leaves the others.
/// Parameterized by the outer row, so it reads the primary keys and `team_members`' index, never whole tables.
pub(crate) fn shared_permission(person: &str, shares: Shares) -> String {
    let live = match shares {
        Shares::Live => "AND (ps.expires_at IS NULL OR ps.expires_at > now())",
        Shares::Announced => "",
    };
    format!(
        "LEFT JOIN LATERAL (SELECT CASE WHEN bool_or(g.p = 'respond') THEN 'respond' \
                                   WHEN count(*) > 0 THEN 'view' END AS permission \
           FROM (SELECT ps.permission AS p FROM shares ps \
                 WHERE ps.conversation_id = c.id AND ps.user_id = {person} {live} \
                 UNION ALL \
                 SELECT ts.permission FROM team_shares ts JOIN team_members tm ON tm.team_id = ts.team_id \
                 WHERE ts.conversation_id = c.id AND tm.user_id = {person}) g) s ON true"
    )
}

/// The ids of the conversations `{person}` owns or that are shared with them now (personally or through a team),
/// deleted ones included (callers filter `deleted_at`): a subquery for `c.id IN (...)`, read through the owner,
/// shares and team membership indexes — the candidates of a sidebar or a search, whose rows then take
/// [`shared_permission`].
pub(crate) fn visible_ids(person: &str) -> String {
    format!(
        "SELECT id FROM conversations WHERE owner_id = {person} \
         UNION SELECT s.conversation_id FROM shares s WHERE s.user_id = {person} {SHARE_LIVE} \
         UNION SELECT ts.conversation_id FROM team_shares ts JOIN team_members tm ON tm.team_id = ts.team_id \
               WHERE tm.user_id = {person}"
    )
}

/// The access rule as SQL, for conversation `$1` and the people in the array `$2`: select [`ACCESS_PERMISSION`]
/// (and columns of `c`, `o`, `asked.user_id`) then this `FROM ... WHERE`, which yields one row per person asked
/// when the conversation exists, is not deleted, and is owned by or shared with that person (personally or through
/// a team), and none for the others. The one definition of who may see a conversation, used by [`access`] (one
/// person), by [`crate::history::grants`] (the socket grants, many people at once, with `history_seq` added) and by
/// [`crate::teams::permissions`] (before and after a change of teams or shares).
pub(crate) static ACCESS_FROM: LazyLock<String> = LazyLock::new(|| {
    format!(
        "FROM unnest($2::uuid[]) AS asked(user_id) \
         JOIN conversations c ON c.id = $1 JOIN users o ON o.id = c.owner_id {} \
         WHERE c.deleted_at IS NULL AND (c.owner_id = asked.user_id OR s.permission IS NOT NULL)",
        shared_permission("asked.user_id", Shares::Live)
    )
});

/// The asked person's permission in a row of [`ACCESS_FROM`]: `owner`, else the shares' `respond` or `view`.
pub(crate) const ACCESS_PERMISSION: &str =
    "CASE WHEN c.owner_id = asked.user_id THEN 'owner' ELSE s.permission END AS permission";

/// The conversation and `user_id`'s permission on it, or `None` when it does not exist, is deleted, or is neither
/// owned by nor shared with that person.
pub async fn access(db: &Db, id: Uuid, user_id: Uuid) -> Result<Option<(Conversation, Permission)>> {
    access_on(&db.client().await?, id, user_id).await
}

/// [`access`] on a connection the caller holds.
pub async fn access_on(
    client: &impl GenericClient,
    id: Uuid,
    user_id: Uuid,
) -> Result<Option<(Conversation, Permission)>> {
    static SQL: LazyLock<String> = LazyLock::new(|| format!("SELECT {COLUMNS}, {ACCESS_PERMISSION} {}", *ACCESS_FROM));
    let statement = client.prepare_cached(&SQL).await?;
    match client.query_opt(&statement, &[&id, &[user_id].as_slice()]).await? {
        Some(row) => {
            let permission: String = row.try_get("permission")?;
            Ok(Some((conversation_from(&row)?, permission_from(&permission))))
        }
        None => Ok(None),
    }
}

/// One conversation of a sidebar: the caller's permission, and whether an AI answer is being generated in it now.
#[derive(Debug, Clone, PartialEq)]
pub struct SidebarEntry {
    pub conversation: Conversation,
    pub permission: Permission,
    pub responding: bool,
    /// People it is shared with now (live shares); counted only for the conversations `user_id` owns, else 0.
    pub shared_with: i64,
}

/// The sidebar of `user_id`: conversations they own or that are shared with them, newest first (by creation,
/// then id), at most `limit`, only those strictly older than `before` (a `(created_at, id)` the previous page
/// ended with) when given. Keyset paging: a page never repeats or skips a conversation because others were
/// created meanwhile.
pub async fn list_for_user(
    db: &Db,
    user_id: Uuid,
    before: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> Result<Vec<SidebarEntry>> {
    static SQL: LazyLock<String> = LazyLock::new(|| {
        format!(
            "SELECT {COLUMNS}, CASE WHEN c.owner_id = $1 THEN 'owner' ELSE s.permission END AS permission, \
                    EXISTS (SELECT 1 FROM responding r WHERE r.conversation_id = c.id) AS responding, \
                    CASE WHEN c.owner_id = $1 THEN (SELECT count(*) FROM shares s WHERE s.conversation_id = c.id {SHARE_LIVE}) \
                         ELSE 0 END AS shared_with \
             FROM conversations c JOIN users o ON o.id = c.owner_id {} \
             WHERE c.deleted_at IS NULL \
               AND c.id IN ({}) \
               AND ($2::timestamptz IS NULL OR (c.created_at, c.id) < ($2, $3::uuid)) \
             ORDER BY c.created_at DESC, c.id DESC LIMIT $4",
            shared_permission("$1", Shares::Live),
            visible_ids("$1")
        )
    });
    let client = db.client().await?;
    let statement = client.prepare_cached(&SQL).await?;
    let (at, id) = (before.map(|b| b.0), before.map(|b| b.1));
    let rows = client.query(&statement, &[&user_id, &at, &id, &limit]).await?;
    rows.iter()
        .map(|row| {
            let permission: String = row.try_get("permission")?;
            Ok(SidebarEntry {
                conversation: conversation_from(row)?,
                permission: permission_from(&permission),
                responding: row.try_get("responding")?,
                shared_with: row.try_get("shared_with")?,
            })
        })
        .collect()
}

/// Stores new settings of a locked conversation ([`lock`]); returns it as it is now.
pub async fn update_settings(tx: &impl GenericClient, id: Uuid, settings: &SettingsUpdate<'_>) -> Result<Conversation> {
    tx.execute(
        "UPDATE conversations SET model = $2, temperature = $3, system_prompt = $4, updated_at = now() WHERE id = $1",
        &[&id, &settings.model, &settings.temperature, &settings.system_prompt],
    )
    .await?;
    get_on(tx, id).await
}

/// Marks the conversation as recently active (a message was sent), for sidebars ordered by activity.
pub async fn touch(db: &Db, id: Uuid) -> Result<()> {
    let client = db.client().await?;
    client.execute("UPDATE conversations SET updated_at = now() WHERE id = $1", &[&id]).await?;
    Ok(())
}

pub use rh_protocol::api::admin::{AdminConversation, AdminParticipant, OwnerRef};

/// Every conversation of `org_id` (deleted ones too), newest first, at most `limit`.
pub async fn admin_list(db: &Db, org_id: Uuid, limit: i64) -> Result<Vec<AdminConversation>> {
    let client = db.client().await?;
    let rows = client
        .query(
            "SELECT c.id, c.title, c.owner_id, o.name AS owner_name, c.model, c.created_at, c.updated_at, \
                    c.deleted_at IS NOT NULL AS deleted, \
                    (SELECT count(*) FROM messages m WHERE m.conversation_id = c.id) AS message_count, \
                    COALESCE((SELECT json_agg(json_build_object('user_id', s.user_id, 'name', u.name, \
                                'permission', s.permission) ORDER BY s.created_at) \
                              FROM shares s JOIN users u ON u.id = s.user_id \
                              WHERE s.conversation_id = c.id), '[]'::json) AS participants \
             FROM conversations c JOIN users o ON o.id = c.owner_id \
             WHERE c.org_id = $1 ORDER BY c.created_at DESC, c.id DESC LIMIT $2",
            &[&org_id, &limit],
        )
        .await?;
    rows.iter()
        .map(|row| {
            let participants: serde_json::Value = row.try_get("participants")?;
            let participants = participants
                .as_array()
                .map(|list| {
                    list.iter()
                        .filter_map(|p| {
                            Some(AdminParticipant {
                                user_id: p.get("user_id")?.as_str()?.parse().ok()?,
                                name: p.get("name")?.as_str()?.to_owned(),
                                permission: permission_from(p.get("permission")?.as_str()?),
                            })
                        })
                        .collect()
                })
                .unwrap_or_default();
            Ok(AdminConversation {
                id: row.try_get("id")?,
                title: row.try_get("title")?,
                owner: OwnerRef { id: row.try_get("owner_id")?, name: row.try_get("owner_name")? },
                participants,
                model: row.try_get("model")?,
                created_at: row.try_get("created_at")?,
                updated_at: row.try_get("updated_at")?,
                message_count: row.try_get("message_count")?,
                deleted: row.try_get("deleted")?,
            })
        })
        .collect()
}
