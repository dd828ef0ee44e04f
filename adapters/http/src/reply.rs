//! What every route answers with, and reading the caller's bearer token: the JSON
//! replies (the error-code table's `{"error","code"}` with the code's HTTP status and
//! `Retry-After`), `Authorization: Bearer`, the reply to a failed authentication, and the
//! query string as pairs.
//!
//! A leaf: it uses nothing else of this crate but `auth`'s types, so any module may use
//! it without closing an import circle.

use std::collections::HashMap;
use std::convert::Infallible;
use std::time::Duration;

use chatbox_domain::ErrorCode;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde_json::json;
use warp::Filter;

use crate::auth::{AuthError, AuthenticatedUser, JwtVerifier};

/// The response type of every route.
pub type HttpResponse = warp::reply::Response;

/// A JSON response.
pub(crate) fn json_response(status: StatusCode, body: &serde_json::Value) -> HttpResponse {
    let mut response = HttpResponse::new(body.to_string().into());
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// The error reply for `code`: `{"error": message, "code": CODE}` with the code's
/// status, and `Retry-After` (whole seconds, at least 1) when given.
pub(crate) fn error_response(code: ErrorCode, message: &str, retry_after: Option<Duration>) -> HttpResponse {
    let status = StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = json_response(status, &json!({ "error": message, "code": code.as_str() }));
    if let Some(wait) = retry_after {
        let seconds = wait.as_millis().div_ceil(1000).max(1);
        if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
    }
    response
}

/// The token of `Authorization: Bearer <token>`.
pub(crate) fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The caller of an HTTP route: `Authorization: Bearer` only (no query tokens here).
pub(crate) fn authenticate_http(
    jwt: &JwtVerifier,
    headers: &HeaderMap,
) -> Result<AuthenticatedUser, AuthError> {
    jwt.verify(bearer_token(headers).ok_or(AuthError::Missing)?)
}

/// The reply to a failed authentication.
pub(crate) fn auth_error_response(error: AuthError) -> HttpResponse {
    match error {
        AuthError::Missing => error_response(ErrorCode::Unauthorized, "Authentication required", None),
        AuthError::Invalid => {
            error_response(ErrorCode::InvalidToken, "Invalid or expired authentication token", None)
        }
    }
}

/// The query string as key/value pairs. Parsed here rather than with warp's filter,
/// which logs the raw query (and so the `token`) when it cannot decode it.
pub(crate) fn query_pairs() -> impl Filter<Extract = (HashMap<String, String>,), Error = Infallible> + Clone {
    warp::filters::query::raw().or(warp::any().map(String::new)).unify().map(|raw: String| {
        serde_urlencoded::from_str::<Vec<(String, String)>>(&raw).unwrap_or_default().into_iter().collect()
    })
}
