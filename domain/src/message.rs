//! Messages: who wrote them, what kind they are, and their place in the conversation.

use std::fmt;

use crate::Timestamp;
use crate::answer::{AnswerTiming, FinishReason, Usage};
use crate::ids::{ClientMessageId, MessageId};
use crate::validation::Metadata;

/// Who wrote a message. The server decides it from the authenticated role; a client can
/// never store a message as `ai` or `system`, and only an admin as `admin`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Sender {
    /// The session's owner.
    User,
    /// The model.
    Ai,
    /// An admin who took the session over.
    Admin,
    /// The server itself.
    System,
}

impl Sender {
    /// The wire spelling.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Ai => "ai",
            Self::Admin => "admin",
            Self::System => "system",
        }
    }

    /// Parses the wire spelling.
    #[must_use]
    pub fn parse(value: &str) -> Option<Self> {
        [Self::User, Self::Ai, Self::Admin, Self::System].into_iter().find(|sender| sender.as_str() == value)
    }
}

impl fmt::Display for Sender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a message carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageKind {
    /// Text (user, admin or model).
    Text,
    /// A file the client uploaded elsewhere; we keep its id and URL.
    File,
    /// A voice recording uploaded elsewhere.
    Voice,
}

impl MessageKind {
    /// The frame type that carries this kind of message.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::File => "file_upload",
            Self::Voice => "voice_message",
        }
    }

    /// Parses [`Self::as_str`].
    #[must_use]
    pub fn parse(value: &str) -> Option<Self> {
        [Self::Text, Self::File, Self::Voice].into_iter().find(|kind| kind.as_str() == value)
    }
}

/// The per-session sequence number of a stored message: strictly increasing, starting
/// at 1. Zero means "nothing stored yet".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Seq(pub u64);

impl Seq {
    /// The number after this one (saturating: a number from a client can be anything).
    #[must_use]
    pub const fn next(self) -> Self {
        Self(self.0.saturating_add(1))
    }
}

impl fmt::Display for Seq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A message as it is stored and replayed.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredMessage {
    /// Its id.
    pub id: MessageId,
    /// Its place in the session.
    pub seq: Seq,
    /// Who wrote it.
    pub sender: Sender,
    /// Text, file or voice.
    pub kind: MessageKind,
    /// The text (for an attachment, an optional caption).
    pub content: String,
    /// Server time when it was stored.
    pub timestamp: Timestamp,
    /// Attachment id.
    pub file_id: Option<String>,
    /// Attachment URL.
    pub file_url: Option<String>,
    /// Client metadata (strings only).
    pub metadata: Metadata,
    /// The client's idempotency key.
    pub client_message_id: Option<ClientMessageId>,
    /// For an answer: how it ended.
    pub finish_reason: Option<FinishReason>,
    /// For an answer: what it cost.
    pub usage: Option<Usage>,
    /// For an answer: the model that wrote it.
    pub model_id: Option<String>,
    /// For an answer: how long it took.
    pub timing: Option<AnswerTiming>,
}

impl StoredMessage {
    /// A text message with no attachment and no answer details.
    #[must_use]
    pub fn text(id: MessageId, seq: Seq, sender: Sender, content: String, timestamp: Timestamp) -> Self {
        Self {
            id,
            seq,
            sender,
            kind: MessageKind::Text,
            content,
            timestamp,
            file_id: None,
            file_url: None,
            metadata: Metadata::new(),
            client_message_id: None,
            finish_reason: None,
            usage: None,
            model_id: None,
            timing: None,
        }
    }

    /// True for an answer the model did not finish (cancelled, timed out, failed).
    #[must_use]
    pub fn is_partial(&self) -> bool {
        matches!(
            self.finish_reason,
            Some(FinishReason::Cancelled | FinishReason::Timeout | FinishReason::Error)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn senders_and_kinds_round_trip() {
        for sender in [Sender::User, Sender::Ai, Sender::Admin, Sender::System] {
            assert_eq!(Sender::parse(sender.as_str()), Some(sender));
        }
        for kind in [MessageKind::Text, MessageKind::File, MessageKind::Voice] {
            assert_eq!(MessageKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(Sender::parse("assistant"), None);
        assert_eq!(Seq::default().next(), Seq(1));
    }

    fn answer(finish_reason: Option<FinishReason>) -> StoredMessage {
        let now = chrono::DateTime::from_timestamp(1_700_000_000, 0).expect("valid");
        StoredMessage {
            finish_reason,
            ..StoredMessage::text(MessageId::parse("m1").expect("id"), Seq(1), Sender::Ai, "Hi".into(), now)
        }
    }

    #[test]
    fn a_sender_displays_as_its_wire_name() {
        assert_eq!(Sender::User.to_string(), "user");
        assert_eq!(Sender::Ai.to_string(), "ai");
        assert_eq!(Sender::Admin.to_string(), "admin");
        assert_eq!(Sender::System.to_string(), "system");
    }

    #[test]
    fn a_seq_displays_as_its_bare_number() {
        // Message ids are built from it, e.g. `m{seq}`.
        assert_eq!(Seq(0).to_string(), "0");
        assert_eq!(Seq(42).to_string(), "42");
        assert_eq!(format!("m{}", Seq(7)), "m7");
        assert_eq!(Seq(u64::MAX).to_string(), "18446744073709551615");
        assert_eq!(Seq(u64::MAX).next(), Seq(u64::MAX), "saturates");
    }

    #[test]
    fn only_an_unfinished_answer_is_partial() {
        for reason in [FinishReason::Cancelled, FinishReason::Timeout, FinishReason::Error] {
            assert!(answer(Some(reason)).is_partial(), "{reason}");
        }
        for reason in [FinishReason::Stop, FinishReason::Length] {
            assert!(!answer(Some(reason)).is_partial(), "{reason}");
        }
        assert!(!answer(None).is_partial(), "a message that is no answer");
    }
}
