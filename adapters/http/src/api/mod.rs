//! The handlers of the HTTP API (`docs/protocol.md`, "HTTP API"), one use-case each:
//! - [`health`]: liveness and readiness;
//! - [`user`]: a user's own sessions — list, read, end, share, revoke — and the public
//!   read-only view a share link opens;
//! - [`files`]: uploads and downloads of files in conversations;
//! - [`admin`]: the admin listing, one session in full, a user's sessions, analytics,
//!   takeover and release.
//!
//! A handler never checks who is calling: the route table (`routes`) applies the
//! route's access level first and hands the handler its proof ([`crate::access`]).
//! Someone else's session answers exactly like a missing one (404).

pub mod admin;
pub mod files;
pub mod health;
pub mod json;
pub mod params;
pub mod user;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use chatbox_application::ChatError;
use chatbox_domain::SessionId;
use http::HeaderMap;

use crate::reply::{HttpResponse, error_response};
use crate::state::HttpState;

/// Why a handler did not succeed; each becomes one reply.
#[derive(Debug)]
pub enum ApiError {
    /// A query parameter or path segment did not parse.
    BadParam(&'static str),
    /// Not found (or not yours), with the text to say.
    NotFound(&'static str),
    /// The use-case failed.
    Chat(ChatError),
    /// A credential the handler checks itself (a route taking either of two) failed.
    Auth(crate::auth::AuthError),
}

impl ApiError {
    /// The reply.
    pub(crate) fn response(self) -> HttpResponse {
        match self {
            Self::BadParam(problem) => error_response(chatbox_domain::ErrorCode::BadRequest, problem, None),
            Self::NotFound(text) => error_response(chatbox_domain::ErrorCode::NotFound, text, None),
            Self::Chat(error) => error_response(error.code(), &error.to_string(), error.retry_after()),
            Self::Auth(error) => crate::reply::auth_error_response(error),
        }
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

/// What a handler returns.
pub type ApiResult = Result<HttpResponse, ApiError>;

/// A path segment as a session id; anything that cannot be one is a 404 like any
/// unknown session.
pub(crate) fn session_id(segment: &str) -> Result<SessionId, ApiError> {
    SessionId::parse(segment).map_err(|_| ApiError::NotFound("Session not found"))
}

/// What every handler receives: the shared state, the request's headers, query and
/// path parameters, and the client's address.
#[derive(Debug)]
pub struct ApiRequest {
    pub(crate) state: Arc<HttpState>,
    pub(crate) headers: HeaderMap,
    pub(crate) query: Query,
    pub(crate) client: IpAddr,
    pub(crate) path_params: PathParams,
    /// The body, for the routes that read one (`POST`).
    pub(crate) body: Option<files::RequestBody>,
}

impl ApiRequest {
    /// The segment of the path that matched `{name}` in the route's template, as it came
    /// (empty if the template has no such parameter, which no valid id or token is).
    pub(crate) fn path_param(&self, name: &str) -> &str {
        self.path_params.get(name)
    }
}

/// The query string's pairs (see `reply::query_pairs`).
pub(crate) type Query = HashMap<String, String>;

/// The `{name}` segments of a route's template and what the path had there.
#[derive(Debug, Default)]
pub(crate) struct PathParams(Vec<(&'static str, String)>);

impl PathParams {
    /// Records that `{name}` matched `value`.
    pub(crate) fn insert(&mut self, name: &'static str, value: String) {
        self.0.push((name, value));
    }

    pub(crate) fn get(&self, name: &str) -> &str {
        self.0.iter().find(|(param, _)| *param == name).map_or("", |(_, value)| value.as_str())
    }
}
