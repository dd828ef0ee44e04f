//! Each event moves its series, with its labels; the rendering has our names, units and
//! types only; no label value escapes its fixed set.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use chatbox_application::ports::{
    FrameDirection, Limiter, LlmErrorKind, Metrics, MetricsExposition, SessionRepository, StorageOutcome,
};
use chatbox_domain::{FinishReason, ModelId, Session, SessionId, UserId};

use crate::{Gauge, METRIC_NAMES, MeteredRepository, Telemetry};

/// The Prometheus text reader the top-level tests use.
#[path = "../../../tests/support/prometheus.rs"]
mod prometheus;

use prometheus::Scrape;

/// The value of the one sample named `name` whose labels include `labels`: a series
/// that is absent fails here rather than reading as 0.
fn value(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    let matching: Vec<_> = scrape
        .samples
        .iter()
        .filter(|s| {
            s.name == name && labels.iter().all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .collect();
    assert_eq!(matching.len(), 1, "one sample {name} {labels:?}, found {matching:?}");
    matching[0].value
}

fn families(scrape: &Scrape) -> BTreeSet<&str> {
    scrape.types.keys().map(String::as_str).collect()
}

/// The frame types `record_everything` asks counters for (the HTTP adapter asks for
/// the wire format's; this crate only passes the names through).
const FRAME_TYPES: [&str; 4] = ["user_message", "ping", "other", "ai_response"];

fn telemetry() -> Telemetry {
    Telemetry::new(["demo", "openai"]).expect("telemetry")
}

fn scrape(telemetry: &Telemetry) -> Scrape {
    Scrape::parse(&telemetry.render().expect("render"))
}

fn model(id: &str) -> ModelId {
    ModelId::parse(id).expect("model id")
}

/// One of every event, some twice, with an unknown provider and method among them.
fn record_everything(metrics: &dyn Metrics) {
    metrics.socket_opened();
    metrics.socket_opened();
    metrics.socket_closed(Duration::from_secs(3));
    let received = |frame_type| metrics.frame_counter(FrameDirection::Received, frame_type);
    let user_messages = received("user_message");
    for _ in 0..3 {
        user_messages.increment();
    }
    received("ping");
    let refused = |frame_type| metrics.frame_counter(FrameDirection::Refused, frame_type);
    // Asked again, the same counter: one series.
    refused("other").increment();
    let other = refused("other");
    assert_eq!(other.total(), 1);
    let ai_responses = metrics.frame_counter(FrameDirection::Sent, "ai_response");
    ai_responses.increment();
    ai_responses.increment();
    metrics.slow_consumer_disconnected();
    metrics.session_created();
    metrics.session_ended();
    metrics.llm_request(&model("demo"));
    metrics.llm_request(&model("demo"));
    metrics.llm_request(&model("someone-else"));
    metrics.llm_error(&model("demo"), LlmErrorKind::Server);
    metrics.llm_retry(&model("demo"));
    metrics.time_to_first_token(&model("demo"), Duration::from_millis(300));
    metrics.gateway_latency(Duration::from_micros(700));
    metrics.answer_finished(&model("openai"), FinishReason::Stop, Duration::from_secs(4));
    metrics.tokens_used(&model("demo"), 12, 30);
    metrics.tokens_used(&model("demo"), 1, 2);
    metrics.rate_limited(Limiter::CommandBudget);
    metrics.storage_operation("append_message", StorageOutcome::Ok, Duration::from_millis(2));
    metrics.storage_retry_operations(&["append_message", "create_index"]);
    metrics.storage_retry("append_message");
    metrics.readiness_checked(false);
    metrics.readiness_checked(true);
    metrics.shared_state_reachable(true);
    metrics.shared_state_reachable(false);
    metrics.shared_state_reachable(true);
    metrics.shared_state_reachable(false);
    metrics.http_request("/sessions/{id}/end", "POST", 200, Duration::from_millis(8));
    metrics.http_request("/healthz", "BREW", 405, Duration::from_millis(1));
    metrics.takeover();
    metrics.help_requested();
    metrics.alert("email", true);
    metrics.alert("sms", false);
    metrics.file_uploaded(chatbox_domain::upload::FileKind::Image, 1_500);
    metrics.upload_refused("UNSUPPORTED_MEDIA_TYPE");
    metrics.file_deleted("retention");
}

#[test]
fn each_event_moves_its_series_with_its_labels() {
    let telemetry = telemetry();
    telemetry.observe(Gauge::LiveSessions, || 7);
    record_everything(&telemetry);
    let s = scrape(&telemetry);

    assert_eq!(value(&s, "chatbox_websocket_connections", &[]), 1.0);
    assert_eq!(value(&s, "chatbox_websocket_connection_duration_seconds_count", &[]), 1.0);
    assert_eq!(value(&s, "chatbox_websocket_connection_duration_seconds_sum", &[]), 3.0);
    assert_eq!(value(&s, "chatbox_websocket_connection_duration_seconds_bucket", &[("le", "1")]), 0.0);
    assert_eq!(value(&s, "chatbox_websocket_connection_duration_seconds_bucket", &[("le", "5")]), 1.0);
    assert_eq!(value(&s, "chatbox_messages_received_total", &[("type", "user_message")]), 3.0);
    assert!(
        s.samples.iter().all(|sample| sample.name != "chatbox_messages_received_total"
            || sample.labels.iter().all(|(key, value)| key != "type" || value != "other")),
        "refused frames are not received messages"
    );
    assert_eq!(value(&s, "chatbox_message_errors_total", &[]), 1.0);
    assert_eq!(value(&s, "chatbox_ready", &[]), 1.0, "the last verdict");
    assert_eq!(value(&s, "chatbox_redis_up", &[]), 0.0, "the last change: an outage");
    assert_eq!(value(&s, "chatbox_redis_outages_total", &[]), 2.0, "one per outage");
    assert_eq!(value(&s, "chatbox_messages_received_total", &[("type", "ping")]), 0.0);
    assert_eq!(value(&s, "chatbox_messages_sent_total", &[("type", "ai_response")]), 2.0);
    assert_eq!(value(&s, "chatbox_slow_consumer_disconnects_total", &[]), 1.0);
    assert_eq!(value(&s, "chatbox_sessions_created_total", &[]), 1.0);
    assert_eq!(value(&s, "chatbox_sessions_ended_total", &[]), 1.0);
    assert_eq!(value(&s, "chatbox_active_sessions", &[]), 7.0);
    assert_eq!(value(&s, "chatbox_llm_requests_total", &[("provider", "demo")]), 2.0);
    assert_eq!(value(&s, "chatbox_llm_requests_total", &[("provider", "openai")]), 0.0);
    assert_eq!(value(&s, "chatbox_llm_requests_total", &[("provider", "other")]), 1.0);
    assert_eq!(value(&s, "chatbox_llm_errors_total", &[("provider", "demo"), ("kind", "server")]), 1.0);
    assert_eq!(value(&s, "chatbox_llm_retries_total", &[("provider", "demo")]), 1.0);
    assert_eq!(value(&s, "chatbox_llm_latency_seconds_count", &[("provider", "demo")]), 1.0);
    assert_eq!(value(&s, "chatbox_llm_latency_seconds_bucket", &[("provider", "demo"), ("le", "0.25")]), 0.0);
    assert_eq!(value(&s, "chatbox_llm_latency_seconds_bucket", &[("provider", "demo"), ("le", "0.5")]), 1.0);
    assert_eq!(value(&s, "chatbox_gateway_latency_seconds_count", &[]), 1.0);
    assert_eq!(value(&s, "chatbox_gateway_latency_seconds_bucket", &[("le", "0.001")]), 1.0);
    assert_eq!(value(&s, "chatbox_gateway_latency_seconds_bucket", &[("le", "0.0005")]), 0.0);
    let answer = [("provider", "openai"), ("finish_reason", "stop")];
    assert_eq!(value(&s, "chatbox_answer_duration_seconds_count", &answer), 1.0);
    assert_eq!(value(&s, "chatbox_answer_duration_seconds_sum", &answer), 4.0);
    assert_eq!(value(&s, "chatbox_tokens_used_total", &[("provider", "demo"), ("type", "prompt")]), 13.0);
    assert_eq!(value(&s, "chatbox_tokens_used_total", &[("provider", "demo"), ("type", "completion")]), 32.0);
    assert_eq!(value(&s, "chatbox_ratelimit_blocked_total", &[("limiter", "command_budget")]), 1.0);
    assert_eq!(value(&s, "chatbox_ratelimit_blocked_total", &[("limiter", "message")]), 0.0);
    let storage = [("operation", "append_message"), ("outcome", "ok")];
    assert_eq!(value(&s, "chatbox_mongodb_operation_seconds_count", &storage), 1.0);
    assert_eq!(value(&s, "chatbox_storage_retries_total", &[("operation", "append_message")]), 1.0);
    assert_eq!(value(&s, "chatbox_storage_retries_total", &[("operation", "create_index")]), 0.0);
    let http = [("endpoint", "/sessions/{id}/end"), ("method", "POST"), ("status", "200")];
    assert_eq!(value(&s, "chatbox_http_request_duration_seconds_count", &http), 1.0);
    let odd = [("endpoint", "/healthz"), ("method", "other"), ("status", "405")];
    assert_eq!(value(&s, "chatbox_http_request_duration_seconds_count", &odd), 1.0);
    assert_eq!(value(&s, "chatbox_admin_takeovers_total", &[]), 1.0);
    assert_eq!(value(&s, "chatbox_help_requests_total", &[]), 1.0);
    assert_eq!(value(&s, "chatbox_alerts_total", &[("channel", "email"), ("outcome", "sent")]), 1.0);
    assert_eq!(value(&s, "chatbox_alerts_total", &[("channel", "sms"), ("outcome", "failed")]), 1.0);
    assert_eq!(value(&s, "chatbox_files_uploaded_total", &[("file_kind", "image")]), 1.0);
    assert_eq!(value(&s, "chatbox_files_uploaded_total", &[("file_kind", "audio")]), 0.0);
    assert_eq!(value(&s, "chatbox_file_upload_bytes_total", &[("file_kind", "image")]), 1_500.0);
    assert_eq!(value(&s, "chatbox_uploads_refused_total", &[("code", "UNSUPPORTED_MEDIA_TYPE")]), 1.0);
    assert_eq!(value(&s, "chatbox_files_deleted_total", &[("reason", "retention")]), 1.0);
    assert_eq!(value(&s, "chatbox_files_deleted_total", &[("reason", "orphan")]), 0.0);

    // And the gauge comes back down.
    telemetry.socket_closed(Duration::from_secs(1));
    let s = scrape(&telemetry);
    assert_eq!(value(&s, "chatbox_websocket_connections", &[]), 0.0);
    assert_eq!(value(&s, "chatbox_websocket_connection_duration_seconds_count", &[]), 2.0);
}

#[test]
fn the_rendering_has_our_families_only_with_units_and_types_in_their_names() {
    let telemetry = telemetry();
    telemetry.observe(Gauge::LiveSessions, || 0);
    record_everything(&telemetry);
    let text = telemetry.render().expect("render");
    assert!(!text.contains("target_info"), "no target_info");
    assert!(!text.contains("otel_scope"), "no scope labels");
    let s = Scrape::parse(&text);
    let expected: BTreeSet<&str> = METRIC_NAMES.into_iter().collect();
    assert_eq!(families(&s), expected, "exactly the documented families");
    for (name, kind) in &s.types {
        assert!(name.starts_with("chatbox_"), "{name}");
        match kind.as_str() {
            "counter" => assert!(name.ends_with("_total"), "{name}"),
            "histogram" => assert!(name.ends_with("_seconds"), "{name}: durations in seconds"),
            "gauge" => assert!(!name.ends_with("_total"), "{name}"),
            other => panic!("{name} has type {other}"),
        }
    }
    assert_eq!(telemetry.content_type(), "text/plain; version=0.0.4");
}

#[test]
fn fresh_metrics_show_their_counters_at_zero() {
    let telemetry = telemetry();
    // A frame type's series shows from the moment its counter is handed out.
    telemetry.frame_counter(FrameDirection::Sent, "pong");
    let s = scrape(&telemetry);
    assert_eq!(value(&s, "chatbox_sessions_created_total", &[]), 0.0);
    assert_eq!(value(&s, "chatbox_llm_requests_total", &[("provider", "openai")]), 0.0);
    assert_eq!(value(&s, "chatbox_ratelimit_blocked_total", &[("limiter", "connection")]), 0.0);
    assert_eq!(value(&s, "chatbox_messages_sent_total", &[("type", "pong")]), 0.0);
    assert_eq!(value(&s, "chatbox_websocket_connections", &[]), 0.0);
    assert_eq!(value(&s, "chatbox_message_errors_total", &[]), 0.0);
    assert!(!families(&s).contains("chatbox_ready"), "no verdict before the first readiness check");
    assert!(!families(&s).contains("chatbox_redis_up"), "no Redis series without Redis");
    assert!(!families(&s).contains("chatbox_redis_outages_total"), "no Redis series without Redis");
    for kind in LlmErrorKind::ALL {
        let labels = [("provider", "openai"), ("kind", kind.as_str())];
        assert_eq!(value(&s, "chatbox_llm_errors_total", &labels), 0.0, "{kind:?}");
    }
    assert_eq!(value(&s, "chatbox_llm_retries_total", &[("provider", "demo")]), 0.0);
    for channel in ["email", "sms"] {
        for outcome in ["sent", "failed"] {
            let labels = [("channel", channel), ("outcome", outcome)];
            assert_eq!(value(&s, "chatbox_alerts_total", &labels), 0.0, "{channel} {outcome}");
        }
    }
}

#[test]
fn no_label_value_leaves_its_fixed_set() {
    let telemetry = telemetry();
    telemetry.observe(Gauge::LiveSessions, || 0);
    record_everything(&telemetry);
    for kind in LlmErrorKind::ALL {
        telemetry.llm_error(&model("a-provider-nobody-configured"), kind);
    }
    for outcome in StorageOutcome::ALL {
        telemetry.storage_operation("load", outcome, Duration::from_millis(1));
    }
    for reason in [
        FinishReason::Stop,
        FinishReason::Length,
        FinishReason::Cancelled,
        FinishReason::Timeout,
        FinishReason::Error,
    ] {
        telemetry.answer_finished(&model("x"), reason, Duration::from_secs(1));
    }
    let allowed = |key: &str, value: &str| -> bool {
        match key {
            "provider" => ["demo", "openai", "other"].contains(&value),
            "type" => FRAME_TYPES.contains(&value) || ["prompt", "completion"].contains(&value),
            "kind" => LlmErrorKind::ALL.iter().any(|k| k.as_str() == value),
            "limiter" => Limiter::ALL.iter().any(|l| l.as_str() == value),
            "outcome" => {
                StorageOutcome::ALL.iter().any(|o| o.as_str() == value) || ["sent", "failed"].contains(&value)
            }
            "finish_reason" => ["stop", "length", "cancelled", "timeout", "error"].contains(&value),
            "method" => {
                ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "other"].contains(&value)
            }
            "status" => value.parse::<u16>().is_ok(),
            "le" => value == "+Inf" || value.parse::<f64>().is_ok(),
            // Names fixed in the code that calls the port (`&'static str`).
            "endpoint" | "operation" | "channel" => !value.is_empty(),
            "file_kind" => ["image", "audio", "document"].contains(&value),
            "reason" => ["orphan", "retention"].contains(&value),
            "code" => chatbox_domain::ErrorCode::ALL.iter().any(|code| code.as_str() == value),
            other => panic!("unexpected label {other}={value}"),
        }
    };
    for sample in scrape(&telemetry).samples {
        for (key, value) in &sample.labels {
            assert!(allowed(key, value), "{} has {key}={value}", sample.name);
        }
    }
}

#[test]
fn every_metric_has_a_row_in_the_operations_guide() {
    let guide = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/operations.md"))
        .expect("docs/operations.md");
    for name in METRIC_NAMES {
        assert!(guide.contains(&format!("| `{name}`")), "docs/operations.md has no row for {name}");
    }
}

#[test]
fn two_instances_keep_their_series_apart() {
    let (one, two) = (telemetry(), telemetry());
    one.session_created();
    assert_eq!(value(&scrape(&one), "chatbox_sessions_created_total", &[]), 1.0);
    assert_eq!(value(&scrape(&two), "chatbox_sessions_created_total", &[]), 0.0);
}

fn session(id: &str) -> Session {
    Session::new(
        SessionId::parse(id).expect("id"),
        UserId::parse("alice").expect("user"),
        model("demo"),
        chatbox_domain::Timestamp::default(),
    )
}

#[tokio::test]
async fn storage_operations_are_timed_by_operation_and_outcome_and_abandoned_ones_count_as_timeouts() {
    let telemetry = Arc::new(telemetry());
    let inner = Arc::new(chatbox_memory_store::MemorySessionRepository::new(10));
    let repository = MeteredRepository::new(inner, Arc::clone(&telemetry) as Arc<dyn Metrics>);
    repository.create(&session("s1")).await.expect("created");
    assert!(repository.create(&session("s1")).await.is_err(), "taken");
    assert!(repository.load(&SessionId::parse("s1").expect("id")).await.expect("loaded").is_some());
    // A call that stalls, abandoned at its deadline as `Deps::storage` does.
    let stalled = tokio::time::timeout(
        Duration::from_millis(5),
        repository.timed::<()>("set_model", std::future::pending()),
    )
    .await;
    assert!(stalled.is_err(), "the stalled call was abandoned");
    let s = scrape(&telemetry);
    let count = |operation: &str, outcome: &str| {
        value(
            &s,
            "chatbox_mongodb_operation_seconds_count",
            &[("operation", operation), ("outcome", outcome)],
        )
    };
    assert_eq!(count("create_session", "ok"), 1.0);
    assert_eq!(count("create_session", "conflict"), 1.0);
    assert_eq!(count("load_session", "ok"), 1.0);
    assert_eq!(count("set_model", "timeout"), 1.0);
    let stalled_for = value(
        &s,
        "chatbox_mongodb_operation_seconds_sum",
        &[("operation", "set_model"), ("outcome", "timeout")],
    );
    assert!(stalled_for >= 0.005, "timed until abandoned: {stalled_for}");
}
