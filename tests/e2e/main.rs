//! End-to-end tests: the real server, started on port 0, spoken to over real sockets.
//! One test binary (fast to link); one module per area.

#[path = "../support/fake_provider.rs"]
mod fake_provider;
#[path = "../support/mongo.rs"]
mod mongo;
#[path = "../support/prometheus.rs"]
mod prometheus;
mod support;
#[path = "../support/ws.rs"]
mod ws;

mod alerts;
mod api;
mod bodies;
mod chat;
mod connect;
mod files;
mod handoff;
mod hardening;
mod lifecycle;
mod limits;
mod metrics;
mod pages;
mod providers;
mod races;
mod resume;
