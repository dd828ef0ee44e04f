//! Unit tests of one live session: when it counts as unattended, who may speak in it,
//! what keeps it in memory, what a stored turn tells its sockets, and how a replay page
//! ends (more, behind, joined).

use std::sync::Mutex;

use chatbox_domain::validation::Metadata;
use chatbox_domain::{ClientMessageId, MessageKind, Sender, StoredMessage};
use futures::FutureExt;

use super::*;
use crate::error::ChatError;
use crate::local_sockets::SocketList;
use crate::socket::{CloseReason, OutboundQueue, SocketBudget, SocketHandle};
use crate::turn::Turn;

/// A monotonic clock the test moves by hand.
#[derive(Debug, Default)]
pub(super) struct HandClock(Mutex<Duration>);

impl HandClock {
    pub(super) fn set(&self, at: Duration) {
        *self.0.lock().expect("clock") = at;
    }
}

impl Clock for HandClock {
    fn now(&self) -> Timestamp {
        chrono::DateTime::from_timestamp(1_800_000_000, 0).expect("time")
    }

    fn monotonic(&self) -> Duration {
        *self.0.lock().expect("clock")
    }
}

/// The in-process fan-out: the session's sockets in a list.
#[derive(Debug, Default)]
struct TestFanout(SocketList);

impl SessionFanout for TestFanout {
    fn publish(&mut self, frame: &Arc<Frame>, except: Option<SocketId>, _: Seq) -> usize {
        self.0.send(frame, except)
    }
    fn local(&self) -> &SocketList {
        &self.0
    }
    fn local_mut(&mut self) -> &mut SocketList {
        &mut self.0
    }
}

pub(super) fn user(id: &str) -> UserId {
    UserId::parse(id).expect("id")
}

pub(super) fn now() -> Timestamp {
    HandClock::default().now()
}

pub(super) fn socket(id: &str) -> (Arc<SocketHandle>, OutboundQueue) {
    SocketHandle::new(user(id), SocketBudget { max_bytes: 4096, encode: |_| "frame".to_owned() })
}

/// Session `s` of `owner`, answered by model `m`, created now.
pub(super) fn owners_session() -> Session {
    Session::new(SessionId::parse("s").expect("id"), user("owner"), ModelId::parse("m").expect("id"), now())
}

/// A live session of `owner` created at monotonic time `created`.
pub(super) fn live(clock: &Arc<HandClock>, created: Duration) -> LiveSession {
    clock.set(created);
    let clock: Arc<dyn Clock> = Arc::clone(clock) as Arc<dyn Clock>;
    LiveSession::new(
        owners_session(),
        Vec::new(),
        Box::new(TestFanout::default()),
        clock,
        CancellationToken::new(),
    )
}

pub(super) fn note(text: &str) -> Arc<Frame> {
    Frame::new(ServerEvent::Notification { content: text.to_owned() }, now())
}

pub(super) fn turn(origin: &Arc<SocketHandle>, sender: Sender, key: Option<&str>) -> Turn {
    Turn {
        origin: Arc::clone(origin),
        sender,
        kind: MessageKind::Text,
        content: "hello".to_owned(),
        file_id: None,
        file_url: None,
        metadata: Metadata::default(),
        client_message_id: key.map(|key| ClientMessageId::parse(key).expect("key")),
        answer: Some(AnswerStyle::AiResponse),
    }
}

fn assisting(admin: &str) -> HandoffState {
    HandoffState::AdminAssisting { admin_id: user(admin), admin_name: "Ada".to_owned() }
}

/// Every frame waiting in a socket's queue, in order.
pub(super) fn drain(queue: &mut OutboundQueue) -> Vec<Arc<Frame>> {
    let mut frames = Vec::new();
    while let Some(item) = queue.try_recv() {
        frames.extend(item.frames().iter().cloned());
    }
    frames
}

pub(super) fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

