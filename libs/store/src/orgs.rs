//! The org directory: `orgs` and `users`. Written by the api only (sign-up, members, seeding).
//!
//! Emails are unique across all orgs, case-insensitively (`users_email_key` on `lower(email)`), because a login
//! names only an email. Callers pass emails already normalized (trimmed, lower-cased) by the api's `Email` type.

use crate::{Db, Result, StoreError};
use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use serde::Serialize;
use tokio_postgres::Row;
use uuid::Uuid;

/// An organization.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Org {
    pub id: Uuid,
    pub name: String,
}

/// A person as the api shows them (never the password hash).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct User {
    pub id: Uuid,
    pub org_id: Uuid,
    pub name: String,
    pub email: String,
    /// `admin` or `member`.
    pub role: String,
    pub created_at: DateTime<Utc>,
}

/// A new person to insert. `password_hash` is the PHC string (Argon2id), never the password.
#[derive(Debug, Clone)]
pub struct NewUser<'a> {
    pub id: Uuid,
    pub org_id: Uuid,
    pub name: &'a str,
    pub email: &'a str,
    pub password_hash: &'a str,
    pub role: &'a str,
}

pub(crate) const USER_COLUMNS: &str = "u.id, u.org_id, u.name, u.email, u.role, u.created_at";

pub(crate) fn user_from(row: &Row) -> Result<User> {
    Ok(User {
        id: row.try_get("id")?,
        org_id: row.try_get("org_id")?,
        name: row.try_get("name")?,
        email: row.try_get("email")?,
        role: row.try_get("role")?,
        created_at: row.try_get("created_at")?,
    })
}

/// Maps a unique violation on the email index to `Conflict`.
fn email_taken(e: tokio_postgres::Error) -> StoreError {
    let e = StoreError::Db(e);
    if e.is_unique_violation() { StoreError::Conflict("email already registered".into()) } else { e }
}

/// Creates an org and its first user (the admin) in one transaction. `Conflict` when the email is taken.
pub async fn create_org_with_admin(db: &Db, org: &Org, admin: &NewUser<'_>) -> Result<User> {
    let mut client = db.client().await?;
    let tx = client.transaction().await?;
    tx.execute("INSERT INTO orgs (id, name) VALUES ($1, $2)", &[&org.id, &org.name]).await?;
    // deadpool's wrappers deref to tokio-postgres' types, which implement its (Send) GenericClient.
    let user = insert_user_in(&*tx, admin).await?;
    tx.commit().await?;
    Ok(user)
}

/// Inserts a person into an existing org. `Conflict` when the email is taken.
pub async fn insert_user(db: &Db, user: &NewUser<'_>) -> Result<User> {
    let client = db.client().await?;
    insert_user_in(&**client, user).await
}

/// [`insert_user`] on a connection or transaction the caller holds (`&*tx` for a deadpool transaction).
pub async fn insert_user_in<C: tokio_postgres::GenericClient + Sync>(client: &C, user: &NewUser<'_>) -> Result<User> {
    let row = client
        .query_one(
            "INSERT INTO users (id, org_id, email, name, password_hash, role) VALUES ($1, $2, $3, $4, $5, $6) \
             RETURNING id, org_id, name, email, role, created_at",
            &[&user.id, &user.org_id, &user.email, &user.name, &user.password_hash, &user.role],
        )
        .await
        .map_err(email_taken)?;
    user_from(&row)
}

/// The org with this id.
pub async fn org(db: &Db, id: Uuid) -> Result<Org> {
    let client = db.client().await?;
    let row = client.query_opt("SELECT id, name FROM orgs WHERE id = $1", &[&id]).await?.ok_or(StoreError::NotFound)?;
    Ok(Org { id: row.try_get(0)?, name: row.try_get(1)? })
}

/// The first org with this name (used by the idempotent demo seeding).
pub async fn org_by_name(db: &Db, name: &str) -> Result<Option<Org>> {
    let client = db.client().await?;
    let row =
        client.query_opt("SELECT id, name FROM orgs WHERE name = $1 ORDER BY created_at LIMIT 1", &[&name]).await?;
    row.map(|r| Ok(Org { id: r.try_get(0)?, name: r.try_get(1)? })).transpose()
}

