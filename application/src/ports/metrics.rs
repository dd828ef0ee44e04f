//! The metrics port: what the service counts and times, as events. An adapter turns them
//! into series; [`NoMetrics`] drops them (tests, tools).
//!
//! Invariants every caller and implementation keeps:
//! - **Bounded labels.** Arguments are small enums, `&'static str` names fixed in the
//!   code, configured provider ids (a set fixed at start-up), or durations; never ids,
//!   tokens or free text. An implementation folds anything outside its known set (an
//!   unconfigured provider, an unusual HTTP method) into `other`.
//! - **Cheap on the hot path.** [`Metrics::frame_received`] and [`Metrics::frame_sent`]
//!   run once per WebSocket frame: an implementation must not lock, allocate or look
//!   anything up there. The other events happen at most once per answer, request,
//!   socket or storage call.

use std::time::Duration;

use chatbox_domain::{FinishReason, ModelId};
use thiserror::Error;

use super::{ProviderError, RepositoryError};

/// The type of a WebSocket frame, as on the wire. A fixed set: frames whose type is
/// unknown, or that were refused before their type was read, are [`FrameType::Other`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FrameType {
    /// `user_message`.
    UserMessage,
    /// `user` (the short alias).
    User,
    /// `ai_response`.
    AiResponse,
    /// `assistant`.
    Assistant,
    /// `file_upload`.
    FileUpload,
    /// `voice_message`.
    VoiceMessage,
    /// `model_select`.
    ModelSelect,
    /// `stop`.
    Stop,
    /// `help_request`.
    HelpRequest,
    /// `typing_indicator`.
    TypingIndicator,
    /// `resume`.
    Resume,
    /// `ping`.
    Ping,
    /// `pong`.
    Pong,
    /// `connection_status`.
    ConnectionStatus,
    /// `loading`.
    Loading,
    /// `message_ack`.
    MessageAck,
    /// `admin_join`.
    AdminJoin,
    /// `admin_leave`.
    AdminLeave,
    /// `error`.
    Error,
    /// `notification`.
    Notification,
    /// Anything else.
    Other,
}

impl FrameType {
    /// Every frame type, in [`index`](Self::index) order.
    pub const ALL: [Self; 21] = [
        Self::UserMessage,
        Self::User,
        Self::AiResponse,
        Self::Assistant,
        Self::FileUpload,
        Self::VoiceMessage,
        Self::ModelSelect,
        Self::Stop,
        Self::HelpRequest,
        Self::TypingIndicator,
        Self::Resume,
        Self::Ping,
        Self::Pong,
        Self::ConnectionStatus,
        Self::Loading,
        Self::MessageAck,
        Self::AdminJoin,
        Self::AdminLeave,
        Self::Error,
        Self::Notification,
        Self::Other,
    ];

    /// The types a client sends (and `other` for the rest).
    pub const RECEIVED: [Self; 11] = [
        Self::UserMessage,
        Self::User,
        Self::FileUpload,
        Self::VoiceMessage,
        Self::ModelSelect,
        Self::Stop,
        Self::HelpRequest,
        Self::TypingIndicator,
        Self::Resume,
        Self::Ping,
        Self::Other,
    ];

    /// The types the server sends.
    pub const SENT: [Self; 15] = [
        Self::ConnectionStatus,
        Self::Loading,
        Self::AiResponse,
        Self::Assistant,
        Self::UserMessage,
        Self::FileUpload,
        Self::VoiceMessage,
        Self::MessageAck,
        Self::AdminJoin,
        Self::AdminLeave,
        Self::TypingIndicator,
        Self::Error,
        Self::Notification,
        Self::Pong,
        Self::Other,
    ];

    /// Its position in [`ALL`](Self::ALL): an index into a per-type array.
    #[must_use]
    pub const fn index(self) -> usize {
        self as usize
    }

    /// The wire spelling (the label value).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::UserMessage => "user_message",
            Self::User => "user",
            Self::AiResponse => "ai_response",
            Self::Assistant => "assistant",
            Self::FileUpload => "file_upload",
            Self::VoiceMessage => "voice_message",
            Self::ModelSelect => "model_select",
            Self::Stop => "stop",
            Self::HelpRequest => "help_request",
            Self::TypingIndicator => "typing_indicator",
            Self::Resume => "resume",
            Self::Ping => "ping",
            Self::Pong => "pong",
            Self::ConnectionStatus => "connection_status",
            Self::Loading => "loading",
            Self::MessageAck => "message_ack",
            Self::AdminJoin => "admin_join",
            Self::AdminLeave => "admin_leave",
            Self::Error => "error",
            Self::Notification => "notification",
            Self::Other => "other",
        }
    }
}

