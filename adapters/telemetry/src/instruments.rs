//! Every instrument the service exports: its OpenTelemetry name, unit, description and
//! histogram buckets. The exporter turns `chatbox.answer.duration` with unit `s` into
//! `chatbox_answer_duration_seconds`, and adds `_total` to counters.
//!
//! Durations are recorded in seconds (Prometheus' base unit); the buckets fit each
//! measurement's range.
//!
//! Where the earlier Go service exported a series with the same meaning, the instrument
//! carries its name, type and labels (an added label at most), so existing dashboards and
//! alerts keep working: `docs/operations.md` has the table, old name to new. Its two
//! gauges named `_total` are the exception: they are served as conventional gauge names
//! (`chatbox_websocket_connections`, `chatbox_active_sessions`), and the shipped
//! recording rules give dashboards the old names.

use opentelemetry::metrics::{Counter, Histogram, Meter};

/// The Prometheus names of every family [`crate::Telemetry`] renders (the table in
/// `docs/operations.md` lists each).
pub const METRIC_NAMES: [&str; 30] = [
    "chatbox_websocket_connections",
    "chatbox_websocket_connection_duration_seconds",
    "chatbox_messages_received_total",
    "chatbox_message_errors_total",
    "chatbox_messages_sent_total",
    "chatbox_slow_consumer_disconnects_total",
    "chatbox_sessions_created_total",
    "chatbox_sessions_ended_total",
    "chatbox_active_sessions",
    "chatbox_llm_requests_total",
    "chatbox_llm_errors_total",
    "chatbox_llm_retries_total",
    "chatbox_llm_latency_seconds",
    "chatbox_gateway_latency_seconds",
    "chatbox_answer_duration_seconds",
    "chatbox_tokens_used_total",
    "chatbox_ratelimit_blocked_total",
    "chatbox_mongodb_operation_seconds",
    "chatbox_storage_retries_total",
    "chatbox_http_request_duration_seconds",
    "chatbox_admin_takeovers_total",
    "chatbox_help_requests_total",
    "chatbox_alerts_total",
    "chatbox_ready",
    "chatbox_redis_up",
    "chatbox_redis_outages_total",
    "chatbox_files_uploaded_total",
    "chatbox_file_upload_bytes_total",
    "chatbox_uploads_refused_total",
    "chatbox_files_deleted_total",
];

/// The earlier service's bounds (1 s to 1 h, so its dashboards' `le` values exist) and
/// longer ones up to a day.
const SOCKET_LIFETIME: [f64; 15] = [
    1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0, 14_400.0, 43_200.0,
    86_400.0,
];
const FIRST_TOKEN: [f64; 12] = [0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 30.0, 60.0];
/// The gateway's own latency is expected in microseconds to a few milliseconds.
const GATEWAY: [f64; 12] =
    [0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0];
