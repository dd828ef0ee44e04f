//! Shutdown: nothing new is accepted, answers may finish until the deadline, then the
//! running ones are cancelled and stored, held answers are written, and the actors stop.

use std::time::Duration;

use chatbox_application::ChatError;
use chatbox_application::events::ServerEvent;
use chatbox_domain::{FinishReason, Seq};

use crate::support::{ACTOR_DIED, LogLines, Step, Storage, done_of, harness};

#[tokio::test(start_paused = true)]
async fn at_the_shutdown_deadline_running_answers_are_cancelled_and_stored() {
    let h = harness();
    h.provider.push(vec![Step::Say("half an answer"), Step::Stall]);
    let mut client = h.connect("u1", None, None).await;
    h.say(&mut client, "q").await.expect("q");
    assert!(matches!(client.next().await, ServerEvent::Loading { .. }));
    assert!(matches!(client.next().await, ServerEvent::AnswerChunk { .. }));
    h.service.begin_shutdown();
    assert!(
        client.next_within(Duration::from_millis(200)).await.is_none(),
        "answers may finish before the deadline"
    );
    h.service.cancel_running_answers();
    let events = client.until_done().await;
    assert_eq!(done_of(&events), (Some(Seq(2)), FinishReason::Cancelled));
    assert_eq!(h.stored(&client.session_id()).await[1].content, "half an answer");
}

/// Once shutdown began, nothing new is accepted: no new session, no new message.
#[tokio::test(start_paused = true)]
async fn after_shutdown_began_messages_are_refused() {
    let h = harness();
    let mut client = h.answered("u1", "before").await;
    let mut fresh = h.connect("u2", None, None).await;
    h.service.begin_shutdown();
    assert!(matches!(h.say(&mut client, "after").await, Err(ChatError::ShuttingDown)));
    assert!(matches!(h.say(&mut fresh, "after").await, Err(ChatError::ShuttingDown)));
}

/// `actors_stopped` completes only once every actor finished what it holds: here, after
/// the running answer was cut at the deadline and stored.
#[tokio::test(start_paused = true)]
async fn actors_stop_only_after_their_answers_ended() {
    let (logs, _guard) = LogLines::capture();
    let h = harness();
    h.provider.push(vec![Step::Say("half"), Step::Stall]);
    let mut client = h.connect("u1", None, None).await;
    h.say(&mut client, "q").await.expect("q");
    assert!(matches!(client.next().await, ServerEvent::AnswerChunk { .. } | ServerEvent::Loading { .. }));
    assert_eq!(h.service.running_actors(), 1);
    h.service.begin_shutdown();
    let stopped = h.service.actors_stopped();
    tokio::pin!(stopped);
    assert!(
        tokio::time::timeout(Duration::from_secs(1), &mut stopped).await.is_err(),
        "an answer is still running"
    );
    h.service.cancel_running_answers();
    tokio::time::timeout(Duration::from_secs(5), stopped).await.expect("stopped after the cut");
    assert_eq!(h.service.running_actors(), 0);
    assert_eq!(h.stored(&client.session_id()).await[1].content, "half");
    assert_eq!(logs.count(ACTOR_DIED), 0, "retired, not dead");
    assert!(matches!(h.say(&mut client, "after").await, Err(ChatError::ShuttingDown)));
}

/// An answer held because storage failed is written at shutdown once storage is back,
/// before the actor stops.
#[tokio::test(start_paused = true)]
async fn a_held_answer_is_stored_before_the_actor_stops() {
    let h = harness();
    let (client, events) = h.held_answer("q", "held", " answer").await;
    let session = client.session_id();
    assert_eq!(done_of(&events).0, None, "held, not stored");
    h.set_storage(Storage::Works);
    h.service.begin_shutdown();
    tokio::time::timeout(Duration::from_secs(5), h.service.actors_stopped()).await.expect("stopped");
    let stored: Vec<String> = h.stored(&session).await.into_iter().map(|m| m.content).collect();
    assert_eq!(stored, ["q", "held answer"]);
}
