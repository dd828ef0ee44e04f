//! # Metrics adapter
//!
//! Implements the application's [`Metrics`] port with OpenTelemetry instruments and
//! renders them in the Prometheus text format ([`MetricsExposition`]) through the
//! `opentelemetry-prometheus` exporter.
//!
//! Invariants:
//! - **One registry per instance.** Each [`Telemetry`] owns its Prometheus registry and
//!   its meter provider (kept alive as long as it is: a dropped provider stops
//!   collecting), so several services in one process (the tests) never mix series.
//! - **Nothing but our series.** The exporter's `target_info` and `otel_scope_*` labels
//!   are turned off: a scrape shows only the `chatbox_*` families of
//!   [`METRIC_NAMES`].
//! - **Bounded labels.** Every label value comes from a fixed set (see `labels.rs`, the
//!   port's enums, and the frame type names the HTTP adapter hands in once each,
//!   `&'static str` fixed in its code).
//! - **Per-frame cost: one relaxed atomic add** on a [`FrameCounter`] handed out at
//!   start-up (`hot.rs`), read by observable counters at scrape time. A frame type's
//!   series exists from the moment its counter is handed out. The rest uses synchronous
//!   instruments whose attribute slices are static strings or pre-built provider labels.

#![forbid(unsafe_code)]

mod hot;
mod instruments;
mod labels;
mod repository;

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chatbox_application::ports::{
    ExpositionError, FrameCounter, FrameDirection, Limiter, LlmErrorKind, Metrics, MetricsExposition,
    StorageOutcome,
};
use chatbox_domain::upload::{ExpiryReason, FileKind};
use chatbox_domain::{ErrorCode, FinishReason, ModelId};
use opentelemetry::KeyValue;
use opentelemetry::metrics::{Meter, MeterProvider as _, ObservableGauge};
use opentelemetry_sdk::metrics::SdkMeterProvider;
use prometheus::TextEncoder;
use thiserror::Error;

use hot::HotCounters;
use instruments::Instruments;
use labels::ProviderLabels;

pub use instruments::METRIC_NAMES;
pub use repository::MeteredRepository;

/// The metrics could not be set up.
#[derive(Debug, Error)]
#[error("metrics set-up failed: {0}")]
pub struct TelemetryError(String);

/// A gauge whose value the wiring reads from elsewhere at scrape time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gauge {
    /// `chatbox_active_sessions`: sessions held in memory.
    LiveSessions,
}

impl Gauge {
    const fn name(self) -> &'static str {
        match self {
            Self::LiveSessions => "chatbox.active_sessions",
        }
    }

    const fn description(self) -> &'static str {
        match self {
            Self::LiveSessions => "Sessions live in memory (bound sockets or recent activity).",
        }
    }
}

/// The service's metrics: recorded through [`Metrics`], read through
/// [`MetricsExposition`].
pub struct Telemetry {
    registry: prometheus::Registry,
    /// Held, never read: dropping the provider shuts the pipeline down and scrapes go empty.
    _provider: SdkMeterProvider,
    meter: Meter,
    hot: Arc<HotCounters>,
    providers: ProviderLabels,
    instruments: Instruments,
    /// The gauges registered by the wiring (kept with their callbacks).
    gauges: Mutex<Vec<ObservableGauge<u64>>>,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry").field("providers", &self.providers).finish_non_exhaustive()
    }
}

impl Telemetry {
    /// Metrics for a service whose configured provider ids are `providers` (the only
    /// values the `provider` label takes, besides `other`).
    ///
    /// # Errors
    /// When the exporter cannot be built or registered.
    pub fn new<'a>(providers: impl IntoIterator<Item = &'a str>) -> Result<Self, TelemetryError> {
        let registry = prometheus::Registry::new();
        let exporter = opentelemetry_prometheus::exporter()
            .with_registry(registry.clone())
            .without_target_info()
            .scope_info_enabled(false)
            .build()
            .map_err(|error| TelemetryError(error.to_string()))?;
        let provider = SdkMeterProvider::builder().with_reader(exporter).build();
        let meter = provider.meter("chatbox");
        let hot = Arc::new(HotCounters::default());
        observe_frames(&meter, &hot);
        let telemetry = Self {
            instruments: Instruments::new(&meter),
            registry,
            _provider: provider,
            meter,
            hot,
            providers: ProviderLabels::new(providers),
            gauges: Mutex::new(Vec::new()),
        };
        telemetry.start_at_zero();
        Ok(telemetry)
    }

    /// Publishes `gauge` with the value `read` returns at each scrape. `read` must be
    /// quick and must not hold a strong reference to anything that owns this value
    /// (that would be a cycle nothing frees): hold a `Weak` instead.
    pub fn observe(&self, gauge: Gauge, read: impl Fn() -> u64 + Send + Sync + 'static) {
        let instrument = self
            .meter
            .u64_observable_gauge(gauge.name())
            .with_description(gauge.description())
            .with_callback(move |observer| observer.observe(read(), &[]))
            .build();
        self.gauges.lock().unwrap_or_else(PoisonError::into_inner).push(instrument);
    }

    /// Counters that exist from the start show 0 instead of being absent until their
    /// first event, so dashboards and alerts see them at once.
    fn start_at_zero(&self) {
        let i = &self.instruments;
        for counter in
            [&i.slow_consumers, &i.sessions_created, &i.sessions_ended, &i.takeovers, &i.help_requests]
        {
            counter.add(0, &[]);
        }
        for provider in self.providers.all() {
            i.llm_requests.add(0, std::slice::from_ref(provider));
            i.llm_retries.add(0, std::slice::from_ref(provider));
            for kind in LlmErrorKind::ALL {
                i.llm_errors.add(0, &[provider.clone(), KeyValue::new("kind", kind.as_str())]);
            }
        }
        for channel in ALERT_CHANNELS {
            for outcome in ["sent", "failed"] {
                i.alerts.add(0, &[KeyValue::new("channel", channel), KeyValue::new("outcome", outcome)]);
            }
        }
        for limiter in Limiter::ALL {
            i.rate_limited.add(0, &[KeyValue::new("limiter", limiter.as_str())]);
        }
        for kind in [FileKind::Image, FileKind::Audio, FileKind::Document] {
            i.files_uploaded.add(0, &[KeyValue::new("file_kind", file_kind(kind))]);
            i.upload_bytes.add(0, &[KeyValue::new("file_kind", file_kind(kind))]);
        }
        for reason in [ExpiryReason::Orphan, ExpiryReason::Retention] {
            i.files_deleted.add(0, &[KeyValue::new("reason", reason.as_str())]);
        }
        i.uploads_refused.add(0, &[KeyValue::new("code", ErrorCode::FileTooLarge.as_str())]);
    }
}

