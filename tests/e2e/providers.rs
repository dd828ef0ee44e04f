//! Real provider wire formats through the whole service: a client on the WebSocket, the
//! gateway, and local servers speaking OpenAI's and Anthropic's (and Dify's) streams.

use std::time::Duration;

use serde_json::{Value, json};

use crate::fake_provider::{FakeProvider, Part, Script, Wire};
use crate::support::{TestApp, answer_text, done, spawn_app};
use crate::ws;

const KEY: &str = "sk-live-SECRET-KEY-abcdef0123456789";

/// The service with `primary` (type of `primary_wire`) and an Anthropic `second`.
async fn gateway(
    primary: &FakeProvider,
    primary_wire: Wire,
    second: &FakeProvider,
    extra: &[(&str, &str)],
) -> TestApp {
    let primary_url = primary.url("/v1");
    let second_url = second.url("/v1");
    let mut vars: Vec<(&str, &str)> = vec![
        ("LLM_PROVIDER_1_ID", "primary"),
        ("LLM_PROVIDER_1_NAME", "Primary"),
        ("LLM_PROVIDER_1_TYPE", primary_wire.kind()),
        ("LLM_PROVIDER_1_ENDPOINT", &primary_url),
        ("LLM_PROVIDER_1_API_KEY", KEY),
        ("LLM_PROVIDER_1_MODEL", "model-a"),
        ("LLM_PROVIDER_1_DELAY", ""),
        ("LLM_PROVIDER_2_ID", "second"),
        ("LLM_PROVIDER_2_NAME", "Second"),
        ("LLM_PROVIDER_2_TYPE", "anthropic"),
        ("LLM_PROVIDER_2_ENDPOINT", &second_url),
        ("LLM_PROVIDER_2_API_KEY", KEY),
        ("LLM_PROVIDER_2_MODEL", "claude-test"),
        ("LLM_PROVIDER_2_DELAY", ""),
    ];
    vars.extend_from_slice(extra);
    spawn_app(&vars).await
}

fn assert_nothing_secret(frames: &[Value]) {
    for frame in frames {
        let text = frame.to_string();
        assert!(!text.contains("SECRET"), "a key or a provider body reached the client: {text}");
    }
}

#[tokio::test]
async fn answers_stream_from_openai_and_anthropic_wire_formats_with_their_usage() {
    let (openai, anthropic) = (FakeProvider::start().await, FakeProvider::start().await);
    openai.push(Wire::OpenAi.answer(&["Hello", " from", " OpenAI."], 5));
    anthropic.push(Wire::Anthropic.answer(&["Hello", " from", " Claude."], 5));
    let app = gateway(&openai, Wire::OpenAi, &anthropic, &[]).await;
    let mut client = app.connect("alice", "").await;
    assert_eq!(
        client.status["models"],
        json!([{"id": "primary", "name": "Primary"}, {"id": "second", "name": "Second"}])
    );

    let frames = client.ask("hi").await;
    assert_eq!(answer_text(&frames), "Hello from OpenAI.");
    let end = done(&frames);
    assert_eq!(end["metadata"]["finish_reason"], "stop");
    assert_eq!(end["metadata"]["prompt_tokens"], "11");
    assert_eq!(end["metadata"]["completion_tokens"], "7");
    assert_eq!(end["metadata"]["total_tokens"], "18");
    assert_eq!(end["metadata"]["usage_estimated"], "false");
    assert!(end["metadata"]["time_to_first_token_ms"].as_str().is_some());

    client.send(json!({"type": "model_select", "model_id": "second"})).await;
    client.next_json().await;
    let frames = client.ask("and you?").await;
    assert_eq!(answer_text(&frames), "Hello from Claude.");
    assert_eq!(done(&frames)["model_id"], "second");
    let request = &anthropic.requests()[0];
    let turns: Vec<&str> = request.body["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["content"].as_str().expect("text"))
        .collect();
    assert_eq!(turns, ["hi", "Hello from OpenAI.", "and you?"], "the history crosses providers");
    assert_nothing_secret(&frames);
    app.stop().await;
}

#[tokio::test]
async fn a_stalled_provider_gives_llm_timeout_after_the_idle_timeout_and_is_hung_up_on() {
    let (openai, anthropic) = (FakeProvider::start().await, FakeProvider::start().await);
    openai.push(Wire::OpenAi.then(&["Thinking"], vec![Part::Stall]));
    let app = gateway(&openai, Wire::OpenAi, &anthropic, &[("LLM_IDLE_TIMEOUT", "600ms")]).await;
    let mut client = app.connect("alice", "").await;
    let started = std::time::Instant::now();
    let frames = client.ask("hello?").await;
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(600) && elapsed < Duration::from_secs(5), "{elapsed:?}");
    let error = &frames[frames.len() - 2];
    assert_eq!(error["error"]["code"], "LLM_TIMEOUT");
    assert_eq!(done(&frames)["metadata"]["finish_reason"], "timeout");
    assert_eq!(answer_text(&frames), "Thinking", "the partial answer was streamed");
    assert!(done(&frames)["seq"].as_u64().is_some(), "and stored");
    assert!(openai.wait_for_hang_ups(1, Duration::from_secs(5)).await, "the provider request was aborted");
    app.stop().await;
}

