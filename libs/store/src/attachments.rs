//! `attachments`: metadata of files attached to a conversation. The bytes live in the JetStream object store
//! bucket `rh_attachments` under `object_name`; the api writes the object first, then this row.

use crate::{Db, Result, StoreError};
use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use serde::Serialize;
use std::sync::LazyLock;
use tokio_postgres::Row;
use uuid::Uuid;

/// One attachment's metadata.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Attachment {
    pub id: Uuid,
    pub conversation_id: Uuid,
    pub uploaded_by: Uuid,
    pub filename: String,
    pub content_type: String,
    pub size: i64,
    /// Internal: where the bytes are. Not shown to clients.
    #[serde(skip)]
    pub object_name: String,
    pub created_at: DateTime<Utc>,
}

impl From<Attachment> for rh_protocol::api::conversations::Attachment {
    /// The metadata clients see (not where the bytes are).
    fn from(a: Attachment) -> Self {
        let Attachment { id, conversation_id, uploaded_by, filename, content_type, size, object_name: _, created_at } =
            a;
        Self { id, conversation_id, uploaded_by, filename, content_type, size, created_at }
    }
}

const COLUMNS: &str = "id, conversation_id, uploaded_by, filename, content_type, size, object_name, created_at";

fn attachment_from(row: &Row) -> Result<Attachment> {
    Ok(Attachment {
        id: row.try_get("id")?,
        conversation_id: row.try_get("conversation_id")?,
        uploaded_by: row.try_get("uploaded_by")?,
        filename: row.try_get("filename")?,
        content_type: row.try_get("content_type")?,
        size: row.try_get("size")?,
        object_name: row.try_get("object_name")?,
        created_at: row.try_get("created_at")?,
    })
}

/// An attachment to record (its bytes are already in the object store).
#[derive(Debug, Clone)]
pub struct NewAttachment<'a> {
    pub id: Uuid,
    pub conversation_id: Uuid,
    pub uploaded_by: Uuid,
    pub filename: &'a str,
    pub content_type: &'a str,
    pub size: i64,
    pub object_name: &'a str,
}

/// Inserts the metadata row; returns it as stored.
pub async fn insert(client: &impl GenericClient, new: &NewAttachment<'_>) -> Result<Attachment> {
    let sql = format!(
        "INSERT INTO attachments (id, conversation_id, uploaded_by, filename, content_type, size, object_name) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {COLUMNS}"
    );
    let row = client
        .query_one(
            &sql,
            &[
                &new.id,
                &new.conversation_id,
                &new.uploaded_by,
                &new.filename,
                &new.content_type,
                &new.size,
                &new.object_name,
            ],
        )
        .await?;
    attachment_from(&row)
}

/// The attachments of a conversation, oldest first, on a connection the caller holds (see [`crate::view`]).
pub(crate) async fn list_on(client: &impl GenericClient, conversation_id: Uuid) -> Result<Vec<Attachment>> {
    static SQL: LazyLock<String> = LazyLock::new(|| {
        format!("SELECT {COLUMNS} FROM attachments WHERE conversation_id = $1 ORDER BY created_at, id")
    });
    let statement = client.prepare_cached(&SQL).await?;
    let rows = client.query(&statement, &[&conversation_id]).await?;
    rows.iter().map(attachment_from).collect()
}

/// One attachment of one conversation (`NotFound` when it belongs to another conversation).
pub async fn get(db: &Db, conversation_id: Uuid, id: Uuid) -> Result<Attachment> {
    let client = db.client().await?;
    let sql = format!("SELECT {COLUMNS} FROM attachments WHERE conversation_id = $1 AND id = $2");
    let row = client.query_opt(&sql, &[&conversation_id, &id]).await?.ok_or(StoreError::NotFound)?;
    attachment_from(&row)
}

/// Locks `org_id`'s attachment quota for the rest of the caller's transaction (other uploads of the org wait)
/// and returns the bytes its conversations that are not deleted hold: a deleted conversation's attachments count
/// for nothing from the moment of the delete, before the erasure removes them.
pub async fn lock_org_bytes(client: &impl GenericClient, org_id: Uuid) -> Result<u64> {
    client
        .execute("SELECT pg_advisory_xact_lock(hashtextextended('attachment_bytes:' || $1::uuid::text, 0))", &[&org_id])
        .await?;
    let row = client
        .query_one(
            "SELECT COALESCE(sum(a.size), 0)::bigint FROM attachments a JOIN conversations c \
             ON c.id = a.conversation_id WHERE c.org_id = $1 AND c.deleted_at IS NULL",
            &[&org_id],
        )
        .await?;
    Ok(u64::try_from(row.try_get::<_, i64>(0)?).unwrap_or(0))
}
