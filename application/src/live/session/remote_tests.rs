//! Unit tests of a live session as one copy among replicas: frames from another replica
//! are recorded and delivered once by `seq`, an answer streamed elsewhere is mirrored for
//! joining sockets and stopped through its replica, a catch-up from the store delivers
//! what the stream missed, and a key stored elsewhere is acknowledged, not stored again.

use std::sync::atomic::{AtomicUsize, Ordering};

use chatbox_domain::{MessageId, MessageKind, Sender, StoredMessage};

use super::tests::{HandClock, drain, now, owners_session, socket, turn, user};
use super::*;
use crate::error::ChatError;
use crate::local_sockets::SocketList;
use crate::ports::ReplicaEvents;

/// A fan-out across replicas as the session sees it: local sockets, and the stop
/// requests it relays.
#[derive(Debug)]
struct ReplicaFanout {
    sockets: SocketList,
    stops: Arc<AtomicUsize>,
}

impl SessionFanout for ReplicaFanout {
    fn publish(&mut self, frame: &Arc<Frame>, except: Option<SocketId>, _: Seq) -> usize {
        self.sockets.send(frame, except)
    }
    fn local(&self) -> &SocketList {
        &self.sockets
    }
    fn local_mut(&mut self) -> &mut SocketList {
        &mut self.sockets
    }
    fn relay_stop(&mut self) {
        self.stops.fetch_add(1, Ordering::SeqCst);
    }
}

/// A session copy and the count of relayed stops.
fn copy() -> (LiveSession, Arc<AtomicUsize>) {
    let clock: Arc<dyn Clock> = Arc::new(HandClock::default());
    let stops = Arc::new(AtomicUsize::new(0));
    let fanout = ReplicaFanout { sockets: SocketList::default(), stops: Arc::clone(&stops) };
    let live =
        LiveSession::new(owners_session(), Vec::new(), Box::new(fanout), clock, CancellationToken::new());
    (live, stops)
}

fn message(seq: u64, text: &str, key: Option<&str>) -> StoredMessage {
    let mut message = StoredMessage::text(
        MessageId::parse(&format!("m{seq}")).expect("id"),
        Seq(seq),
        Sender::User,
        text.to_owned(),
        now(),
    );
    message.client_message_id = key.map(|key| chatbox_domain::ClientMessageId::parse(key).expect("key"));
    message
}

fn stored(message: &StoredMessage) -> Arc<Frame> {
    let session_id = SessionId::parse("s").expect("id");
    Frame::new(ServerEvent::Stored { session_id, message: Arc::new(message.clone()) }, now())
}

fn loading(id: &str) -> Arc<Frame> {
    let (session_id, message_id) = (SessionId::parse("s").expect("id"), MessageId::parse(id).expect("id"));
    Frame::new(ServerEvent::Loading { session_id, message_id, style: AnswerStyle::AiResponse }, now())
}

fn chunk(id: &str, delta: &str) -> Arc<Frame> {
    Frame::new(
        ServerEvent::AnswerChunk {
            session_id: SessionId::parse("s").expect("id"),
            message_id: MessageId::parse(id).expect("id"),
            model_id: ModelId::parse("m").expect("id"),
            delta: Arc::from(delta),
            style: AnswerStyle::AiResponse,
        },
        now(),
    )
}

/// The `done` of answer `id`, stored at `seq` (or not stored).
fn done(id: &str, seq: Option<u64>, finish_reason: chatbox_domain::FinishReason) -> Arc<Frame> {
    Frame::new(
        ServerEvent::AnswerDone {
            session_id: SessionId::parse("s").expect("id"),
            message_id: MessageId::parse(id).expect("id"),
            model_id: ModelId::parse("m").expect("id"),
            seq: seq.map(Seq),
            finish_reason,
            usage: None,
            timing: chatbox_domain::AnswerTiming::default(),
            style: AnswerStyle::AiResponse,
        },
        now(),
    )
}

/// Admin `ada` took the session over.
fn ada_joined() -> Arc<Frame> {
    let session_id = SessionId::parse("s").expect("id");
    Frame::new(
        ServerEvent::Handoff { session_id, joined: true, admin_id: user("ada"), admin_name: "Ada".into() },
        now(),
    )
}

