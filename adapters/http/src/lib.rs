//! # Inbound HTTP and WebSocket adapter
//!
//! warp routes under the path prefix (`/chat` by default): `healthz`, `readyz`, the
//! WebSocket endpoint `ws` speaking the protocol of `docs/protocol.md`, the session and
//! admin routes (`api`), the OpenAPI document (`openapi`), the metrics scrape
//! (`/metrics`, `P/metrics/prometheus`), and what every request passes through (`edge`:
//! client address, rate limits, security headers). This crate translates between the
//! wire and the application's use-cases; it
//! holds no chat rules of its own.

#![forbid(unsafe_code)]

pub mod api;
pub mod auth;
pub mod edge;
pub mod metrics;
pub mod openapi;
pub mod routes;
pub mod server;
pub mod wire;
mod ws;

use std::sync::Arc;
use std::time::Duration;

use chatbox_application::ChatService;
use chatbox_application::limits::ConnectionGate;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use auth::{AuthenticatedUser, JwtSettings, JwtVerifier};
pub use metrics::HttpMetrics;
pub use routes::routes;

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
    pub limiters: edge::HttpLimiters,
    /// Whose `X-Forwarded-For` is believed.
    pub client_ip: edge::ClientIpPolicy,
    /// Added to every response.
    pub security_headers: edge::SecurityHeaders,
    /// Where sockets record their metrics, and what the scrape route serves to whom.
    pub metrics: HttpMetrics,
}
