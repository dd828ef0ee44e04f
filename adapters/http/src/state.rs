//! What every route shares: the settings of the HTTP surface and the state handed to
//! the router (the use-cases, the socket caps, token verification, the limiters, the
//! client-address policy, the security headers and the metrics).

use std::sync::Arc;
use std::time::Duration;

use chatbox_application::ChatService;
use chatbox_application::limits::ConnectionGate;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::JwtVerifier;
use crate::edge::{ClientIpPolicy, HttpLimiters, SecurityHeaders};
use crate::metrics::HttpMetrics;

/// Settings of the HTTP surface.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// `CHATBOX_PATH_PREFIX`, e.g. `/chat`.
    pub path_prefix: String,
    /// `ALLOWED_ORIGINS`: exact origins allowed to open a WebSocket; empty allows any.
    pub allowed_origins: Vec<String>,
    /// `CORS_ALLOWED_ORIGINS`: exact origins allowed to call the HTTP routes from a
    /// browser; empty sends no CORS headers.
    pub cors_allowed_origins: Vec<String>,
    /// `MAX_MESSAGE_SIZE`: the largest frame, in bytes.
    pub max_message_size: usize,
    /// Protocol-level ping period.
    pub ping_interval: Duration,
    /// A socket silent for this long (no frame, no pong) is closed.
    pub pong_timeout: Duration,
    /// The longest one write may take.
    pub write_timeout: Duration,
    /// `JWT_ENFORCE_EXPIRY_ON_OPEN_SOCKETS`.
    pub enforce_token_expiry: bool,
    /// `WS_SEND_BUFFER`: bytes a socket may have queued before it counts as a slow
    /// consumer.
    pub send_buffer_bytes: usize,
}

/// What the routes share.
#[derive(Debug)]
pub struct HttpState {
    /// The chat use-cases.
    pub chat: ChatService,
    /// The socket caps (and the draining flag).
    pub gate: Arc<ConnectionGate>,
    /// Token verification.
    pub jwt: JwtVerifier,
    /// Settings.
    pub config: HttpConfig,
    /// Socket tasks are spawned here so shutdown can wait for them.
    pub tasks: TaskTracker,
    /// Cancelled when the server shuts down: sockets close with 1001.
    pub shutdown: CancellationToken,
    /// The HTTP rate limiters.
    pub limiters: HttpLimiters,
    /// Whose `X-Forwarded-For` is believed.
    pub client_ip: ClientIpPolicy,
    /// Added to every response.
    pub security_headers: SecurityHeaders,
    /// Where sockets record their metrics, and what the scrape route serves to whom.
    pub metrics: HttpMetrics,
}
