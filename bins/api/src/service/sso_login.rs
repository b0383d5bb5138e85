//! Signing in with an org's provider: the OpenID Connect authorization code flow with PKCE (`openidconnect`).
//!
//! [`start`] keeps the state, nonce and PKCE verifier in PostgreSQL (one-time, `--sso-login-ttl-secs`) with the
//! hash of a key only the starting browser gets; [`callback`] takes them back once, trades the code (with the
//! verifier) for tokens, checks the ID token (signature against the provider's JWKS, issuer, audience, expiry,
//! nonce) and refuses one used before; [`super::sso_account`] finds the account it signs in as (by the provider's
//! subject, the first time by verified email; a person new to the org may join it); then the same session a
//! password gives.

use super::sso::{discover, redirect_uri, refused};
use super::{limits, sessions};
use crate::error::ApiError;
use crate::state::AppState;
use axum::http::StatusCode;
use openidconnect::core::{CoreClient, CoreProviderMetadata, CoreResponseType};
use openidconnect::{
    AuthenticationFlow, AuthorizationCode, ClaimsVerificationError, ClientId, ClientSecret, CsrfToken, Nonce,
    PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RequestTokenError, Scope, TokenResponse,
};
use rh_auth::RefreshToken;
use rh_protocol::auth::Tokens;
use rh_protocol::frame::ErrorCode;
use rh_protocol::sso::{SsoCallbackRequest, SsoStart, SsoStartRequest};
use rh_store::sso;

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
    let user = super::sso_account::member_for(state, &config, claims).await?;
    sessions::open(state, &user).await
}

pub(super) fn token_invalid(why: &str) -> ApiError {
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

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
