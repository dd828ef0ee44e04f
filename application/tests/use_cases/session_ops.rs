//! Operations on a session (`chat/session_ops`): selecting a model, stopping an answer,
//! ending the session.

use chatbox_application::ChatError;
use chatbox_application::commands::ClientCommand;
use chatbox_application::events::ServerEvent;
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
    let mut client = h.connect("u1", None, None).await;
    h.say(&mut client, "hello").await.expect("hello");
    client.until_done().await;
    let session = client.session_id();
    assert!(matches!(h.service.end_session(&user("other"), &session).await, Err(ChatError::NotFound)));
    h.service.end_session(&user("u1"), &session).await.expect("end");
    h.service.end_session(&user("u1"), &session).await.expect("idempotent");
    assert!(matches!(client.next().await, ServerEvent::ConnectionStatus { state: "ended", .. }));
    assert!(matches!(h.say(&mut client, "more").await, Err(ChatError::SessionEnded)));
}
