//! The bearer token: when `[http] token` is set, every request on every
//! listener needs `Authorization: Bearer <token>`, loopback too (a token
//! protects against other users of the same host as well; the config
//! check requires one on any other address). Without a token only
//! loopback addresses may be configured, and nothing is asked.
//!
//! `wanwatch watcher` asks the same way: its viewer token for what it
//! shows, each site's own token for what the site sends.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::error::ApiError;

/// The configured token, kept as its hash: comparing hashes in constant
/// time hides both the token's bytes and its length from timing.
pub struct Token([u8; 32]);

impl Token {
    pub fn new(token: &str) -> Token {
        Token(Sha256::digest(token.as_bytes()).into())
    }

    pub fn admits(&self, offered: &str) -> bool {
        let offered: [u8; 32] = Sha256::digest(offered.as_bytes()).into();
        self.0.ct_eq(&offered).into()
    }
}

/// The credential of an `Authorization: Bearer <token>` header, if any.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, credential) = v.split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then(|| credential.trim())
        })
}

/// Middleware: refuses a request without the right token (401, with
/// `WWW-Authenticate: Bearer`); without a token configured, admits all.
/// The answer never repeats what was offered.
pub async fn require_token(
    State(token): State<Option<Arc<Token>>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(token) = &token else {
        return next.run(request).await;
    };
    let refusal = match bearer(request.headers()) {
        Some(offered) if token.admits(offered) => return next.run(request).await,
        Some(_) => "the bearer token is wrong",
        None => "this server needs `Authorization: Bearer <token>` (the configured token)",
    };
    unauthorized(refusal)
}

/// 401 with `WWW-Authenticate: Bearer` and `message`.
pub fn unauthorized(message: &str) -> Response {
    let mut response = ApiError::new(StatusCode::UNAUTHORIZED, message).into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"wanwatch\""),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_same_token_is_admitted() {
        let token = Token::new("s3cret-token-0123");
        assert!(token.admits("s3cret-token-0123"));
        assert!(!token.admits("s3cret-token-012"));
        assert!(!token.admits(""));
    }
}
