//! Streaming an answer (`answer/context`, `answer/stream`, `answer/finish`): what the
//! provider is asked, the chunks and the one `done`, the idle and whole-answer
//! deadlines, the length cap, and what is kept with the session.

use std::time::Duration;

use chatbox_application::events::ServerEvent;
use chatbox_application::ports::{Role, SessionRepository};
use chatbox_domain::{ErrorCode, FinishReason, ModelId, Seq, Usage};

use crate::support::{Step, answer_text, done_of, harness, harness_with, settings, user};

#[tokio::test(start_paused = true)]
async fn the_provider_sees_the_history_and_the_system_prompt() {
    let h = harness();
    let mut client = h.answered("u1", "first question").await;
    h.say(&mut client, "second question").await.expect("accepted");
    client.until_done().await;
    let requests = h.provider.requests();
    let last = requests.last().expect("a request");
    let turns: Vec<(Role, &str)> = last.history.iter().map(|t| (t.role, t.content.as_str())).collect();
    assert_eq!(
        turns,
        vec![(Role::User, "first question"), (Role::Assistant, "ok"), (Role::User, "second question")]
    );
    assert_eq!(last.system_prompt.as_deref(), Some("Be brief."));
    assert_eq!(last.user_id, user("u1"));
}

#[tokio::test(start_paused = true)]
async fn a_stalled_provider_times_out_with_an_error_then_done_and_the_partial_is_kept() {
    let mut s = settings();
    s.idle_timeout = Duration::from_millis(150);
    let h = harness_with(s);
    h.provider.push(vec![Step::Say("so far"), Step::Stall]);
    let mut client = h.connect("u1", None, None).await;
    h.say(&mut client, "slow one").await.expect("accepted");
    let events = client.until_done().await;
    let error = events.iter().find_map(|e| match e {
        ServerEvent::Error { code, message, .. } => Some((*code, message.clone())),
        _ => None,
    });
    assert_eq!(error.map(|e| e.0), Some(ErrorCode::LlmTimeout));
    assert!(matches!(events[events.len() - 2], ServerEvent::Error { .. }), "error comes right before done");
    assert_eq!(done_of(&events).1, FinishReason::Timeout);
    assert_eq!(h.stored(&client.session_id()).await[1].content, "so far");
}

#[tokio::test(start_paused = true)]
async fn the_idle_timeout_bounds_each_silence_not_the_whole_answer() {
    let mut s = settings();
    s.idle_timeout = Duration::from_millis(150);
    let h = harness_with(s);
    h.provider.push(paced(["one ", "two ", "three ", "four"], Duration::from_millis(100)));
    let mut client = h.connect("u1", None, None).await;
    h.say(&mut client, "slow but steady").await.expect("accepted");
    let events = client.until_done().await;
    assert_eq!(done_of(&events).1, FinishReason::Stop, "400 ms of answer, never 150 ms of silence");
    assert_eq!(answer_text(&events), "one two three four");
}

#[tokio::test(start_paused = true)]
async fn the_whole_answer_deadline_applies_even_while_chunks_keep_coming() {
    let mut s = settings();
    s.stream_timeout = Duration::from_millis(300);
    let h = harness_with(s);
    h.provider.push(paced(["x"; 100], Duration::from_millis(20)));
    let mut client = h.connect("u1", None, None).await;
    h.say(&mut client, "long").await.expect("accepted");
    let events = client.until_done().await;
    assert_eq!(done_of(&events).1, FinishReason::Timeout);
    let chunks = answer_text(&events).len();
    assert!((3..60).contains(&chunks), "stopped part-way: {chunks} chunks");
}

#[tokio::test]
async fn an_answer_is_cut_at_max_answer_chars_with_finish_reason_length_and_the_provider_stops() {
    let mut s = settings();
    s.max_answer_chars = 12;
    let h = harness_with(s);
    h.provider.push(vec![Step::Say("héllo wörld "), Step::Say("and more"), Step::Stall]);
    let mut client = h.connect("u1", None, None).await;
    h.say(&mut client, "talk a lot").await.expect("sent");
    let events = client.until_done().await;
    assert_eq!(answer_text(&events), "héllo wörld ", "exactly 12 characters, cut on a character boundary");
    assert_eq!(done_of(&events), (Some(Seq(2)), FinishReason::Length));
    assert_eq!(h.stored(&client.session_id()).await[1].content, "héllo wörld ");
    assert_eq!(h.provider.dropped_streams(), 1, "the provider request ends with the answer");
}