#[test]
fn the_reconnect_countdown_starts_when_the_last_socket_leaves_and_not_before() {
    let clock = Arc::new(HandClock::default());
    let live = live(&clock, secs(10));
    assert_eq!(live.unattended_since(), Some(secs(10)), "no socket yet: unattended since it became live");
    let ((a, _qa), (b, _qb)) = (socket("owner"), socket("owner"));
    assert!(live.join(&a, now()) && live.join(&b, now()));
    assert_eq!(live.unattended_since(), None, "a socket is bound");

    clock.set(secs(20));
    live.leave(a.id());
    assert_eq!(live.unattended_since(), None, "another socket is still bound");
    clock.set(secs(30));
    live.leave(b.id());
    assert_eq!(live.unattended_since(), Some(secs(30)), "the last socket left");
    clock.set(secs(40));
    live.leave(b.id());
    assert_eq!(live.unattended_since(), Some(secs(30)), "the countdown is not restarted");
}

#[test]
fn a_publication_that_loses_the_last_socket_starts_the_countdown() {
    let clock = Arc::new(HandClock::default());
    let live = live(&clock, secs(10));
    let (reader, mut queue) = socket("owner");
    assert!(live.join(&reader, now()));
    clock.set(secs(20));
    live.publish(&note("one"), None);
    assert_eq!(drain(&mut queue).len(), 1);
    assert_eq!(live.unattended_since(), None, "the socket took the frame and stays");

    reader.close(CloseReason::SlowConsumer);
    clock.set(secs(30));
    live.publish(&note("two"), None);
    assert_eq!(live.unattended_since(), Some(secs(30)), "the slow consumer was dropped: nobody is left");
}

#[test]
fn an_admin_speaks_only_while_assisting() {
    let clock = Arc::new(HandClock::default());
    let live = live(&clock, secs(10));
    let (desk, _queue) = socket("ada");
    let refused = live.admit_turn(turn(&desk, Sender::Admin, None), 3, now());
    assert!(matches!(refused, Err(ChatError::NotAssisting)), "{refused:?}");

    live.set_handoff(assisting("ada"));
    assert_eq!(live.read(|session| session.handoff.clone()), assisting("ada"));
    live.admit_turn(turn(&desk, Sender::Admin, None), 3, now()).expect("the assisting admin speaks");
    assert_eq!(live.next_turn().now_or_never().flatten().expect("queued").sender, Sender::Admin);
    let (other, _other_queue) = socket("bob");
    let refused = live.admit_turn(turn(&other, Sender::Admin, None), 3, now());
    assert!(matches!(refused, Err(ChatError::NotAssisting)), "another admin: {refused:?}");

    live.set_handoff(HandoffState::Ai);
    let refused = live.admit_turn(turn(&desk, Sender::Admin, None), 3, now());
    assert!(matches!(refused, Err(ChatError::NotAssisting)), "after the release: {refused:?}");
}

#[test]
fn taking_over_stops_the_answer_in_progress() {
    let clock = Arc::new(HandClock::default());
    let live = live(&clock, secs(10));
    let cancel = CancellationToken::new();
    let message_id = MessageId::parse("answer").expect("id");
    let _ = live.start_answer(message_id, AnswerStyle::AiResponse, cancel.clone(), &note("loading"));
    live.set_handoff(HandoffState::HelpRequested);
    assert!(!cancel.is_cancelled(), "asking for help lets the model finish");
    live.set_handoff(assisting("ada"));
    assert!(cancel.is_cancelled());
}

#[test]
fn an_answer_waiting_for_storage_keeps_the_session_in_memory() {
    let clock = Arc::new(HandClock::default());
    let live = live(&clock, secs(10));
    live.hold_answer();
    clock.set(secs(1_000));
    assert!(!live.evict_if_idle(secs(1)), "the held answer is not written yet");
    live.release_held_answer(None);
    assert!(live.evict_if_idle(secs(1)));
}

