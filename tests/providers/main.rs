//! The provider contract suite: every adapter, driven through a local server speaking
//! its provider's real streaming wire format, must give the same answers to the same
//! situations. A new adapter joins by adding a `Wire` fixture and a line to `adapter`.

#[path = "../support/fake_provider.rs"]
mod fake_provider;
#[path = "../support/logs.rs"]
mod logs;
mod vision;

use std::sync::Arc;
use std::time::Duration;

use chatbox_application::ports::{
    AnswerStream, ChatRequest, ChatTurn, LlmProvider, ProviderError, Role, StreamEvent,
};
use chatbox_domain::{FinishReason, ModelId, SessionId, Usage, UserId};
use chatbox_llm::{AnthropicProvider, DifyProvider, OpenAiProvider, ProviderConfig};
use fake_provider::{FakeProvider, Part, Script, Wire};
use futures::StreamExt;

const KEY: &str = "sk-test-SECRET-KEY-0123456789";

fn adapter(wire: Wire, server: &FakeProvider) -> Arc<dyn LlmProvider> {
    adapter_at(wire, server.url("/v1"))
}

/// The configuration every adapter of this suite gets (`_VISION` off).
fn config(endpoint: String) -> ProviderConfig {
    ProviderConfig {
        endpoint,
        api_key: Some(chatbox_domain::Secret::new(KEY)),
        model: Some("model-x".to_owned()),
        max_tokens: Some(256),
        temperature: Some(0.2),
        vision: false,
    }
}

fn adapter_at(wire: Wire, endpoint: String) -> Arc<dyn LlmProvider> {
    let config = config(endpoint);
    match wire {
        Wire::OpenAi => Arc::new(OpenAiProvider::new(config).expect("client")),
        Wire::Anthropic => Arc::new(AnthropicProvider::new(config).expect("client")),
        Wire::Dify => Arc::new(DifyProvider::new(config).expect("client")),
    }
}

fn request(conversation_id: Option<&str>) -> ChatRequest {
    ChatRequest {
        model_id: ModelId::parse("m").expect("id"),
        system_prompt: Some("Be brief.".into()),
        history: vec![
            ChatTurn::text(Role::User, "first question"),
            ChatTurn::text(Role::Assistant, "first answer"),
            ChatTurn::text(Role::User, "second question"),
        ],
        user_id: UserId::parse("user-42").expect("id"),
        session_id: SessionId::parse("s1").expect("id"),
        conversation_id: conversation_id.map(str::to_owned),
    }
}

/// Everything the stream yields (up to 5 s), and the error that ended it, if any.
async fn drain(mut stream: AnswerStream) -> (Vec<StreamEvent>, Option<ProviderError>) {
    let mut events = Vec::new();
    loop {
        match tokio::time::timeout(Duration::from_secs(5), stream.next())
            .await
            .expect("the stream keeps moving")
        {
            Some(Ok(event)) => events.push(event),
            Some(Err(error)) => return (events, Some(error)),
            None => return (events, None),
        }
    }
}

fn text(events: &[StreamEvent]) -> String {
    events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::Delta(d) => Some(d.as_str()),
            _ => None,
        })
        .collect()
}

/// True when the stream carried the provider's own token counts.
fn reported_usage(events: &[StreamEvent], prompt_tokens: u64, completion_tokens: u64) -> bool {
    events.contains(&StreamEvent::Usage(Usage { prompt_tokens, completion_tokens, estimated: false }))
}

const WORDS: [&str; 4] = ["Hello", " there,", " friend", "."];

#[tokio::test]
async fn every_adapter_streams_text_usage_and_a_stop_whatever_the_byte_boundaries() {
    for wire in Wire::ALL {
        for piece in [1, 2, 3, 7, 64, 100_000] {
            let server = FakeProvider::start().await;
            server.push(wire.answer(&WORDS, piece));
            let stream = adapter(wire, &server).stream(&request(None)).await.expect("started");
            let (events, error) = drain(stream).await;
            assert!(error.is_none(), "{wire:?}/{piece}: {error:?}");
            assert_eq!(text(&events), "Hello there, friend.", "{wire:?} split every {piece} bytes");
            assert!(reported_usage(&events, 11, 7), "{wire:?}: provider-reported usage in {events:?}");
            assert_eq!(
                events.iter().filter(|e| matches!(e, StreamEvent::Finished(_))).count(),
                1,
                "{wire:?}"
            );
            assert!(events.contains(&StreamEvent::Finished(FinishReason::Stop)), "{wire:?}");
        }
    }
}

