//! Tokens and passwords.
//!
//! - [`TokenKeys`]: HS256 JWTs issued by the api at login and verified by the api and the edge (which never
//!   touches PostgreSQL: everything it needs about the caller is in [`Claims`]).
//!   A token names its session (`sid`): the api refuses it once that session ended (logout, a removed member, a
//!   reset password), the edge closes its sockets on the `session_ended` inbox event (`SECURITY.md`, "Sessions").
//! - [`SubscribeGrant`]: the api's access answer for one conversation, signed, so the edge subscribes without asking
//!   the api again (`grant` module docs say why that stays exact).
//! - [`RefreshToken`]: the opaque, rotating refresh token; PostgreSQL keeps only its SHA-256 ([`refresh_hash`]).
//!   Each one's successor is derived from it ([`TokenKeys::refresh_successor`]), so a parallel refresh with the
//!   same token can be answered with the same successor without storing any token.
//! - [`hash_password`] / [`verify_password`]: Argon2id in PHC string format.
//! - [`Secret`]: a string that never prints (`Debug`/`Display` show `[redacted]`).

mod grant;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
pub use grant::{GRANT_TTL_SECS, SubscribeGrant};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use uuid::Uuid;

/// A configuration secret (JWT key, database password). Never printed by `Debug` or `Display`.
#[derive(Clone, Default)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}
impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}
impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}
impl FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Secret(s.to_owned()))
    }
}

/// Shortest `--jwt-secret` accepted, in bytes: an HS256 key shorter than the hash (32 bytes) makes a token
/// easier to forge by guessing the key offline from any token seen.
pub const MIN_JWT_SECRET_BYTES: usize = 32;

/// The clap value parser of `--jwt-secret` (api and edge): refuses a key shorter than [`MIN_JWT_SECRET_BYTES`].
pub fn parse_jwt_secret(s: &str) -> Result<Secret, String> {
    if s.len() < MIN_JWT_SECRET_BYTES {
        return Err(format!(
            "must be at least {MIN_JWT_SECRET_BYTES} bytes (it has {}); e.g. `openssl rand -hex 32`",
            s.len()
        ));
    }
    Ok(Secret::new(s))
}

/// Role of a person in their org.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Admin,
    Member,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Member => "member",
        }
    }
}

impl FromStr for Role {
    type Err = AuthError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "admin" => Ok(Role::Admin),
            "member" => Ok(Role::Member),
            _ => Err(AuthError::InvalidToken),
        }
    }
}

/// What a token says about its bearer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claims {
    /// User id.
    pub sub: Uuid,
    pub org: Uuid,
    pub name: String,
    pub email: String,
    pub role: Role,
    /// The session (login) this token belongs to: ends with it.
    pub sid: Uuid,
    /// Expiry, seconds since the Unix epoch.
    pub exp: u64,
}

/// A new refresh token: 32 bytes from the OS RNG, hex. Only the holder has it; the database keeps its hash.
pub struct RefreshToken(String);

impl RefreshToken {
    pub fn generate() -> Result<Self, AuthError> {
        use ring::rand::SecureRandom;
        let mut bytes = [0u8; 32];
        ring::rand::SystemRandom::new().fill(&mut bytes).map_err(|_| AuthError::Issue("no randomness".into()))?;
        Ok(RefreshToken(hex(&bytes)))
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn hash(&self) -> Vec<u8> {
        refresh_hash(&self.0)
    }
}

impl fmt::Debug for RefreshToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RefreshToken([redacted])")
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 of a refresh token, as stored. A fast hash is enough: the token has 256 random bits, nothing to guess.
pub fn refresh_hash(token: &str) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA256, token.as_bytes()).as_ref().to_vec()
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("invalid or expired token")]
    InvalidToken,
    #[error("could not issue token: {0}")]
    Issue(String),
    #[error("could not hash password: {0}")]
    Hash(String),
}

/// Signing and verification keys for HS256 tokens, and the key that derives refresh tokens' successors.
#[derive(Clone)]
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    successor: ring::hmac::Key,
}