fn kinds(frames: &[Arc<Frame>]) -> Vec<String> {
    frames
        .iter()
        .map(|frame| match &frame.event {
            ServerEvent::Stored { message, .. } => format!("stored {}", message.seq),
            ServerEvent::Loading { .. } => "loading".to_owned(),
            ServerEvent::AnswerChunk { delta, .. } => format!("chunk {delta}"),
            ServerEvent::AnswerDone { seq, .. } => format!("done {seq:?}"),
            ServerEvent::MessageAck { seq, .. } => format!("ack {seq}"),
            other => format!("{other:?}"),
        })
        .collect()
}

#[test]
fn a_message_stored_elsewhere_is_recorded_and_delivered_once() {
    let (live, _) = copy();
    let (phone, mut queue) = socket("owner");
    assert!(live.join(&phone, now()));
    let first = message(1, "hello", None);
    live.apply_remote(stored(&first), Seq(1));
    live.apply_remote(stored(&first), Seq(1));
    assert_eq!(kinds(&drain(&mut queue)), ["stored 1"], "the repeat is dropped by seq");
    assert_eq!(live.stored_seq(), Seq(1));
    assert_eq!(
        live.read(|session| session.name.clone()).as_deref(),
        Some("hello"),
        "the first text names it"
    );
    assert_eq!(live.read(|session| session.message_count), 1);
    // An answer that started before message 1 (published at seq 0) has ended already.
    live.apply_remote(loading("old"), Seq(0));
    assert!(drain(&mut queue).is_empty() && !live.mirrors_an_answer(), "a stale frame is dropped");
    live.apply_remote(loading("new"), Seq(1));
    assert_eq!(kinds(&drain(&mut queue)), ["loading"], "one published at the copy's seq is current");
}

#[test]
fn only_a_first_user_text_names_the_session() {
    let (live, _) = copy();
    let mut file = message(1, "holiday.png", None);
    file.kind = MessageKind::File;
    live.apply_remote(stored(&file), Seq(1));
    let mut answer = message(2, "a picture", None);
    answer.sender = Sender::Ai;
    live.apply_remote(stored(&answer), Seq(2));
    assert_eq!(live.read(|session| session.name.clone()), None, "neither a file nor an answer names it");
    live.apply_remote(stored(&message(3, "trip plans", None)), Seq(3));
    assert_eq!(live.read(|session| session.name.clone()).as_deref(), Some("trip plans"));
}

#[test]
fn an_answer_streamed_elsewhere_is_mirrored_for_a_joining_socket_and_stopped_through_its_replica() {
    let (live, stops) = copy();
    live.apply_remote(loading("a1"), Seq(0));
    live.apply_remote(chunk("a1", "Hel"), Seq(0));
    live.apply_remote(chunk("a1", "lo"), Seq(0));
    assert!(live.mirrors_an_answer());
    let (late, mut queue) = socket("owner");
    assert!(live.join(&late, now()));
    assert_eq!(kinds(&drain(&mut queue)), ["loading", "chunk Hello"], "caught up with the mirrored text");
    live.stop_answer();
    assert_eq!(stops.load(Ordering::SeqCst), 1, "the stop is relayed to the replica that streams it");
    live.set_handoff(HandoffState::AdminAssisting { admin_id: user("ada"), admin_name: "Ada".into() });
    assert_eq!(stops.load(Ordering::SeqCst), 2, "so is a takeover's");

    let done = done("a1", Some(2), chatbox_domain::FinishReason::Stop);
    live.apply_remote(Arc::clone(&done), Seq(2));
    assert!(!live.mirrors_an_answer());
    assert_eq!(live.stored_seq(), Seq(2));
    live.apply_remote(done, Seq(2));
    assert_eq!(kinds(&drain(&mut queue)), ["done Some(Seq(2))"], "the end is delivered once");
}

#[test]
fn a_catch_up_delivers_what_the_stream_missed_and_ends_a_mirrored_answer_the_store_has() {
    let (live, _) = copy();
    let (phone, mut queue) = socket("owner");
    assert!(live.join(&phone, now()));
    live.apply_remote(loading("m2"), Seq(0));
    live.apply_remote(chunk("m2", "partial"), Seq(0));
    drain(&mut queue);
    let question = message(1, "question", None);
    let mut answer = message(2, "partial and the rest", None);
    answer.sender = Sender::Ai;
    answer.finish_reason = Some(chatbox_domain::FinishReason::Stop);
    let mut loaded = live.read(Clone::clone);
    loaded.last_seq = Seq(2);
    loaded.model_id = ModelId::parse("other").expect("id");
    live.catch_up(loaded, &[question.clone(), answer], now());
    assert_eq!(kinds(&drain(&mut queue)), ["stored 1", "done Some(Seq(2))"]);
    assert!(!live.mirrors_an_answer(), "the mirrored answer ended with the stored one");
    assert_eq!(live.stored_seq(), Seq(2));
    assert_eq!(live.model_id().as_str(), "other", "the fields are the store's");
    live.apply_remote(stored(&question), Seq(1));
    assert!(drain(&mut queue).is_empty(), "a frame arriving after the catch-up is not delivered twice");
}

