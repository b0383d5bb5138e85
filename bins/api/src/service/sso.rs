//! Single sign-on per organization: an org admin sets the org's OpenID Connect provider (issuer, client, the email
//! domains it vouches for, "passwords off"); the sign-in page asks by email domain whether there is one; password
//! sign-in and sign-up are refused where passwords are off. The sign-in itself is [`super::sso_login`].

use crate::domain::Email;
use crate::error::ApiError;
use crate::extract::AuthUser;
use crate::state::AppState;
use axum::http::StatusCode;
use openidconnect::IssuerUrl;
use openidconnect::core::CoreProviderMetadata;
use rh_protocol::frame::ErrorCode;
use rh_protocol::sso::{SsoConfig, SsoConfigRequest, SsoDiscovery, SsoOption};
use rh_store::{StoreError, audit_log, sso};
use serde_json::json;
use uuid::Uuid;

/// Most email domains one org claims.
const MAX_DOMAINS: usize = 20;

fn require_admin(caller: &AuthUser, org_id: Uuid) -> Result<(), ApiError> {
    super::access::org_admin(caller, org_id, "set up single sign-on")
}

/// A refusal of the sign-in with its own code.
pub fn refused(code: ErrorCode, status: StatusCode, message: impl Into<String>) -> ApiError {
    ApiError::Refused { code, status, message: message.into() }
}

/// The provider could not be reached, or answered something that is not OpenID Connect (the cause is logged, not
/// shown: the issuer URL is an admin's, and the answer could be anything).
pub fn provider_unavailable(what: &str, cause: &dyn std::error::Error) -> ApiError {
    let mut chain = cause.to_string();
    let mut next = cause.source();
    while let Some(e) = next {
        chain = format!("{chain}: {e}");
        next = e.source();
    }
    tracing::warn!(error = %chain, "{what}");
    refused(
        ErrorCode::SsoProviderUnavailable,
        StatusCode::BAD_GATEWAY,
        format!("{what}: the identity provider did not answer as expected"),
    )
}

/// The redirect URI providers send people back to: the web client's root.
pub fn redirect_uri(state: &AppState) -> Result<String, ApiError> {
    let base = state.settings.sso.public_url.as_deref().ok_or_else(|| {
        ApiError::Conflict("single sign-on needs the server's public URL (--public-url, RH_PUBLIC_URL)".into())
    })?;
    Ok(format!("{}/", base.trim_end_matches('/')))
}

/// Checks an issuer URL against `--sso-allowed-issuers` (any `https://` one when that is empty).
fn allowed_issuer(state: &AppState, issuer: &str) -> Result<IssuerUrl, ApiError> {
    let url = IssuerUrl::new(issuer.trim().to_owned())
        .map_err(|_| ApiError::Validation(format!("issuer {issuer:?} is not a URL")))?;
    let allowed = &state.settings.sso.allowed_issuers;
    let ok = if allowed.iter().all(|p| p.trim().is_empty()) {
        url.url().scheme() == "https"
    } else {
        allowed.iter().any(|p| !p.trim().is_empty() && url.as_str().starts_with(p.trim()))
    };
    if !ok {
        return Err(ApiError::Validation("this server does not allow that issuer (--sso-allowed-issuers)".into()));
    }
    Ok(url)
}

/// The provider's discovery document and keys (fetched for each sign-in step, so a key rotation is seen at once).
pub async fn discover(state: &AppState, issuer: &str) -> Result<CoreProviderMetadata, ApiError> {
    let url = allowed_issuer(state, issuer)?;
    let http = state.sso_http.clone();
    let client = move |r| {
        let http = http.clone();
        async move { http.call(r).await }
    };
    CoreProviderMetadata::discover_async(url, &client)
        .await
        .map_err(|e| provider_unavailable("reading the provider's discovery document and keys", &e))
}

fn public(config: &sso::SsoConfig, redirect_uri: String) -> SsoConfig {
    SsoConfig {
        issuer: config.issuer.clone(),
        client_id: config.client_id.clone(),
        client_secret_set: !config.client_secret.is_empty(),
        display_name: config.display_name.clone(),
        email_domains: config.email_domains.clone(),
        passwords_off: config.passwords_off,
        redirect_uri,
    }
}

fn not_configured() -> ApiError {
    ApiError::NotFound("this organization has no single sign-on".into())
}

/// The org's provider (org admins), never its client secret.
pub async fn get(state: &AppState, caller: &AuthUser, org_id: Uuid) -> Result<SsoConfig, ApiError> {
    require_admin(caller, org_id)?;
    let config = sso::config(&state.db, org_id).await?.ok_or_else(not_configured)?;
    Ok(public(&config, redirect_uri(state).unwrap_or_default()))
}

fn one_line(field: &str, s: &str, max: usize) -> Result<String, ApiError> {
    let s = s.trim();
    if s.is_empty() || s.chars().count() > max || s.chars().any(char::is_control) {
        return Err(ApiError::Validation(format!("{field} must be 1 to {max} characters on one line")));
    }
    Ok(s.to_owned())
}

