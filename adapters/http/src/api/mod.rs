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
use chatbox_application::ports::Limiter;
use chatbox_domain::{ErrorCode, SessionId};
use http::HeaderMap;
use std::future::Future;

use warp::Filter;
use warp::filters::BoxedFilter;

use crate::HttpState;
use crate::auth::{AuthError, AuthenticatedUser};
use crate::edge::Limited;
use crate::routes::{HttpResponse, auth_error_response, authenticate_http, error_response, query_pairs};
use crate::server::ClientAddr;

/// Why a session route did not succeed; each becomes one reply.
#[derive(Debug)]
pub(crate) enum ApiError {
    /// No token, or a bad one.
    Auth(AuthError),
    /// The route needs the admin role.
    NotAdmin,
    /// A query parameter or path segment did not parse.
    BadParam(&'static str),
    /// Not found (or not yours), with the text to say.
    NotFound(&'static str),
    /// Over a rate limit.
    Limited(Limited),
    /// The use-case failed.
    Chat(ChatError),
}

impl ApiError {
    fn response(self) -> HttpResponse {
        match self {
            Self::Auth(error) => auth_error_response(error),
            Self::NotAdmin => error_response(ErrorCode::Forbidden, "Admin role required", None),
            Self::BadParam(problem) => error_response(ErrorCode::BadRequest, problem, None),
            Self::NotFound(text) => error_response(ErrorCode::NotFound, text, None),
            Self::Limited(limited) => limited.response(),
            Self::Chat(error) => error_response(error.code(), &error.to_string(), error.retry_after()),
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(error: AuthError) -> Self {
        Self::Auth(error)
    }
}

impl From<ChatError> for ApiError {
    fn from(error: ChatError) -> Self {
        Self::Chat(error)
    }
}

impl From<params::BadParam> for ApiError {
    fn from(problem: params::BadParam) -> Self {
        Self::BadParam(problem.0)
    }
}

impl From<Limited> for ApiError {
    fn from(limited: Limited) -> Self {
        Self::Limited(limited)
    }
}

/// What a session route's handler returns.
pub(crate) type ApiResult = Result<HttpResponse, ApiError>;

/// A path segment as a session id; anything that cannot be one is a 404 like any
/// unknown session.
pub(crate) fn session_id(segment: &str) -> Result<SessionId, ApiError> {
    SessionId::parse(segment).map_err(|_| ApiError::NotFound("Session not found"))
}

/// The caller of a user route, counted against the per-user limit.
pub(crate) fn user_caller(state: &HttpState, headers: &HeaderMap) -> Result<AuthenticatedUser, ApiError> {
    let user = authenticate_http(state, headers)?;
    state.limiters.user(&user.id, state.chat.clock().monotonic()).inspect_err(|_| {
        state.metrics.recorder.rate_limited(Limiter::UserHttp);
    })?;
    Ok(user)
}

/// The caller of an admin route: authenticated, an admin (403 otherwise), counted
/// against the per-admin limit.
pub(crate) fn admin_caller(state: &HttpState, headers: &HeaderMap) -> Result<AuthenticatedUser, ApiError> {
    let user = authenticate_http(state, headers)?;
    if !user.is_admin() {
        return Err(ApiError::NotAdmin);
    }
    state.limiters.admin(&user.id, state.chat.clock().monotonic()).inspect_err(|_| {
        state.metrics.recorder.rate_limited(Limiter::AdminHttp);
    })?;
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

/// What every session route's handler receives: the shared state, the request's
/// headers and query, and the client's address.
#[derive(Debug)]
pub(crate) struct ApiRequest {
    pub state: State,
    pub headers: HeaderMap,
    pub query: Query,
    pub client: IpAddr,
}

/// Extracts an [`ApiRequest`].
pub(crate) fn request(state: State) -> BoxedFilter<(ApiRequest,)> {
    let client = client_ip(Arc::clone(&state));
    warp::any()
        .map(move || Arc::clone(&state))
        .and(warp::header::headers_cloned())
        .and(query_pairs())
        .and(client)
        .map(|state, headers, query, client| ApiRequest { state, headers, query, client })
        .boxed()
}

/// A route at `path` (which matched the whole path) for `method`, answered by `handler`.
pub(crate) fn endpoint<F, Fut>(
    path: BoxedFilter<()>,
    method: BoxedFilter<()>,
    request: BoxedFilter<(ApiRequest,)>,
    handler: F,
) -> BoxedFilter<(HttpResponse,)>
where
    F: Fn(ApiRequest) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = ApiResult> + Send + 'static,
{
    path.and(method).and(request).then(handler).map(reply).boxed()
}

/// A route whose path carries one parameter (a session id, a user id, a share token),
/// given to `handler` as it came.
pub(crate) fn endpoint_with<F, Fut>(
    path: BoxedFilter<(String,)>,
    method: BoxedFilter<()>,
    request: BoxedFilter<(ApiRequest,)>,
    handler: F,
) -> BoxedFilter<(HttpResponse,)>
where
    F: Fn(ApiRequest, String) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = ApiResult> + Send + 'static,
{
    path.and(method).and(request).then(move |param, request| handler(request, param)).map(reply).boxed()
}

/// A handler's outcome as its response.
pub(crate) fn reply(result: ApiResult) -> HttpResponse {
    result.unwrap_or_else(ApiError::response)
}

/// The query string's pairs (see `routes::query_pairs`).
pub(crate) type Query = HashMap<String, String>;

/// Counts one request on a public route from `client`.
pub(crate) fn public_request(state: &HttpState, client: IpAddr) -> Result<(), Limited> {
    state.limiters.public(client, state.chat.clock().monotonic()).inspect_err(|_| {
        state.metrics.recorder.rate_limited(Limiter::PublicHttp);
    })
}

/// Everything the session routes need, shared.
pub(crate) type State = Arc<HttpState>;
