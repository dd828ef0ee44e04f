//! # Chatbox composition root
//!
//! The only crate that knows every adapter: it reads and validates the configuration,
//! sets up logging, wires the adapters into the use-cases, runs the background tasks
//! (session and rate-limiter cleanup), and owns graceful shutdown. `main.rs` is a thin
//! shell around [`app::Application`], which tests start in-process on port 0.

#![forbid(unsafe_code)]

pub mod alerts;
pub mod app;
pub mod config;
pub mod healthcheck;
pub mod memory_report;
pub mod metrics;
pub mod startup;
pub mod telemetry;

pub use app::Application;
pub use config::Settings;
