//! One session served by several replicas (`answer/lease`, `live/session/remote`, the
//! fan-out port): a session's sockets on different replicas see one conversation, one
//! writer at a time stores it in one order whichever replica a message reaches (catching
//! up from the store with what the other replicas' frames did not bring), a field changed
//! on one replica is used by the next answer on another, a retried key is stored once, a
//! stop reaches the replica that streams, and the answer of a replica that died is ended
//! by another.

use chatbox_application::commands::ClientCommand;
use chatbox_application::events::ServerEvent;
use chatbox_domain::{ErrorCode, FinishReason, ModelId, Sender, Seq};

use chatbox_domain::SessionId;

use crate::support::{Client, Harness, ReplicaBus, Step, Storage, harness, replicas, settings};

fn stored_texts(events: &[ServerEvent]) -> Vec<String> {
    events
        .iter()
        .filter_map(|event| match event {
            ServerEvent::Stored { message, .. } => Some(message.content.clone()),
            _ => None,
        })
        .collect()
}

fn done_of(events: &[ServerEvent]) -> (Option<Seq>, FinishReason) {
    match events.last() {
        Some(ServerEvent::AnswerDone { seq, finish_reason, .. }) => (*seq, *finish_reason),
        other => panic!("expected done, got {other:?}"),
    }
}

async fn joined(harness: &Harness, user: &str, session: &SessionId) -> Client {
    harness.connect(user, Some(session.clone()), None).await
}

/// Two replicas and one session of `u1` with a socket on each: the phone's, on replica
/// 0, opened it with one exchange; the laptop's, on replica 1, joined it.
struct Pair {
    hs: Vec<Harness>,
    bus: ReplicaBus,
    phone: Client,
    laptop: Client,
    session: SessionId,
}

async fn pair() -> Pair {
    let (hs, bus) = replicas(&settings(), 2);
    let phone = hs[0].answered("u1", "hello").await;
    let session = phone.session_id();
    let laptop = joined(&hs[1], "u1", &session).await;
    Pair { hs, bus, phone, laptop, session }
}

fn is_chunk(event: &ServerEvent) -> bool {
    matches!(event, ServerEvent::AnswerChunk { .. })
}

#[tokio::test(start_paused = true)]
async fn a_sessions_sockets_on_two_replicas_see_one_conversation() {
    let Pair { hs, mut phone, mut laptop, session, .. } = pair().await;
    hs[0].say(&mut phone, "from the phone").await.expect("accepted");
    let seen = laptop.until_done().await;
    assert_eq!(stored_texts(&seen), ["from the phone"], "the echo crossed replicas: {seen:?}");
    assert!(matches!(seen[1], ServerEvent::Loading { .. }), "{seen:?}");
    assert_eq!(done_of(&seen), (Some(Seq(4)), FinishReason::Stop));
    assert_eq!(done_of(&phone.until_done().await).0, Some(Seq(4)));

    hs[1].say(&mut laptop, "from the laptop").await.expect("accepted");
    let heard = phone.until_done().await;
    assert_eq!(stored_texts(&heard), ["from the laptop"]);
    assert_eq!(done_of(&heard).0, Some(Seq(6)), "stored after the other replica's messages");
    let seqs: Vec<u64> = hs[0].stored(&session).await.iter().map(|m| m.seq.0).collect();
    assert_eq!(seqs, [1, 2, 3, 4, 5, 6]);
}

#[tokio::test(start_paused = true)]
async fn a_replica_that_only_watches_takes_no_lease() {
    let Pair { hs, bus, mut phone, mut laptop, .. } = pair().await;
    for text in ["one", "two"] {
        hs[0].say(&mut phone, text).await.expect("accepted");
        phone.until_done().await;
        laptop.until_done().await;
    }
    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    assert_eq!(bus.grants(1), 0, "the laptop's replica watched answers that ended: no lease, no catch-up");
    assert_eq!(bus.grants(0), 3, "one grant per message on the replica that wrote");
}

#[tokio::test(start_paused = true)]
async fn a_writer_keeps_its_lease_while_turns_wait() {
    let Pair { hs, bus, mut phone, .. } = pair().await;
    let before = bus.grants(0);
    // The second message is queued before the actor takes the first.
    hs[0].say(&mut phone, "one").await.expect("accepted");
    hs[0].say(&mut phone, "two").await.expect("queued behind the first");
    phone.until_done().await;
    phone.until_done().await;
    assert_eq!(bus.grants(0) - before, 1, "one grant for both: the lease is kept while a turn waits");
}

