//! # Chatbox application layer
//!
//! One use-case per user intent and the ports (traits) they call. Nothing here knows
//! WebSockets, HTTP, MongoDB or a concrete model provider: adapters implement
//! [`ports`], and inbound adapters call [`chat::ChatService`].
//!
//! The moving parts:
//! - [`chat`]: the use-cases, one file per responsibility, behind [`ChatService`];
//! - [`live`]: the sessions in use, each a [`live::LiveSession`] whose state changes only
//!   through its verbs (admit a turn, store or refuse it, stream and finish an answer,
//!   join and replay a socket);
//! - [`answer`]: the per-session actor that stores messages in order and streams
//!   answers, with the stream and idle timeouts;
//! - [`files`]: files in conversations: uploads into object storage, their records,
//!   attachments, pictures for models, and their deletion when their time is up;
//! - [`turn`]: what a socket's message is on its way to the actor;
//! - [`ports`]: storage, providers, clock and ids, metrics, alerts, and the fan-out
//!   ([`ports::SessionHub`]): every frame reaches its sockets through it;
//! - [`limits`]: the per-user message limiter and the socket caps;
//! - [`shared_state`]: the same limits and caps held across replicas, when a shared store
//!   is configured ([`ports::SharedState`]), watched for outages;
//! - [`local_sockets`]: the sockets of this process, a session's and a user's, as both
//!   fan-outs keep them;
//! - [`events`], [`socket`]: what the server tells clients, serialised once per frame by
//!   the inbound adapter, and each socket's outbound queue, bounded in bytes;
//! - [`wait`]: waits that take no lock while they wait, for futures polled at every
//!   frame.
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
pub mod files;
pub mod limits;
pub mod live;
pub mod local_sockets;
pub mod ports;
pub mod settings;
pub mod shared_state;
pub mod socket;
mod sparse_maps;
pub mod turn;
pub mod wait;

pub use chat::{ChatService, MessagePage, SharedConversation};
pub use error::ChatError;
pub use settings::ChatSettings;
