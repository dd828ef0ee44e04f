//! Metrics through the real server: a conversation, a closed socket, a flood, a refused
//! connection, a slow consumer and a failing provider each move their series, read back
//! from `/metrics` and parsed; the scrape is refused outside `METRICS_ALLOWED_NETWORKS`.
//!
//! Each test starts its own server, so its series start at zero. Where the server
//! records after the client could see the effect (a frame counted once written, a
//! socket counted once its task ends), the test first passes a barrier that orders
//! them (a `ping` answered after the frames before it were written) or, for a socket's
//! end, reads the scrape until it shows the change or a deadline passes.

use serde_json::json;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::fake_provider::{FakeProvider, Script, Wire};
use crate::prometheus::Scrape;
use crate::support::{TestApp, WAIT, spawn_app};
use crate::ws;

/// `GET path`: status, head (lower case) and body.
async fn get(app: &TestApp, path: &str) -> (u16, String, String) {
    app.http_raw("GET", path, &[]).await
}

async fn scrape(app: &TestApp) -> Scrape {
    let (status, _, body) = get(app, "/metrics").await;
    assert_eq!(status, 200, "{body}");
    Scrape::parse(&body)
}

/// Scrapes until `ready` holds, for effects recorded when a server task ends (nothing
/// else signals them); fails at the deadline.
pub(crate) async fn scrape_until(app: &TestApp, what: &str, ready: impl Fn(&Scrape) -> bool) -> Scrape {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let scrape = scrape(app).await;
        if ready(&scrape) {
            return scrape;
        }
        assert!(tokio::time::Instant::now() < deadline, "{what} never showed in the scrape");
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn a_conversation_moves_the_socket_frame_answer_and_storage_series() {
    let app = spawn_app(&[]).await;
    let before = scrape(&app).await;
    assert_eq!(before.get("chatbox_websocket_connections", &[]), 0.0);
    assert_eq!(before.get("chatbox_llm_requests_total", &[("provider", "demo")]), 0.0);

    let mut client = app.connect("alice", "").await;
    let mut other = app.connect("bob", "").await;
    let frames = client.ask("Hello there").await;
    let chunks = frames.iter().filter(|f| f["type"] == "ai_response").count();
    assert!(chunks >= 2, "chunks and the done frame: {frames:#?}");
    // Barrier: the pong is written after every frame before it, so those are counted.
    assert!(client.frames_before_pong().await.is_empty());
    client.send_text("{not json").await;
    assert_eq!(client.next_json().await["error"]["code"], "INVALID_FORMAT");

    let s = scrape(&app).await;
    assert_eq!(s.get("chatbox_websocket_connections", &[]), 2.0);
    assert_eq!(s.get("chatbox_messages_received_total", &[("type", "user_message")]), 1.0);
    assert_eq!(s.get("chatbox_messages_received_total", &[("type", "ping")]), 1.0);
    assert_eq!(s.get("chatbox_message_errors_total", &[]), 1.0);
    assert_eq!(s.get("chatbox_messages_sent_total", &[("type", "connection_status")]), 2.0);
    assert_eq!(s.get("chatbox_messages_sent_total", &[("type", "loading")]), 1.0);
    assert_eq!(s.get("chatbox_messages_sent_total", &[("type", "ai_response")]), chunks as f64);
    assert!(s.get("chatbox_messages_sent_total", &[("type", "pong")]) <= 1.0);
    assert_eq!(s.get("chatbox_llm_requests_total", &[("provider", "demo")]), 1.0);
    assert_eq!(s.get("chatbox_llm_requests_total", &[("provider", "second")]), 0.0);
    let answer = [("provider", "demo"), ("finish_reason", "stop")];
    assert_eq!(s.get("chatbox_answer_duration_seconds_count", &answer), 1.0);
    assert!(s.get("chatbox_answer_duration_seconds_sum", &answer) > 0.0);
    assert_eq!(s.get("chatbox_llm_latency_seconds_count", &[("provider", "demo")]), 1.0);
    assert_eq!(s.get("chatbox_gateway_latency_seconds_count", &[]), 1.0, "the first chunk, written once");
    let gateway = s.get("chatbox_gateway_latency_seconds_sum", &[]);
    assert!((0.0..1.0).contains(&gateway), "the gateway's own latency is small: {gateway}");
    let done = frames.last().expect("done");
    let tokens = |kind: &str| {
        done["metadata"][format!("{kind}_tokens")].as_str().expect("usage").parse::<f64>().expect("n")
    };
    assert_eq!(
        s.get("chatbox_tokens_used_total", &[("provider", "demo"), ("type", "prompt")]),
        tokens("prompt")
    );
    assert_eq!(
        s.get("chatbox_tokens_used_total", &[("provider", "demo"), ("type", "completion")]),
        tokens("completion")
    );
    assert_eq!(s.get("chatbox_active_sessions", &[]), 1.0);
    let stored = [("operation", "append_message"), ("outcome", "ok")];
    assert_eq!(s.get("chatbox_mongodb_operation_seconds_count", &stored), 2.0, "question and answer");
    assert_eq!(
        s.get(
            "chatbox_mongodb_operation_seconds_count",
            &[("operation", "create_session"), ("outcome", "ok")]
        ),
        1.0
    );

    // Closing a socket moves the lifetime histogram and brings the gauge back.
    assert_eq!(s.get("chatbox_websocket_connection_duration_seconds_count", &[]), 0.0);
    other.socket.close(None).await.expect("close");
    let _ = ws::until_closed(&mut other.socket, ws::deadline_in(WAIT)).await;
    let s = scrape_until(&app, "the closed socket", |s| {
        s.get("chatbox_websocket_connection_duration_seconds_count", &[]) == 1.0
    })
    .await;
    assert_eq!(s.get("chatbox_websocket_connections", &[]), 1.0);
    app.stop().await;
}

#[tokio::test]
async fn a_flood_and_a_refused_connection_move_their_limiters() {
    let app = spawn_app(&[("MAX_CONNECTIONS_PER_USER", "1")]).await;
    let mut client = app.connect("flooder", "").await;
    let typing = json!({"type": "typing_indicator", "metadata": {"typing": "true"}}).to_string();
    for _ in 0..400 {
        client.send_text(&typing).await;
    }
    let (close, frames) = client.until_closed().await;
    assert_eq!(close.map(|c| c.code), Some(CloseCode::Policy));
    let refusals = frames.iter().filter(|f| f["error"]["code"] == "TOO_MANY_REQUESTS").count();
    assert!(refusals >= 2, "{frames:#?}");

    let mut held = app.connect("alice", "").await;
    let (status, body, _) =
        app.refused(&app.ws_url(&format!("?token={}", crate::support::token("alice"))), &[]).await;
    assert_eq!((status, body["code"].as_str()), (429, Some("CONNECTION_LIMIT_EXCEEDED")));

    let s = scrape(&app).await;
    assert_eq!(s.get("chatbox_ratelimit_blocked_total", &[("limiter", "command_budget")]), refusals as f64);
    assert_eq!(s.get("chatbox_ratelimit_blocked_total", &[("limiter", "connection")]), 1.0);
    assert_eq!(s.get("chatbox_ratelimit_blocked_total", &[("limiter", "message")]), 0.0);
    assert!(s.get("chatbox_messages_received_total", &[("type", "typing_indicator")]) >= refusals as f64);
    let told = held.frames_before_pong().await;
    assert!(
        told.iter().any(|f| f["type"] == "notification"),
        "the held socket hears of the refusal: {told:#?}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_slow_consumer_disconnect_is_counted() {
    let app = spawn_app(&[
        ("WS_SEND_BUFFER", "16384"),
        ("RATE_LIMIT", "100000"),
        ("ANSWER_QUEUE_LIMIT", "100"),
        ("MAX_CONTENT_CHARS", "100000"),
    ])
    .await;
    let mut writer = app.connect("alice", "").await;
    writer.ask("start").await;
    let mut slow = app.connect("alice", &format!("&session_id={}", writer.session_id())).await;
    writer.send_captions(110).await;
    let (close, _) = slow.until_closed().await;
    assert_eq!(close.map(|c| c.reason.to_string()), Some("Slow consumer".to_owned()));
    let s = scrape(&app).await;
    assert_eq!(s.get("chatbox_slow_consumer_disconnects_total", &[]), 1.0);
    app.stop().await;
}

#[tokio::test]
async fn provider_failures_and_retries_are_counted_by_provider() {
    let openai = FakeProvider::start().await;
    openai.push(Script::error(503, "busy"));
    openai.push(Wire::OpenAi.answer(&["Second", " try."], 7));
    let primary = openai.url("/v1");
    let app = spawn_app(&[
        ("LLM_PROVIDER_1_ID", "primary"),
        ("LLM_PROVIDER_1_NAME", "Primary"),
        ("LLM_PROVIDER_1_TYPE", "openai"),
        ("LLM_PROVIDER_1_ENDPOINT", &primary),
        ("LLM_PROVIDER_1_API_KEY", "sk-test-0123456789abcdef"),
        ("LLM_PROVIDER_1_MODEL", "gpt-test"),
        ("LLM_PROVIDER_1_DELAY", ""),
        ("LLM_MAX_RETRIES", "1"),
    ])
    .await;
    let mut client = app.connect("alice", "").await;
    let frames = client.ask("hi").await;
    assert_eq!(frames.last().expect("done")["metadata"]["finish_reason"], "stop");
    let s = scrape(&app).await;
    assert_eq!(s.get("chatbox_llm_requests_total", &[("provider", "primary")]), 2.0);
    assert_eq!(s.get("chatbox_llm_errors_total", &[("provider", "primary"), ("kind", "server")]), 1.0);
    assert_eq!(s.get("chatbox_llm_retries_total", &[("provider", "primary")]), 1.0);
    // The provider's own counts (prompt 11, completion 7), not estimates.
    assert_eq!(s.get("chatbox_tokens_used_total", &[("provider", "primary"), ("type", "prompt")]), 11.0);
    assert_eq!(s.get("chatbox_tokens_used_total", &[("provider", "primary"), ("type", "completion")]), 7.0);
    app.stop().await;
}

#[tokio::test]
async fn both_paths_serve_the_same_prometheus_text() {
    let app = spawn_app(&[]).await;
    let (status, head, body) = get(&app, "/metrics").await;
    assert_eq!(status, 200);
    assert!(head.contains("content-type: text/plain; version=0.0.4"), "{head}");
    let (status, head_prefixed, body_prefixed) = get(&app, "/chat/metrics/prometheus").await;
    assert_eq!(status, 200);
    assert!(head_prefixed.contains("content-type: text/plain; version=0.0.4"), "{head_prefixed}");
    // Scraping is itself an HTTP request, so only that family may differ between two.
    let (root, prefixed) = (Scrape::parse(&body), Scrape::parse(&body_prefixed));
    let family = "chatbox_http_request_duration_seconds";
    assert_eq!(root.without(family), prefixed.without(family));
    let families = |s: &Scrape| s.types.keys().filter(|n| *n != family).cloned().collect::<Vec<_>>();
    assert_eq!(families(&root), families(&prefixed));
    // The first scrape is in the second: recorded before its response was sent.
    let scrapes = [("endpoint", "/metrics"), ("method", "GET"), ("status", "200")];
    assert_eq!(root.get("chatbox_http_request_duration_seconds_count", &scrapes), 0.0);
    assert_eq!(prefixed.get("chatbox_http_request_duration_seconds_count", &scrapes), 1.0);
    assert!(root.types.keys().all(|name| name.starts_with("chatbox_")), "{:?}", root.types);
    assert!(!body.contains("target_info") && !body.contains("otel_scope"));
    assert_eq!(get(&app, "/chat/metrics").await.0, 404, "only the two documented paths");
    app.stop().await;
}

#[tokio::test]
async fn a_client_outside_the_allowed_networks_gets_403() {
    let app = spawn_app(&[("METRICS_ALLOWED_NETWORKS", "10.0.0.0/8")]).await;
    for path in ["/metrics", "/chat/metrics/prometheus"] {
        let (status, head, body) = get(&app, path).await;
        assert_eq!(status, 403, "{path}");
        assert!(head.contains("content-type: application/json"), "{head}");
        let body: serde_json::Value = serde_json::from_str(&body).expect("json error");
        assert_eq!(body["code"], "FORBIDDEN", "{path}");
        assert!(!body.to_string().contains("chatbox_"), "no metric leaks: {body}");
    }
    // Forwarding headers are not believed: the TCP peer is what counts.
    let (status, _, _) = app.http_raw("GET", "/metrics", &[("X-Forwarded-For", "10.1.2.3")]).await;
    assert_eq!(status, 403);
    app.stop().await;
}

#[tokio::test]
async fn sessions_help_requests_takeovers_and_http_routes_move_their_series() {
    let app = spawn_app(&[("ADMIN_RATE_LIMIT", "2")]).await;
    let mut client = app.connect("alice", "").await;
    client.ask("hello").await;
    let session = client.session_id();
    client.send(serde_json::json!({"type": "help_request"})).await;
    assert_eq!(client.next_json().await["metadata"]["state"], "help_requested");
    let admin = crate::support::admin_token("root");
    let (status, _, _) = app.json("POST", &format!("/chat/admin/takeover/{session}"), Some(&admin)).await;
    assert_eq!(status, 200);
    let (status, _, _) = app.json("POST", &format!("/chat/admin/release/{session}"), Some(&admin)).await;
    assert_eq!(status, 200);
    let (status, _, _) = app.json("GET", "/chat/admin/metrics", Some(&admin)).await;
    assert_eq!(status, 429, "over ADMIN_RATE_LIMIT");
    let (status, _, _) = app
        .json("POST", &format!("/chat/sessions/{session}/end"), Some(&crate::support::token("alice")))
        .await;
    assert_eq!(status, 200);

    let scrape = scrape(&app).await;
    assert_eq!(scrape.get("chatbox_sessions_created_total", &[]), 1.0);
    assert_eq!(scrape.get("chatbox_sessions_ended_total", &[]), 1.0);
    assert_eq!(scrape.get("chatbox_help_requests_total", &[]), 1.0);
    assert_eq!(scrape.get("chatbox_admin_takeovers_total", &[]), 1.0);
    assert_eq!(scrape.get("chatbox_ratelimit_blocked_total", &[("limiter", "admin_http")]), 1.0);
    let takeover = [("endpoint", "/admin/takeover/{session_id}"), ("method", "POST"), ("status", "200")];
    assert_eq!(scrape.get("chatbox_http_request_duration_seconds_count", &takeover), 1.0);
    let limited = [("endpoint", "/admin/metrics"), ("method", "GET"), ("status", "429")];
    assert_eq!(scrape.get("chatbox_http_request_duration_seconds_count", &limited), 1.0);
    assert!(
        scrape.samples.iter().all(|s| s.labels.values().all(|v| !v.contains(&session))),
        "no label carries a session id"
    );
    app.stop().await;
}

/// The earlier service's series that dashboards and alerts use, by name, type and the
/// labels it had (an added label is allowed), as a fresh service serves them.
const EARLIER_SERIES: [(&str, &str, &[&str]); 14] = [
    ("chatbox_messages_received_total", "counter", &["type"]),
    ("chatbox_messages_sent_total", "counter", &["type"]),
    ("chatbox_llm_requests_total", "counter", &["provider"]),
    ("chatbox_llm_latency_seconds", "histogram", &["provider"]),
    ("chatbox_llm_errors_total", "counter", &["provider"]),
    ("chatbox_sessions_created_total", "counter", &[]),
    ("chatbox_sessions_ended_total", "counter", &[]),
    ("chatbox_admin_takeovers_total", "counter", &[]),
    ("chatbox_message_errors_total", "counter", &[]),
    ("chatbox_tokens_used_total", "counter", &["provider"]),
    ("chatbox_mongodb_operation_seconds", "histogram", &["operation"]),
    ("chatbox_ratelimit_blocked_total", "counter", &["limiter"]),
    ("chatbox_websocket_connection_duration_seconds", "histogram", &[]),
    ("chatbox_http_request_duration_seconds", "histogram", &["endpoint", "method"]),
];

#[tokio::test]
async fn the_earlier_services_series_keep_their_names_types_and_labels() {
    let app = spawn_app(&[]).await;
    // One of each event that creates a labelled series not shown at 0 from the start.
    let mut client = app.connect("alice", "").await;
    client.ask("Hello there").await;
    assert!(client.frames_before_pong().await.is_empty());
    client.socket.close(None).await.expect("close");
    let _ = ws::until_closed(&mut client.socket, ws::deadline_in(WAIT)).await;
    let s = scrape_until(&app, "the closed socket", |s| {
        s.get("chatbox_websocket_connection_duration_seconds_count", &[]) == 1.0
    })
    .await;
    for (name, kind, labels) in EARLIER_SERIES {
        assert_eq!(s.types.get(name).map(String::as_str), Some(kind), "{name} is a {kind}");
        let sample = if kind == "histogram" { format!("{name}_count") } else { name.to_owned() };
        let samples: Vec<_> = s.samples.iter().filter(|x| x.name == sample).collect();
        assert!(!samples.is_empty(), "{name} has a series");
        for sample in samples {
            for label in labels {
                assert!(sample.labels.contains_key(*label), "{name} has label {label}: {sample:?}");
            }
        }
    }
    assert!(s.get("chatbox_messages_received_total", &[("type", "user_message")]) >= 1.0);
    assert!(s.get("chatbox_ratelimit_blocked_total", &[("limiter", "message")]) == 0.0);
    // The earlier upgrade guide's check: `curl /metrics | grep -E "websocket|session|rate"`.
    let (_, _, body) = get(&app, "/metrics").await;
    let grepped: Vec<&str> = body
        .lines()
        .filter(|line| ["websocket", "session", "rate"].iter().any(|word| line.contains(word)))
        .collect();
    for family in [
        "chatbox_websocket_connections ",
        "chatbox_websocket_connection_duration_seconds_count",
        "chatbox_active_sessions ",
        "chatbox_sessions_created_total",
        "chatbox_ratelimit_blocked_total{",
    ] {
        assert!(grepped.iter().any(|line| line.starts_with(family)), "the grep shows {family}");
    }
    app.stop().await;
}

#[tokio::test]
async fn the_readiness_gauge_is_the_last_readiness_verdict() {
    let app = spawn_app(&[]).await;
    assert!(!scrape(&app).await.types.contains_key("chatbox_ready"), "absent before the first check");
    assert_eq!(get(&app, "/chat/readyz").await.0, 200);
    assert_eq!(scrape(&app).await.get("chatbox_ready", &[]), 1.0);
    app.stop().await;
}