/// The alert channels the service has (the `channel` label of `chatbox_alerts_total`).
const ALERT_CHANNELS: [&str; 2] = ["email", "sms"];

/// The per-frame counters, read from their atomics at scrape time.
fn observe_frames(meter: &Meter, hot: &Arc<HotCounters>) {
    frames_by_type(
        meter,
        hot,
        FrameDirection::Received,
        "chatbox.messages.received",
        "WebSocket frames read from clients and accepted, by type.",
    );
    let refused = Arc::clone(hot);
    meter
        .u64_observable_counter("chatbox.message.errors")
        .with_description(
            "WebSocket frames read from clients and refused: not JSON, an unknown type, a missing or invalid field, binary.",
        )
        .with_callback(move |observer| {
            let mut total = 0_u64;
            refused.frame_totals(FrameDirection::Refused, |_, count| total = total.saturating_add(count));
            observer.observe(total, &[]);
        })
        .build();
    frames_by_type(
        meter,
        hot,
        FrameDirection::Sent,
        "chatbox.messages.sent",
        "WebSocket frames written to clients, by type.",
    );
    let sockets = Arc::clone(hot);
    meter
        .i64_observable_gauge("chatbox.websocket.connections")
        .with_description("WebSockets open now.")
        .with_callback(move |observer| observer.observe(sockets.sockets_open(), &[]))
        .build();
    verdict_gauge(
        meter,
        hot,
        "chatbox.ready",
        "1 when the last readiness check passed, 0 when it failed; absent before the first.",
        HotCounters::ready,
    );
    verdict_gauge(
        meter,
        hot,
        "chatbox.redis.up",
        "1 while Redis (HUB_BACKEND=redis) answers, 0 during an outage; absent with HUB_BACKEND=memory.",
        HotCounters::shared_state,
    );
}

/// A gauge of a yes-or-no state `read` from the hot counters: 1 or 0, absent while the
/// state is unknown.
fn verdict_gauge(
    meter: &Meter,
    hot: &Arc<HotCounters>,
    name: &'static str,
    description: &'static str,
    read: fn(&HotCounters) -> Option<bool>,
) {
    let hot = Arc::clone(hot);
    meter
        .u64_observable_gauge(name)
        .with_description(description)
        .with_callback(move |observer| {
            if let Some(verdict) = read(&hot) {
                observer.observe(u64::from(verdict), &[]);
            }
        })
        .build();
}

/// A counter of the frames travelling `direction`, one series per frame type.
fn frames_by_type(
    meter: &Meter,
    hot: &Arc<HotCounters>,
    direction: FrameDirection,
    name: &'static str,
    description: &'static str,
) {
    let hot = Arc::clone(hot);
    meter
        .u64_observable_counter(name)
        .with_description(description)
        .with_callback(move |observer| {
            hot.frame_totals(direction, |frame_type, total| {
                observer.observe(total, &[KeyValue::new("type", frame_type)]);
            });
        })
        .build();
}

impl Metrics for Telemetry {
    fn socket_opened(&self) {
        self.hot.socket_opened();
    }

    fn socket_closed(&self, lifetime: Duration) {
        self.hot.socket_closed();
        self.instruments.socket_lifetime.record(lifetime.as_secs_f64(), &[]);
    }

    fn frame_counter(&self, direction: FrameDirection, frame_type: &'static str) -> FrameCounter {
        self.hot.frame_counter(direction, frame_type)
    }

