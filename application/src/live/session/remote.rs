//! A live session as one copy among several replicas: what another replica published in
//! it ([`ReplicaEvents`]), recorded here and delivered to the sockets here in the same
//! critical section, and the catch-up from the store when the writer's lease comes here.
//!
//! Invariants:
//! - **Once, by `seq`.** A stored message is recorded once, whichever way it arrives
//!   (another replica's frame, or the store when this replica catches up): a frame or a
//!   stored message whose `seq` is not past `stored_seq` is already here and is neither
//!   recorded nor delivered again. So a socket that joined here sees each message once,
//!   as the single-process ordering invariant promises.
//! - **Mirrored answers.** An answer streamed by another replica is mirrored from its
//!   `loading`, chunks and `done`, so a socket joining here mid-answer gets its catch-up;
//!   stopping it asks that replica. If that replica dies, whichever replica next holds
//!   the writer's lease ends the mirrored answer ([`LiveSession::orphaned_answer`]).

use std::sync::Arc;

use chatbox_domain::{
    FinishReason, HandoffState, MessageEffects, MessageId, MessageKind, ModelId, Sender, Seq, Session,
    StoredMessage, Timestamp,
};

use super::{LiveSession, State, ack_frame};
use crate::events::{AnswerStyle, Frame, ServerEvent};
use crate::live::streaming::StreamingAnswer;
use crate::ports::ReplicaEvents;
use crate::turn::Turn;

impl ReplicaEvents for LiveSession {
    fn apply_remote(&self, frame: Arc<Frame>, published_at: Seq) {
        let now = self.now();
        let mut state = self.lock();
        // A message or an answer's progress published before a message this copy has is
        // already here (recorded, or an answer that has ended). A session-wide event (a
        // handoff, an end, typing) is applied whatever its publisher had stored: it may
        // come from a replica that does not write the session.
        let stale = published_at < state.stored_seq && concerns_messages(&frame.event);
        if stale || !state.record_remote(&self.id, &frame) {
            return;
        }
        state.last_activity = now;
        state.deliver(&frame, &*self.clock);
        drop(state);
        if matches!(frame.event, ServerEvent::Loading { .. }) {
            self.mirror_started.notify_one();
        }
    }

    fn stop_requested(&self) {
        if let Some(answer) = &self.lock().streaming {
            // A mirror here has nothing to cancel: the request was not for this replica.
            let _ = answer.cancel();
        }
    }
}

