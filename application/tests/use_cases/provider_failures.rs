//! Provider failures (`answer/start`, `answer/stream`): retried with backoff and
//! `Retry-After` before the first token, then the fallback model; a rejected request is
//! not retried; a failure after the first token ends the answer; the provider's own
//! error text never reaches the client.

use std::time::Duration;

use chatbox_application::events::ServerEvent;
use chatbox_domain::{ErrorCode, FinishReason, ModelId, Seq};

use crate::support::{
    ACTOR_DIED, LogLines, Refusal, Step, answer_text, done_of, error_code, harness, harness_with, settings,
};

#[tokio::test(start_paused = true)]
async fn a_provider_failure_mid_stream_sends_an_error_without_internal_text_then_done() {
    let h = harness();
    h.provider.push(vec![Step::Say("half"), Step::Fail]);
    let mut client = h.connect("u1", None, None).await;
    h.say(&mut client, "go").await.expect("accepted");
    let events = client.until_done().await;
    let Some(ServerEvent::Error { code, message, .. }) =
        events.iter().find(|e| matches!(e, ServerEvent::Error { .. }))
    else {
        panic!("an error frame: {events:?}");
    };
    assert_eq!(*code, ErrorCode::LlmUnavailable);
    assert!(!message.contains("secret"), "provider text never reaches the client");
    assert_eq!(done_of(&events), (Some(Seq(2)), FinishReason::Error));
    assert!(h.stored(&client.session_id()).await[1].is_partial());
}

#[tokio::test(start_paused = true)]
async fn a_rate_limited_start_is_retried_after_the_providers_retry_after() {
    let h = harness();
    h.provider.push(vec![Step::Refuse(Refusal::RateLimited(Duration::from_millis(300)))]);
    h.provider.push(vec![Step::Say("finally")]);
    let mut client = h.connect("u1", None, None).await;
    h.say(&mut client, "q").await.expect("q");
    let events = client.until_done().await;
    assert_eq!(answer_text(&events), "finally");
    assert_eq!(error_code(&events), None, "a retried failure is invisible to the client");
    let times = h.provider.request_times();
    assert_eq!(times.len(), 2);
    assert!(
        times[1] - times[0] >= Duration::from_millis(300),
        "Retry-After honoured: {:?}",
        times[1] - times[0]
    );
}

#[tokio::test(start_paused = true)]
async fn server_errors_are_retried_then_the_fallback_answers() {
    let mut s = settings();
    s.fallbacks.insert(ModelId::parse("scripted").expect("id"), ModelId::parse("other").expect("id"));
    let h = harness_with(s);
    for _ in 0..3 {
        h.provider.push(vec![Step::Refuse(Refusal::Server)]);
    }
    h.provider.push(vec![Step::Say("from the fallback")]);
    let mut client = h.connect("u1", None, None).await;
    h.say(&mut client, "q").await.expect("q");
    let events = client.until_done().await;
    assert_eq!(answer_text(&events), "from the fallback");
    let Some(ServerEvent::AnswerDone { model_id, finish_reason, .. }) = events.last() else { panic!("done") };
    assert_eq!((model_id.as_str(), *finish_reason), ("other", FinishReason::Stop));
    let models: Vec<String> = h.provider.requests().iter().map(|r| r.model_id.to_string()).collect();
    assert_eq!(
        models,
        ["scripted", "scripted", "scripted", "other"],
        "1 try + LLM_MAX_RETRIES=2, then the fallback"
    );
}

/// Operators see the switch to a fallback (docs/operations.md: INFO `falling back to
/// another provider`), once per switch, and a first attempt is no switch; with every
/// level enabled the answer is the same.
#[tokio::test(start_paused = true)]
async fn a_fallback_is_logged_once_and_a_first_attempt_is_not() {
    let (logs, _guard) = LogLines::capture();
    let mut s = settings();
    s.fallbacks.insert(ModelId::parse("scripted").expect("id"), ModelId::parse("other").expect("id"));
    let h = harness_with(s);
    let mut client = h.connect("u1", None, None).await;
    h.say(&mut client, "q").await.expect("q");
    assert_eq!(answer_text(&client.until_done().await), "ok");
    assert_eq!(logs.count("falling back to another provider"), 0, "the first provider answered");

    h.provider.push(vec![Step::Refuse(Refusal::Unauthorized)]);
    h.provider.push(vec![Step::Say("from the fallback")]);
    h.say(&mut client, "again").await.expect("again");
    assert_eq!(answer_text(&client.until_done().await), "from the fallback");
    assert_eq!(logs.count("falling back to another provider"), 1);
}

