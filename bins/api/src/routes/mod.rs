//! REST API v1, one module per feature. [`api_router`] mounts them under `/api/v1`.
//!
//! | module | endpoints |
//! |---|---|
//! | [`auth`] | `POST /auth/login`, `POST /auth/refresh`, `POST /auth/logout`, `POST /auth/ticket`, `GET /me` |
//! | [`orgs`] | `POST /orgs` (sign-up), `POST /orgs/{id}/members`, `DELETE /orgs/{id}/members/{user_id}`, `PUT /orgs/{id}/members/{user_id}/password` |
//! | [`sso`] | `GET/PUT/DELETE /orgs/{id}/sso` (org admins), `GET /auth/sso?email=`, `POST /auth/sso/start`, `POST /auth/sso/callback` |
//! | [`retention`] | `GET/PUT /orgs/{id}/retention` (org admins) |
//! | [`users`] | `GET /users?q=` |
//! | [`models`] | `GET /models` |
//! | [`conversations`] | `POST/GET /conversations`, `GET/DELETE /conversations/{id}` |
//! | [`messages`] | `POST /conversations/{id}/messages`, `POST /conversations/{id}/stop` |
//! | [`settings`] | `PATCH /conversations/{id}/settings` |
//! | [`attachments`] | `POST /conversations/{id}/attachments`, `GET /conversations/{id}/attachments/{att_id}` |
//! | [`shares`] | `GET/POST /conversations/{id}/shares`, `PATCH/DELETE /conversations/{id}/shares/{user_id}` |
//! | [`tools`] | `GET /conversations/{id}/export`, `POST /conversations/{id}/copy`, `GET /search` |
//! | [`invites`] | `GET/POST /orgs/{id}/invites`, `DELETE /orgs/{id}/invites/{invite_id}`, `POST /invites/lookup`, `POST /invites/accept`, `PUT /me/password` |
//! | [`teams`] | `GET/POST /orgs/{id}/teams`, `GET/DELETE /orgs/{id}/teams/{team_id}`, `POST /orgs/{id}/teams/{team_id}/members`, `DELETE /orgs/{id}/teams/{team_id}/members/{user_id}`, `GET /conversations/{id}/teams`, `PUT/DELETE /conversations/{id}/teams/{team_id}` |
//! | [`admin`] | `GET /admin/conversations`, `GET /admin/audit` |
//! | [`config`] | `GET /config` (unauthenticated: what the web client needs to connect) |
//! | [`openapi`] | `GET /openapi.json`: the contract, generated from these routes (`docs/api.md`) |

pub mod admin;
pub mod attachments;
pub mod auth;
pub mod config;
pub mod conversations;
pub mod invites;
pub mod messages;
pub mod models;
pub mod openapi;
pub mod orgs;
pub mod retention;
pub mod settings;
pub mod shares;
pub mod sso;
pub mod teams;
pub mod tools;
pub mod users;

use crate::error::ApiError;
use crate::state::AppState;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Every v1 route (paths relative to `/api/v1`) and the OpenAPI document made from their annotations. Unknown
/// paths under it answer a JSON 404, known paths with another method a JSON 405 (with `Allow`).
pub fn api_router(state: &AppState) -> Router<AppState> {
    // Multipart framing around the file needs some room beyond the file itself.
    let upload_limit =
        usize::try_from(state.settings.max_attachment_bytes).unwrap_or(usize::MAX).saturating_add(64 * 1024);
    let (router, _) = routes(upload_limit).split_for_parts();
    router.fallback(|| async { ApiError::NotFound("no such endpoint".into()) }).method_not_allowed_fallback(|| async {
        ApiError::MethodNotAllowed("this endpoint does not answer that method (see the Allow header)".into())
    })
}

/// The routes with their OpenAPI operations: a handler is added here with `routes!`, so none can be served
/// without being in the document.
fn routes(upload_limit: usize) -> OpenApiRouter<AppState> {
    let upload = OpenApiRouter::new().routes(routes!(attachments::upload)).layer(DefaultBodyLimit::max(upload_limit));
    OpenApiRouter::with_openapi(openapi::base())
        .routes(routes!(openapi::serve))
        .routes(routes!(auth::login))
        .routes(routes!(auth::refresh))
        .routes(routes!(auth::logout))
        .routes(routes!(auth::ticket))
        .routes(routes!(auth::me))
        .routes(routes!(sso::get, sso::put, sso::delete))
        .routes(routes!(sso::discovery))
        .routes(routes!(sso::start))
        .routes(routes!(sso::callback))
        .routes(routes!(orgs::sign_up))
        .routes(routes!(orgs::add_member))
        .routes(routes!(orgs::remove_member))
        .routes(routes!(orgs::reset_password))
        .routes(routes!(retention::get, retention::put))
        .routes(routes!(users::search))
        .routes(routes!(models::list))
        .routes(routes!(config::get_config))
        .routes(routes!(conversations::create, conversations::list))
        .routes(routes!(conversations::get_one, conversations::rename, conversations::delete))
        .routes(routes!(messages::send))
        .routes(routes!(messages::stop))
        .routes(routes!(messages::regenerate))
        .routes(routes!(settings::update))
        .merge(upload)
        .routes(routes!(attachments::download))
        .routes(routes!(tools::export))
        .routes(routes!(tools::copy))
        .routes(routes!(tools::search))
        .routes(routes!(shares::list, shares::add))
        .routes(routes!(shares::change, shares::revoke))
        .routes(routes!(admin::conversations))
        .routes(routes!(admin::audit))
        .routes(routes!(invites::change_password))
        .routes(routes!(invites::list, invites::create))
        .routes(routes!(invites::revoke))
        .routes(routes!(invites::lookup))
        .routes(routes!(invites::accept))
        .routes(routes!(teams::list, teams::create))
        .routes(routes!(teams::get, teams::delete))
        .routes(routes!(teams::add_members))
        .routes(routes!(teams::remove_member))
        .routes(routes!(teams::shares))
        .routes(routes!(teams::share, teams::unshare))
}