impl State {
    /// Records what a frame from another replica says; false when it is already here
    /// (a stored message or an answer's end this copy has) and must not be delivered.
    fn record_remote(&mut self, session_id: &chatbox_domain::SessionId, frame: &Frame) -> bool {
        match &frame.event {
            ServerEvent::Stored { message, .. } => {
                if message.seq <= self.stored_seq {
                    return false;
                }
                // One writer answers a turn before it stores another: a later message means
                // an answer mirrored here has ended, even if its `done` never came.
                self.close_mirror();
                let effects = self.effects_of(message);
                self.record_stored(message, &effects);
                if let Some(key) = &message.client_message_id {
                    // Sockets here that sent the same key while it was pending here get the
                    // one acknowledgement.
                    let ack = ack_frame(session_id, key, &message.id, message.seq, message.timestamp);
                    for waiter in self.client_ids.stored(key, &message.id, message.seq) {
                        waiter.send(Arc::clone(&ack));
                    }
                }
            }
            ServerEvent::Loading { message_id, style, .. } => {
                let model_id = self.session.model_id.clone();
                self.streaming = Some(StreamingAnswer::mirror(message_id.clone(), model_id, *style));
            }
            ServerEvent::AnswerChunk { message_id, delta, .. } => {
                if let Some(answer) = self.streaming.as_mut().filter(|a| a.message_id() == message_id) {
                    answer.append(delta);
                }
            }
            ServerEvent::AnswerDone { message_id, seq, .. } => {
                // Only a mirror ends here: an answer this replica streams ends when it says
                // so (another replica's `done` for it means that replica took it over).
                let mirroring_this =
                    self.streaming.as_ref().is_some_and(|a| a.is_mirror() && a.message_id() == message_id);
                if seq.is_some_and(|seq| seq <= self.stored_seq) && !mirroring_this {
                    return false;
                }
                if mirroring_this {
                    self.streaming = None;
                } else if let Some(answer) = self.streaming.as_mut().filter(|a| a.message_id() == message_id)
                {
                    // This replica streams it, yet another one ended it: that one held the
                    // lease after this one lost it (cut off from Redis). Its end stands.
                    answer.take_over();
                }
                if let Some(seq) = *seq {
                    // The session ignores a seq it has; the counters are the store's, read
                    // when this copy next catches up.
                    self.session.record(seq, frame.timestamp, &MessageEffects::default());
                    self.stored_seq = self.stored_seq.max(seq);
                }
            }
            ServerEvent::Handoff { joined, admin_id, admin_name, .. } => {
                self.session.handoff = if *joined {
                    // The model falls silent on every replica: an answer streamed here stops.
                    if let Some(answer) = &self.streaming {
                        let _ = answer.cancel();
                    }
                    HandoffState::AdminAssisting {
                        admin_id: admin_id.clone(),
                        admin_name: admin_name.clone(),
                    }
                } else {
                    HandoffState::Ai
                };
            }
            ServerEvent::ConnectionStatus { state: "ended", .. } => self.session.end(frame.timestamp),
            ServerEvent::ConnectionStatus { state: "help_requested", .. } => {
                self.session.handoff = self.session.handoff.clone().request_help();
            }
            _ => {}
        }
        true
    }

    /// Forgets an answer mirrored from another replica (it has ended).
    fn close_mirror(&mut self) {
        if self.streaming.as_ref().is_some_and(StreamingAnswer::is_mirror) {
            self.streaming = None;
        }
    }

    /// The effects a stored message had on the session (its name, for a first user
    /// text); an answer's counters are the store's, read when this copy next catches up.
    fn effects_of(&self, message: &StoredMessage) -> MessageEffects {
        let user_text = (message.sender == Sender::User && message.kind == MessageKind::Text)
            .then_some(message.content.as_str());
        self.session.user_message_effects(user_text)
    }

    fn record_stored(&mut self, message: &StoredMessage, effects: &MessageEffects) {
        self.session.record(message.seq, message.timestamp, effects);
        self.stored_seq = message.seq;
    }
}

/// Whether `event` is a message or an answer's progress (ordered by `seq`), rather than a
/// session-wide event.
const fn concerns_messages(event: &ServerEvent) -> bool {
    matches!(
        event,
        ServerEvent::Stored { .. }
            | ServerEvent::Loading { .. }
            | ServerEvent::AnswerChunk { .. }
            | ServerEvent::AnswerDone { .. }
    )
}

/// An answer another replica was streaming when it stopped holding the writer's lease
/// without ending it (the replica died): what this copy mirrored of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrphanedAnswer {
    /// The answer's message id.
    pub message_id: MessageId,
    /// The text mirrored so far.
    pub text: String,
    /// The model that was answering.
    pub model_id: ModelId,
    /// Frame naming.
    pub style: AnswerStyle,
}

impl LiveSession {
    /// The sequence number of the last message recorded here.
    #[must_use]
    pub fn stored_seq(&self) -> Seq {
        self.lock().stored_seq
    }

    /// Signalled when an answer streamed by another replica starts being mirrored here
    /// (one stored signal if nobody waited).
    #[must_use]
    pub fn mirror_started(&self) -> &tokio::sync::Notify {
        &self.mirror_started
    }

    /// True while an answer streamed by another replica is mirrored here.
    #[must_use]
    pub fn mirrors_an_answer(&self) -> bool {
        self.lock().streaming.as_ref().is_some_and(StreamingAnswer::is_mirror)
    }

