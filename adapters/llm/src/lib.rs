//! # LLM provider adapters
//!
//! Implementations of the application's [`LlmProvider`] port, one module per provider
//! type, over one shared HTTP transport and server-sent-events decoder. Timeouts,
//! retries and fallback are not here: the application applies them the same way to
//! every provider. What is here: the wire format of each provider, and the
//! classification of its failures by kind (connect, 429 with `Retry-After`, overloaded,
//! 5xx, refused, broken stream).
//!
//! [`LlmProvider`]: chatbox_application::ports::LlmProvider

#![forbid(unsafe_code)]

pub mod anthropic;
pub mod client;
pub mod config;
pub mod demo;
pub mod dify;
pub mod images;
pub mod openai;
pub mod redact;
pub mod sse;
pub mod transport;

pub use anthropic::AnthropicProvider;
pub use config::ProviderConfig;
pub use demo::DemoProvider;
pub use dify::DifyProvider;
pub use openai::OpenAiProvider;