#[test]
fn a_stored_turn_is_acknowledged_echoed_and_says_whether_the_model_answers() {
    let clock = Arc::new(HandClock::default());
    let live = live(&clock, secs(10));
    let ((origin, mut origin_queue), (copy, mut copy_queue), (reader, mut reader_queue)) =
        (socket("owner"), socket("owner"), socket("owner"));
    assert!(live.join(&origin, now()) && live.join(&copy, now()) && live.join(&reader, now()));
    live.admit_turn(turn(&origin, Sender::User, Some("k1")), 3, now()).expect("admitted");
    live.admit_turn(turn(&copy, Sender::User, Some("k1")), 3, now()).expect("a repeat waits");

    let (seq, effects) = live.next_message(Some("hello"));
    assert_eq!(seq, Seq(1));
    let message_id = MessageId::parse("m1").expect("id");
    let stored = StoredMessage::text(message_id.clone(), seq, Sender::User, "hello".into(), now());
    let echo = note("echo");
    assert!(live.turn_stored(&turn(&origin, Sender::User, Some("k1")), &stored, &effects, &echo));
    assert_eq!(live.read(|session| session.last_seq), Seq(1));

    let ack = ServerEvent::MessageAck {
        session_id: live.id().clone(),
        message_id,
        seq: Seq(1),
        client_message_id: ClientMessageId::parse("k1").expect("key"),
    };
    let origin_frames = drain(&mut origin_queue);
    assert_eq!(
        origin_frames.iter().map(|f| &f.event).collect::<Vec<_>>(),
        vec![&ack],
        "no echo to the sender"
    );
    let copy_frames = drain(&mut copy_queue);
    assert_eq!(copy_frames.iter().map(|f| &f.event).collect::<Vec<_>>(), vec![&echo.event, &ack]);
    let reader_frames = drain(&mut reader_queue);
    assert_eq!(reader_frames.iter().map(|f| &f.event).collect::<Vec<_>>(), vec![&echo.event]);

    live.set_handoff(assisting("ada"));
    let (seq, effects) = live.next_message(Some("still there?"));
    let stored =
        StoredMessage::text(MessageId::parse("m2").expect("id"), seq, Sender::User, "x".into(), now());
    assert!(
        !live.turn_stored(&turn(&origin, Sender::User, None), &stored, &effects, &note("echo")),
        "the model is silent while an admin assists"
    );
}

// --- Replay pages ------------------------------------------------------------------------

/// Stored messages `seqs` as a replay page.
fn page(seqs: std::ops::RangeInclusive<u64>) -> Vec<(Seq, Arc<Frame>)> {
    seqs.map(|n| (Seq(n), note(&format!("message {n}")))).collect()
}

/// A live session whose messages up to `stored` are recorded as stored.
fn live_with_stored(stored: u64) -> LiveSession {
    let clock = Arc::new(HandClock::default());
    let live = live(&clock, secs(10));
    live.finish_answer(Some((Seq(stored), now(), &MessageEffects::default())), &[]);
    live
}

fn contents(frames: &[Arc<Frame>]) -> Vec<String> {
    frames
        .iter()
        .map(|frame| match &frame.event {
            ServerEvent::Notification { content } => content.clone(),
            other => format!("{other:?}"),
        })
        .collect()
}

fn subscribers(live: &LiveSession) -> usize {
    live.lock().fanout.subscribers()
}

#[test]
fn a_full_page_of_stored_messages_asks_for_the_next_page() {
    let live = live_with_stored(5);
    let (socket, mut queue) = socket("owner");
    let mut cursor = Seq(0);
    assert_eq!(live.replay_page(&socket, page(1..=3), true, &mut cursor, now()), ReplayStep::More);
    assert_eq!(cursor, Seq(3));
    assert_eq!(contents(&drain(&mut queue)), ["message 1", "message 2", "message 3"]);
    assert_eq!(subscribers(&live), 0, "not joined before the replay caught up");
}

#[test]
fn a_message_not_recorded_yet_is_left_to_the_live_path_and_the_socket_joins() {
    let live = live_with_stored(5);
    let (socket, mut queue) = socket("owner");
    let mut cursor = Seq(3);
    // Storage returned message 6, whose answer the actor has not taken yet: a full page
    // that held one back has caught up with what the session recorded.
    assert_eq!(live.replay_page(&socket, page(4..=6), true, &mut cursor, now()), ReplayStep::Joined);
    assert_eq!(cursor, Seq(5));
    assert_eq!(subscribers(&live), 1);
    live.publish(&note("message 6"), None);
    assert_eq!(contents(&drain(&mut queue)), ["message 4", "message 5", "message 6"], "each once, in order");
}