    /// Brings this copy up to the store: `missed` are the stored messages after
    /// [`Self::stored_seq`], in order, and `loaded` the session as stored after them. Each
    /// missed message is recorded and delivered here (the end of an answer mirrored here
    /// as its `done`, any other as a stored message), then the session's fields are the
    /// store's.
    pub(crate) fn catch_up(&self, loaded: Session, missed: &[StoredMessage], now: Timestamp) {
        let mut state = self.lock();
        for message in missed {
            if message.seq <= state.stored_seq {
                continue;
            }
            let mirrored =
                state.streaming.take_if(|answer| answer.is_mirror() && answer.message_id() == &message.id);
            let frame = match mirrored {
                Some(answer) => Frame::new(done_of(&self.id, message, &answer, &state.session.model_id), now),
                None => Frame::new(
                    ServerEvent::Stored { session_id: self.id.clone(), message: Arc::new(message.clone()) },
                    now,
                ),
            };
            let effects = state.effects_of(message);
            state.record_stored(message, &effects);
            if let Some(key) = &message.client_message_id {
                let ack = ack_frame(&self.id, key, &message.id, message.seq, message.timestamp);
                for waiter in state.client_ids.stored(key, &message.id, message.seq) {
                    waiter.send(Arc::clone(&ack));
                }
            }
            state.deliver(&frame, &*self.clock);
        }
        if loaded.last_seq >= state.stored_seq {
            state.stored_seq = loaded.last_seq;
            state.session = loaded;
        }
    }

    /// The answer mirrored here whose replica stopped without ending it, if any: the
    /// caller holds the writer's lease and has caught up with the store, so nobody else
    /// streams it and the store does not have it. It stays mirrored until the caller ends
    /// it ([`Self::finish_answer`]).
    #[must_use]
    pub(crate) fn orphaned_answer(&self) -> Option<OrphanedAnswer> {
        let state = self.lock();
        let answer = state.streaming.as_ref().filter(|answer| answer.is_mirror())?;
        Some(OrphanedAnswer {
            message_id: answer.message_id().clone(),
            text: answer.text().to_owned(),
            model_id: answer.model_id().clone(),
            style: answer.style(),
        })
    }

    /// True when another replica ended the answer this replica streams (see
    /// [`StreamingAnswer`]): its actor neither stores nor ends it.
    #[must_use]
    pub(crate) fn answer_taken_over(&self) -> bool {
        self.lock().streaming.as_ref().is_some_and(StreamingAnswer::is_taken_over)
    }

    /// A turn whose key another replica stored meanwhile: its sender (and whoever
    /// repeated the key) is acknowledged with the stored message, and the turn leaves the
    /// queue. False for a turn still to store.
    pub(crate) fn take_if_stored_elsewhere(&self, turn: &Turn) -> bool {
        let Some(key) = &turn.client_message_id else { return false };
        let mut state = self.lock();
        let Some((message_id, seq)) = state.client_ids.stored_as(key) else { return false };
        let waiters = state.turn_left_queue(turn, Some((&message_id, seq)));
        let ack = ack_frame(&self.id, key, &message_id, seq, self.clock.now());
        for socket in std::iter::once(&turn.origin).chain(&waiters) {
            socket.send(Arc::clone(&ack));
        }
        true
    }
}

/// The `done` of a mirrored answer its own replica stored before this copy heard its end.
fn done_of(
    session_id: &chatbox_domain::SessionId,
    message: &StoredMessage,
    answer: &StreamingAnswer,
    session_model: &ModelId,
) -> ServerEvent {
    let model_id = message
        .model_id
        .as_deref()
        .and_then(|id| ModelId::parse(id).ok())
        .unwrap_or_else(|| session_model.clone());
    ServerEvent::AnswerDone {
        session_id: session_id.clone(),
        message_id: message.id.clone(),
        model_id,
        seq: Some(message.seq),
        finish_reason: message.finish_reason.unwrap_or(FinishReason::Stop),
        usage: message.usage,
        timing: message.timing.unwrap_or_default(),
        style: answer.style(),
    }
}
