//! The ports: what the use-cases need from the outside world, as traits. Adapters
//! implement them; `infrastructure` picks the implementations.

mod catalog;
mod files;
mod hub;
mod metrics;
mod notifier;
mod shared;

pub use catalog::{
    SessionCatalog, SessionPage, SessionQuery, SessionSort, SessionStats, SessionSummary, ShareGrant,
};
pub use files::{
    ExpiredFile, FileCatalog, FileStore, FileStoreError, FileWriter, ObjectHeaders, ObjectRead, UploadTotals,
};
pub use hub::{AnswerLease, LeaseUnavailable, ReplicaEvents, SessionFanout, SessionHub};
pub use metrics::{
    ExpositionError, FrameCounter, FrameDirection, Limiter, LlmErrorKind, Metrics, MetricsExposition,
    NoMetrics, StorageOutcome,
};
pub use notifier::{HelpAlert, Notifier, NotifyError};
pub use shared::{LimitVerdict, SharedState, SharedStateUnavailable, SocketSlot};

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use chatbox_domain::{
    FinishReason, HandoffState, MessageEffects, ModelId, Seq, Session, SessionId, StoredMessage, Timestamp,
    Usage, UserId,
};
use futures::stream::BoxStream;
use thiserror::Error;

/// A storage failure. The text is for logs only; clients get `DATABASE_ERROR`.
#[derive(Debug, Error)]
pub enum RepositoryError {
    /// The store could not be reached or timed out; worth retrying later.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// A session with this id already exists.
    #[error("session already exists")]
    AlreadyExists,
    /// The session does not exist.
    #[error("session not found")]
    NotFound,
    /// Another message already holds the sequence number of the one being appended.
    #[error("sequence number already taken")]
    Conflict,
    /// Anything else the store reported.
    #[error("storage error: {0}")]
    Other(String),
}

/// Where sessions and their messages live.
///
/// # The write contract
/// Every write says exactly what it changes, so concurrent writers of one session never
/// undo each other's work:
/// - **Messages and counters have a single writer**: the session's answer actor (see
///   `answer.rs`) is the only caller of [`append_message`](Self::append_message) for a
///   session, in sequence order. It changes `last_seq`, `message_count`,
///   `last_activity`, the name (only while unset), `total_tokens`, the response-time
///   window and the provider conversation, and nothing else.
/// - **Each other field has its own operation** ([`set_model`](Self::set_model),
///   [`set_handoff`](Self::set_handoff), [`end`](Self::end)), a field-level change that
///   never touches the counters; callers serialise them per session.
/// - **The caller changes its in-memory copy only after the store accepted the write.**
/// - **Every write is idempotent** (ids are chosen by the service), so a retried write
///   after a lost acknowledgement changes nothing more.
#[async_trait]
pub trait SessionRepository: Send + Sync + 'static {
    /// Stores a new session.
    ///
    /// # Errors
    /// [`RepositoryError::AlreadyExists`] if the id is taken, or a store failure.
    async fn create(&self, session: &Session) -> Result<(), RepositoryError>;

    /// Loads a session without its messages.
    ///
    /// # Errors
    /// A store failure.
    async fn load(&self, id: &SessionId) -> Result<Option<Session>, RepositoryError>;

    /// Appends one message and applies its effects to the session in the same write
    /// (as [`Session::record`] does in memory). `message.seq` is the session's
    /// `last_seq + 1`. Appending a message whose id is already stored succeeds and
    /// changes nothing.
    ///
    /// # Errors
    /// [`RepositoryError::NotFound`], [`RepositoryError::Conflict`] when another message
    /// holds that `seq`, or a store failure.
    async fn append_message(
        &self,
        id: &SessionId,
        message: &StoredMessage,
        effects: &MessageEffects,
    ) -> Result<(), RepositoryError>;

    /// Sets the session's model.
    ///
    /// # Errors
    /// [`RepositoryError::NotFound`] or a store failure.
    async fn set_model(&self, id: &SessionId, model: &ModelId, at: Timestamp) -> Result<(), RepositoryError>;

    /// Sets the session's handoff state.
    ///
    /// # Errors
    /// [`RepositoryError::NotFound`] or a store failure.
    async fn set_handoff(
        &self,
        id: &SessionId,
        handoff: &HandoffState,
        at: Timestamp,
    ) -> Result<(), RepositoryError>;

    /// Ends the session at `at`; ending an ended session keeps its first end time.
    ///
    /// # Errors
    /// [`RepositoryError::NotFound`] or a store failure.
    async fn end(&self, id: &SessionId, at: Timestamp) -> Result<(), RepositoryError>;

    /// The messages with `seq > after`, oldest first, at most `limit`.
    ///
    /// # Errors
    /// A store failure.
    async fn messages_after(
        &self,
        id: &SessionId,
        after: Seq,
        limit: usize,
    ) -> Result<Vec<StoredMessage>, RepositoryError>;

    /// The last `limit` messages, oldest first.
    ///
    /// # Errors
    /// A store failure.
    async fn recent_messages(
        &self,
        id: &SessionId,
        limit: usize,
    ) -> Result<Vec<StoredMessage>, RepositoryError>;

    /// Answers when the store is usable (readiness).
    ///
    /// # Errors
    /// A store failure.
    async fn ping(&self) -> Result<(), RepositoryError>;
}

