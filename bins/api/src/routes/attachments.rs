//! Attachments: upload (multipart field `file`, Can Respond or owner) and download (any participant).
//! Bytes go to the JetStream object store `rh_attachments`, metadata to PostgreSQL, then `attachment.added`
//! tells every participant.

use crate::error::ApiError;
use crate::extract::{ApiMultipart, ApiPath, AuthUser};
use crate::service;
use crate::service::access::{Need, check};
use crate::state::AppState;
use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::extract::multipart::MultipartError;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rh_protocol::Event;
use rh_protocol::api::conversations::AttachmentUpload;
use rh_store::attachments::{Attachment, NewAttachment};
use uuid::Uuid;

/// True for the types we accept: any `text/*`, PNG/JPEG/GIF/WebP images, PDF and JSON.
pub fn allowed_type(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    essence.starts_with("text/")
        || matches!(
            essence.as_str(),
            "image/png" | "image/jpeg" | "image/gif" | "image/webp" | "application/pdf" | "application/json"
        )
}

/// A file name safe to store and to put in a header: the last path component, without control characters or
/// quotes, at most 255 characters; "file" when nothing is left.
pub fn clean_filename(name: Option<&str>) -> String {
    let base = name.unwrap_or_default().rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned: String = base.chars().filter(|c| !c.is_control() && *c != '"').take(255).collect();
    let cleaned = cleaned.trim().to_owned();
    if cleaned.is_empty() || cleaned == "." || cleaned == ".." { "file".to_owned() } else { cleaned }
}

fn multipart_error(e: MultipartError) -> ApiError {
    match e.status().as_u16() {
        413 => ApiError::TooLarge("the file is larger than allowed".into()),
        _ => ApiError::BadRequest(format!("bad multipart body: {}", e.body_text())),
    }
}

/// `POST /conversations/{id}/attachments` (multipart, field `file`) → 201 the attachment's metadata.
/// 413 `payload_too_large` above `--max-attachment-bytes`, 413 `quota_exceeded` past the organization's
/// `--limit-org-attachment-bytes`, 415 for a type not accepted, 403 for View Only.
#[utoipa::path(post, path = "/conversations/{id}/attachments", tag = "attachments", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body(content = AttachmentUpload, content_type = "multipart/form-data"),
    responses((status = 201, body = rh_protocol::api::conversations::Attachment), (status = 403)))]
pub async fn upload(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
    ApiMultipart(mut multipart): ApiMultipart,
) -> Result<(StatusCode, Json<rh_protocol::api::conversations::Attachment>), ApiError> {
    // Access first, before the body is read: the upload then needs no other check.
    check(&state, id, caller.id(), Need::Respond("attach files")).await?;
    let max = state.settings.max_attachment_bytes;

    let mut field = loop {
        match multipart.next_field().await.map_err(multipart_error)? {
            Some(f) if f.name() == Some("file") => break f,
            Some(_) => continue,
            None => return Err(ApiError::BadRequest("expected a multipart field named \"file\"".into())),
        }
    };
    // multer reads a non-UTF-8 file name as none at all: refuse it instead of renaming the file "file".
    if field.headers().values().any(|v| std::str::from_utf8(v.as_bytes()).is_err()) {
        return Err(ApiError::BadRequest("the file's multipart headers must be UTF-8 text".into()));
    }
    let filename = clean_filename(field.file_name());
    let content_type = field
        .content_type()
        .map(|t| t.split(';').next().unwrap_or_default().trim().to_ascii_lowercase())
        .unwrap_or_default();
    if !allowed_type(&content_type) {
        return Err(ApiError::UnsupportedMediaType(format!(
            "files of type {:?} cannot be attached (text, PNG, JPEG, GIF, WebP, PDF or JSON)",
            if content_type.is_empty() { "unknown" } else { content_type.as_str() }
        )));
    }
    let mut bytes = Vec::new();
    while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
        if (bytes.len() + chunk.len()) as u64 > max {
            // Read the rest (the body limit bounds it to a little over `max`) so the client, still sending,
            // gets a clean 413 instead of a broken connection.
            while let Ok(Some(_)) = field.chunk().await {}
            return Err(ApiError::TooLarge(format!("the file is larger than {max} bytes")));
        }
        bytes.extend_from_slice(&chunk);
    }

    let attachment_id = Uuid::now_v7();
    let object_name = format!("{id}/{attachment_id}");
    state
        .attachments
        .put(object_name.as_str(), &mut bytes.as_slice())
        .await
        .map_err(|e| ApiError::Unavailable(format!("could not store the file: {e}")))?;
    let new = NewAttachment {
        id: attachment_id,
        conversation_id: id,
        uploaded_by: caller.id(),
        filename: &filename,
        content_type: &content_type,
        size: bytes.len() as i64,
        object_name: &object_name,
    };
    match record(&state, &new).await {
        Ok(attachment) => Ok((StatusCode::CREATED, Json(attachment.into()))),
        Err(e) => {
            // Deleted meanwhile (or the database failed): no row points at the object, so no erasure would find it.
            if let Err(d) = state.attachments.delete(object_name.as_str()).await {
                tracing::warn!(%object_name, error = %d, "could not delete the object of an unrecorded upload");
            }
            Err(e)
        }
    }
}

