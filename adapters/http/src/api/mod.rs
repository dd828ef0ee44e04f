//! The session routes of the HTTP API (`docs/protocol.md`, "HTTP API"):
//! - [`user`]: a user's own sessions — list, read, end, share, revoke — and the public
//!   read-only view a share link opens;
//! - [`admin`]: the admin listing, one session in full, a user's sessions, analytics,
//!   takeover and release.
//!
//! Every route authenticates with `Authorization: Bearer`, then counts against its
//! limiter, then calls one use-case. Someone else's session answers exactly like a
//! missing one (404).

pub mod admin;
pub mod json;
pub mod params;
pub mod user;

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use chatbox_application::ChatError;
use chatbox_domain::{ErrorCode, SessionId};
use http::HeaderMap;
use warp::Filter;

use crate::HttpState;
use crate::auth::AuthenticatedUser;
use crate::routes::{HttpResponse, auth_error_response, authenticate_http, error_response};
use crate::server::ClientAddr;

/// The reply to a failed use-case.
pub(crate) fn chat_error(error: &ChatError) -> HttpResponse {
    error_response(error.code(), &error.to_string(), error.retry_after())
}

/// A path segment as a session id; anything that cannot be one is a 404 like any
/// unknown session.
pub(crate) fn session_id(segment: &str) -> Result<SessionId, HttpResponse> {
    SessionId::parse(segment).map_err(|_| error_response(ErrorCode::NotFound, "Session not found", None))
}

/// The caller of a user route, counted against the per-user limit.
pub(crate) fn user_caller(state: &HttpState, headers: &HeaderMap) -> Result<AuthenticatedUser, HttpResponse> {
    let user = authenticate_http(state, headers).map_err(auth_error_response)?;
    state.limiters.user(&user.id, state.chat.clock().monotonic()).map_err(|limited| limited.0)?;
    Ok(user)
}

/// The caller of an admin route: authenticated, an admin (403 otherwise), counted
/// against the per-admin limit.
pub(crate) fn admin_caller(state: &HttpState, headers: &HeaderMap) -> Result<AuthenticatedUser, HttpResponse> {
    let user = authenticate_http(state, headers).map_err(auth_error_response)?;
    if !user.is_admin() {
        return Err(error_response(ErrorCode::Forbidden, "Admin role required", None));
    }
    state.limiters.admin(&user.id, state.chat.clock().monotonic()).map_err(|limited| limited.0)?;
    Ok(user)
}

/// The client's address: the peer, or what a trusted proxy says it forwarded for.
pub(crate) fn client_ip(state: State) -> impl Filter<Extract = (IpAddr,), Error = Infallible> + Clone {
    warp::ext::optional::<ClientAddr>().and(warp::header::headers_cloned()).map(
        move |peer: Option<ClientAddr>, headers: HeaderMap| {
            let peer = peer.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |addr| addr.0.ip());
            state.client_ip.client_ip(peer, &headers)
        },
    )
}

/// Unwraps a handler's `Result` into its response.
pub(crate) fn reply(result: Result<HttpResponse, HttpResponse>) -> HttpResponse {
    result.unwrap_or_else(|response| response)
}

/// The query string's pairs (see `routes::query_pairs`).
pub(crate) type Query = HashMap<String, String>;

/// Everything the session routes need, shared.
pub(crate) type State = Arc<HttpState>;
