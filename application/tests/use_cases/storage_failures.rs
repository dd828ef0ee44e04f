//! Storage failures (`chat/submit`, `answer/outbox`): a message that cannot be stored is
//! refused with `DATABASE_ERROR` and nothing is lost on retry, a stalled store times
//! out, and an answer that finished while storage failed is held and stored once.

use std::time::Duration;

use chatbox_application::events::ServerEvent;
use chatbox_domain::{ErrorCode, FinishReason, Seq};
use tokio::time::Instant;

use crate::support::{Storage, done_of, error_code, harness, harness_with, settings};

#[tokio::test(start_paused = true)]
async fn a_failing_store_answers_database_error_to_the_sender_and_a_retry_loses_nothing() {
    let h = harness();
    let mut phone = h.answered("u1", "first").await;
    let session = phone.session_id();
    let mut laptop = h.connect("u1", Some(session.clone()), None).await;

    h.set_storage(Storage::Fails);
    h.say_with(&mut phone, "important", Some("k-9")).await.expect("accepted");
    match phone.next().await {
        ServerEvent::Error { code, message, .. } => {
            assert_eq!(code, ErrorCode::DatabaseError);
            assert!(!message.contains("down"), "driver text stays inside: {message}");
        }
        other => panic!("expected DATABASE_ERROR, got {other:?}"),
    }
    assert!(
        laptop.next_within(Duration::from_millis(200)).await.is_none(),
        "nothing was stored, nothing fanned out"
    );
    assert_eq!(h.provider.requests().len(), 1, "no answer to an unstored message");

    h.set_storage(Storage::Works);
    h.say_with(&mut phone, "important", Some("k-9")).await.expect("the same key is accepted again");
    let events = phone.until_done().await;
    assert!(
        matches!(&events[0], ServerEvent::MessageAck { seq: Seq(3), client_message_id, .. } if client_message_id.as_str() == "k-9"),
        "acknowledged once stored, before its answer: {events:?}"
    );
    assert_eq!(done_of(&events).1, FinishReason::Stop);
    let stored: Vec<String> = h.stored(&session).await.into_iter().map(|m| m.content).collect();
    assert_eq!(stored, ["first", "ok", "important", "ok"]);
}

#[tokio::test(start_paused = true)]
async fn a_stalled_store_times_out_and_the_session_keeps_working() {
    let mut s = settings();
    s.storage_timeout = Duration::from_millis(200);
    let h = harness_with(s);
    let mut client = h.answered("u1", "hello").await;

    h.set_storage(Storage::Stalls);
    let started = Instant::now();
    h.say(&mut client, "stuck").await.expect("accepted");
    assert!(matches!(client.next().await, ServerEvent::Error { code: ErrorCode::DatabaseError, .. }));
    assert!(started.elapsed() >= Duration::from_millis(200));

    h.set_storage(Storage::Works);
    h.say(&mut client, "unstuck").await.expect("accepted");
    assert_eq!(done_of(&client.until_done().await).1, FinishReason::Stop);
}

#[tokio::test(start_paused = true)]
async fn an_answer_that_finished_while_storage_failed_is_held_and_stored_once_when_it_returns() {
    let h = harness();
    let (mut client, events) = h.held_answer("question", "part", " two").await;
    let session = client.session_id();
    assert_eq!(error_code(&events), Some(ErrorCode::DatabaseError), "the client is told: {events:?}");
    assert_eq!(done_of(&events), (None, FinishReason::Stop), "not stored yet, so no seq");

    // While the answer is held, nothing else is stored after it.
    h.say(&mut client, "meanwhile").await.expect("accepted");
    assert!(matches!(client.next().await, ServerEvent::Error { code: ErrorCode::DatabaseError, .. }));
    assert_eq!(h.service.cleanup_sessions(), 0, "a session with a held answer stays live");

    h.set_storage(Storage::Works);
    // The actor retries on its own timer (virtual time moves while it waits).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while h.stored(&session).await.len() < 2 {
        assert!(tokio::time::Instant::now() < deadline, "the held answer was never stored");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let stored: Vec<(u64, String)> =
        h.stored(&session).await.into_iter().map(|m| (m.seq.0, m.content)).collect();
    assert_eq!(stored, [(1, "question".to_owned()), (2, "part two".to_owned())]);
    h.say(&mut client, "again").await.expect("sent");
    assert_eq!(done_of(&client.until_done().await).0, Some(Seq(4)), "sequence numbers continue in order");
    let seqs: Vec<u64> = h.stored(&session).await.into_iter().map(|m| m.seq.0).collect();
    assert_eq!(seqs, [1, 2, 3, 4], "stored exactly once, gapless");
}

#[tokio::test(start_paused = true)]
async fn readiness_follows_the_store() {
    let h = harness();
    h.service.storage_ready().await.expect("ready");
    h.set_storage(Storage::Fails);
    assert!(h.service.storage_ready().await.is_err(), "not ready while storage fails");
    h.set_storage(Storage::Works);
    h.service.storage_ready().await.expect("ready again");
}
