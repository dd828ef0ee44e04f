//! A socket moving between sessions (`chat/resolve`): a message naming another session
//! of the user lands there and moves the socket with it, and a message naming the id
//! issued to the connection creates that session without a second `connection_status`.

use std::time::Duration;

use chatbox_application::events::ServerEvent;
use chatbox_domain::{FinishReason, SessionId};

use crate::support::{Step, answer_text, done_of, harness};

/// The session an event concerns, if it names one.
fn session_of(event: &ServerEvent) -> Option<&SessionId> {
    match event {
        ServerEvent::ConnectionStatus { session_id, .. }
        | ServerEvent::Loading { session_id, .. }
        | ServerEvent::AnswerChunk { session_id, .. }
        | ServerEvent::AnswerDone { session_id, .. }
        | ServerEvent::Stored { session_id, .. }
        | ServerEvent::MessageAck { session_id, .. }
        | ServerEvent::Typing { session_id, .. }
        | ServerEvent::Handoff { session_id, .. } => Some(session_id),
        ServerEvent::Error { session_id, .. } => session_id.as_ref(),
        _ => None,
    }
}

#[tokio::test(start_paused = true)]
async fn a_message_naming_another_session_lands_there_and_moves_the_socket_off_its_stream() {
    let h = harness();
    h.provider.push(vec![Step::Say("b0")]);
    // Session A answers slowly: it is still streaming long after the switch.
    let mut slow = vec![Step::Say("a ")];
    for _ in 0..20 {
        slow.push(Step::Wait(Duration::from_millis(50)));
        slow.push(Step::Say("a "));
    }
    h.provider.push(slow);
    h.provider.push(vec![Step::Say("b1")]);

    let mut tablet = h.answered("u1", "hello B").await;
    let b = tablet.session_id();

    let mut phone = h.connect("u1", None, None).await;
    h.say(&mut phone, "hello A").await.expect("A");
    let a = phone.session_id();
    assert_ne!(a, b);
    assert!(matches!(phone.next().await, ServerEvent::Loading { .. }));
    assert!(matches!(phone.next().await, ServerEvent::AnswerChunk { .. }));

    h.say_in(&mut phone, &b, "to B").await.expect("accepted in B");
    match phone.next().await {
        ServerEvent::ConnectionStatus { session_id, state, .. } => {
            assert_eq!(session_id, b, "the socket is told it is in B now");
            assert_eq!(state, "connected");
        }
        other => panic!("expected connection_status for B, got {other:?}"),
    }
    assert_eq!(phone.session_id(), b);
    let events = phone.until_done().await;
    assert!(events.iter().all(|e| session_of(e) == Some(&b)), "only B's frames after the move: {events:?}");
    assert_eq!(answer_text(&events), "b1");
    assert!(phone.is_quiet().await, "A's answer streams on, but no longer to this socket");

    match tablet.next().await {
        ServerEvent::Stored { session_id, message } => {
            assert_eq!((session_id, message.content.as_str()), (b.clone(), "to B"));
        }
        other => panic!("B's other socket gets the echo, got {other:?}"),
    }
    let in_b: Vec<String> = h.stored(&b).await.into_iter().map(|m| m.content).collect();
    assert_eq!(in_b, ["hello B", "b0", "to B", "b1"]);
    // A's answer ends on its own, stored in A, and A never saw the message for B.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let in_a: Vec<String> = h.stored(&a).await.into_iter().map(|m| m.content).collect();
    assert_eq!(in_a, ["hello A".to_owned(), "a ".repeat(21)]);
}

#[tokio::test(start_paused = true)]
async fn a_message_naming_the_issued_id_creates_that_session_without_a_second_status() {
    let h = harness();
    let mut client = h.connect("u1", None, None).await;
    let issued = client.session_id();
    h.say_in(&mut client, &issued, "first").await.expect("accepted");
    let events = client.until_done().await;
    assert!(
        matches!(events[0], ServerEvent::Loading { .. }),
        "no connection_status: the id was honoured: {events:?}"
    );
    assert_eq!(done_of(&events).1, FinishReason::Stop);
    assert_eq!(client.session_id(), issued);
    assert_eq!(h.stored(&issued).await[0].content, "first");
}