/// Who said a turn of the conversation, as the model sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The user (or an assisting admin).
    User,
    /// The model.
    Assistant,
}

/// One turn of the history sent to the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatTurn {
    /// Who said it.
    pub role: Role,
    /// What was said.
    pub content: String,
    /// Pictures the turn shows the model, in order (only for a provider that
    /// [sees images](LlmProvider::sees_images); empty otherwise).
    pub images: Vec<InlineImage>,
}

impl ChatTurn {
    /// A turn of text only.
    #[must_use]
    pub fn text(role: Role, content: impl Into<String>) -> Self {
        Self { role, content: content.into(), images: Vec::new() }
    }
}

/// A picture sent to the model inside the request (base64 on the wire).
#[derive(Clone, PartialEq, Eq)]
pub struct InlineImage {
    /// Its media type, e.g. `image/png`.
    pub media_type: &'static str,
    /// Its bytes, as stored (metadata stripped).
    pub data: Bytes,
}

impl fmt::Debug for InlineImage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InlineImage")
            .field("media_type", &self.media_type)
            .field("bytes", &self.data.len())
            .finish()
    }
}

/// Everything a provider needs for one answer.
#[derive(Clone, PartialEq, Eq)]
pub struct ChatRequest {
    /// The configured model (provider) id.
    pub model_id: ModelId,
    /// `LLM_SYSTEM_PROMPT`, if set.
    pub system_prompt: Option<String>,
    /// The conversation, oldest first; the last turn is the question.
    pub history: Vec<ChatTurn>,
    /// The user the answer is for (some providers bill or key state by it).
    pub user_id: UserId,
    /// The session the answer belongs to.
    pub session_id: SessionId,
    /// The provider's own conversation id from an earlier answer (Dify), if any.
    pub conversation_id: Option<String>,
}

impl fmt::Debug for ChatRequest {
    // The history is user content; keep it out of debug logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChatRequest")
            .field("model_id", &self.model_id)
            .field("turns", &self.history.len())
            .field("session_id", &self.session_id)
            .finish_non_exhaustive()
    }
}

/// One event of an answer stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamEvent {
    /// More answer text.
    Delta(String),
    /// Token counts reported by the provider.
    Usage(Usage),
    /// The provider says the answer is complete, and why.
    Finished(FinishReason),
    /// The provider's id for this conversation, to send back with the next request.
    Conversation(String),
}