#[test]
fn a_key_stored_elsewhere_is_acknowledged_to_every_sender_here_and_not_stored_again() {
    let (live, _) = copy();
    let (origin, mut origin_queue) = socket("owner");
    let (repeat, mut repeat_queue) = socket("owner");
    assert!(live.admit_turn(turn(&origin, Sender::User, Some("k1")), 3, now()).is_ok());
    assert!(live.admit_turn(turn(&repeat, Sender::User, Some("k1")), 3, now()).is_ok(), "a repeat waits");
    live.apply_remote(stored(&message(1, "hello", Some("k1"))), Seq(1));
    assert_eq!(kinds(&drain(&mut repeat_queue)), ["ack 1"], "the waiting repeat is told at once");
    assert!(live.take_if_stored_elsewhere(&turn(&origin, Sender::User, Some("k1"))));
    assert_eq!(kinds(&drain(&mut origin_queue)), ["ack 1"], "its sender too, when the actor takes it");
    assert!(
        !live.take_if_stored_elsewhere(&turn(&origin, Sender::User, Some("k2"))),
        "an unknown key is stored"
    );
    assert!(!live.take_if_stored_elsewhere(&turn(&origin, Sender::User, None)));
}

#[test]
fn a_takeover_elsewhere_silences_the_answer_streamed_here() {
    let (live, stops) = copy();
    let cancel = CancellationToken::new();
    let loading = loading("mine");
    let _ = live.start_answer(
        MessageId::parse("mine").expect("id"),
        AnswerStyle::AiResponse,
        cancel.clone(),
        &loading,
    );
    live.apply_remote(ada_joined(), Seq(0));
    assert!(cancel.is_cancelled(), "the answer streamed here stops");
    assert_eq!(stops.load(Ordering::SeqCst), 0, "nothing to relay: it ran here");
    assert!(live.read(|session| session.handoff.assisted_by(&user("ada"))));
    live.stop_requested();
    assert!(!live.mirrors_an_answer());
}

fn status(state: &'static str) -> Arc<Frame> {
    Frame::new(
        ServerEvent::ConnectionStatus {
            user_id: user("owner"),
            session_id: SessionId::parse("s").expect("id"),
            models: Arc::from(Vec::new()),
            model_id: ModelId::parse("m").expect("id"),
            state,
            content: None,
        },
        now(),
    )
}

#[test]
fn a_help_request_or_an_end_elsewhere_changes_the_copy_here() {
    let (live, _) = copy();
    let (phone, _queue) = socket("owner");
    live.apply_remote(status("help_requested"), Seq(0));
    assert_eq!(live.read(|session| session.handoff.clone()), HandoffState::HelpRequested);
    live.apply_remote(status("ended"), Seq(0));
    assert!(!live.read(Session::is_active), "ended here too");
    let refused = live.admit_turn(turn(&phone, Sender::User, None), 3, now());
    assert!(matches!(refused, Err(ChatError::SessionEnded)), "{refused:?}");
}

#[test]
fn a_stop_requested_by_another_replica_cancels_the_answer_streamed_here() {
    let (live, stops) = copy();
    let cancel = CancellationToken::new();
    let _ = live.start_answer(
        MessageId::parse("a").expect("id"),
        AnswerStyle::AiResponse,
        cancel.clone(),
        &loading("a"),
    );
    live.stop_requested();
    assert!(cancel.is_cancelled());
    assert_eq!(stops.load(Ordering::SeqCst), 0, "it ran here: nothing to relay");
}

#[test]
fn the_end_of_an_answer_this_copy_did_not_see_start_is_still_delivered() {
    let (live, _) = copy();
    let (phone, mut queue) = socket("owner");
    assert!(live.join(&phone, now()));
    let done = done("unseen", None, chatbox_domain::FinishReason::Error);
    live.apply_remote(done, Seq(0));
    assert_eq!(kinds(&drain(&mut queue)), ["done None"], "its sockets learn the answer ended");
}