#[tokio::test(start_paused = true)]
async fn a_writer_whose_copy_missed_frames_catches_up_from_the_store_first() {
    let Pair { hs, bus, mut phone, mut laptop, session } = pair().await;
    // Frames between the replicas are lost meanwhile; the store has everything.
    bus.partition(true);
    hs[0].say(&mut phone, "while apart").await.expect("accepted");
    phone.until_done().await;
    assert!(laptop.is_quiet().await, "nothing crossed");
    bus.partition(false);

    hs[1].say(&mut laptop, "after").await.expect("accepted");
    let events = laptop.until_done().await;
    // What the laptop missed comes first, from the store, then its own answer.
    let missed: Vec<&ServerEvent> = events.iter().take(2).collect();
    assert!(
        matches!(missed[0], ServerEvent::Stored { message, .. } if message.content == "while apart" && message.seq == Seq(3)),
        "{events:?}"
    );
    assert!(
        matches!(missed[1], ServerEvent::Stored { message, .. } if message.sender == Sender::Ai && message.seq == Seq(4))
    );
    assert_eq!(done_of(&events), (Some(Seq(6)), FinishReason::Stop), "stored at the store's next seq");
    let stored = hs[1].stored(&session).await;
    assert_eq!(stored.iter().map(|m| m.seq.0).collect::<Vec<_>>(), [1, 2, 3, 4, 5, 6]);
    assert_eq!(stored[4].content, "after");
}

#[tokio::test(start_paused = true)]
async fn a_writer_that_finds_its_seq_taken_catches_up_and_stores_after() {
    let Pair { hs, bus, mut phone, mut laptop, session } = pair().await;
    bus.partition(true);
    hs[0].say(&mut phone, "while apart").await.expect("accepted");
    phone.until_done().await;
    bus.partition(false);
    // The leases forgot who held them: the laptop's replica believes its copy current.
    bus.amnesia(true);
    hs[1].say_with(&mut laptop, "after", Some("k-after")).await.expect("accepted");
    let events = laptop.until_done().await;
    assert!(events.iter().all(|e| !matches!(e, ServerEvent::Error { .. })), "not refused: {events:?}");
    assert!(
        events.iter().any(|e| matches!(e, ServerEvent::MessageAck { seq, .. } if *seq == Seq(5))),
        "stored after what the other replica wrote: {events:?}"
    );
    let stored = hs[1].stored(&session).await;
    assert_eq!(stored.iter().map(|m| m.seq.0).collect::<Vec<_>>(), [1, 2, 3, 4, 5, 6]);
    assert_eq!(stored[4].content, "after");
}

#[tokio::test(start_paused = true)]
async fn a_model_chosen_on_one_replica_answers_on_another() {
    let Pair { hs, mut phone, mut laptop, session, .. } = pair().await;
    let other = ModelId::parse("other").expect("id");
    let select = ClientCommand::SelectModel { session_id: Some(session.clone()), model_id: other.clone() };
    hs[1].service.handle(&mut laptop.connection, select).await.expect("selected");
    hs[0].say(&mut phone, "which model?").await.expect("accepted");
    phone.until_done().await;
    let requests = hs[0].provider.requests();
    assert_eq!(requests.last().expect("request").model_id, other, "the phone's replica read the change");
}

#[tokio::test(start_paused = true)]
async fn a_key_stored_through_one_replica_is_not_stored_again_through_another() {
    let Pair { hs, bus, mut phone, mut laptop, session } = pair().await;
    bus.partition(true);
    hs[0].say_with(&mut phone, "only once", Some("k-1")).await.expect("accepted");
    let first = phone.until_done().await;
    let ServerEvent::MessageAck { message_id, seq, .. } = &first[0] else { panic!("ack first: {first:?}") };
    bus.partition(false);

    // The retry reaches the other replica, whose copy never heard of the key.
    hs[1].say_with(&mut laptop, "only once", Some("k-1")).await.expect("accepted");
    let again = laptop.until(|event| matches!(event, ServerEvent::MessageAck { .. })).await;
    let Some(ServerEvent::MessageAck { message_id: again_id, seq: again_seq, .. }) = again.last() else {
        panic!("an ack: {again:?}")
    };
    assert_eq!((again_id, *again_seq), (message_id, *seq), "acknowledged with the stored message");
    let stored = hs[1].stored(&session).await;
    assert_eq!(stored.iter().filter(|m| m.content == "only once").count(), 1, "{stored:?}");
    assert_eq!(stored.len(), 4, "stored and answered once");
    // Known now on that replica: a further retry is acknowledged at once.
    hs[1].say_with(&mut laptop, "only once", Some("k-1")).await.expect("accepted");
    assert!(matches!(laptop.next().await, ServerEvent::MessageAck { .. }));
}

