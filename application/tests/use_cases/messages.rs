//! Sending a message (`chat/submit`): it is stored, acknowledged, fanned out to the
//! session's other sockets and answered once; a repeated client message id is
//! acknowledged again, never stored or answered twice; answers wait in a bounded queue.

use std::time::Duration;

use chatbox_application::ChatError;
use chatbox_application::events::ServerEvent;
use chatbox_application::ports::SessionRepository;
use chatbox_domain::{FinishReason, Sender, Seq};

use crate::support::{Step, Storage, answer_text, done_of, harness};

#[tokio::test(start_paused = true)]
async fn a_message_is_stored_answered_in_chunks_and_the_answer_stored_once() {
    let h = harness();
    h.provider.push(vec![Step::Say("Hello "), Step::Say("there.")]);
    let mut client = h.connect("u1", None, None).await;
    h.say(&mut client, "Hi bot").await.expect("accepted");
    let events = client.until_done().await;
    assert!(matches!(events[0], ServerEvent::Loading { .. }), "loading first: {events:?}");
    let ids: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            ServerEvent::Loading { message_id, .. }
            | ServerEvent::AnswerChunk { message_id, .. }
            | ServerEvent::AnswerDone { message_id, .. } => Some(message_id.clone()),
            _ => None,
        })
        .collect();
    assert!(ids.windows(2).all(|w| w[0] == w[1]), "one message id per answer");
    assert_eq!(answer_text(&events), "Hello there.");
    assert_eq!(done_of(&events), (Some(Seq(2)), FinishReason::Stop));

    let stored = h.stored(&client.session_id()).await;
    assert_eq!(stored.len(), 2);
    assert_eq!((stored[0].sender, stored[0].content.as_str()), (Sender::User, "Hi bot"));
    assert_eq!((stored[1].sender, stored[1].content.as_str()), (Sender::Ai, "Hello there."));
    assert!(stored[1].usage.expect("usage").estimated, "scripted provider reports none");
    let session = h.repo.load(&client.session_id()).await.expect("load").expect("exists");
    assert_eq!(session.name.as_deref(), Some("Hi bot"));
    assert_eq!(session.response_times.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn other_sockets_of_the_session_get_the_echo_and_the_stream_but_the_sender_no_echo() {
    let h = harness();
    let mut phone = h.connect("u1", None, None).await;
    h.say(&mut phone, "hello").await.expect("accepted");
    phone.until_done().await;
    let mut laptop = h.connect("u1", Some(phone.session_id()), None).await;
    h.say(&mut phone, "from phone").await.expect("accepted");
    let laptop_events = laptop.until_done().await;
    assert!(
        matches!(&laptop_events[0], ServerEvent::Stored { message, .. } if message.content == "from phone")
    );
    let phone_events = phone.until_done().await;
    assert!(phone_events.iter().all(|e| !matches!(e, ServerEvent::Stored { .. })), "no echo to the sender");
    assert_eq!(answer_text(&phone_events), answer_text(&laptop_events));
}

#[tokio::test(start_paused = true)]
async fn the_same_client_message_id_is_stored_and_answered_once() {
    let h = harness();
    let mut client = h.connect("u1", None, None).await;
    h.say_with(&mut client, "once", Some("c-1")).await.expect("first");
    let first = client.until_done().await;
    let ServerEvent::MessageAck { message_id, seq: Seq(1), .. } = &first[0] else {
        panic!("the stored message is acknowledged first: {first:?}")
    };
    let stored_id = message_id.clone();
    h.say_with(&mut client, "once", Some("c-1")).await.expect("duplicate is accepted");
    match client.next_within(Duration::from_millis(200)).await {
        Some(ServerEvent::MessageAck { message_id, seq: Seq(1), .. }) => {
            assert_eq!(message_id, stored_id, "the repeat is acknowledged as the stored message");
        }
        other => panic!("expected the acknowledgement again, got {other:?}"),
    }
    assert!(client.next_within(Duration::from_millis(200)).await.is_none(), "no second answer");
    assert_eq!(h.stored(&client.session_id()).await.len(), 2);
    assert_eq!(h.provider.requests().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn answers_queue_in_order_up_to_the_limit_and_then_busy() {
    let h = harness();
    h.provider.push(vec![Step::Say("A1 "), Step::Wait(Duration::from_millis(200)), Step::Say("A2")]);
    h.provider.push(vec![Step::Say("B")]);
    h.provider.push(vec![Step::Say("C")]);
    h.provider.push(vec![Step::Say("D")]);
    let mut client = h.connect("u1", None, None).await;
    h.say(&mut client, "a").await.expect("a");
    assert!(matches!(client.next().await, ServerEvent::Loading { .. }));
    for text in ["b", "c", "d"] {
        h.say(&mut client, text).await.expect("queued");
    }
    assert!(matches!(h.say(&mut client, "e").await, Err(ChatError::Busy)));
    let mut answers = vec![answer_text(&client.until_done().await)];
    for _ in 0..3 {
        answers.push(answer_text(&client.until_done().await));
    }
    assert_eq!(answers, vec!["A1 A2", "B", "C", "D"], "never interleaved, in order");
    let stored: Vec<String> = h.stored(&client.session_id()).await.into_iter().map(|m| m.content).collect();
    assert_eq!(stored, ["a", "A1 A2", "b", "B", "c", "C", "d", "D"], "each answer follows its question");
    let requests = h.provider.requests();
    let last_questions: Vec<&str> =
        requests.iter().map(|r| r.history.last().expect("question").content.as_str()).collect();
    assert_eq!(last_questions, ["a", "b", "c", "d"], "each answer sees the history up to its question");
}

/// The same `client_message_id` sent by two sockets of a session at once (a client
/// retrying on another connection): stored once, and both sockets get the one
/// acknowledgement, even though the socket whose copy won left before its own.
#[tokio::test(start_paused = true)]
async fn a_key_sent_from_two_sockets_at_once_is_stored_once_and_acknowledged_to_both() {
    let h = harness();
    h.provider.push(vec![Step::Say("a1")]);
    h.provider.push(vec![Step::Say("a2")]);
    let mut first = h.connect("u1", None, None).await;
    let session = first.session_id();
    h.say(&mut first, "hello").await.expect("hello");
    let (seen, _) = done_of(&first.until_done().await);
    let mut second = h.connect("u1", Some(session.clone()), seen).await;

    h.set_storage(Storage::LandsThenWaits);
    h.say_with(&mut first, "once", Some("key-1")).await.expect("first copy");
    h.write_landed().await;
    h.say_with(&mut second, "once", Some("key-1")).await.expect("second copy");
    h.service.disconnect(first.connection);
    h.release_writes();

    let events = second.until_done().await;
    let acks: Vec<_> = events
        .iter()
        .filter_map(|event| match event {
            ServerEvent::MessageAck { client_message_id, seq, .. } => {
                Some((client_message_id.to_string(), *seq))
            }
            _ => None,
        })
        .collect();
    let stored = h.stored(&session).await;
    let copies: Vec<_> = stored.iter().filter(|m| m.content == "once").collect();
    assert_eq!(copies.len(), 1, "stored once");
    assert_eq!(acks, vec![("key-1".to_owned(), copies[0].seq)], "{events:?}");
}