#[test]
fn a_copy_whose_last_socket_dropped_out_on_a_remote_frame_counts_as_unattended() {
    let (live, _) = copy();
    let (reader, _queue) = socket("owner");
    assert!(live.join(&reader, now()));
    live.apply_remote(loading("a"), Seq(0));
    assert_eq!(live.unattended_since(), None, "a socket still reads");
    reader.close(crate::socket::CloseReason::SlowConsumer);
    live.apply_remote(chunk("a", "more"), Seq(0));
    assert!(live.unattended_since().is_some(), "nobody is left to read it");
}

#[test]
fn a_later_message_closes_a_mirror_whose_end_never_came() {
    let (live, _) = copy();
    live.apply_remote(loading("lost"), Seq(0));
    live.apply_remote(chunk("lost", "half"), Seq(0));
    assert!(live.mirrors_an_answer());
    // Its `done` was lost; the writer's next message shows the answer ended.
    live.apply_remote(stored(&message(2, "next", None)), Seq(2));
    assert!(!live.mirrors_an_answer(), "nothing is left to end for a replica that died");
    assert_eq!(live.orphaned_answer(), None);
}

#[test]
fn another_replicas_end_of_an_answer_streamed_here_takes_it_over() {
    let (live, _) = copy();
    let cancel = CancellationToken::new();
    let _ = live.start_answer(
        MessageId::parse("mine").expect("id"),
        AnswerStyle::AiResponse,
        cancel.clone(),
        &loading("mine"),
    );
    live.push_chunk("streamed here", &chunk("mine", "streamed here"));
    assert!(!live.answer_taken_over());
    let done = done("mine", Some(1), chatbox_domain::FinishReason::Error);
    live.apply_remote(done, Seq(1));
    assert!(live.answer_taken_over(), "another replica ended it: it is not stored or ended here");
    assert!(cancel.is_cancelled(), "and it stops streaming here");
    assert!(!live.mirrors_an_answer(), "it was never a mirror");
}

#[test]
fn a_session_wide_event_from_a_replica_that_is_behind_is_applied() {
    let (live, _) = copy();
    let (phone, mut queue) = socket("owner");
    assert!(live.join(&phone, now()));
    live.apply_remote(stored(&message(1, "one", None)), Seq(1));
    live.apply_remote(stored(&message(2, "two", None)), Seq(2));
    drain(&mut queue);
    // The admin took over on a replica whose copy had seen nothing yet.
    live.apply_remote(ada_joined(), Seq(0));
    assert!(live.read(|session| session.handoff.assisted_by(&user("ada"))), "applied");
    assert_eq!(drain(&mut queue).len(), 1, "and delivered");
    live.apply_remote(loading("old"), Seq(0));
    assert!(drain(&mut queue).is_empty(), "an answer's progress from before is still stale");
}

#[test]
fn an_answer_left_open_by_a_dead_actor_is_ended_only_where_it_runs() {
    let (live, _) = copy();
    let (phone, mut queue) = socket("owner");
    assert!(live.join(&phone, now()));
    let failed =
        Frame::new(ServerEvent::error(&ChatError::Internal, Some(SessionId::parse("s").expect("id"))), now());
    let abandon = || live.abandon_answer(&failed);
    live.apply_remote(loading("theirs"), Seq(0));
    assert_eq!(abandon(), None, "a mirror is ended by the replica that streams it");
    assert!(live.mirrors_an_answer());
    live.apply_remote(done("theirs", None, chatbox_domain::FinishReason::Stop), Seq(0));

    let _ = live.start_answer(
        MessageId::parse("taken").expect("id"),
        AnswerStyle::AiResponse,
        CancellationToken::new(),
        &loading("taken"),
    );
    live.apply_remote(done("taken", Some(1), chatbox_domain::FinishReason::Error), Seq(1));
    assert_eq!(abandon(), None, "another replica ended this one already");
    live.finish_answer(None, &[]);
    drain(&mut queue);

    let _ = live.start_answer(
        MessageId::parse("mine").expect("id"),
        AnswerStyle::AiResponse,
        CancellationToken::new(),
        &loading("mine"),
    );
    live.push_chunk("half", &chunk("mine", "half"));
    drain(&mut queue);
    assert_eq!(abandon().map(|id| id.to_string()).as_deref(), Some("mine"));
    let frames = drain(&mut queue);
    assert!(
        matches!(&frames[0].event, ServerEvent::Error { code: chatbox_domain::ErrorCode::ServiceError, .. }),
        "{:?}",
        kinds(&frames)
    );
    assert_eq!(kinds(&frames[1..]), ["done None"], "ended, nothing stored");
    assert_eq!(abandon(), None, "it is ended once");
}
