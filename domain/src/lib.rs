//! # Chatbox domain
//!
//! The product's rules, free of I/O: what a session and a message are, how a session is
//! named, which handoff states exist, how fast a user may send, which inbound values are
//! acceptable, which uploaded files are taken and how many, and the table of error codes
//! every adapter speaks.
//!
//! Invariants kept here:
//! - nothing in this crate reads a clock, a socket, a file or a random source; time and
//!   ids come in as values;
//! - every limit counted "in characters" counts Unicode scalar values, never bytes, and
//!   no cut ever splits a UTF-8 character.

#![forbid(unsafe_code)]

pub mod answer;
pub mod command_budget;
pub mod error;
pub mod handoff;
pub mod ids;
pub mod message;
pub mod naming;
pub mod rate_limit;
pub mod secret;
pub mod session;
pub mod upload;
pub mod validation;

pub use answer::{AnswerTiming, FinishReason, Usage};
pub use error::ErrorCode;
pub use handoff::HandoffState;
pub use ids::{ClientMessageId, MessageId, ModelId, SessionId, UserId};
pub use message::{MessageKind, Sender, Seq, StoredMessage};
pub use secret::Secret;
pub use session::{MessageEffects, ProviderConversation, Session, SessionStatus};

/// Wall-clock time as the domain sees it: always UTC, always passed in.
pub type Timestamp = chrono::DateTime<chrono::Utc>;