#[tokio::test]
async fn every_adapter_sends_the_request_its_provider_expects() {
    for wire in Wire::ALL {
        let server = FakeProvider::start().await;
        server.push(wire.answer(&WORDS, 64));
        let stream = adapter(wire, &server).stream(&request(Some("conv-9"))).await.expect("started");
        drain(stream).await;
        let recorded = &server.requests()[0];
        assert_eq!((recorded.method.as_str(), recorded.path.as_str()), ("POST", wire.path()), "{wire:?}");
        assert_eq!(recorded.header("accept"), Some("text/event-stream"), "{wire:?}");
        let body = &recorded.body;
        match wire {
            Wire::OpenAi => {
                assert_eq!(
                    recorded.header("authorization").map(|v| v == format!("Bearer {KEY}")),
                    Some(true)
                );
                assert_eq!(body["model"], "model-x");
                assert_eq!(body["stream"], true);
                assert_eq!(body["stream_options"]["include_usage"], true);
                assert_eq!(body["max_tokens"], 256, "compatible servers get max_tokens");
                assert!((body["temperature"].as_f64().expect("temperature") - 0.2).abs() < 1e-6);
                let roles: Vec<&str> = body["messages"]
                    .as_array()
                    .expect("messages")
                    .iter()
                    .map(|m| m["role"].as_str().expect("role"))
                    .collect();
                assert_eq!(roles, ["system", "user", "assistant", "user"]);
                assert_eq!(body["messages"][0]["content"], "Be brief.");
                assert_eq!(body["messages"][3]["content"], "second question");
            }
            Wire::Anthropic => {
                assert_eq!(recorded.header("x-api-key"), Some(KEY));
                assert_eq!(recorded.header("anthropic-version"), Some("2023-06-01"));
                assert_eq!(body["system"], "Be brief.", "top-level system, not a message");
                assert_eq!(body["max_tokens"], 256);
                assert_eq!(body["stream"], true);
                let roles: Vec<&str> = body["messages"]
                    .as_array()
                    .expect("messages")
                    .iter()
                    .map(|m| m["role"].as_str().expect("role"))
                    .collect();
                assert_eq!(roles, ["user", "assistant", "user"]);
            }
            Wire::Dify => {
                assert_eq!(
                    recorded.header("authorization").map(|v| v == format!("Bearer {KEY}")),
                    Some(true)
                );
                assert_eq!(body["query"], "second question");
                assert_eq!(body["user"], "user-42", "the real user, not a shared daily id");
                assert_eq!(body["conversation_id"], "conv-9");
                assert_eq!(body["response_mode"], "streaming");
            }
        }
    }
}

#[tokio::test]
async fn dify_reports_its_conversation_id_once() {
    let server = FakeProvider::start().await;
    server.push(Wire::Dify.answer(&WORDS, 64));
    let stream = adapter(Wire::Dify, &server).stream(&request(None)).await.expect("started");
    let (events, _) = drain(stream).await;
    let ids: Vec<&StreamEvent> =
        events.iter().filter(|e| matches!(e, StreamEvent::Conversation(_))).collect();
    assert_eq!(ids, [&StreamEvent::Conversation("conv-1".into())]);
    assert!(body_has_no_conversation(&server.requests()[0].body));
}

fn body_has_no_conversation(body: &serde_json::Value) -> bool {
    body.get("conversation_id").is_none()
}

#[tokio::test]
async fn an_error_event_is_a_classified_failure_and_its_text_stays_inside() {
    for wire in Wire::ALL {
        let server = FakeProvider::start().await;
        server.push(Script::events(vec![Part::Bytes(
            (wire.opening() + &wire.text("Hi") + &wire.error_event()).into_bytes(),
        )]));
        let stream = adapter(wire, &server).stream(&request(None)).await.expect("started");
        let (events, error) = drain(stream).await;
        assert_eq!(text(&events), "Hi", "{wire:?}");
        let error = error.unwrap_or_else(|| panic!("{wire:?}: an error event is not a normal end"));
        assert!(error.is_retryable(), "{wire:?}: overloaded / server errors are retryable kinds: {error:?}");
        assert!(!error.to_string().contains("SECRET"), "{wire:?}: {error}");
        assert!(!events.iter().any(|e| matches!(e, StreamEvent::Finished(_))), "{wire:?}");
    }
}

#[tokio::test]
async fn a_mid_stream_disconnect_is_a_failure_not_an_end() {
    for wire in Wire::ALL {
        let server = FakeProvider::start().await;
        server.push(wire.then(&["Half"], vec![Part::Pause(Duration::from_millis(20)), Part::Disconnect]));
        let stream = adapter(wire, &server).stream(&request(None)).await.expect("started");
        let (events, error) = drain(stream).await;
        assert_eq!(text(&events), "Half", "{wire:?}");
        assert!(matches!(error, Some(ProviderError::Stream(_))), "{wire:?}: {error:?}");
    }
}