#[tokio::test]
async fn stop_closes_the_provider_connection() {
    let (openai, anthropic) = (FakeProvider::start().await, FakeProvider::start().await);
    openai.push(Wire::OpenAi.then(&["Once", " upon"], vec![Part::Stall]));
    let app = gateway(&openai, Wire::OpenAi, &anthropic, &[]).await;
    let mut client = app.connect("alice", "").await;
    client.send(json!({"type": "user_message", "content": "tell a story"})).await;
    let mut text = String::new();
    while text != "Once upon" {
        let frame = client.next_json().await;
        assert!(!ws::is_done(&frame), "the answer ended before it stalled: {frame}");
        text.push_str(frame["content"].as_str().unwrap_or_default());
    }
    client.send(json!({"type": "stop"})).await;
    let frames = client.until_done().await;
    assert_eq!(done(&frames)["metadata"]["finish_reason"], "cancelled");
    assert!(
        openai.wait_for_hang_ups(1, Duration::from_secs(5)).await,
        "the provider saw the connection close"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_provider_failing_with_500_forever_falls_back_to_the_other() {
    let (openai, anthropic) = (FakeProvider::start().await, FakeProvider::start().await);
    for _ in 0..2 {
        openai.push(Script::error(500, "SECRET-BODY stack trace of the upstream"));
    }
    anthropic.push(Wire::Anthropic.answer(&["Fallback", " answer."], 9));
    let app = gateway(
        &openai,
        Wire::OpenAi,
        &anthropic,
        &[("LLM_PROVIDER_1_FALLBACK", "second"), ("LLM_MAX_RETRIES", "1")],
    )
    .await;
    let mut client = app.connect("alice", "").await;
    let frames = client.ask("anyone there?").await;
    assert_eq!(answer_text(&frames), "Fallback answer.");
    assert_eq!(done(&frames)["model_id"], "second");
    assert_eq!(done(&frames)["metadata"]["finish_reason"], "stop");
    assert!(frames.iter().all(|f| f["type"] != "error"), "a recovered failure is not an error");
    assert_eq!(openai.requests().len(), 2, "one try and one retry");
    assert_nothing_secret(&frames);
    app.stop().await;
}

#[tokio::test]
async fn a_failure_after_the_first_token_ends_the_answer_with_an_error_and_keeps_the_partial() {
    let (anthropic, other) = (FakeProvider::start().await, FakeProvider::start().await);
    let mut body = Wire::Anthropic.opening();
    body.push_str(&Wire::Anthropic.text("Half an"));
    body.push_str(&Wire::Anthropic.text(" answer"));
    body.push_str(&Wire::Anthropic.error_event());
    anthropic.push(Script::events(vec![Part::Bytes(body.into_bytes())]));
    let app = gateway(&anthropic, Wire::Anthropic, &other, &[("LLM_PROVIDER_1_FALLBACK", "second")]).await;
    let mut client = app.connect("alice", "").await;
    let session = client.session_id();
    let frames = client.ask("go").await;
    assert_eq!(answer_text(&frames), "Half an answer");
    assert_eq!(frames[frames.len() - 2]["error"]["code"], "LLM_UNAVAILABLE");
    assert_eq!(done(&frames)["metadata"]["finish_reason"], "error");
    assert_eq!(anthropic.requests().len(), 1, "no retry after the first token");
    assert!(other.requests().is_empty(), "no fallback after the first token");
    assert_nothing_secret(&frames);

    let mut back = app.connect("alice", &format!("&session_id={session}&last_seq=1")).await;
    let stored = back.next_json().await;
    assert_eq!(stored["content"], "Half an answer");
    assert_eq!(stored["metadata"]["finish_reason"], "error", "stored and marked as partial");
    app.stop().await;
}

#[tokio::test]
async fn dify_gets_the_real_user_and_the_sessions_conversation_id() {
    let (dify, other) = (FakeProvider::start().await, FakeProvider::start().await);
    dify.push(Wire::Dify.answer(&["One."], 64));
    dify.push(Wire::Dify.answer(&["Two."], 64));
    let app = gateway(&dify, Wire::Dify, &other, &[]).await;
    let mut client = app.connect("alice", "").await;
    client.ask("first").await;
    let frames = client.ask("second").await;
    assert_eq!(answer_text(&frames), "Two.");
    let requests = dify.requests();
    assert_eq!(requests[0].body["user"], "alice");
    assert!(requests[0].body.get("conversation_id").is_none());
    assert_eq!(requests[1].body["conversation_id"], "conv-1");
    assert_eq!(requests[1].body["query"], "second");
    app.stop().await;
}
