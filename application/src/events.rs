//! What the server tells clients. A [`Frame`] is built once and shared by every socket
//! it goes to; the inbound adapter serialises it on first use and caches the bytes, so a
//! frame fanned out to ten sockets is serialised once.

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use std::time::Duration;

use chatbox_domain::{
    AnswerTiming, ClientMessageId, ErrorCode, FinishReason, MessageId, ModelId, Seq, SessionId,
    StoredMessage, Timestamp, Usage, UserId,
};

use crate::settings::ModelInfo;

/// How the answer to a message is labelled: `ai_response`, or `assistant` for a question
/// sent with the short type `user` (the earlier service's operations guide used it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnswerStyle {
    /// `ai_response` frames.
    AiResponse,
    /// `assistant` frames.
    Assistant,
}

/// A server-to-client event.
#[derive(Debug, Clone, PartialEq)]
pub enum ServerEvent {
    /// The connection's state: on connect, on session change, as an ack.
    ConnectionStatus {
        /// The socket's user.
        user_id: UserId,
        /// The session the socket is bound to (or the id issued for a new one).
        session_id: SessionId,
        /// Configured models, in order.
        models: Arc<[ModelInfo]>,
        /// The session's model.
        model_id: ModelId,
        /// `connected`, `model_changed`, `ended`, …
        state: &'static str,
        /// Optional human-readable text.
        content: Option<String>,
    },
    /// An answer starts; it will have this message id.
    Loading {
        /// Its session.
        session_id: SessionId,
        /// The answer's message id.
        message_id: MessageId,
        /// Frame naming.
        style: AnswerStyle,
    },
    /// A piece of a streaming answer (or, on resume, everything streamed so far).
    AnswerChunk {
        /// Its session.
        session_id: SessionId,
        /// The answer's message id.
        message_id: MessageId,
        /// The model answering.
        model_id: ModelId,
        /// The new text.
        delta: Arc<str>,
        /// Frame naming.
        style: AnswerStyle,
    },
    /// The answer ended.
    AnswerDone {
        /// Its session.
        session_id: SessionId,
        /// The answer's message id.
        message_id: MessageId,
        /// The model answering.
        model_id: ModelId,
        /// The stored answer's sequence number (none if nothing was stored).
        seq: Option<Seq>,
        /// Why it ended.
        finish_reason: FinishReason,
        /// Its cost, when known.
        usage: Option<Usage>,
        /// How long it took.
        timing: AnswerTiming,
        /// Frame naming.
        style: AnswerStyle,
    },
    /// A stored message: an echo to the session's other sockets, or a replay on resume.
    Stored {
        /// Its session.
        session_id: SessionId,
        /// The message.
        message: Arc<StoredMessage>,
    },
    /// The sender's message carrying `client_message_id` is stored (extension). Sent to
    /// the socket it came from only, and again if the same key is sent after storing.
    MessageAck {
        /// Its session.
        session_id: SessionId,
        /// The stored message's id.
        message_id: MessageId,
        /// Its sequence number.
        seq: Seq,
        /// The client's idempotency key.
        client_message_id: ClientMessageId,
    },
    /// Someone in the session is typing (or stopped).
    Typing {
        /// Its session.
        session_id: SessionId,
        /// Who.
        user_id: UserId,
        /// Typing or not.
        typing: bool,
    },
    /// An error concerning the socket or session that receives it.
    Error {
        /// The session it concerns, if any.
        session_id: Option<SessionId>,
        /// The code.
        code: ErrorCode,
        /// Client-safe text.
        message: String,
        /// When to retry, for rate limits.
        retry_after: Option<Duration>,
    },
    /// An admin took the session over (`admin_join`) or handed it back (`admin_leave`).
    Handoff {
        /// Its session.
        session_id: SessionId,
        /// True for `admin_join`.
        joined: bool,
        /// The admin's user id.
        admin_id: UserId,
        /// The admin's display name.
        admin_name: String,
    },
    /// Informational text.
    Notification {
        /// The text.
        content: String,
    },
    /// Reply to an application-level `ping`.
    Pong,
}

/// An event stamped with the server time, plus its serialised form once computed.
#[derive(Debug)]
pub struct Frame {
    /// What happened.
    pub event: ServerEvent,
    /// Server time of the event.
    pub timestamp: Timestamp,
    encoded: OnceLock<Bytes>,
    /// For the first chunk of an answer: when its token arrived from the provider, on
    /// the service's monotonic clock (the writer measures the gateway's latency from it).
    first_token_at: Option<Duration>,
}

impl ServerEvent {
    /// The `error` event for `error`, concerning `session_id`: its code, its client-safe
    /// text and, for limits, when to retry.
    #[must_use]
    pub fn error(error: &crate::error::ChatError, session_id: Option<SessionId>) -> Self {
        Self::Error {
            session_id,
            code: error.code(),
            message: error.to_string(),
            retry_after: error.retry_after(),
        }
    }
}

impl Frame {
    /// A shareable frame.
    #[must_use]
    pub fn new(event: ServerEvent, timestamp: Timestamp) -> Arc<Self> {
        Arc::new(Self { event, timestamp, encoded: OnceLock::new(), first_token_at: None })
    }

    /// The first chunk of an answer, whose token arrived from the provider at
    /// `first_token_at` (monotonic clock).
    #[must_use]
    pub fn first_chunk(event: ServerEvent, timestamp: Timestamp, first_token_at: Duration) -> Arc<Self> {
        Arc::new(Self { event, timestamp, encoded: OnceLock::new(), first_token_at: Some(first_token_at) })
    }

    /// When the token of an answer's first chunk arrived from the provider (monotonic
    /// clock); `None` for every other frame.
    #[must_use]
    pub const fn first_token_at(&self) -> Option<Duration> {
        self.first_token_at
    }

    /// The serialised UTF-8 text, computed by `encode` on first use only; later calls
    /// return the same bytes without copying.
    pub fn encoded(&self, encode: impl FnOnce(&Self) -> String) -> Bytes {
        self.encoded.get_or_init(|| Bytes::from(encode(self))).clone()
    }
}

/// One item of a socket's outbound queue. A batch (a resume's replay) takes one slot.
#[derive(Debug, Clone)]
pub enum Outbound {
    /// One frame.
    Frame(Arc<Frame>),
    /// Several frames, in order.
    Batch(Vec<Arc<Frame>>),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk() -> ServerEvent {
        ServerEvent::Notification { content: "x".into() }
    }

    #[test]
    fn only_an_answers_first_chunk_carries_its_token_arrival() {
        let arrival = Duration::from_millis(1_234);
        assert_eq!(
            Frame::first_chunk(chunk(), Timestamp::default(), arrival).first_token_at(),
            Some(arrival)
        );
        assert_eq!(Frame::new(chunk(), Timestamp::default()).first_token_at(), None);
    }

    #[test]
    fn a_frame_is_encoded_once_and_keeps_its_bytes() {
        let frame = Frame::new(chunk(), Timestamp::default());
        assert_eq!(&frame.encoded(|_| "first".to_owned())[..], b"first");
        assert_eq!(&frame.encoded(|_| "second".to_owned())[..], b"first", "later encoders are not run");
    }
}