#[tokio::test(start_paused = true)]
async fn a_stop_on_one_replica_stops_the_answer_streaming_on_another() {
    let Pair { hs, mut phone, mut laptop, session, .. } = pair().await;
    hs[0].provider.push(vec![
        Step::Say("one "),
        Step::Wait(std::time::Duration::from_secs(30)),
        Step::Say("two"),
    ]);
    hs[0].say(&mut phone, "long").await.expect("accepted");
    laptop.until(is_chunk).await;
    let stop = ClientCommand::Stop { session_id: Some(session.clone()) };
    hs[1].service.handle(&mut laptop.connection, stop).await.expect("stop");
    let events = laptop.until_done().await;
    assert_eq!(done_of(&events).1, FinishReason::Cancelled, "{events:?}");
    assert_eq!(hs[0].stored(&session).await.last().expect("answer").content, "one ");
}

#[tokio::test(start_paused = true)]
async fn the_answer_of_a_replica_that_died_is_ended_by_another() {
    let Pair { hs, bus, mut phone, mut laptop, session } = pair().await;
    hs[0].provider.push(vec![Step::Say("partial "), Step::Stall]);
    hs[0].say(&mut phone, "long").await.expect("accepted");
    laptop.until(is_chunk).await;
    bus.cut_off(0);
    let events = laptop.until_done().await;
    assert!(
        events.iter().any(|e| matches!(e, ServerEvent::Error { code: ErrorCode::LlmUnavailable, .. })),
        "the sockets are told: {events:?}"
    );
    assert_eq!(done_of(&events), (Some(Seq(4)), FinishReason::Error));
    let stored = hs[1].stored(&session).await;
    let answer = stored.last().expect("answer");
    assert_eq!((answer.content.as_str(), answer.finish_reason), ("partial ", Some(FinishReason::Error)));
    assert_eq!(answer.sender, Sender::Ai);
    // The cut-off replica's answer, still streaming there, hears of the end and stops
    // without storing a second answer (long after its stream timeout).
    tokio::time::sleep(std::time::Duration::from_secs(30)).await;
    let answers = hs[1].stored(&session).await.iter().filter(|m| m.sender == Sender::Ai).count();
    assert_eq!(answers, 2, "the first exchange's answer and the one ended by the other replica");
}

#[tokio::test(start_paused = true)]
async fn one_process_does_not_read_a_live_session_again_before_each_message() {
    let h = harness();
    let mut client = h.answered("u1", "hello").await;
    let loads = h.session_loads();
    for text in ["two", "three"] {
        h.say(&mut client, text).await.expect("accepted");
        client.until_done().await;
    }
    assert_eq!(h.session_loads(), loads, "its lease never says another replica wrote");
}

#[tokio::test(start_paused = true)]
async fn the_lease_stays_with_an_answer_waiting_to_be_stored() {
    let (hs, _bus) = replicas(&settings(), 2);
    let (phone, _) = hs[0].held_answer("question", "held ", "answer").await;
    let session = phone.session_id();
    hs[0].set_storage(Storage::Works);
    // The other replica writes next: only once the held answer is stored (the retry
    // timer), so it lands after it instead of taking its seq.
    let mut laptop = joined(&hs[1], "u1", &session).await;
    hs[1].say(&mut laptop, "next").await.expect("accepted");
    laptop.until_done().await;
    let stored = hs[1].stored(&session).await;
    let texts: Vec<&str> = stored.iter().map(|m| m.content.as_str()).collect();
    assert_eq!(&texts[1..], ["held answer", "next", "ok"], "{stored:?}");
    assert_eq!(stored.iter().map(|m| m.seq.0).collect::<Vec<_>>(), [1, 2, 3, 4]);
}

#[tokio::test(start_paused = true)]
async fn a_turn_whose_lease_cannot_be_reached_is_refused_and_can_be_sent_again() {
    let (hs, bus) = replicas(&settings(), 2);
    let mut phone = hs[0].answered("u1", "hello").await;
    let session = phone.session_id();
    bus.leases_unreachable(true);
    hs[0].say_with(&mut phone, "while away", Some("k-away")).await.expect("admitted");
    match phone.next().await {
        ServerEvent::Error { code, retry_after, .. } => {
            assert_eq!(code, ErrorCode::SharedStateUnavailable);
            assert!(retry_after.is_some(), "the client is told when to send again");
        }
        other => panic!("expected the refusal, got {other:?}"),
    }
    assert_eq!(hs[0].stored(&session).await.len(), 2, "nothing stored meanwhile");
    bus.leases_unreachable(false);
    hs[0].say_with(&mut phone, "while away", Some("k-away")).await.expect("admitted");
    let events = phone.until_done().await;
    assert!(
        events.iter().any(|e| matches!(e, ServerEvent::MessageAck { seq, .. } if *seq == Seq(3))),
        "{events:?}"
    );
}
