//! End-to-end tests: the real server, started on port 0, spoken to over real sockets.
//! One test binary (fast to link); one module per area.

#[path = "../support/fake_provider.rs"]
mod fake_provider;
mod support;
#[path = "../support/ws.rs"]
mod ws;

mod chat;
mod connect;
mod hardening;
mod lifecycle;
mod limits;
mod metrics;
mod providers;
mod resume;