#[tokio::test(start_paused = true)]
async fn the_providers_conversation_id_is_kept_with_the_session_and_sent_back() {
    let h = harness();
    h.provider.push(vec![Step::Conversation("conv-7"), Step::Say("hello")]);
    h.provider.push(vec![Step::Say("again")]);
    let mut client = h.answered("u1", "one").await;
    h.say(&mut client, "two").await.expect("two");
    client.until_done().await;
    let sent: Vec<Option<String>> = h.provider.requests().iter().map(|r| r.conversation_id.clone()).collect();
    assert_eq!(sent, [None, Some("conv-7".to_owned())]);
    let session = h.repo.load(&client.session_id()).await.expect("load").expect("exists");
    assert_eq!(
        session.provider_conversation.map(|c| c.id).as_deref(),
        Some("conv-7"),
        "stored with the session"
    );
}

#[tokio::test(start_paused = true)]
async fn done_reports_time_to_first_token_and_duration() {
    let h = harness();
    h.provider.push(vec![
        Step::Wait(Duration::from_millis(100)),
        Step::Say("late"),
        Step::Wait(Duration::from_millis(100)),
    ]);
    let mut client = h.connect("u1", None, None).await;
    h.say(&mut client, "q").await.expect("q");
    let events = client.until_done().await;
    let Some(ServerEvent::AnswerDone { timing, .. }) = events.last() else { panic!("done") };
    let first = timing.first_token.expect("a first token");
    assert!(
        first >= Duration::from_millis(100) && timing.total >= first + Duration::from_millis(100),
        "{timing:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn done_carries_the_usage_the_provider_reported() {
    let h = harness();
    h.provider.push(vec![Step::Say("counted"), Step::Usage(12, 7)]);
    let mut client = h.connect("u1", None, None).await;
    h.say(&mut client, "q").await.expect("q");
    let events = client.until_done().await;
    let Some(ServerEvent::AnswerDone { usage, .. }) = events.last() else { panic!("done") };
    assert_eq!(*usage, Some(Usage { prompt_tokens: 12, completion_tokens: 7, estimated: false }));
    let stored = h.stored(&client.session_id()).await;
    assert_eq!(stored[1].usage, *usage, "stored with the answer");
    // Counted for the operators: the answer by its finish reason, its first token, its
    // tokens as the provider reported them.
    let scripted = ModelId::parse("scripted").expect("id");
    assert_eq!(*h.metrics.answers.lock().expect("lock"), [(scripted.clone(), FinishReason::Stop)]);
    assert_eq!(*h.metrics.first_tokens.lock().expect("lock"), std::slice::from_ref(&scripted));
    assert_eq!(*h.metrics.tokens.lock().expect("lock"), [(scripted, 12, 7)]);
}

/// With no usage from the provider, the prompt is estimated at four characters per
/// token: the system prompt and the history the model saw.
#[tokio::test(start_paused = true)]
async fn without_reported_usage_the_prompt_is_estimated_at_four_characters_a_token() {
    let h = harness();
    let mut client = h.connect("u1", None, None).await;
    // "Be brief." (9) + "hello there" (11) = 20 characters: 5 tokens.
    h.say(&mut client, "hello there").await.expect("q");
    let events = client.until_done().await;
    let Some(ServerEvent::AnswerDone { usage: Some(usage), .. }) = events.last() else { panic!("done") };
    assert!(usage.estimated);
    assert_eq!(usage.prompt_tokens, 5);
    let counted = h.metrics.tokens.lock().expect("lock").clone();
    assert_eq!(
        counted,
        [(ModelId::parse("scripted").expect("id"), 5, usage.completion_tokens)],
        "the estimate shown to the client"
    );
}

/// The first chunk carries when its token arrived from the provider (for the gateway's
/// own latency); an empty delta before it is no token.
#[tokio::test(start_paused = true)]
async fn the_first_non_empty_chunk_is_stamped_as_the_first_token() {
    let h = harness();
    h.provider.push(vec![Step::Say(""), Step::Say("one"), Step::Say(""), Step::Say(" two")]);
    let mut client = h.connect("u1", None, None).await;
    h.say(&mut client, "q").await.expect("q");
    assert!(matches!(client.next().await, ServerEvent::Loading { .. }));
    let first = client.next_frame().await;
    assert!(
        matches!(&first.event, ServerEvent::AnswerChunk { delta, .. } if &**delta == "one"),
        "{:?}",
        first.event
    );
    assert!(first.first_token_at().is_some(), "the first chunk is stamped");
    let second = client.next_frame().await;
    assert!(
        matches!(&second.event, ServerEvent::AnswerChunk { delta, .. } if &**delta == " two"),
        "{:?}",
        second.event
    );
    assert!(second.first_token_at().is_none());
    assert_eq!(done_of(&client.until_done().await).1, FinishReason::Stop);
}

/// A script saying each of `words` with `gap` after it.
fn paced(words: impl IntoIterator<Item = &'static str>, gap: Duration) -> Vec<Step> {
    words.into_iter().flat_map(|word| [Step::Say(word), Step::Wait(gap)]).collect()
}
