//! Who may call a route: one check per access level, applied by the route table
//! (`routes`) before any handler runs, in the order the replies promise.
//!
//! - **Public**: counted per client address (`PUBLIC_RATE_LIMIT`; clients in
//!   `METRICS_ALLOWED_NETWORKS`, probes and scrapers, are exempt) → a [`Visitor`].
//! - **User**: `Authorization: Bearer` (401; 400 when two headers name different
//!   users), then the per-user limit (429) → a [`UserCaller`].
//! - **Admin**: `Authorization: Bearer` (401; 400 when two headers name different
//!   users), an admin role (403), then the per-admin limit (429) → an [`AdminCaller`].
//! - **`MetricsNetwork`**: the TCP peer inside `METRICS_ALLOWED_NETWORKS` (403 otherwise;
//!   `X-Forwarded-For` is not believed).
//! - **`WebSocket`**: the upgrade's handshake authenticates by itself (the token may come
//!   from `Authorization`, the `bearer.` subprotocol entry or `?token=`, all of them
//!   naming one user, and a draining server answers 503 before any token is read); the
//!   socket caps limit it.
//!
//! Invariant: a [`UserCaller`] or an [`AdminCaller`] exists only once its check has
//! passed. Their fields are private and only this module makes them, so a handler that
//! takes an [`AdminCaller`] can only be declared in the table under `Access::Admin`:
//!
//! ```compile_fail
//! // Outside this module nobody can make an admin out of a user.
//! fn promote(user: chatbox_http::AuthenticatedUser) -> chatbox_http::access::AdminCaller {
//!     chatbox_http::access::AdminCaller { admin: user }
//! }
//! ```

use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;

use chatbox_application::ports::Limiter;
use chatbox_domain::ErrorCode;
use http::HeaderMap;

use crate::auth::{AuthError, AuthenticatedUser};
use crate::edge::{ClientAddr, Limited};
use crate::metrics::HttpMetrics;
use crate::reply::{HttpResponse, auth_error_response, authenticate_http, error_response};
use crate::state::HttpState;

/// Who may call a route, as the route table declares it (without the handler).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AccessLevel {
    /// Anyone, counted per client address.
    Public,
    /// A bearer token, counted per user.
    User,
    /// A bearer token with the role `admin` or `chat_admin`, counted per admin.
    Admin,
    /// Clients inside `METRICS_ALLOWED_NETWORKS`, by TCP peer.
    MetricsNetwork,
    /// The WebSocket upgrade, whose handshake authenticates by itself.
    WebSocket,
    /// Anyone, not counted: the embedded pages and their files.
    Asset,
}

impl AccessLevel {
    /// Whether the route needs `Authorization: Bearer`.
    #[must_use]
    pub const fn needs_bearer_token(self) -> bool {
        matches!(self, Self::User | Self::Admin)
    }
}

/// A caller of a public route, admitted by the per-address limit.
#[derive(Debug)]
pub struct Visitor {
    _admitted: (),
}

/// The caller of a user route: authenticated and within the per-user limit.
#[derive(Debug)]
pub struct UserCaller {
    user: AuthenticatedUser,
}

impl UserCaller {
    /// Who is calling.
    #[must_use]
    pub const fn user(&self) -> &AuthenticatedUser {
        &self.user
    }
}

/// The caller of an admin route: authenticated, holding an admin role, and within the
/// per-admin limit. Only the route table's admin check makes one.
#[derive(Debug)]
pub struct AdminCaller {
    admin: AuthenticatedUser,
}

impl AdminCaller {
    /// The admin calling.
    #[must_use]
    pub const fn admin(&self) -> &AuthenticatedUser {
        &self.admin
    }
}

/// Why a check refused a request; each becomes one reply.
#[derive(Debug)]
pub(crate) enum Denied {
    /// No token, a bad one, or tokens naming different users.
    Auth(AuthError),
    /// The route needs the admin role.
    NotAdmin,
    /// Over a rate limit.
    Limited(Limited),
    /// A scrape from outside `METRICS_ALLOWED_NETWORKS`.
    OutsideMetricsNetworks,
}

impl Denied {
    /// The reply.
    pub(crate) fn response(self) -> HttpResponse {
        match self {
            Self::Auth(error) => auth_error_response(error),
            Self::NotAdmin => error_response(ErrorCode::Forbidden, "Admin role required", None),
            Self::Limited(limited) => limited.response(),
            Self::OutsideMetricsNetworks => {
                error_response(ErrorCode::Forbidden, "Metrics are not available from this address", None)
            }
        }
    }
}

impl From<AuthError> for Denied {
    fn from(error: AuthError) -> Self {
        Self::Auth(error)
    }
}

impl From<Limited> for Denied {
    fn from(limited: Limited) -> Self {
        Self::Limited(limited)
    }
}

/// The public check: one request from `client`, counted against the per-address limit.
pub(crate) fn visitor(
    state: &Arc<HttpState>,
    client: IpAddr,
) -> impl Future<Output = Result<Visitor, Denied>> + Send + use<> {
    let state = Arc::clone(state);
    async move {
        let now = state.chat.clock().monotonic();
        counted(&state, Limiter::PublicHttp, state.limiters.public(client, now).await)?;
        Ok(Visitor { _admitted: () })
    }
}

/// The user check: authenticated, then counted against the per-user limit.
pub(crate) fn user(
    state: &Arc<HttpState>,
    headers: &HeaderMap,
) -> impl Future<Output = Result<UserCaller, Denied>> + Send + use<> {
    let authenticated = authenticate_http(&state.jwt, headers);
    let state = Arc::clone(state);
    async move {
        let user = authenticated?;
        let now = state.chat.clock().monotonic();
        counted(&state, Limiter::UserHttp, state.limiters.user(&user.id, now).await)?;
        Ok(UserCaller { user })
    }
}

/// The admin check: authenticated, an admin (403 otherwise), then counted against the
/// per-admin limit.
pub(crate) fn admin(
    state: &Arc<HttpState>,
    headers: &HeaderMap,
) -> impl Future<Output = Result<AdminCaller, Denied>> + Send + use<> {
    let authenticated = authenticate_http(&state.jwt, headers);
    let state = Arc::clone(state);
    async move {
        let admin = authenticated?;
        if !admin.is_admin() {
            return Err(Denied::NotAdmin);
        }
        let now = state.chat.clock().monotonic();
        counted(&state, Limiter::AdminHttp, state.limiters.admin(&admin.id, now).await)?;
        Ok(AdminCaller { admin })
    }
}

/// Counts a refusal by the quota of `limiter` (a store that could not decide is no
/// rate-limit refusal).
fn counted(state: &HttpState, limiter: Limiter, decided: Result<(), Limited>) -> Result<(), Limited> {
    decided.inspect_err(|limited| {
        if limited.is_over_quota() {
            state.metrics.recorder.rate_limited(limiter);
        }
    })
}

/// The scrape check: the TCP peer `client` inside `METRICS_ALLOWED_NETWORKS`.
pub(crate) fn scraper(metrics: &HttpMetrics, client: Option<ClientAddr>) -> Result<(), Denied> {
    if metrics.allows(client) { Ok(()) } else { Err(Denied::OutsideMetricsNetworks) }
}
