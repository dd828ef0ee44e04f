//! # Inbound HTTP and WebSocket adapter
//!
//! warp routes under the path prefix (`/chat` by default): `healthz`, `readyz`, the
//! WebSocket endpoint `ws` speaking the protocol of `docs/protocol.md`, the session and
//! admin routes (`api`), the OpenAPI document (`openapi`), the metrics scrape
//! (`/metrics`, `P/metrics/prometheus`), and what every request passes through (`edge`:
//! client address, rate limits, security headers). Every route is declared once, in the
//! table of [`routes`](mod@routes), with its access level ([`access`]); the router, the
//! timing labels and the OpenAPI paths are derived from it. This crate translates
//! between the wire and the application's use-cases; it holds no chat rules of its own.
//!
//! Modules import each other in one direction only (no circle): this root only declares
//! modules and re-exports, and the leaves (`reply`, `auth`, `wire`) import nothing above
//! them.

#![forbid(unsafe_code)]

pub mod access;
pub mod api;
pub mod auth;
pub mod edge;
pub mod frame_type;
pub mod metrics;
pub mod openapi;
pub mod reply;
pub mod routes;
pub mod server;
mod state;
pub mod ui;
pub mod wire;
mod ws;

pub use auth::{AuthenticatedUser, JwtSettings, JwtVerifier};
pub use metrics::HttpMetrics;
pub use routes::routes;
pub use state::{HttpConfig, HttpState};
