//! Operations on a session (`chat/session_ops`): selecting a model, stopping an answer,
//! relaying typing, ending the session.

use chatbox_application::ChatError;
use chatbox_application::commands::ClientCommand;
use chatbox_application::events::ServerEvent;
use chatbox_application::ports::SessionRepository;
use chatbox_domain::{FinishReason, ModelId};

use crate::support::{Step, done_of, harness, user};

#[tokio::test(start_paused = true)]
async fn stop_cancels_the_provider_request_stores_the_partial_and_ends_with_done() {
    let h = harness();
    h.provider.push(vec![Step::Say("partial "), Step::Stall]);
    let mut client = h.connect("u1", None, None).await;
    h.say(&mut client, "tell me").await.expect("accepted");
    assert!(matches!(client.next().await, ServerEvent::Loading { .. }));
    assert!(matches!(client.next().await, ServerEvent::AnswerChunk { .. }));
    h.service.handle(&mut client.connection, ClientCommand::Stop { session_id: None }).await.expect("stop");
    let events = client.until_done().await;
    assert_eq!(done_of(&events).1, FinishReason::Cancelled);
    assert_eq!(h.provider.dropped_streams(), 1, "the provider stream was dropped");
    let stored = h.stored(&client.session_id()).await;
    assert_eq!(stored[1].content, "partial ");
    assert!(stored[1].is_partial());
}

#[tokio::test(start_paused = true)]
async fn model_select_changes_the_model_that_answers() {
    let h = harness();
    let mut client = h.connect("u1", None, None).await;
    let other = ModelId::parse("other").expect("id");
    let select = ClientCommand::SelectModel { session_id: None, model_id: other.clone() };
    h.service.handle(&mut client.connection, select).await.expect("select");
    assert!(
        matches!(client.next().await, ServerEvent::ConnectionStatus { ref model_id, .. } if *model_id == other)
    );
    let unknown =
        ClientCommand::SelectModel { session_id: None, model_id: ModelId::parse("nope").expect("id") };
    assert!(matches!(h.service.handle(&mut client.connection, unknown).await, Err(ChatError::UnknownModel)));
    h.say(&mut client, "hi").await.expect("hi");
    let events = client.until_done().await;
    assert!(matches!(events.last(), Some(ServerEvent::AnswerDone { model_id, .. }) if *model_id == other));
    assert_eq!(h.provider.requests()[0].model_id, other);
}

#[tokio::test(start_paused = true)]
async fn an_ended_session_refuses_messages_and_notifies_its_sockets() {
    let h = harness();
    let mut client = h.answered("u1", "hello").await;
    let session = client.session_id();
    assert!(matches!(h.service.end_session(&user("other"), &session).await, Err(ChatError::NotFound)));
    h.service.end_session(&user("u1"), &session).await.expect("end");
    h.service.end_session(&user("u1"), &session).await.expect("idempotent");
    assert!(matches!(client.next().await, ServerEvent::ConnectionStatus { state: "ended", .. }));
    assert!(matches!(h.say(&mut client, "more").await, Err(ChatError::SessionEnded)));
}

#[tokio::test(start_paused = true)]
async fn selecting_a_model_in_a_session_stores_it_and_the_next_answer_uses_it() {
    let h = harness();
    let mut client = h.answered("u1", "hi").await;
    let session = client.session_id();
    let other = ModelId::parse("other").expect("id");
    let select = ClientCommand::SelectModel { session_id: None, model_id: other.clone() };
    h.service.handle(&mut client.connection, select).await.expect("select");
    assert!(matches!(
        client.next().await,
        ServerEvent::ConnectionStatus { ref model_id, state: "model_selected", .. } if *model_id == other
    ));
    assert_eq!(h.repo.load(&session).await.expect("load").expect("session").model_id, other, "stored");
    h.say(&mut client, "again").await.expect("again");
    client.until_done().await;
    assert_eq!(h.provider.requests()[1].model_id, other);
}

/// A model selection naming another session of the user moves the socket there and
/// changes that session's model.
#[tokio::test(start_paused = true)]
async fn selecting_a_model_for_another_session_moves_the_socket_there() {
    let h = harness();
    let tablet = h.answered("u1", "in B").await;
    let b = tablet.session_id();
    let mut phone = h.answered("u1", "in A").await;
    let a = phone.session_id();

    let other = ModelId::parse("other").expect("id");
    let select = ClientCommand::SelectModel { session_id: Some(b.clone()), model_id: other.clone() };
    h.service.handle(&mut phone.connection, select).await.expect("select");
    assert!(
        matches!(phone.next().await, ServerEvent::ConnectionStatus { ref session_id, state: "connected", .. } if *session_id == b)
    );
    assert!(matches!(
        phone.next().await,
        ServerEvent::ConnectionStatus { ref session_id, ref model_id, state: "model_selected", .. }
            if *session_id == b && *model_id == other
    ));
    assert_eq!(phone.session_id(), b);
    assert_eq!(h.repo.load(&b).await.expect("load").expect("B").model_id, other);
    assert_ne!(h.repo.load(&a).await.expect("load").expect("A").model_id, other);
}

#[tokio::test(start_paused = true)]
async fn a_stop_naming_another_session_leaves_the_bound_sessions_answer_running() {
    let h = harness();
    h.provider.push(vec![Step::Say("b0")]);
    h.provider.push(vec![
        Step::Say("long "),
        Step::Wait(std::time::Duration::from_millis(100)),
        Step::Say("answer"),
    ]);
    let tablet = h.answered("u1", "in B").await;
    let b = tablet.session_id();
    let mut phone = h.connect("u1", None, None).await;
    h.say(&mut phone, "in A").await.expect("A");
    assert!(matches!(phone.next().await, ServerEvent::Loading { .. }));
    h.service.handle(&mut phone.connection, ClientCommand::Stop { session_id: Some(b) }).await.expect("stop");
    let events = phone.until_done().await;
    assert_eq!(done_of(&events).1, FinishReason::Stop, "A's answer was not the one named");
}

/// `typing_indicator` is relayed to the session's other sockets, not to the sender, and
/// only for the session the socket is in.
#[tokio::test(start_paused = true)]
async fn typing_is_relayed_to_the_sessions_other_sockets() {
    let h = harness();
    let mut phone = h.answered("u1", "hi").await;
    let session = phone.session_id();
    let mut laptop = h.connect("u1", Some(session.clone()), None).await;

    let typing = |session_id, typing| ClientCommand::Typing { session_id, typing };
    h.service.handle(&mut phone.connection, typing(Some(session.clone()), true)).await.expect("typing");
    match laptop.next().await {
        ServerEvent::Typing { session_id, user_id, typing } => {
            assert_eq!((session_id, user_id.as_str(), typing), (session.clone(), "u1", true));
        }
        other => panic!("expected typing, got {other:?}"),
    }
    assert!(phone.is_quiet().await, "not echoed to the sender");
    h.service.handle(&mut phone.connection, typing(None, false)).await.expect("typing");
    assert!(matches!(laptop.next().await, ServerEvent::Typing { typing: false, .. }));
    let elsewhere = chatbox_domain::SessionId::parse("another-session").expect("id");
    h.service.handle(&mut phone.connection, typing(Some(elsewhere), true)).await.expect("typing");
    assert!(laptop.is_quiet().await, "a typing state for another session is not relayed here");
}