/// Records a stored upload: its row and `attachment.added`, in one change of the (not deleted) conversation, if
/// the organization's attachment quota has room (413 `quota_exceeded`; the caller then deletes the object).
async fn record(state: &AppState, new: &NewAttachment<'_>) -> Result<Attachment, ApiError> {
    let mut client = state.db.client().await?;
    let (mut change, conversation) =
        service::events::Change::begin(&mut client, new.conversation_id, new.uploaded_by).await?;
    let size = u64::try_from(new.size).unwrap_or(0);
    service::limits::attachment_bytes(state, change.tx(), conversation.org_id, size).await?;
    let attachment = rh_store::attachments::insert(change.tx(), new).await?;
    change.event(Event::AttachmentAdded {
        attachment_id: attachment.id,
        filename: attachment.filename.clone(),
        content_type: attachment.content_type.clone(),
        size: attachment.size.max(0) as u64,
        uploaded_by: attachment.uploaded_by,
    })?;
    change.commit(state).await?;
    Ok(attachment)
}

/// `GET /conversations/{id}/attachments/{attachment_id}`: the bytes, streamed from the object store, with their
/// content type and `Content-Disposition: attachment` (never rendered inline: uploads are untrusted).
#[utoipa::path(get, path = "/conversations/{id}/attachments/{attachment_id}", tag = "attachments",
    security(("bearer" = [])), params(("id" = Uuid, Path), ("attachment_id" = Uuid, Path)),
    responses((status = 200, description = "The file, as uploaded", content_type = "application/octet-stream", body = Vec<u8>)))]
pub async fn download(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath((id, attachment_id)): ApiPath<(Uuid, Uuid)>,
) -> Result<Response, ApiError> {
    let (attachment, object) = service::attachments::open(&state, caller.id(), id, attachment_id).await?;
    let body = Body::from_stream(tokio_util::io::ReaderStream::new(object));
    let ascii: String =
        attachment.filename.chars().map(|c| if c.is_ascii_graphic() || c == ' ' { c } else { '_' }).collect();
    let disposition =
        format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{}", percent_encode(&attachment.filename));
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(&attachment.content_type).unwrap_or(HeaderValue::from_static("application/octet-stream")),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(attachment.size.max(0) as u64));
    headers.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_str(&disposition).unwrap_or(HeaderValue::from_static("attachment")),
    );
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    Ok(response)
}

/// RFC 5987 percent-encoding of a UTF-8 file name.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types() {
        assert!(allowed_type("text/plain; charset=utf-8"));
        assert!(allowed_type("image/PNG"));
        assert!(allowed_type("application/json"));
        assert!(!allowed_type("application/x-msdownload"));
        assert!(!allowed_type("image/svg+xml"));
        assert!(!allowed_type(""));
    }

    #[test]
    fn filenames() {
        assert_eq!(clean_filename(Some("../../etc/passwd")), "passwd");
        assert_eq!(clean_filename(Some("C:\\x\\a\"b.txt")), "ab.txt");
        assert_eq!(clean_filename(None), "file");
        assert_eq!(percent_encode("ä b"), "%C3%A4%20b");
    }
}