/// A limiter that refused something.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Limiter {
    /// The per-user message limit (`RATE_LIMIT` per `RATE_WINDOW`).
    Messages,
    /// A socket's command budget (`WS_COMMAND_BUDGET`), including the flood close.
    CommandBudget,
    /// The socket caps (`MAX_CONNECTIONS`, `MAX_CONNECTIONS_PER_USER`).
    Connections,
    /// The admin HTTP routes' limit.
    AdminHttp,
    /// The unauthenticated HTTP routes' limit.
    PublicHttp,
    /// The user HTTP routes' limit.
    UserHttp,
}

impl Limiter {
    /// Every limiter.
    pub const ALL: [Self; 6] = [
        Self::Messages,
        Self::CommandBudget,
        Self::Connections,
        Self::AdminHttp,
        Self::PublicHttp,
        Self::UserHttp,
    ];

    /// The label value.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Messages => "messages",
            Self::CommandBudget => "command_budget",
            Self::Connections => "connections",
            Self::AdminHttp => "admin_http",
            Self::PublicHttp => "public_http",
            Self::UserHttp => "user_http",
        }
    }
}

/// Why a provider request failed, by kind (never the provider's text).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LlmErrorKind {
    /// The connection failed or broke.
    Connect,
    /// 429 from the provider.
    RateLimited,
    /// The provider said it is overloaded.
    Overloaded,
    /// A 5xx answer.
    Server,
    /// Another 4xx answer.
    Rejected,
    /// The stream broke the wire format or reported an error.
    Stream,
    /// Silent for `LLM_IDLE_TIMEOUT`, or longer than `LLM_STREAM_TIMEOUT`.
    Timeout,
}

impl LlmErrorKind {
    /// Every kind.
    pub const ALL: [Self; 7] = [
        Self::Connect,
        Self::RateLimited,
        Self::Overloaded,
        Self::Server,
        Self::Rejected,
        Self::Stream,
        Self::Timeout,
    ];

    /// The kind of a provider failure.
    #[must_use]
    pub const fn of(error: &ProviderError) -> Self {
        match error {
            ProviderError::Connect(_) => Self::Connect,
            ProviderError::RateLimited { .. } => Self::RateLimited,
            ProviderError::Overloaded => Self::Overloaded,
            ProviderError::Server { .. } => Self::Server,
            ProviderError::Rejected { .. } => Self::Rejected,
            ProviderError::Stream(_) => Self::Stream,
        }
    }

    /// The label value.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Connect => "connect",
            Self::RateLimited => "rate_limited",
            Self::Overloaded => "overloaded",
            Self::Server => "server",
            Self::Rejected => "rejected",
            Self::Stream => "stream",
            Self::Timeout => "timeout",
        }
    }
}

/// How a storage call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StorageOutcome {
    /// It succeeded.
    Ok,
    /// The session was not found.
    NotFound,
    /// The id or sequence number was taken.
    Conflict,
    /// The store could not be reached (after its own retries).
    Unavailable,
    /// Any other failure.
    Error,
    /// It was abandoned before it completed (the storage deadline passed).
    Timeout,
}

impl StorageOutcome {
    /// Every outcome.
    pub const ALL: [Self; 6] =
        [Self::Ok, Self::NotFound, Self::Conflict, Self::Unavailable, Self::Error, Self::Timeout];

    /// The outcome of a call's result.
    #[must_use]
    pub const fn of<T>(result: &Result<T, RepositoryError>) -> Self {
        match result {
            Ok(_) => Self::Ok,
            Err(RepositoryError::NotFound) => Self::NotFound,
            Err(RepositoryError::AlreadyExists | RepositoryError::Conflict) => Self::Conflict,
            Err(RepositoryError::Unavailable(_)) => Self::Unavailable,
            Err(RepositoryError::Other(_)) => Self::Error,
        }
    }

    /// The label value.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::NotFound => "not_found",
            Self::Conflict => "conflict",
            Self::Unavailable => "unavailable",
            Self::Error => "error",
            Self::Timeout => "timeout",
        }
    }
}