#[tokio::test(start_paused = true)]
async fn a_rejected_request_is_not_retried_and_fails_with_llm_unavailable() {
    let h = harness();
    h.provider.push(vec![Step::Refuse(Refusal::Unauthorized)]);
    let mut client = h.connect("u1", None, None).await;
    h.say(&mut client, "q").await.expect("q");
    let events = client.until_done().await;
    assert_eq!(error_code(&events), Some(ErrorCode::LlmUnavailable));
    assert_eq!(done_of(&events), (None, FinishReason::Error));
    assert_eq!(h.provider.requests().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn an_overloaded_error_before_the_first_token_is_retried_but_not_after_it() {
    let h = harness();
    h.provider.push(vec![Step::Break(Refusal::Overloaded)]);
    h.provider.push(vec![Step::Say("second try")]);
    let mut client = h.connect("u1", None, None).await;
    h.say(&mut client, "q").await.expect("q");
    assert_eq!(answer_text(&client.until_done().await), "second try");

    h.provider.push(vec![Step::Say("started "), Step::Break(Refusal::Overloaded)]);
    h.say(&mut client, "again").await.expect("again");
    let events = client.until_done().await;
    assert_eq!(error_code(&events), Some(ErrorCode::LlmUnavailable));
    assert_eq!(done_of(&events).1, FinishReason::Error);
    assert_eq!(h.provider.requests().len(), 3, "no retry after the first token");
    assert!(h.stored(&client.session_id()).await.last().expect("answer").is_partial());
}

#[tokio::test(start_paused = true)]
async fn a_session_whose_actor_died_tells_every_waiting_client_then_answers_again_with_a_new_actor() {
    let (logs, _guard) = LogLines::capture();
    let h = harness();
    h.provider.push(vec![Step::Say("half "), Step::Wait(Duration::from_millis(100)), Step::Panic]);
    h.provider.push(vec![Step::Say("recovered")]);
    let mut client = h.connect("u1", None, None).await;
    h.say(&mut client, "go").await.expect("accepted");
    client.until(|event| matches!(event, ServerEvent::AnswerChunk { .. })).await;
    h.say_with(&mut client, "queued", Some("k-queued")).await.expect("queued behind the answer");
    // The actor dies in the middle of the answer (its stream is dropped with it). The
    // client saw `loading` and a chunk, and its second message waits: it is told both
    // failed, not left waiting for an acknowledgement and an end that would never come.
    let events = client.until_done().await;
    assert_eq!(h.provider.dropped_streams(), 1, "the actor died");
    assert_eq!(answer_text(&events), "", "the chunk came before");
    let errors: Vec<_> = events
        .iter()
        .filter_map(|event| match event {
            ServerEvent::Error { code, .. } => Some(*code),
            _ => None,
        })
        .collect();
    assert_eq!(
        errors,
        [ErrorCode::ServiceError, ErrorCode::ServiceError],
        "the queued turn, then the answer"
    );
    assert_eq!(done_of(&events), (None, FinishReason::Error), "nothing was stored");
    assert_eq!(logs.count(ACTOR_DIED), 1);
    // The next message loads the session again, with a new actor.
    h.say(&mut client, "again").await.expect("a new actor takes it");
    let events = client.until_done().await;
    assert_eq!(answer_text(&events), "recovered");
    assert_eq!(done_of(&events), (Some(Seq(3)), FinishReason::Stop));
    let stored: Vec<String> =
        h.stored(&client.session_id()).await.iter().map(|message| message.content.clone()).collect();
    assert_eq!(stored, ["go", "again", "recovered"], "the refused turn was not stored");
}
