//! The metrics port: what the service counts and times, as events. An adapter turns them
//! into series; [`NoMetrics`] drops them (tests, tools).
//!
//! Invariants every caller and implementation keeps:
//! - **Bounded labels.** Arguments are small enums, `&'static str` names fixed in the
//!   code, configured provider ids (a set fixed at start-up), or durations; never ids,
//!   tokens or free text. An implementation folds anything outside its known set (an
//!   unconfigured provider, an unusual HTTP method) into `other`.
//! - **Cheap on the hot path.** Frames are counted per WebSocket frame: the inbound
//!   adapter asks [`Metrics::frame_counter`] once per frame type at start-up and then
//!   bumps the returned [`FrameCounter`] (one relaxed atomic add). The frame types are
//!   the wire format's, so they belong to the adapter that speaks it, not to this port.
//!   The other events happen at most once per answer, request, socket or storage call.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chatbox_domain::upload::FileKind;
use chatbox_domain::{FinishReason, ModelId};
use thiserror::Error;

use super::{ProviderError, RepositoryError};

/// Which way a WebSocket frame travelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FrameDirection {
    /// Read from a client.
    Received,
    /// Written to a client.
    Sent,
    /// Read from a client and refused before it reached the service (not JSON, an
    /// unknown type, a missing or invalid field, binary).
    Refused,
}

/// One atomic total alone on its cache line, so sockets counting different frame types
/// never contend for a line.
#[derive(Debug, Default)]
#[repr(align(64))]
struct PaddedTotal(AtomicU64);

/// The count of frames of one type in one direction: a cheap clonable handle on one
/// atomic total. The inbound adapter bumps it once per frame ([`increment`](Self::increment):
/// one relaxed atomic add, no lock, no allocation); a metrics adapter reads it when
/// scraped ([`total`](Self::total)).
#[derive(Debug, Clone, Default)]
pub struct FrameCounter(Arc<PaddedTotal>);

impl FrameCounter {
    /// A counter at zero that nothing reads yet.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts one frame.
    pub fn increment(&self) {
        // Totals only: no ordering with anything else is needed.
        self.0.0.fetch_add(1, Ordering::Relaxed);
    }

    /// The frames counted so far.
    #[must_use]
    pub fn total(&self) -> u64 {
        self.0.0.load(Ordering::Relaxed)
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
            Self::Messages => "message",
            Self::CommandBudget => "command_budget",
            Self::Connections => "connection",
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
    /// The counter of frames of type `frame_type` (its wire spelling, the label value)
    /// travelling `direction`. Asked once per type and direction at start-up, never per
    /// frame; asking again for the same pair gives the same counter.
    fn frame_counter(&self, direction: FrameDirection, frame_type: &'static str) -> FrameCounter;
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
    /// The store announces every operation name it may pass to
    /// [`storage_retry`](Self::storage_retry), once at start-up, so each series exists
    /// (at 0) before its first retry. A store that never retries announces nothing.
    fn storage_retry_operations(&self, _operations: &'static [&'static str]) {}

    /// The state replicas share was reached (`true`) or not (`false`) by a call whose
    /// predecessor saw the opposite: called once per change of state, never per call.
    fn shared_state_reachable(&self, _reachable: bool) {}

    /// A readiness check ended: `ready` is its verdict (storage answering, a model
    /// configured, not draining).
    fn readiness_checked(&self, _ready: bool) {}

    /// An HTTP request to `route` (its template, e.g. `/sessions/{id}/end`) was answered
    /// with `status` after `duration`. `method` outside the standard set counts as `other`.
    fn http_request(&self, route: &'static str, method: &str, status: u16, duration: Duration);

    /// An admin took a session over.
    fn takeover(&self);
    /// A user asked for a human.
    fn help_requested(&self);
    /// An alert was sent on `channel` (`email`, `sms`, …), or sending it failed.
    fn alert(&self, channel: &'static str, delivered: bool);

    /// A file was uploaded and stored (`bytes` as stored).
    fn file_uploaded(&self, _kind: FileKind, _bytes: u64) {}

    /// An upload was refused, by its error code.
    fn upload_refused(&self, _code: &'static str) {}

    /// A stored file was deleted by the cleanup, by reason (`orphan`, `retention`).
    fn file_deleted(&self, _reason: &'static str) {}
}

/// Metrics that go nowhere.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoMetrics;

impl Metrics for NoMetrics {
    fn socket_opened(&self) {}
    fn socket_closed(&self, _: Duration) {}
    fn frame_counter(&self, _: FrameDirection, _: &'static str) -> FrameCounter {
        FrameCounter::new()
    }
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
    fn clones_of_a_frame_counter_share_one_total() {
        let counter = FrameCounter::new();
        let clone = counter.clone();
        counter.increment();
        clone.increment();
        assert_eq!((counter.total(), clone.total()), (2, 2));
        assert_eq!(FrameCounter::new().total(), 0, "a new counter is its own");
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

    #[test]
    fn every_provider_failure_has_its_documented_kind() {
        let cases = [
            (ProviderError::Connect("refused".into()), "connect"),
            (ProviderError::RateLimited { retry_after: None }, "rate_limited"),
            (ProviderError::Overloaded, "overloaded"),
            (ProviderError::Server { status: 500 }, "server"),
            (ProviderError::Rejected { status: 400 }, "rejected"),
            (ProviderError::Stream("bad event".into()), "stream"),
        ];
        for (error, label) in cases {
            assert_eq!(LlmErrorKind::of(&error).as_str(), label, "{error:?}");
        }
    }

    // The label values operations.md lists for each metric, in its order.
    #[test]
    fn label_values_are_the_documented_ones() {
        let kinds = LlmErrorKind::ALL.map(LlmErrorKind::as_str);
        assert_eq!(
            kinds,
            ["connect", "rate_limited", "overloaded", "server", "rejected", "stream", "timeout"]
        );
        let limiters = Limiter::ALL.map(Limiter::as_str);
        assert_eq!(
            limiters,
            ["message", "command_budget", "connection", "admin_http", "public_http", "user_http"]
        );
        let outcomes = StorageOutcome::ALL.map(StorageOutcome::as_str);
        assert_eq!(outcomes, ["ok", "not_found", "conflict", "unavailable", "error", "timeout"]);
    }

    #[test]
    fn no_metrics_exposes_an_empty_prometheus_text() {
        assert!(NoMetrics.content_type().starts_with("text/plain; version=0.0.4"));
        assert_eq!(NoMetrics.render().expect("renders"), "");
    }
}