/// What the service counts and times. See the module docs for the rules.
pub trait Metrics: Send + Sync + 'static {
    /// A WebSocket was upgraded and is being served.
    fn socket_opened(&self);
    /// A served WebSocket ended after `lifetime`.
    fn socket_closed(&self, lifetime: Duration);
    /// A text or binary frame was read from a client. Hot path.
    fn frame_received(&self, frame: FrameType);
    /// A frame was written to a client. Hot path.
    fn frame_sent(&self, frame: FrameType);
    /// A socket was closed because its outbound queue overflowed.
    fn slow_consumer_disconnected(&self);

    /// A session was created (stored).
    fn session_created(&self);
    /// A session was ended.
    fn session_ended(&self);

    /// A request was sent to `provider` (every attempt counts, retries included).
    fn llm_request(&self, provider: &ModelId);
    /// A request to `provider` failed, before or during its stream.
    fn llm_error(&self, provider: &ModelId, kind: LlmErrorKind);
    /// A failed request to `provider` is tried again.
    fn llm_retry(&self, provider: &ModelId);
    /// An answer of `provider` produced its first token `elapsed` after it started
    /// (history loading, retries and fallbacks included).
    fn time_to_first_token(&self, provider: &ModelId, elapsed: Duration);
    /// The gateway's own share of the latency: from the first token's arrival from the
    /// provider to the frame carrying it written on a client's socket.
    fn gateway_latency(&self, elapsed: Duration);
    /// An answer of `provider` ended with `reason` after `duration`.
    fn answer_finished(&self, provider: &ModelId, reason: FinishReason, duration: Duration);
    /// Tokens one answer of `provider` used (reported, or estimated when it reported none).
    fn tokens_used(&self, provider: &ModelId, prompt: u64, completion: u64);

    /// A limiter refused something.
    fn rate_limited(&self, limiter: Limiter);

    /// A storage operation (named by its port method) ended with `outcome` after `duration`.
    fn storage_operation(&self, operation: &'static str, outcome: StorageOutcome, duration: Duration);
    /// A storage operation is retried after a transient failure.
    fn storage_retry(&self, operation: &'static str);

    /// An HTTP request to `route` (its template, e.g. `/sessions/{id}/end`) was answered
    /// with `status` after `duration`. `method` outside the standard set counts as `other`.
    fn http_request(&self, route: &'static str, method: &str, status: u16, duration: Duration);

    /// An admin took a session over.
    fn takeover(&self);
    /// A user asked for a human.
    fn help_requested(&self);
    /// An alert was sent on `channel` (`email`, `sms`, …), or sending it failed.
    fn alert(&self, channel: &'static str, delivered: bool);
}

/// Metrics that go nowhere.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoMetrics;

impl Metrics for NoMetrics {
    fn socket_opened(&self) {}
    fn socket_closed(&self, _: Duration) {}
    fn frame_received(&self, _: FrameType) {}
    fn frame_sent(&self, _: FrameType) {}
    fn slow_consumer_disconnected(&self) {}
    fn session_created(&self) {}
    fn session_ended(&self) {}
    fn llm_request(&self, _: &ModelId) {}
    fn llm_error(&self, _: &ModelId, _: LlmErrorKind) {}
    fn llm_retry(&self, _: &ModelId) {}
    fn time_to_first_token(&self, _: &ModelId, _: Duration) {}
    fn gateway_latency(&self, _: Duration) {}
    fn answer_finished(&self, _: &ModelId, _: FinishReason, _: Duration) {}
    fn tokens_used(&self, _: &ModelId, _: u64, _: u64) {}
    fn rate_limited(&self, _: Limiter) {}
    fn storage_operation(&self, _: &'static str, _: StorageOutcome, _: Duration) {}
    fn storage_retry(&self, _: &'static str) {}
    fn http_request(&self, _: &'static str, _: &str, _: u16, _: Duration) {}
    fn takeover(&self) {}
    fn help_requested(&self) {}
    fn alert(&self, _: &'static str, _: bool) {}
}

/// A scrape failed to render.
#[derive(Debug, Error)]
#[error("metrics could not be rendered: {0}")]
pub struct ExpositionError(pub String);

/// The metrics as a scraper reads them (served by the inbound HTTP adapter).
pub trait MetricsExposition: Send + Sync + 'static {
    /// The `Content-Type` of [`render`](Self::render)'s text.
    fn content_type(&self) -> &'static str;

    /// Every series, now.
    ///
    /// # Errors
    /// When the text cannot be produced.
    fn render(&self) -> Result<String, ExpositionError>;
}

/// No metrics to show: an empty exposition.
impl MetricsExposition for NoMetrics {
    fn content_type(&self) -> &'static str {
        "text/plain; version=0.0.4; charset=utf-8"
    }

    fn render(&self) -> Result<String, ExpositionError> {
        Ok(String::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_type_indexes_match_their_place_in_all() {
        for (position, frame) in FrameType::ALL.iter().enumerate() {
            assert_eq!(frame.index(), position, "{frame:?}");
        }
        let mut names: Vec<_> = FrameType::ALL.iter().map(|f| f.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), FrameType::ALL.len(), "label values are distinct");
    }

    #[test]
    fn provider_failures_and_storage_results_map_to_their_kinds() {
        assert_eq!(LlmErrorKind::of(&ProviderError::Server { status: 503 }), LlmErrorKind::Server);
        assert_eq!(
            LlmErrorKind::of(&ProviderError::RateLimited { retry_after: None }),
            LlmErrorKind::RateLimited
        );
        assert_eq!(StorageOutcome::of::<()>(&Ok(())), StorageOutcome::Ok);
        assert_eq!(StorageOutcome::of::<()>(&Err(RepositoryError::AlreadyExists)), StorageOutcome::Conflict);
        assert_eq!(
            StorageOutcome::of::<()>(&Err(RepositoryError::Unavailable("x".into()))),
            StorageOutcome::Unavailable
        );
    }
}
