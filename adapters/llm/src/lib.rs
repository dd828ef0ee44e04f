//! # LLM provider adapters
//!
//! Implementations of the application's [`LlmProvider`] port, one module per provider
//! type. Timeouts, retries and fallback are not here: the application applies them the
//! same way to every provider.
//!
//! [`LlmProvider`]: chatbox_application::ports::LlmProvider

#![forbid(unsafe_code)]

pub mod demo;

pub use demo::DemoProvider;
