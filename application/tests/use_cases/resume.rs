//! Leaving and coming back (`chat/resolve`, `chat/replay`): a resumed socket gets what
//! it missed once and in order, an answer runs on while nobody watches (until the
//! reconnect timeout), idle live state is evicted but stays stored, and a foreign
//! session id reveals nothing.

use std::time::Duration;

use chatbox_application::commands::{ClientCommand, SendMessage};
use chatbox_application::events::{AnswerStyle, ServerEvent};
use chatbox_domain::validation::{MessageContent, Metadata};
use chatbox_domain::{FinishReason, Seq};

use crate::support::{Step, Storage, answer_text, done_of, harness, harness_with, settings};

#[tokio::test(start_paused = true)]
async fn resume_mid_answer_replays_stored_then_partial_then_live_without_loss_or_doubling() {
    let h = harness();
    h.provider.push(vec![Step::Say("first answer")]);
    let mut script = vec![];
    for _ in 0..10 {
        script.push(Step::Say("w "));
        script.push(Step::Wait(Duration::from_millis(30)));
    }
    h.provider.push(script);
    let mut client = h.connect("u1", None, None).await;
    let session = client.session_id();
    h.say(&mut client, "q1").await.expect("q1");
    let (first_seq, _) = done_of(&client.until_done().await);
    h.say(&mut client, "q2").await.expect("q2");
    assert!(matches!(client.next().await, ServerEvent::Loading { .. }));
    for _ in 0..3 {
        assert!(matches!(client.next().await, ServerEvent::AnswerChunk { .. }));
    }
    h.service.disconnect(client.connection);

    // The input: 70 ms away (virtual), during which the answer streams on unwatched.
    tokio::time::sleep(Duration::from_millis(70)).await;
    let mut back = h.connect("u1", Some(session.clone()), first_seq).await;
    let events = back.until_done().await;
    match &events[0] {
        ServerEvent::Stored { message, .. } => assert_eq!(message.content, "q2"),
        other => panic!("replay of the stored question first, got {other:?}"),
    }
    assert!(matches!(events[1], ServerEvent::Loading { .. }));
    let streamed = answer_text(&events[2..]);
    assert_eq!(streamed, "w ".repeat(10), "partial + live = exactly the answer");
    let (seq, reason) = done_of(&events);
    assert_eq!(reason, FinishReason::Stop);
    assert_eq!(h.stored(&session).await.last().map(|m| m.seq), seq);
}

#[tokio::test(start_paused = true)]
async fn a_disconnected_session_keeps_answering_and_stores_the_answer() {
    let h = harness();
    h.provider.push(vec![Step::Say("still "), Step::Wait(Duration::from_millis(100)), Step::Say("here")]);
    let mut client = h.connect("u1", None, None).await;
    let session = client.session_id();
    h.say(&mut client, "q").await.expect("q");
    assert!(matches!(client.next().await, ServerEvent::Loading { .. }));
    h.service.disconnect(client.connection);
    // Nothing waited for: after the disconnect, the answer is unwatched. Coming back
    // finds it still running (`loading`, the text so far, the rest live): it must end
    // as the whole answer, stored, not cancelled by the disconnect.
    let mut back = h.connect("u1", Some(session.clone()), Some(Seq(1))).await;
    let events = back.until_done().await;
    assert!(matches!(events[0], ServerEvent::Loading { .. }), "{events:?}");
    assert_eq!(answer_text(&events), "still here");
    assert_eq!(done_of(&events), (Some(Seq(2)), FinishReason::Stop));
    let stored = h.stored(&session).await;
    assert_eq!(stored.last().map(|m| m.content.as_str()), Some("still here"));
}

#[tokio::test(start_paused = true)]
async fn an_answer_nobody_comes_back_for_is_cancelled_after_the_reconnect_timeout_and_stored() {
    let mut s = settings();
    s.reconnect_timeout = Duration::from_millis(150);
    let h = harness_with(s);
    let mut script = vec![Step::Say("part ")];
    for _ in 0..50 {
        script.push(Step::Wait(Duration::from_millis(20)));
        script.push(Step::Say("more "));
    }
    h.provider.push(script);
    let mut client = h.connect("u1", None, None).await;
    let session = client.session_id();
    h.say(&mut client, "long").await.expect("long");
    assert!(matches!(client.next().await, ServerEvent::Loading { .. }));
    h.service.disconnect(client.connection);
    // The input: nobody comes back for 600 ms (virtual), four times the timeout.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(h.provider.dropped_streams(), 1, "the provider request was abandoned");
    let answer = h.stored(&session).await.pop().expect("the partial answer");
    assert_eq!(answer.finish_reason, Some(FinishReason::Cancelled));
    assert!(answer.content.starts_with("part ") && answer.content.len() < "part ".len() + 50 * 5);
}