#[tokio::test]
async fn rate_limits_carry_retry_after_and_the_next_request_succeeds() {
    for wire in Wire::ALL {
        let server = FakeProvider::start().await;
        server.push(
            Script::error(429, r#"{"error":{"message":"SECRET-BODY slow down"}}"#).header("retry-after", "2"),
        );
        server.push(wire.answer(&WORDS, 64));
        let provider = adapter(wire, &server);
        let error = provider.stream(&request(None)).await.err().expect("refused");
        assert!(
            matches!(error, ProviderError::RateLimited { retry_after: Some(d) } if d == Duration::from_secs(2)),
            "{wire:?}: {error:?}"
        );
        assert!(!error.to_string().contains("SECRET"));
        let (events, error) = drain(provider.stream(&request(None)).await.expect("second try")).await;
        assert!(error.is_none());
        assert_eq!(text(&events), "Hello there, friend.");
    }
}

#[tokio::test]
async fn server_and_client_errors_are_classified_by_status() {
    for wire in Wire::ALL {
        let server = FakeProvider::start().await;
        server.push(Script::error(500, "SECRET-BODY internal trace"));
        server.push(Script::error(401, r#"{"error":"SECRET-BODY bad key"}"#));
        server.push(Script::error(529, r#"{"type":"error","error":{"type":"overloaded_error"}}"#));
        let provider = adapter(wire, &server);
        let first = provider.stream(&request(None)).await.err().expect("500");
        assert!(matches!(first, ProviderError::Server { status: 500 }), "{wire:?}: {first:?}");
        let second = provider.stream(&request(None)).await.err().expect("401");
        assert!(
            matches!(second, ProviderError::Rejected { status: 401 }) && !second.is_retryable(),
            "{wire:?}"
        );
        let third = provider.stream(&request(None)).await.err().expect("529");
        assert!(matches!(third, ProviderError::Overloaded), "{wire:?}");
        for error in [first, second, third] {
            assert!(!error.to_string().contains("SECRET"), "{wire:?}: {error}");
        }
    }
}

#[tokio::test]
async fn connection_refused_is_a_retryable_connect_failure() {
    let unused = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("address");
    for wire in Wire::ALL {
        let provider = adapter_at(wire, format!("http://{unused}/v1"));
        let error = provider.stream(&request(None)).await.err().expect("refused");
        assert!(matches!(error, ProviderError::Connect(_)) && error.is_retryable(), "{wire:?}: {error:?}");
        assert!(!error.to_string().contains(KEY));
    }
}

#[tokio::test]
async fn dropping_the_stream_closes_the_provider_connection() {
    for wire in Wire::ALL {
        let server = FakeProvider::start().await;
        server.push(wire.then(&["Still ", "going"], vec![Part::Stall]));
        let mut stream = adapter(wire, &server).stream(&request(None)).await.expect("started");
        let mut seen = String::new();
        while seen != "Still going" {
            // A stream that ends or fails here would otherwise be polled forever.
            match tokio::time::timeout(Duration::from_secs(5), stream.next()).await {
                Ok(Some(Ok(StreamEvent::Delta(delta)))) => seen.push_str(&delta),
                Ok(Some(Ok(_))) => {}
                other => panic!("{wire:?}: the stream stopped before \"Still going\" ({seen:?}): {other:?}"),
            }
        }
        assert!(
            tokio::time::timeout(Duration::from_millis(200), stream.next()).await.is_err(),
            "{wire:?}: stalled"
        );
        drop(stream);
        assert!(
            server.wait_for_hang_ups(1, Duration::from_secs(5)).await,
            "{wire:?}: the provider saw the connection close"
        );
    }
}

#[tokio::test]
async fn a_stream_that_ends_without_its_terminator_is_incomplete() {
    for wire in [Wire::Anthropic, Wire::Dify, Wire::OpenAi] {
        let server = FakeProvider::start().await;
        server.push(Script::events(vec![Part::Bytes((wire.opening() + &wire.text("cut")).into_bytes())]));
        let (events, error) =
            drain(adapter(wire, &server).stream(&request(None)).await.expect("started")).await;
        assert_eq!(text(&events), "cut");
        assert!(matches!(error, Some(ProviderError::Stream(_))), "{wire:?}: {error:?}");
    }
}

#[tokio::test]
async fn a_json_answer_instead_of_an_event_stream_is_refused() {
    for wire in Wire::ALL {
        let server = FakeProvider::start().await;
        server.push(Script {
            status: 200,
            headers: vec![("content-type".into(), "application/json".into())],
            parts: vec![Part::Bytes(b"{\"SECRET-BODY\":1}".to_vec())],
        });
        let error = adapter(wire, &server).stream(&request(None)).await.err().expect("refused");
        assert!(
            matches!(error, ProviderError::Stream(_)) && !error.to_string().contains("SECRET"),
            "{wire:?}: {error:?}"
        );
    }
}

#[tokio::test]
async fn anthropic_and_dify_accept_the_kind_from_the_event_line_alone() {
    let anthropic = concat!(
        "event: message_start\ndata: {\"message\":{\"usage\":{\"input_tokens\":3,\"output_tokens\":0}}}\n\n",
        "event: content_block_delta\ndata: {\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"terse\"}}\n\n",
        "event: message_delta\ndata: {\"delta\":{\"stop_reason\":\"max_tokens\"},\"usage\":{\"output_tokens\":1}}\n\n",
        "event: message_stop\ndata: {}\n\n",
    );
    let dify = concat!(
        "event: message\ndata: {\"answer\":\"terse\",\"conversation_id\":\"c\"}\n\n",
        "event: message_end\ndata: {\"metadata\":{\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":1}}}\n\n",
    );
    for (wire, body, reason) in
        [(Wire::Anthropic, anthropic, FinishReason::Length), (Wire::Dify, dify, FinishReason::Stop)]
    {
        let server = FakeProvider::start().await;
        server.push(Script::events(vec![Part::Bytes(body.as_bytes().to_vec())]));
        let (events, error) =
            drain(adapter(wire, &server).stream(&request(None)).await.expect("started")).await;
        assert!(error.is_none(), "{wire:?}: {error:?}");
        assert_eq!(text(&events), "terse", "{wire:?}");
        assert!(events.contains(&StreamEvent::Finished(reason)), "{wire:?}: {events:?}");
        assert!(reported_usage(&events, 3, 1), "{wire:?}");
    }
}

#[tokio::test]
async fn nothing_after_the_end_of_an_answer_is_read() {
    for wire in Wire::ALL {
        let server = FakeProvider::start().await;
        let mut body = wire.opening() + &wire.text("Done.") + &wire.closing();
        body.push_str(&wire.error_event());
        server.push(Script::events(vec![Part::Bytes(body.into_bytes())]));
        let (events, error) =
            drain(adapter(wire, &server).stream(&request(None)).await.expect("started")).await;
        assert!(error.is_none(), "{wire:?}: an event after the end is not part of the answer: {error:?}");
        assert_eq!(text(&events), "Done.");
        assert!(
            matches!(events.last(), Some(StreamEvent::Finished(FinishReason::Stop))),
            "{wire:?}: {events:?}"
        );
    }
}

#[tokio::test]
async fn a_provider_echoing_the_key_in_an_error_body_never_puts_it_in_the_logs() {
    // What a provider (or a proxy in front of it) that echoes the request sends back;
    // the last one is padded so the key straddles where the logged body is cut.
    let bodies = [
        (401, format!(r#"{{"error":{{"message":"Incorrect API key provided: {KEY}"}}}}"#)),
        (
            401,
            format!(r#"{{"request":{{"headers":{{"authorization":"Bearer {KEY}","x-api-key":"{KEY}"}}}}}}"#),
        ),
        (500, format!("internal error\nrequest headers:\nx-api-key: {KEY}\nAuthorization: Bearer {KEY}\n")),
        (500, format!("{}{KEY} trailing", "x".repeat(290))),
    ];
    for wire in Wire::ALL {
        for (status, body) in &bodies {
            let server = FakeProvider::start().await;
            server.push(Script::error(*status, body));
            let (logs, guard) = logs::capture_logs(tracing::Level::TRACE);
            let error = adapter(wire, &server).stream(&request(None)).await.err().expect("refused");
            drop(guard);
            let logs = String::from_utf8_lossy(&logs.lock().expect("logs")).into_owned();
            assert!(logs.contains("provider refused the request"), "{wire:?}: the body is logged: {logs}");
            assert!(!logs.contains(KEY) && !logs.contains("SECRET-KEY"), "{wire:?}/{status}: {logs}");
            assert!(logs.contains("[redacted]"), "{wire:?}/{status}: {logs}");
            assert!(!error.to_string().contains("SECRET"), "{wire:?}: {error}");
        }
    }
}
