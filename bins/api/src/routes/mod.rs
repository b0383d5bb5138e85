//! REST API v1, one module per feature. [`api_router`] mounts them under `/api/v1`.
//!
//! | module | endpoints |
//! |---|---|
//! | [`auth`] | `POST /auth/login`, `POST /auth/refresh`, `POST /auth/logout`, `POST /auth/ticket`, `GET /me` |
//! | [`orgs`] | `POST /orgs` (sign-up), `POST /orgs/{id}/members`, `DELETE /orgs/{id}/members/{user_id}`, `PUT /orgs/{id}/members/{user_id}/password` |
//! | [`retention`] | `GET/PUT /orgs/{id}/retention` (org admins) |
//! | [`users`] | `GET /users?q=` |
//! | [`models`] | `GET /models` |
//! | [`conversations`] | `POST/GET /conversations`, `GET/DELETE /conversations/{id}` |
//! | [`messages`] | `POST /conversations/{id}/messages`, `POST /conversations/{id}/stop` |
//! | [`settings`] | `PATCH /conversations/{id}/settings` |
//! | [`attachments`] | `POST /conversations/{id}/attachments`, `GET /conversations/{id}/attachments/{att_id}` |
//! | [`shares`] | `GET/POST /conversations/{id}/shares`, `PATCH/DELETE /conversations/{id}/shares/{user_id}` |
//! | [`tools`] | `GET /conversations/{id}/export`, `POST /conversations/{id}/copy`, `GET /search` |
//! | [`admin`] | `GET /admin/conversations`, `GET /admin/audit` |
//! | [`config`] | `GET /config` (unauthenticated: what the web client needs to connect) |

pub mod admin;
pub mod attachments;
pub mod auth;
pub mod config;
pub mod conversations;
pub mod messages;
pub mod models;
pub mod orgs;
pub mod retention;
pub mod settings;
pub mod shares;
pub mod tools;
pub mod users;

use crate::error::ApiError;
use crate::state::AppState;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get, patch, post, put};

/// Every v1 route (paths relative to `/api/v1`). Unknown paths under it answer a JSON 404.
pub fn api_router(state: &AppState) -> Router<AppState> {
    // Multipart framing around the file needs some room beyond the file itself.
    let upload_limit =
        usize::try_from(state.settings.max_attachment_bytes).unwrap_or(usize::MAX).saturating_add(64 * 1024);
    Router::new()
        .route("/auth/login", post(auth::login))
        .route("/auth/refresh", post(auth::refresh))
        .route("/auth/logout", post(auth::logout))
        .route("/auth/ticket", post(auth::ticket))
        .route("/me", get(auth::me))
        .route("/orgs", post(orgs::sign_up))
        .route("/orgs/{org_id}/members", post(orgs::add_member))
        .route("/orgs/{org_id}/members/{user_id}", delete(orgs::remove_member))
        .route("/orgs/{org_id}/members/{user_id}/password", put(orgs::reset_password))
        .route("/orgs/{org_id}/retention", get(retention::get).put(retention::put))
        .route("/users", get(users::search))
        .route("/models", get(models::list))
        .route("/config", get(config::get_config))
        .route("/conversations", post(conversations::create).get(conversations::list))
        .route(
            "/conversations/{id}",
            get(conversations::get_one).patch(conversations::rename).delete(conversations::delete),
        )
        .route("/conversations/{id}/messages", post(messages::send))
        .route("/conversations/{id}/stop", post(messages::stop))
        .route("/conversations/{id}/settings", patch(settings::update))
        .route("/conversations/{id}/attachments", post(attachments::upload).layer(DefaultBodyLimit::max(upload_limit)))
        .route("/conversations/{id}/attachments/{attachment_id}", get(attachments::download))
        .route("/conversations/{id}/export", get(tools::export))
        .route("/conversations/{id}/copy", post(tools::copy))
        .route("/search", get(tools::search))
        .route("/conversations/{id}/shares", get(shares::list).post(shares::add))
        .route("/conversations/{id}/shares/{user_id}", patch(shares::change).delete(shares::revoke))
        .route("/admin/conversations", get(admin::conversations))
        .route("/admin/audit", get(admin::audit))
        .fallback(|| async { ApiError::NotFound("no such endpoint".into()) })
        .method_not_allowed_fallback(|| async {
            ApiError::MethodNotAllowed("this endpoint does not answer that method (see the Allow header)".into())
        })
}