/// A person by id.
pub async fn user(db: &Db, id: Uuid) -> Result<User> {
    let client = db.client().await?;
    let sql = format!("SELECT {USER_COLUMNS} FROM users u WHERE u.id = $1");
    let row = client.query_opt(&sql, &[&id]).await?.ok_or(StoreError::NotFound)?;
    user_from(&row)
}

/// A person and their password hash, by email (case-insensitive), for login.
pub async fn user_for_login(db: &Db, email: &str) -> Result<Option<(User, String)>> {
    let client = db.client().await?;
    let sql = format!(
        "SELECT {USER_COLUMNS}, u.password_hash FROM users u WHERE lower(u.email) = lower($1) AND u.removed_at IS NULL"
    );
    match client.query_opt(&sql, &[&email]).await? {
        Some(row) => Ok(Some((user_from(&row)?, row.try_get("password_hash")?))),
        None => Ok(None),
    }
}

/// People of `org_id` with these ids (ids of other orgs, or unknown ids, are simply absent).
pub async fn users_in_org(db: &Db, org_id: Uuid, ids: &[Uuid]) -> Result<Vec<User>> {
    users_in_org_on(&db.client().await?, org_id, ids).await
}

/// [`users_in_org`] on `client`: inside a transaction that already holds a connection, so a request never waits
/// for a second one (a burst of such requests would hold the whole pool, each waiting for another connection).
pub async fn users_in_org_on(client: &impl GenericClient, org_id: Uuid, ids: &[Uuid]) -> Result<Vec<User>> {
    let sql =
        format!("SELECT {USER_COLUMNS} FROM users u WHERE u.org_id = $1 AND u.id = ANY($2) AND u.removed_at IS NULL");
    let rows = client.query(&sql, &[&org_id, &ids]).await?;
    rows.iter().map(user_from).collect()
}

/// Escapes `%`, `_` and `\` so user text matches literally inside a LIKE pattern.
fn like_literal(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Teammates of `org_id` whose name or email contains `query` (case-insensitive), by name, at most `limit`.
/// An empty query lists the org.
pub async fn search_users(db: &Db, org_id: Uuid, query: &str, limit: i64) -> Result<Vec<User>> {
    let client = db.client().await?;
    let pattern = format!("%{}%", like_literal(query.trim()));
    let sql = format!(
        "SELECT {USER_COLUMNS} FROM users u WHERE u.org_id = $1 AND u.removed_at IS NULL \
           AND (u.name ILIKE $2 ESCAPE '\\' OR u.email ILIKE $2 ESCAPE '\\') \
         ORDER BY lower(u.name), u.email LIMIT $3"
    );
    let rows = client.query(&sql, &[&org_id, &pattern, &limit]).await?;
    rows.iter().map(user_from).collect()
}

/// Marks member `user_id` of `org_id` removed (they can no longer sign in). `NotFound` when no such member.
pub async fn remove_member(db: &Db, org_id: Uuid, user_id: Uuid) -> Result<()> {
    let client = db.client().await?;
    let n = client
        .execute(
            "UPDATE users SET removed_at = now() WHERE id = $1 AND org_id = $2 AND removed_at IS NULL",
            &[&user_id, &org_id],
        )
        .await?;
    if n == 0 { Err(StoreError::NotFound) } else { Ok(()) }
}

/// The password hash of a person who has not been removed (to check their current password).
pub async fn password_hash(db: &Db, user_id: Uuid) -> Result<String> {
    let client = db.client().await?;
    let row = client
        .query_opt("SELECT password_hash FROM users WHERE id = $1 AND removed_at IS NULL", &[&user_id])
        .await?
        .ok_or(StoreError::NotFound)?;
    Ok(row.try_get(0)?)
}

/// Sets the password hash of member `user_id` of `org_id`. `NotFound` when no such member.
pub async fn set_password(db: &Db, org_id: Uuid, user_id: Uuid, password_hash: &str) -> Result<()> {
    let client = db.client().await?;
    let n = client
        .execute(
            "UPDATE users SET password_hash = $3 WHERE id = $1 AND org_id = $2 AND removed_at IS NULL",
            &[&user_id, &org_id, &password_hash],
        )
        .await?;
    if n == 0 { Err(StoreError::NotFound) } else { Ok(()) }
}

#[cfg(test)]
mod tests {
    use super::like_literal;

    #[test]
    fn like_wildcards_are_escaped() {
        assert_eq!(like_literal("a%b_c\\"), "a\\%b\\_c\\\\");
        assert_eq!(like_literal("ada"), "ada");
    }
}
