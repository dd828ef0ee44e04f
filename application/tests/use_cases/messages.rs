//! Sending a message (`chat/submit`): it is stored, acknowledged, fanned out to the
//! session's other sockets and answered once; a repeated client message id is
//! acknowledged again, never stored or answered twice; answers wait in a bounded queue.

use std::time::Duration;

use chatbox_application::ChatError;
use chatbox_application::commands::{AttachedFile, Attachment, ClientCommand};
use chatbox_application::events::ServerEvent;
use chatbox_application::ports::SessionRepository;
use chatbox_domain::validation::Metadata;
use chatbox_domain::{FinishReason, MessageKind, ModelId, Sender, Seq};

use crate::support::{Step, Storage, answer_text, done_of, harness, message};

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
    let mut phone = h.answered("u1", "hello").await;
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

#[tokio::test(start_paused = true)]
async fn a_message_may_name_a_known_model_which_becomes_the_sessions() {
    let h = harness();
    let mut client = h.connect("u1", None, None).await;
    let other = ModelId::parse("other").expect("id");
    let mut unknown = message("hi");
    unknown.model_id = Some(ModelId::parse("nope").expect("id"));
    let refused = h.service.handle(&mut client.connection, ClientCommand::SendMessage(unknown)).await;
    assert!(matches!(refused, Err(ChatError::UnknownModel)), "{refused:?}");

    h.say(&mut client, "first").await.expect("first");
    client.until_done().await;
    let session = client.session_id();
    let mut switching = message("second");
    switching.model_id = Some(other.clone());
    h.service.handle(&mut client.connection, ClientCommand::SendMessage(switching)).await.expect("second");
    let events = client.until_done().await;
    assert!(matches!(events.last(), Some(ServerEvent::AnswerDone { model_id, .. }) if *model_id == other));
    assert_eq!(h.provider.requests()[1].model_id, other);
    assert_eq!(h.repo.load(&session).await.expect("load").expect("session").model_id, other, "stored");
}

fn attachment(kind: MessageKind, caption: &str) -> ClientCommand {
    ClientCommand::Attachment(Attachment {
        kind,
        session_id: None,
        file: AttachedFile::Link { file_id: "f-1".into(), file_url: "https://files.example/f-1".into() },
        content: caption.into(),
        metadata: Metadata::new(),
        client_message_id: None,
    })
}

/// `file_upload` and `voice_message` are stored and fanned out, with no model call; the
/// first user text message, not a caption, names the session.
#[tokio::test(start_paused = true)]
async fn attachments_are_stored_and_fanned_out_without_an_answer() {
    let h = harness();
    let mut phone = h.connect("u1", None, None).await;
    h.service
        .handle(&mut phone.connection, attachment(MessageKind::File, "Quarterly report"))
        .await
        .expect("file");
    let session = phone.session_id();
    let mut laptop = h.connect("u1", Some(session.clone()), None).await;
    h.service.handle(&mut phone.connection, attachment(MessageKind::Voice, "")).await.expect("voice");
    // The socket joined before the actor stored the file: it gets both, in order.
    for kind in [MessageKind::File, MessageKind::Voice] {
        match laptop.next().await {
            ServerEvent::Stored { message, .. } => assert_eq!(message.kind, kind),
            other => panic!("the other socket gets the attachment, got {other:?}"),
        }
    }
    assert!(phone.is_quiet().await, "no answer to an attachment");
    assert!(h.provider.requests().is_empty());

    let stored = h.stored(&session).await;
    assert_eq!(stored.len(), 2);
    assert_eq!((stored[0].kind, stored[0].content.as_str()), (MessageKind::File, "Quarterly report"));
    assert_eq!(stored[0].file_id.as_deref(), Some("f-1"));
    assert_eq!(stored[0].file_url.as_deref(), Some("https://files.example/f-1"));
    assert_eq!(stored[1].kind, MessageKind::Voice);
    assert_eq!(
        h.repo.load(&session).await.expect("load").expect("session").name,
        None,
        "a caption names nothing"
    );

    h.say(&mut phone, "Hello there").await.expect("text");
    phone.until_done().await;
    let named = h.repo.load(&session).await.expect("load").expect("session").name;
    assert_eq!(named.as_deref(), Some("Hello there"));
}
