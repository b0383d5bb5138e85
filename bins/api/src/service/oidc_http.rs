//! The HTTP client `openidconnect` calls the provider with (discovery, keys, token endpoint): our reqwest, so the
//! api builds one HTTP stack (the crate's own reqwest feature would add another version). Redirects are not
//! followed, answers are capped in size and time: the issuer URL comes from an org admin.

use openidconnect::{HttpRequest, HttpResponse};
use std::time::Duration;

/// Largest answer read from a provider (discovery documents and key sets are a few KiB).
const MAX_BODY_BYTES: usize = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum OidcHttpError {
    #[error("request to the identity provider failed: {0}")]
    Send(#[from] reqwest::Error),
    #[error("the identity provider's answer is larger than {MAX_BODY_BYTES} bytes")]
    TooLarge,
}

/// A cheap-to-clone HTTP client for one process.
#[derive(Debug, Clone)]
pub struct OidcHttp {
    client: reqwest::Client,
}

impl OidcHttp {
    pub fn new(timeout: Duration) -> Result<Self, reqwest::Error> {
        // reqwest is built without a default TLS crypto provider (`rustls-no-provider`); Err means one is set.
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            let _ = rustls::crypto::ring::default_provider().install_default();
        });
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(timeout)
            .timeout(timeout)
            .build()?;
        Ok(OidcHttp { client })
    }

    /// One request, as `openidconnect`'s `AsyncHttpClient` (a closure calling this is one).
    pub async fn call(&self, request: HttpRequest) -> Result<HttpResponse, OidcHttpError> {
        let request = reqwest::Request::try_from(request)?;
        let mut response = self.client.execute(request).await?;
        let status = response.status();
        let headers = std::mem::take(response.headers_mut());
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await? {
            if body.len() + chunk.len() > MAX_BODY_BYTES {
                return Err(OidcHttpError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        let mut out = HttpResponse::new(body);
        *out.status_mut() = status;
        *out.headers_mut() = headers;
        Ok(out)
    }
}