    fn slow_consumer_disconnected(&self) {
        self.instruments.slow_consumers.add(1, &[]);
    }

    fn session_created(&self) {
        self.instruments.sessions_created.add(1, &[]);
    }

    fn session_ended(&self) {
        self.instruments.sessions_ended.add(1, &[]);
    }

    fn llm_request(&self, provider: &ModelId) {
        self.instruments.llm_requests.add(1, &[self.providers.get(provider)]);
    }

    fn llm_error(&self, provider: &ModelId, kind: LlmErrorKind) {
        let attributes = [self.providers.get(provider), KeyValue::new("kind", kind.as_str())];
        self.instruments.llm_errors.add(1, &attributes);
    }

    fn llm_retry(&self, provider: &ModelId) {
        self.instruments.llm_retries.add(1, &[self.providers.get(provider)]);
    }

    fn time_to_first_token(&self, provider: &ModelId, elapsed: Duration) {
        self.instruments.first_token.record(elapsed.as_secs_f64(), &[self.providers.get(provider)]);
    }

    fn gateway_latency(&self, elapsed: Duration) {
        self.instruments.gateway_latency.record(elapsed.as_secs_f64(), &[]);
    }

    fn answer_finished(&self, provider: &ModelId, reason: FinishReason, duration: Duration) {
        let attributes = [self.providers.get(provider), KeyValue::new("finish_reason", reason.as_str())];
        self.instruments.answer_duration.record(duration.as_secs_f64(), &attributes);
    }

    fn tokens_used(&self, provider: &ModelId, prompt: u64, completion: u64) {
        let provider = self.providers.get(provider);
        let tokens = &self.instruments.tokens;
        tokens.add(prompt, &[provider.clone(), KeyValue::new("type", "prompt")]);
        tokens.add(completion, &[provider, KeyValue::new("type", "completion")]);
    }

    fn rate_limited(&self, limiter: Limiter) {
        self.instruments.rate_limited.add(1, &[KeyValue::new("limiter", limiter.as_str())]);
    }

    fn storage_operation(&self, operation: &'static str, outcome: StorageOutcome, duration: Duration) {
        let attributes = [KeyValue::new("operation", operation), KeyValue::new("outcome", outcome.as_str())];
        self.instruments.storage_duration.record(duration.as_secs_f64(), &attributes);
    }

    fn storage_retry(&self, operation: &'static str) {
        self.instruments.storage_retries.add(1, &[KeyValue::new("operation", operation)]);
    }

    fn storage_retry_operations(&self, operations: &'static [&'static str]) {
        for operation in operations {
            self.instruments.storage_retries.add(0, &[KeyValue::new("operation", *operation)]);
        }
    }

    fn readiness_checked(&self, ready: bool) {
        self.hot.readiness_checked(ready);
    }

    fn shared_state_reachable(&self, reachable: bool) {
        self.hot.shared_state_reachable(reachable);
        // Added at 0 when it answers, so the series exists from the start.
        self.instruments.redis_outages.add(u64::from(!reachable), &[]);
    }

    fn http_request(&self, route: &'static str, method: &str, status: u16, duration: Duration) {
        let attributes = [
            KeyValue::new("endpoint", route),
            KeyValue::new("method", labels::method(method)),
            KeyValue::new("status", i64::from(status)),
        ];
        self.instruments.http_duration.record(duration.as_secs_f64(), &attributes);
    }

    fn takeover(&self) {
        self.instruments.takeovers.add(1, &[]);
    }

    fn help_requested(&self) {
        self.instruments.help_requests.add(1, &[]);
    }

    fn alert(&self, channel: &'static str, delivered: bool) {
        let outcome = if delivered { "sent" } else { "failed" };
        self.instruments
            .alerts
            .add(1, &[KeyValue::new("channel", channel), KeyValue::new("outcome", outcome)]);
    }

    fn file_uploaded(&self, kind: FileKind, bytes: u64) {
        let kind = [KeyValue::new("file_kind", file_kind(kind))];
        self.instruments.files_uploaded.add(1, &kind);
        self.instruments.upload_bytes.add(bytes, &kind);
    }

    fn upload_refused(&self, code: &'static str) {
        self.instruments.uploads_refused.add(1, &[KeyValue::new("code", code)]);
    }

    fn file_deleted(&self, reason: &'static str) {
        self.instruments.files_deleted.add(1, &[KeyValue::new("reason", reason)]);
    }
}

/// The `kind` label of a file.
const fn file_kind(kind: FileKind) -> &'static str {
    match kind {
        FileKind::Image => "image",
        FileKind::Audio => "audio",
        FileKind::Document => "document",
    }
}

impl MetricsExposition for Telemetry {
    fn content_type(&self) -> &'static str {
        prometheus::TEXT_FORMAT
    }

    fn render(&self) -> Result<String, ExpositionError> {
        TextEncoder::new()
            .encode_to_string(&self.registry.gather())
            .map_err(|error| ExpositionError(error.to_string()))
    }
}

#[cfg(test)]
mod tests;