fn domains(given: &[String]) -> Result<Vec<String>, ApiError> {
    if given.is_empty() || given.len() > MAX_DOMAINS {
        return Err(ApiError::Validation(format!("email_domains: 1 to {MAX_DOMAINS} domains")));
    }
    let mut out = Vec::with_capacity(given.len());
    for d in given {
        // A domain is valid when `x@domain` is a valid email; the lower-cased form is what emails are compared by.
        let email = Email::parse(&format!("x@{}", d.trim().trim_start_matches('@')))
            .map_err(|_| ApiError::Validation(format!("{d:?} is not an email domain")))?;
        out.push(email.as_str()[2..].to_owned());
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// Sets the org's provider (org admins). The provider must answer its discovery document now; a domain where
/// people of another org have accounts cannot be claimed (that org's people would be sent to this provider).
pub async fn put(
    state: &AppState,
    caller: &AuthUser,
    org_id: Uuid,
    req: &SsoConfigRequest,
) -> Result<SsoConfig, ApiError> {
    require_admin(caller, org_id)?;
    let redirect = redirect_uri(state)?;
    let issuer = allowed_issuer(state, &req.issuer)?.as_str().to_owned();
    let client_id = one_line("client_id", &req.client_id, 255)?;
    let display_name = one_line("display_name", &req.display_name, 60)?;
    let secret = req.client_secret.as_deref().map(|s| one_line("client_secret", s, 1024)).transpose()?;
    let email_domains = domains(&req.email_domains)?;
    discover(state, &issuer).await?;
    let config = sso::SsoConfig {
        org_id,
        issuer,
        client_id,
        client_secret: secret.clone().unwrap_or_default(),
        display_name,
        passwords_off: req.passwords_off,
        email_domains,
    };
    let mut client = state.db.client().await?;
    let tx = client.transaction().await.map_err(StoreError::from)?;
    for domain in &config.email_domains {
        if sso::domain_used_elsewhere(&tx, org_id, domain).await? {
            return Err(ApiError::Conflict(format!("people of another organization have emails at {domain}")));
        }
    }
    sso::put(&tx, &config, secret.is_none()).await.map_err(|e| match e {
        StoreError::NotFound => ApiError::Validation("client_secret is required the first time".into()),
        other => other.into(),
    })?;
    let detail = json!({ "issuer": config.issuer, "email_domains": config.email_domains, "passwords_off": config.passwords_off });
    audit_log::record(&tx, org_id, caller.id(), "sso.configured", detail).await?;
    tx.commit().await.map_err(StoreError::from)?;
    let stored = sso::config(&state.db, org_id).await?.ok_or_else(not_configured)?;
    Ok(public(&stored, redirect))
}

/// Removes the org's provider (org admins): passwords work again; accounts stay.
pub async fn delete(state: &AppState, caller: &AuthUser, org_id: Uuid) -> Result<(), ApiError> {
    require_admin(caller, org_id)?;
    let mut client = state.db.client().await?;
    let tx = client.transaction().await.map_err(StoreError::from)?;
    sso::delete(&tx, org_id).await.map_err(|e| match e {
        StoreError::NotFound => not_configured(),
        other => other.into(),
    })?;
    audit_log::record(&tx, org_id, caller.id(), "sso.removed", json!({})).await?;
    tx.commit().await.map_err(StoreError::from)?;
    Ok(())
}

/// The lower-cased domain of an email, if it is one.
fn domain_of(email: &str) -> Option<String> {
    let email = Email::parse(email).ok()?;
    email.as_str().split_once('@').map(|(_, d)| d.to_owned())
}

/// Whether an email's domain signs in with an org's provider: the same answer for every address at a domain.
pub async fn discovery(state: &AppState, email: &str) -> Result<SsoDiscovery, ApiError> {
    let Some(domain) = domain_of(email) else {
        return Err(ApiError::Validation("email is not a valid email address".into()));
    };
    let config = sso::config_for_domain(&state.db, &domain).await?;
    Ok(SsoDiscovery {
        sso: config.map(|c| SsoOption {
            org_id: c.org_id,
            display_name: c.display_name,
            passwords_off: c.passwords_off,
        }),
    })
}

/// Refuses a password sign-in or sign-up for an email whose domain belongs to an org with passwords off.
pub async fn check_password_allowed_for_email(state: &AppState, email: &str) -> Result<(), ApiError> {
    let Some(domain) = domain_of(email) else { return Ok(()) };
    match sso::config_for_domain(&state.db, &domain).await? {
        Some(c) if c.passwords_off => Err(ApiError::passwords_off()),
        _ => Ok(()),
    }
}

/// Refuses a password sign-in or sign-up into `org_id` when its passwords are off.
pub async fn check_password_allowed_in_org(state: &AppState, org_id: Uuid) -> Result<(), ApiError> {
    match sso::config(&state.db, org_id).await? {
        Some(c) if c.passwords_off => Err(ApiError::passwords_off()),
        _ => Ok(()),
    }
}
