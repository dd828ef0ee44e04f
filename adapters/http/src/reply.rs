//! What every route answers with, and reading the caller's bearer token: the JSON
//! replies (the error-code table's `{"error","code"}` with the code's HTTP status and
//! `Retry-After`), `Authorization: Bearer`, the one caller a request's tokens name (tokens
//! naming different users are refused, never one of them picked), the reply to a failed
//! authentication, and the query string as pairs.
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

/// The token of each `Authorization: Bearer <token>` header, in the order they came.
/// A value of another scheme, or an empty token, is no credential and is skipped.
pub(crate) fn bearer_tokens(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers.get_all(header::AUTHORIZATION).iter().filter_map(|value| {
        let (scheme, token) = value.to_str().ok()?.split_once(' ')?;
        let token = token.trim();
        (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
    })
}

/// The one caller every presented token names, the first token's user (tokens come in
/// order of precedence). The same token repeated is one credential; different tokens of
/// the same user are accepted; tokens naming different users are
/// [`AuthError::Conflicting`], whichever comes first.
///
/// # Errors
/// [`AuthError::Missing`] without a token, [`AuthError::Invalid`] when any token is bad,
/// [`AuthError::Conflicting`] when two name different users.
pub(crate) fn authenticate_tokens<'a>(
    jwt: &JwtVerifier,
    tokens: impl IntoIterator<Item = &'a str>,
) -> Result<AuthenticatedUser, AuthError> {
    let mut tokens = tokens.into_iter();
    let first = tokens.next().ok_or(AuthError::Missing)?;
    let caller = jwt.verify(first)?;
    for token in tokens.filter(|token| *token != first) {
        if jwt.verify(token)?.id != caller.id {
            // Neither the tokens nor the users they name are logged.
            tracing::debug!("request refused: credentials name different users");
            return Err(AuthError::Conflicting);
        }
    }
    Ok(caller)
}

/// The caller of an HTTP route: `Authorization: Bearer` only (no query tokens here).
pub(crate) fn authenticate_http(
    jwt: &JwtVerifier,
    headers: &HeaderMap,
) -> Result<AuthenticatedUser, AuthError> {
    authenticate_tokens(jwt, bearer_tokens(headers))
}

/// The reply to a failed authentication.
pub(crate) fn auth_error_response(error: AuthError) -> HttpResponse {
    match error {
        AuthError::Missing => error_response(ErrorCode::Unauthorized, "Authentication required", None),
        AuthError::Invalid => {
            error_response(ErrorCode::InvalidToken, "Invalid or expired authentication token", None)
        }
        AuthError::Conflicting => error_response(ErrorCode::BadRequest, "Conflicting credentials", None),
    }
}

/// The query string as key/value pairs. Parsed here rather than with warp's filter,
/// which logs the raw query (and so the `token`) when it cannot decode it.
pub(crate) fn query_pairs() -> impl Filter<Extract = (HashMap<String, String>,), Error = Infallible> + Clone {
    warp::filters::query::raw().or(warp::any().map(String::new)).unify().map(|raw: String| {
        serde_urlencoded::from_str::<Vec<(String, String)>>(&raw).unwrap_or_default().into_iter().collect()
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use chatbox_domain::Secret;
    use jsonwebtoken::Algorithm;

    use super::*;
    use crate::auth::{JwtSettings, issue_token};

    const SECRET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz-ABCDEF";

    fn verifier() -> JwtVerifier {
        JwtVerifier::new(&JwtSettings {
            secret: Secret::new(String::from_utf8_lossy(SECRET)),
            algorithms: vec![Algorithm::HS256],
            require_exp: true,
            issuer: None,
            audience: None,
            leeway: Duration::from_secs(0),
        })
    }

    fn token(user: &str, ttl_secs: u64) -> String {
        issue_token(SECRET, Algorithm::HS256, user, user, &[], Duration::from_secs(ttl_secs)).expect("token")
    }

    fn authorization(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(header::AUTHORIZATION, HeaderValue::from_str(value).expect("value"));
        }
        headers
    }

    #[test]
    fn every_bearer_header_counts_and_other_schemes_do_not() {
        let headers = authorization(&["Bearer a", "Basic b", "bearer  c ", "Bearer ", "Bearer"]);
        assert_eq!(bearer_tokens(&headers).collect::<Vec<_>>(), ["a", "c"]);
    }

    #[test]
    fn tokens_must_all_name_one_user() {
        let jwt = verifier();
        let (ann, ann_later, bob) = (token("ann", 60), token("ann", 600), token("bob", 60));
        let caller = |tokens: &[&str]| authenticate_tokens(&jwt, tokens.iter().copied()).map(|u| u.id);
        assert_eq!(caller(&[]), Err(AuthError::Missing));
        assert_eq!(caller(&[&ann, &ann]).map(|id| id.as_str().to_owned()), Ok("ann".to_owned()));
        assert_eq!(caller(&[&ann, &ann_later]).map(|id| id.as_str().to_owned()), Ok("ann".to_owned()));
        assert_eq!(caller(&[&ann, &bob]), Err(AuthError::Conflicting));
        assert_eq!(caller(&[&bob, &ann, &ann]), Err(AuthError::Conflicting));
        assert_eq!(caller(&[&ann, &ann_later, &bob]), Err(AuthError::Conflicting));
        assert_eq!(caller(&[&ann, "garbage"]), Err(AuthError::Invalid));
        assert_eq!(caller(&["garbage", &ann]), Err(AuthError::Invalid));
        let text = format!("{} {:?}", AuthError::Conflicting, AuthError::Conflicting);
        assert!(!text.contains(&ann) && !text.contains(&bob), "{text}");
    }
}
