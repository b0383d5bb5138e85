//! Signing in with an org's provider: the OpenID Connect authorization code flow with PKCE (`openidconnect`).
//!
//! [`start`] keeps the state, nonce and PKCE verifier in PostgreSQL (one-time, `--sso-login-ttl-secs`) with the
//! hash of a key only the starting browser gets; [`callback`] takes them back once, trades the code (with the
//! verifier) for tokens, checks the ID token (signature against the provider's JWKS, issuer, audience, expiry,
//! nonce), refuses one used before, and wants a verified email. A person new to the org joins it when the email's
//! domain is one of the org's (or a pending invite names that email); then the same session a password gives.

use super::sso::{discover, redirect_uri, refused};
use super::{limits, sessions};
use crate::domain::{Email, PersonName};
use crate::error::ApiError;
use crate::state::AppState;
use axum::http::StatusCode;
use openidconnect::core::{CoreClient, CoreIdTokenClaims, CoreProviderMetadata, CoreResponseType};
use openidconnect::{
    AuthenticationFlow, AuthorizationCode, ClaimsVerificationError, ClientId, ClientSecret, CsrfToken, Nonce,
    PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RequestTokenError, Scope, TokenResponse,
};
use rh_auth::RefreshToken;
use rh_protocol::auth::Tokens;
use rh_protocol::frame::ErrorCode;
use rh_protocol::sso::{SsoCallbackRequest, SsoStart, SsoStartRequest};
use rh_store::orgs::{NewUser, User};
use rh_store::{StoreError, audit_log, sso};
use serde_json::json;
use uuid::Uuid;

fn state_invalid(why: &str) -> ApiError {
    refused(ErrorCode::SsoStateInvalid, StatusCode::BAD_REQUEST, format!("{why}: start the sign-in again"))
}

fn client_for(
    state: &AppState,
    config: &sso::SsoConfig,
    metadata: CoreProviderMetadata,
) -> Result<
    CoreClient<
        openidconnect::EndpointSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointMaybeSet,
        openidconnect::EndpointMaybeSet,
    >,
    ApiError,
> {
    let redirect = RedirectUrl::new(redirect_uri(state)?).map_err(|e| ApiError::Internal(e.into()))?;
    let secret = Some(ClientSecret::new(config.client_secret.clone()));
    Ok(CoreClient::from_provider_metadata(metadata, ClientId::new(config.client_id.clone()), secret)
        .set_redirect_uri(redirect))
}

/// Starts a sign-in at `org_id`'s provider: where to send the browser, and the key the browser keeps.
pub async fn start(
    state: &AppState,
    addr: Option<std::net::IpAddr>,
    req: &SsoStartRequest,
) -> Result<SsoStart, ApiError> {
    // Each start fetches from the provider: bounded per client address like sign-in attempts.
    limits::sso_start(state, addr).await?;
    let no_sso = || ApiError::NotFound("this organization has no single sign-on".into());
    let config = sso::config(&state.db, req.org_id).await?.ok_or_else(no_sso)?;
    let client = client_for(state, &config, discover(state, &config.issuer).await?)?;
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, csrf, nonce) = client
        .authorize_url(
            AuthenticationFlow::<CoreResponseType>::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("email".into()))
        .add_scope(Scope::new("profile".into()))
        .set_pkce_challenge(challenge)
        .url();
    let browser_key = RefreshToken::generate().map_err(|e| ApiError::Internal(e.into()))?;
    let login = sso::PendingLogin {
        org_id: config.org_id,
        browser_hash: browser_key.hash(),
        nonce: nonce.secret().clone(),
        pkce_verifier: verifier.secret().clone(),
    };
    let ttl = state.settings.sso.login_ttl_secs;
    sso::begin_login(&state.db, &rh_auth::refresh_hash(csrf.secret()), &login, ttl).await?;
    Ok(SsoStart { authorize_url: url.to_string(), browser_key: browser_key.expose().to_owned(), expires_in: ttl })
}

/// Completes a sign-in: the checks above, then the person's session.
pub async fn callback(state: &AppState, req: &SsoCallbackRequest) -> Result<Tokens, ApiError> {
    let login = sso::take_login(&state.db, &rh_auth::refresh_hash(&req.state))
        .await?
        .ok_or_else(|| state_invalid("this sign-in is unknown, was used, or expired"))?;
    if !constant_time_eq(&login.browser_hash, &rh_auth::refresh_hash(&req.browser_key)) {
        return Err(state_invalid("this sign-in was started in another browser"));
    }
    let config = sso::config(&state.db, login.org_id)
        .await?
        .ok_or_else(|| state_invalid("the organization turned single sign-on off"))?;
    let client = client_for(state, &config, discover(state, &config.issuer).await?)?;
    let http = state.sso_http.clone();
    let http_client = move |r| {
        let http = http.clone();
        async move { http.call(r).await }
    };
    let response = client
        .exchange_code(AuthorizationCode::new(req.code.clone()))
        .map_err(|e| ApiError::Internal(e.into()))?
        .set_pkce_verifier(PkceCodeVerifier::new(login.pkce_verifier.clone()))
        .request_async(&http_client)
        .await
        .map_err(|e| match e {
            RequestTokenError::ServerResponse(r) => refused(
                ErrorCode::SsoCodeRejected,
                StatusCode::UNAUTHORIZED,
                format!("the identity provider refused the sign-in code ({})", r.error()),
            ),
            other => super::sso::provider_unavailable("trading the code for tokens", &other),
        })?;
    let id_token = response.id_token().ok_or_else(|| token_invalid("the provider sent no ID token"))?;
    // A token used before is named as such (its nonce, an earlier sign-in's, would refuse it too); it is recorded
    // as used only once it passed every check, so junk cannot fill the table.
    let used = rh_auth::refresh_hash(&id_token.to_string());
    let replayed = || refused(ErrorCode::SsoTokenReplayed, StatusCode::UNAUTHORIZED, "this ID token was used before");
    if sso::id_token_used(&state.db, &used).await? {
        return Err(replayed());
    }
    let claims = id_token.claims(&client.id_token_verifier(), &Nonce::new(login.nonce)).map_err(claims_refused)?;
    if !sso::use_id_token(&state.db, &used, claims.expiration().timestamp()).await? {
        return Err(replayed());
    }
    let user = member_for(state, &config, claims).await?;
    sessions::open(state, &user).await
}