/// A provider failure, classified by kind so retry policy never matches error text.
#[derive(Debug, Error)]
pub enum ProviderError {
    /// The connection could not be made or broke.
    #[error("connection failed: {0}")]
    Connect(String),
    /// 429: too many requests.
    #[error("rate limited by provider")]
    RateLimited {
        /// The provider's `Retry-After`, if it sent one.
        retry_after: Option<Duration>,
    },
    /// The provider said it is overloaded.
    #[error("provider overloaded")]
    Overloaded,
    /// A 5xx answer.
    #[error("provider server error (status {status})")]
    Server {
        /// The HTTP status.
        status: u16,
    },
    /// A 4xx answer other than 429: our request or key is wrong; retrying will not help.
    #[error("provider rejected the request (status {status})")]
    Rejected {
        /// The HTTP status.
        status: u16,
    },
    /// The stream broke the provider's wire format, or reported an error event.
    #[error("provider stream error: {0}")]
    Stream(String),
}

impl ProviderError {
    /// How long the provider asked us to wait, if it did.
    #[must_use]
    pub const fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RateLimited { retry_after } => *retry_after,
            _ => None,
        }
    }

    /// Whether trying the same request again may succeed.
    #[must_use]
    pub const fn is_retryable(&self) -> bool {
        matches!(self, Self::Connect(_) | Self::RateLimited { .. } | Self::Overloaded | Self::Server { .. })
    }
}

/// A stream of answer events. Dropping it must abort the request to the provider.
pub type AnswerStream = BoxStream<'static, Result<StreamEvent, ProviderError>>;

/// A model provider that streams answers.
#[async_trait]
pub trait LlmProvider: Send + Sync + 'static {
    /// Starts an answer; returns once the provider accepted the request.
    ///
    /// # Errors
    /// A [`ProviderError`] when the request could not be started.
    async fn stream(&self, request: &ChatRequest) -> Result<AnswerStream, ProviderError>;

    /// Whether the model takes pictures ([`ChatTurn::images`]); a provider that does not
    /// is told about an image by its name only.
    fn sees_images(&self) -> bool {
        false
    }
}

/// Time, for the use-cases.
pub trait Clock: Send + Sync + 'static {
    /// Wall-clock time (stamped on stored things).
    fn now(&self) -> Timestamp;
    /// Monotonic time since an arbitrary fixed origin (limits, timeouts, idleness).
    fn monotonic(&self) -> Duration;
}

/// Randomness, for jitter.
pub trait Randomness: Send + Sync + 'static {
    /// A number drawn uniformly from [0, 1).
    fn unit(&self) -> f64;
}

/// Fresh ids.
pub trait IdGenerator: Send + Sync + 'static {
    /// A new unique, unguessable id (session ids double as capabilities for resume).
    fn new_id(&self) -> String;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A provider that says nothing about pictures.
    struct TextOnly;

    #[async_trait]
    impl LlmProvider for TextOnly {
        async fn stream(&self, _: &ChatRequest) -> Result<AnswerStream, ProviderError> {
            Err(ProviderError::Overloaded)
        }
    }

    #[test]
    fn a_provider_sees_no_images_unless_it_says_so() {
        assert!(!TextOnly.sees_images());
    }

    #[test]
    fn a_pictures_debug_shows_its_type_and_size_never_its_bytes() {
        let image =
            InlineImage { media_type: "image/png", data: Bytes::from_static(b"\x89PNG-secret-pixels") };
        let shown = format!("{image:?}");
        assert_eq!(shown, "InlineImage { media_type: \"image/png\", bytes: 18 }");
    }

    #[test]
    fn a_reads_debug_names_its_range_not_its_bytes() {
        use futures::StreamExt as _;
        let read = ObjectRead { range: 2..9, body: futures::stream::empty().boxed() };
        assert_eq!(format!("{read:?}"), "ObjectRead { range: 2..9, .. }");
    }
}