#[test]
fn the_last_page_joins_when_nothing_was_stored_after_it() {
    let live = live_with_stored(5);
    let (socket, mut queue) = socket("owner");
    let mut cursor = Seq(3);
    assert_eq!(live.replay_page(&socket, page(4..=5), false, &mut cursor, now()), ReplayStep::Joined);
    assert_eq!(cursor, Seq(5));
    assert_eq!(contents(&drain(&mut queue)), ["message 4", "message 5"]);
    assert_eq!(subscribers(&live), 1);
}

#[test]
fn a_page_behind_what_was_stored_meanwhile_reads_on_from_its_cursor() {
    let live = live_with_stored(5);
    let (socket, mut queue) = socket("owner");
    let mut cursor = Seq(2);
    assert_eq!(live.replay_page(&socket, page(3..=4), false, &mut cursor, now()), ReplayStep::Behind);
    assert_eq!(cursor, Seq(4));
    assert_eq!(contents(&drain(&mut queue)), ["message 3", "message 4"]);
    assert_eq!(subscribers(&live), 0);
}

#[test]
fn a_replay_to_a_closing_socket_stops() {
    let live = live_with_stored(5);
    let (socket, _queue) = socket("owner");
    socket.close(CloseReason::Disconnected);
    let mut cursor = Seq(0);
    assert_eq!(live.replay_page(&socket, page(1..=3), true, &mut cursor, now()), ReplayStep::Closed);
}

#[test]
fn a_session_whose_actor_abandoned_its_answer_is_idle_from_that_end() {
    let clock = Arc::new(HandClock::default());
    let live = live(&clock, secs(10));
    let message_id = MessageId::parse("answer").expect("id");
    let _ =
        live.start_answer(message_id, AnswerStyle::AiResponse, CancellationToken::new(), &note("loading"));
    clock.set(secs(100));
    assert!(!live.evict_if_idle(secs(1)), "an answer streams");
    assert!(live.abandon_answer(&note("failed")).is_some());
    assert!(!live.evict_if_idle(secs(50)), "idle only since the answer ended");
    clock.set(secs(150));
    assert!(live.evict_if_idle(secs(50)));
}

#[test]
fn a_session_whose_actor_died_takes_no_socket_and_holds_nothing_once_its_sockets_leave() {
    let clock = Arc::new(HandClock::default());
    let live = live(&clock, secs(10));
    let (alice, mut alice_queue) = socket("owner");
    assert!(live.join(&alice, now()));
    live.admit_turn(turn(&alice, Sender::User, Some("taken")), 3, now()).expect("admitted");
    live.admit_turn(turn(&alice, Sender::User, Some("waiting")), 3, now()).expect("admitted");
    let mut taking = std::pin::pin!(live.next_turn());
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    assert!(taking.as_mut().poll(&mut cx).is_ready(), "the actor took the first turn, then died");
    live.hold_answer();
    drain(&mut alice_queue);

    assert_eq!(live.refuse_stranded_turns(&note("refused")), 1, "the second turn still waited");
    assert_eq!(contents(&drain(&mut alice_queue)), ["refused"]);
    assert!(live.actor_ended(), "its session was not retired: the actor died");
    assert!(live.is_evicted(), "the next message loads the session again");
    let (bob, _) = socket("owner");
    assert!(!live.join(&bob, now()), "no socket joins a session without an actor");
    live.leave(alice.id());
    assert!(live.evict_if_idle(secs(0)), "the turn and the held answer died with the actor");
}

#[test]
fn an_actor_that_ends_after_its_session_was_retired_did_not_die() {
    let retired = CancellationToken::new();
    let clock: Arc<dyn Clock> = Arc::new(HandClock::default());
    let live = LiveSession::new(
        owners_session(),
        Vec::new(),
        Box::new(TestFanout::default()),
        clock,
        retired.clone(),
    );
    retired.cancel();
    assert!(!live.actor_ended());
    assert!(!live.is_evicted(), "at shutdown, a session stays as it is");
    assert_eq!(live.refuse_stranded_turns(&note("refused")), 0, "no turn waits");
}