fn token_invalid(why: &str) -> ApiError {
    refused(ErrorCode::SsoTokenInvalid, StatusCode::UNAUTHORIZED, format!("the ID token was refused: {why}"))
}

fn claims_refused(e: ClaimsVerificationError) -> ApiError {
    tracing::info!(error = %e, "an SSO ID token was refused");
    match e {
        ClaimsVerificationError::InvalidAudience(_) => refused(
            ErrorCode::SsoTokenAudience,
            StatusCode::UNAUTHORIZED,
            "the ID token is for another client (audience)",
        ),
        ClaimsVerificationError::Expired(_) => {
            refused(ErrorCode::SsoTokenExpired, StatusCode::UNAUTHORIZED, "the ID token has expired")
        }
        ClaimsVerificationError::SignatureVerification(_) => {
            token_invalid("its signature does not match the provider's keys")
        }
        ClaimsVerificationError::InvalidNonce(_) => token_invalid("its nonce is not this sign-in's"),
        ClaimsVerificationError::InvalidIssuer(_) => token_invalid("its issuer is not the organization's provider"),
        _ => token_invalid("it failed a check"),
    }
}

/// The org member the verified email belongs to; a person new to the org joins it (member, or the role of a
/// pending invite naming the email) when the domain is one of the org's or such an invite exists.
async fn member_for(state: &AppState, config: &sso::SsoConfig, claims: &CoreIdTokenClaims) -> Result<User, ApiError> {
    let email = claims.email().map(|e| e.as_str().to_owned()).unwrap_or_default();
    let email = Email::parse(&email).map_err(|_| token_invalid("it carries no email address"))?;
    if claims.email_verified() != Some(true) {
        return Err(refused(
            ErrorCode::SsoEmailUnverified,
            StatusCode::FORBIDDEN,
            "the identity provider has not verified this email address",
        ));
    }
    let not_allowed = |why: &str| refused(ErrorCode::SsoDomainNotAllowed, StatusCode::FORBIDDEN, why.to_owned());
    if let Some((user, _)) = rh_store::orgs::user_for_login(&state.db, email.as_str()).await? {
        if user.org_id != config.org_id {
            return Err(not_allowed("this email belongs to an account of another organization"));
        }
        return Ok(user);
    }
    let domain = email.as_str().split_once('@').map(|(_, d)| d).unwrap_or_default();
    let name = claims
        .name()
        .and_then(|n| n.get(None))
        .and_then(|n| PersonName::parse(n.as_str()).ok())
        .or_else(|| PersonName::parse(email.as_str().split('@').next().unwrap_or_default()).ok())
        .ok_or_else(|| token_invalid("it carries no usable name"))?;
    // The account never signs in with a password: its hash is of a random secret no one keeps.
    let unused = RefreshToken::generate().map_err(|e| ApiError::Internal(e.into()))?;
    let hash = crate::routes::auth::hash_password(state, unused.expose().to_owned()).await?;
    let mut db = state.db.client().await?;
    let tx = db.transaction().await.map_err(StoreError::from)?;
    let (role, invite) = if config.email_domains.iter().any(|d| d == domain) {
        ("member".to_owned(), None)
    } else {
        match sso::claim_invite_for_email(&tx, config.org_id, email.as_str()).await? {
            Some((id, role)) => (role, Some(id)),
            None => {
                return Err(not_allowed(
                    "this email's domain is not one of the organization's, and no invite names it",
                ));
            }
        }
    };
    let new = NewUser {
        id: Uuid::now_v7(),
        org_id: config.org_id,
        name: name.as_str(),
        email: email.as_str(),
        password_hash: &hash,
        role: &role,
    };
    let user = rh_store::orgs::insert_user_in(&*tx, &new).await.map_err(|e| match e {
        // The email is taken by a removed account (the unique index covers them): it stays removed.
        StoreError::Conflict(_) => not_allowed("this account was removed from the organization"),
        other => other.into(),
    })?;
    if let Some(id) = invite {
        rh_store::invites::mark_used_by(&tx, id, user.id).await?;
    }
    let detail = json!({ "user_id": user.id, "invite_id": invite, "issuer": config.issuer });
    audit_log::record(&tx, config.org_id, user.id, "sso.joined", detail).await?;
    tx.commit().await.map_err(StoreError::from)?;
    tracing::info!(org_id = %config.org_id, user_id = %user.id, "joined by single sign-on");
    Ok(user)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