#[tokio::test(start_paused = true)]
async fn a_long_history_is_replayed_page_by_page_without_loss_or_doubles() {
    let mut s = settings();
    s.replay_page_size = 3;
    let h = harness_with(s);
    let mut client = h.connect("u1", None, None).await;
    for n in 0..5 {
        h.say(&mut client, &format!("question {n}")).await.expect("accepted");
        client.until_done().await;
    }
    let session = client.session_id();
    let mut back = h.connect("u1", Some(session), Some(Seq(0))).await;
    let mut seqs = Vec::new();
    while let Some(event) = back.next_within(Duration::from_millis(200)).await {
        if let ServerEvent::Stored { message, .. } = event {
            seqs.push(message.seq.0);
        }
    }
    assert_eq!(seqs, (1..=10).collect::<Vec<u64>>(), "every stored message once, in order, across 4 pages");
}

#[tokio::test(start_paused = true)]
async fn a_foreign_session_id_starts_a_new_session_and_reveals_nothing() {
    let h = harness();
    let mut owner = h.answered("owner", "private").await;
    let victim = owner.session_id();

    let mut intruder = h.connect("intruder", Some(victim.clone()), Some(Seq(0))).await;
    assert_ne!(intruder.session_id(), victim, "not bound to the foreign session");
    let command = ClientCommand::SendMessage(SendMessage {
        session_id: Some(victim.clone()),
        content: MessageContent::parse("hijack", 100).expect("content"),
        model_id: None,
        client_message_id: None,
        metadata: Metadata::new(),
        style: AnswerStyle::AiResponse,
    });
    h.service.handle(&mut intruder.connection, command).await.expect("accepted into a new session");
    let status = intruder.next().await;
    let ServerEvent::ConnectionStatus { session_id, .. } = status else {
        panic!("status with the new id: {status:?}")
    };
    assert_ne!(session_id, victim);
    intruder.until_done().await;
    assert_eq!(h.stored(&victim).await.len(), 2, "the victim's session is untouched");
    assert!(owner.next_within(Duration::from_millis(100)).await.is_none(), "nothing reaches the owner");
    h.service
        .handle(&mut intruder.connection, ClientCommand::Stop { session_id: Some(victim) })
        .await
        .expect("stop is a no-op");
}

#[tokio::test(start_paused = true)]
async fn cleanup_evicts_idle_live_state_but_keeps_the_session_stored() {
    let mut s = settings();
    s.session_ttl = Duration::from_millis(50);
    let h = harness_with(s);
    let client = h.answered("u1", "hello").await;
    assert_eq!(h.service.cleanup_sessions(), 0, "a bound socket keeps it live");
    let session = client.session_id();
    h.service.disconnect(client.connection);
    // The input: the session stays idle past its TTL.
    tokio::time::advance(Duration::from_millis(80)).await;
    assert_eq!(h.service.cleanup_sessions(), 1);
    assert_eq!(h.service.live_sessions(), 0);
    let mut back = h.connect("u1", Some(session.clone()), Some(Seq(0))).await;
    assert_eq!(back.session_id(), session, "loaded again from storage");
    assert!(matches!(back.next().await, ServerEvent::Stored { .. }));
    h.say(&mut back, "again").await.expect("works after eviction");
    assert_eq!(done_of(&back.until_done().await).0, Some(Seq(4)), "sequence continues");
}

/// A socket resumes while another socket's message is being stored: the store already
/// has the message when the replay reads it, the session has not recorded it yet. It
/// must arrive once, not in the replay and again live.
#[tokio::test(start_paused = true)]
async fn a_resume_racing_another_sockets_message_gets_it_once() {
    let h = harness();
    h.provider.push(vec![Step::Say("a1")]);
    h.provider.push(vec![Step::Say("a2")]);
    let mut writer = h.connect("u1", None, None).await;
    let session = writer.session_id();
    h.say(&mut writer, "q1").await.expect("q1");
    let (seen, _) = done_of(&writer.until_done().await);

    h.set_storage(Storage::LandsThenWaits);
    h.say(&mut writer, "q2").await.expect("q2");
    h.write_landed().await;
    let mut reader = h.connect("u1", Some(session.clone()), seen).await;
    h.release_writes();
    let events = reader.until_done().await;
    let mut seqs: Vec<Seq> = events
        .iter()
        .filter_map(|event| match event {
            ServerEvent::Stored { message, .. } => Some(message.seq),
            _ => None,
        })
        .collect();
    assert_eq!(seqs.len(), 1, "the question once: {events:?}");
    seqs.extend(done_of(&events).0);
    let stored: Vec<Seq> = h.stored(&session).await.iter().map(|m| m.seq).skip(2).collect();
    assert_eq!(seqs, stored, "the question, then the answer, each once and in order");
    assert_eq!(answer_text(&events), "a2");
}