impl TokenKeys {
    pub fn new(secret: &Secret) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 5;
        validation.required_spec_claims = ["exp", "sub"].iter().map(|s| s.to_string()).collect();
        TokenKeys {
            encoding: EncodingKey::from_secret(secret.expose().as_bytes()),
            decoding: DecodingKey::from_secret(secret.expose().as_bytes()),
            validation,
            successor: successor_key(secret),
        }
    }

    /// The refresh token that replaces `presented`: HMAC-SHA256 of it under a key derived from the secret. Not
    /// random, so that a second presentation of `presented` (two refreshes racing) can be answered with the same
    /// successor while PostgreSQL still keeps only hashes. It is as unguessable as a random one to anyone without
    /// the secret, and whoever has the secret can sign access tokens anyway.
    pub fn refresh_successor(&self, presented: &str) -> RefreshToken {
        RefreshToken(hex(ring::hmac::sign(&self.successor, presented.as_bytes()).as_ref()))
    }

    pub fn issue(&self, claims: &Claims) -> Result<String, AuthError> {
        self.issue_any(claims)
    }

    pub fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        self.verify_any(token).ok_or(AuthError::InvalidToken)
    }

    fn issue_any(&self, claims: &impl Serialize) -> Result<String, AuthError> {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.encoding)
            .map_err(|e| AuthError::Issue(e.to_string()))
    }

    fn verify_any<T: serde::de::DeserializeOwned>(&self, token: &str) -> Option<T> {
        jsonwebtoken::decode::<T>(token, &self.decoding, &self.validation).ok().map(|d| d.claims)
    }
}

/// A key of its own for successors (never the JWT key itself): HMAC of a fixed label under the secret.
fn successor_key(secret: &Secret) -> ring::hmac::Key {
    let root = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.expose().as_bytes());
    let derived = ring::hmac::sign(&root, b"relayhub refresh-token successor v1");
    ring::hmac::Key::new(ring::hmac::HMAC_SHA256, derived.as_ref())
}

/// Seconds since the Unix epoch, `ttl_secs` from now.
pub fn expiry_in(ttl_secs: u64) -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0) + ttl_secs
}

/// Argon2id hash of `password` in PHC format.
pub fn hash_password(password: &str) -> Result<String, AuthError> {
    // 16 bytes from the OS RNG (a v4 UUID is 122 random bits from getrandom).
    let salt = SaltString::encode_b64(Uuid::new_v4().as_bytes()).map_err(|e| AuthError::Hash(e.to_string()))?;
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AuthError::Hash(e.to_string()))
}

/// True when `password` matches the PHC `hash`. A malformed hash never matches.
pub fn verify_password(password: &str, hash: &str) -> bool {
    match PasswordHash::new(hash) {
        Ok(parsed) => argon2::Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok(),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: u64) -> Claims {
        Claims {
            sub: Uuid::new_v4(),
            org: Uuid::new_v4(),
            name: "Ada".into(),
            email: "ada@x.io".into(),
            role: Role::Member,
            sid: Uuid::new_v4(),
            exp,
        }
    }

    #[test]
    fn token_round_trip_and_tamper() {
        let keys = TokenKeys::new(&Secret::new("k1"));
        let c = claims(expiry_in(60));
        let t = keys.issue(&c).unwrap();
        assert_eq!(keys.verify(&t).unwrap(), c);
        let other = TokenKeys::new(&Secret::new("k2"));
        assert!(other.verify(&t).is_err());
        assert!(keys.verify("not-a-token").is_err());
    }

    #[test]
    fn a_successor_is_the_same_for_the_same_token_and_key_only() {
        let keys = TokenKeys::new(&Secret::new("k1"));
        let t = RefreshToken::generate().unwrap();
        let next = keys.refresh_successor(t.expose());
        assert_eq!(next.expose(), keys.refresh_successor(t.expose()).expose());
        assert_eq!(next.expose().len(), 64);
        assert_ne!(next.expose(), t.expose());
        assert_ne!(next.expose(), keys.refresh_successor(next.expose()).expose());
        assert_ne!(next.expose(), TokenKeys::new(&Secret::new("k2")).refresh_successor(t.expose()).expose());
    }

    #[test]
    fn expired_token_is_refused() {
        let keys = TokenKeys::new(&Secret::new("k1"));
        let t = keys.issue(&claims(1_000)).unwrap();
        assert!(keys.verify(&t).is_err());
    }

    #[test]
    fn refresh_tokens_are_random_and_hashed() {
        let a = RefreshToken::generate().unwrap();
        let b = RefreshToken::generate().unwrap();
        assert_eq!(a.expose().len(), 64);
        assert_ne!(a.expose(), b.expose());
        assert_eq!(a.hash(), refresh_hash(a.expose()));
        assert_ne!(a.hash(), b.hash());
        assert!(!format!("{a:?}").contains(a.expose()));
    }

    #[test]
    fn password_hash_verifies() {
        let h = hash_password("correct horse").unwrap();
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("wrong", &h));
        assert!(!verify_password("x", "garbage"));
    }

    #[test]
    fn secret_never_prints() {
        assert!(parse_jwt_secret("short").is_err());
        assert!(parse_jwt_secret(&"k".repeat(31)).is_err());
        assert_eq!(parse_jwt_secret(&"k".repeat(32)).map(|s| s.expose().len()), Ok(32));
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?} {s}"), "[redacted] [redacted]");
    }
}
