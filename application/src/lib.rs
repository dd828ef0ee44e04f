//! # Chatbox application layer
//!
//! One use-case per user intent and the ports (traits) they call. Nothing here knows
//! WebSockets, HTTP, MongoDB or a concrete model provider: adapters implement
//! [`ports`], and inbound adapters call [`chat::ChatService`].
//!
//! The moving parts:
//! - [`live`]: the in-memory state of sessions that are in use (bound sockets, the answer
//!   being streamed) and the fan-out of frames to every socket of a session;
//! - [`answer`]: the per-session actor that stores messages in order and streams
//!   answers, with the stream and idle timeouts;
//! - [`limits`]: the per-user message limiter and the socket caps;
//! - [`events`]: what the server tells clients, serialised once per frame by the
//!   inbound adapter.
//!
//! Invariants: no lock is held across an `.await`; every queue is bounded; storage is
//! written once per message, never per token.

#![forbid(unsafe_code)]

pub mod answer;
pub mod chat;
pub mod commands;
mod deps;
pub mod error;
pub mod events;
pub mod limits;
pub mod live;
pub mod ports;
pub mod settings;
pub mod socket;
pub mod turn;

pub use chat::{ChatService, MessagePage, SharedConversation};
pub use error::ChatError;
pub use settings::ChatSettings;
