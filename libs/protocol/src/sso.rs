//! Single sign-on over REST (issue 15): an org admin sets the org's OpenID Connect provider
//! (`GET/PUT/DELETE /orgs/{id}/sso`); the sign-in page asks whether an email's domain signs in with one
//! (`GET /auth/sso?email=`), starts (`POST /auth/sso/start`) and completes (`POST /auth/sso/callback`) the
//! authorization code flow. `SECURITY.md`, "Single sign-on", has the design.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// `PUT /orgs/{id}/sso` body. `client_secret` may be left out to keep the stored one.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SsoConfigRequest {
    /// The provider's issuer URL (its discovery document is `{issuer}/.well-known/openid-configuration`).
    pub issuer: String,
    pub client_id: String,
    #[serde(default)]
    pub client_secret: Option<String>,
    /// What the button says: "Sign in with {display_name}".
    pub display_name: String,
    /// People whose verified email is at one of these domains join the org on their first sign-in.
    pub email_domains: Vec<String>,
    /// Refuse password sign-in and password sign-up into the org.
    #[serde(default)]
    pub passwords_off: bool,
}

/// `GET/PUT /orgs/{id}/sso` reply: the provider as set (never the client secret).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SsoConfig {
    pub issuer: String,
    pub client_id: String,
    /// Whether a client secret is stored.
    pub client_secret_set: bool,
    pub display_name: String,
    pub email_domains: Vec<String>,
    pub passwords_off: bool,
    /// The redirect URI to register at the provider.
    pub redirect_uri: String,
}

/// `GET /auth/sso?email=` reply: whether the email's domain signs in with an org's provider. Depends only on the
/// domain, never on whether the person exists.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SsoDiscovery {
    pub sso: Option<SsoOption>,
}

/// An org's provider as the sign-in page shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SsoOption {
    pub org_id: Uuid,
    pub display_name: String,
    /// Passwords are refused for this domain: the page shows only the button.
    pub passwords_off: bool,
}

/// `POST /auth/sso/start` body.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SsoStartRequest {
    pub org_id: Uuid,
}

/// `POST /auth/sso/start` reply: where to send the browser, and a key that only this browser keeps (the
/// callback must bring it back, so a sign-in cannot be completed in someone else's browser).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SsoStart {
    pub authorize_url: String,
    pub browser_key: String,
    /// Seconds the sign-in may take.
    pub expires_in: u64,
}

/// `POST /auth/sso/callback` body: the `code` and `state` the provider sent back, and the start's `browser_key`.
/// The reply is the sign-in's `Tokens`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SsoCallbackRequest {
    pub code: String,
    pub state: String,
    pub browser_key: String,
}