const ANSWER: [f64; 11] = [0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0];
const STORAGE: [f64; 13] = [0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
const HTTP: [f64; 12] = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// The synchronous instruments (recorded at most once per answer, request, socket or
/// storage call). The per-frame counters and the gauges are observable: see `lib.rs`.
#[derive(Debug)]
pub(crate) struct Instruments {
    pub socket_lifetime: Histogram<f64>,
    pub slow_consumers: Counter<u64>,
    pub sessions_created: Counter<u64>,
    pub sessions_ended: Counter<u64>,
    pub llm_requests: Counter<u64>,
    pub llm_errors: Counter<u64>,
    pub llm_retries: Counter<u64>,
    pub first_token: Histogram<f64>,
    pub gateway_latency: Histogram<f64>,
    pub answer_duration: Histogram<f64>,
    pub tokens: Counter<u64>,
    pub rate_limited: Counter<u64>,
    pub storage_duration: Histogram<f64>,
    pub storage_retries: Counter<u64>,
    pub http_duration: Histogram<f64>,
    pub takeovers: Counter<u64>,
    pub help_requests: Counter<u64>,
    pub alerts: Counter<u64>,
    pub redis_outages: Counter<u64>,
    pub files_uploaded: Counter<u64>,
    pub upload_bytes: Counter<u64>,
    pub uploads_refused: Counter<u64>,
    pub files_deleted: Counter<u64>,
}

fn seconds(meter: &Meter, name: &'static str, description: &'static str, buckets: &[f64]) -> Histogram<f64> {
    meter
        .f64_histogram(name)
        .with_unit("s")
        .with_description(description)
        .with_boundaries(buckets.to_vec())
        .build()
}

fn counter(meter: &Meter, name: &'static str, description: &'static str) -> Counter<u64> {
    meter.u64_counter(name).with_description(description).build()
}

impl Instruments {
    pub(crate) fn new(meter: &Meter) -> Self {
        Self {
            socket_lifetime: seconds(
                meter,
                "chatbox.websocket.connection.duration",
                "How long WebSockets stayed open, measured when they close.",
                &SOCKET_LIFETIME,
            ),
            slow_consumers: counter(
                meter,
                "chatbox.slow_consumer.disconnects",
                "Sockets closed because their outbound queue overflowed (WS_SEND_BUFFER).",
            ),
            sessions_created: counter(meter, "chatbox.sessions.created", "Sessions created."),
            sessions_ended: counter(meter, "chatbox.sessions.ended", "Sessions ended."),
            llm_requests: counter(
                meter,
                "chatbox.llm.requests",
                "Requests sent to model providers, retries and fallbacks included.",
            ),
            llm_errors: counter(
                meter,
                "chatbox.llm.errors",
                "Provider requests that failed before or during their stream, by kind.",
            ),
            llm_retries: counter(
                meter,
                "chatbox.llm.retries",
                "Provider requests tried again after a retryable failure.",
            ),
            first_token: seconds(
                meter,
                "chatbox.llm.latency",
                "Time to first token: from the start of an answer (history loading, retries and fallbacks included) to its first token.",
                &FIRST_TOKEN,
            ),
            gateway_latency: seconds(
                meter,
                "chatbox.gateway.latency",
                "From an answer's first token arriving from the provider to its frame written on a client socket.",
                &GATEWAY,
            ),
            answer_duration: seconds(
                meter,
                "chatbox.answer.duration",
                "From the start of an answer to its done frame, by finish reason.",
                &ANSWER,
            ),
            tokens: counter(
                meter,
                "chatbox.tokens.used",
                "Tokens used by answers (estimated when the provider reported none), by type.",
            ),
            rate_limited: counter(
                meter,
                "chatbox.ratelimit.blocked",
                "Requests, commands and connections refused by a limiter.",
            ),
            storage_duration: seconds(
                meter,
                "chatbox.mongodb.operation",
                "Storage operations (MongoDB, or the in-memory store), by operation and outcome.",
                &STORAGE,
            ),
            storage_retries: counter(
                meter,
                "chatbox.storage.retries",
                "Storage operations retried after a transient failure.",
            ),
            http_duration: seconds(
                meter,
                "chatbox.http.request.duration",
                "HTTP requests, by endpoint (route template), method and status.",
                &HTTP,
            ),
            takeovers: counter(meter, "chatbox.admin.takeovers", "Sessions taken over by an admin."),
            help_requests: counter(meter, "chatbox.help_requests", "Help requests from users."),
            alerts: counter(meter, "chatbox.alerts", "Alerts sent to admins, by channel and outcome."),
            redis_outages: counter(
                meter,
                "chatbox.redis.outages",
                "Times Redis (HUB_BACKEND=redis) stopped answering; absent with HUB_BACKEND=memory.",
            ),
            files_uploaded: counter(meter, "chatbox.files.uploaded", "Files uploaded and stored, by kind."),
            upload_bytes: meter
                .u64_counter("chatbox.file.upload")
                .with_unit("By")
                .with_description("Bytes of files stored (after image metadata was stripped), by kind.")
                .build(),
            uploads_refused: counter(meter, "chatbox.uploads.refused", "Uploads refused, by error code."),
            files_deleted: counter(
                meter,
                "chatbox.files.deleted",
                "Stored files deleted by the cleanup, by reason (orphan, retention).",
            ),
        }
    }
}
