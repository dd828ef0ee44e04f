//! One live session: the authoritative in-memory copy of a session in use, its sockets
//! (through its [`SessionFanout`]), the answer being streamed, and the turns waiting for
//! its actor. Its state is private and changes only through the verbs below (and the
//! socket verbs in `sockets.rs`: join, replay, leave; the turn verbs in `turns.rs`: admit,
//! take, store, refuse), each one short critical section that never awaits.
//!
//! Ordering invariant (what makes resume exact): a stored message is published in the
//! same critical section that records it as stored (`stored_seq`), every answer chunk is
//! appended to the partial answer in the same critical section that publishes it, and a
//! socket joins in a critical section that queues to it everything it has not seen. So a
//! joining socket sees each message either in its replay or live: never both, never
//! neither, whatever storage returned to the replay meanwhile.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use chatbox_domain::{
    HandoffState, MessageEffects, MessageId, ModelId, Seq, Session, SessionId, Timestamp, UserId,
};
use futures::task::AtomicWaker;
use tokio_util::sync::CancellationToken;

mod remote;
#[cfg(test)]
mod remote_tests;
mod sockets;
#[cfg(test)]
mod tests;
mod turns;

pub use remote::OrphanedAnswer;
pub use sockets::ReplayStep;

use super::client_ids::{RecentClientIds, StoredKey};
use super::streaming::StreamingAnswer;
use crate::events::{AnswerStyle, Frame, ServerEvent};
use crate::ports::{Clock, SessionFanout};
use crate::socket::SocketId;
use turns::TurnQueue;

/// The mutable part of a live session, behind its lock.
struct State {
    session: Session,
    /// The sequence number of the last message recorded as stored and published.
    stored_seq: Seq,
    streaming: Option<StreamingAnswer>,
    /// Turns admitted and not yet stored or refused (those waiting, and the one the
    /// actor is taking).
    queued_turns: usize,
    /// The turns waiting for the actor.
    turns: TurnQueue,
    /// Last time anything happened (for eviction), on the service's monotonic clock.
    last_activity: Duration,
    /// Since when no socket is subscribed (for `RECONNECT_TIMEOUT`), on the same clock.
    unattended_since: Option<Duration>,
    /// An answer waits in the actor's outbox for storage to return.
    unstored_answer: bool,
    fanout: Box<dyn SessionFanout>,
    client_ids: RecentClientIds,
    evicted: bool,
}

impl State {
    /// Publishes to the session's sockets. `unattended_since` is `None` exactly while a
    /// socket is subscribed, so the clock is read only when the last one just dropped out
    /// (a slow consumer), never per chunk.
    fn publish(&mut self, frame: &Arc<Frame>, except: Option<SocketId>, clock: &dyn Clock) {
        if self.fanout.publish(frame, except, self.stored_seq) == 0 && self.unattended_since.is_none() {
            self.unattended_since = Some(clock.monotonic());
        }
    }

    /// Delivers a frame another replica published to the sockets here.
    fn deliver(&mut self, frame: &Arc<Frame>, clock: &dyn Clock) {
        if self.fanout.deliver(frame) == 0 && self.unattended_since.is_none() {
            self.unattended_since = Some(clock.monotonic());
        }
    }

    /// Stops the answer in progress: here, or through the replica that streams it.
    fn stop_answer(&mut self) {
        if let Some(answer) = &self.streaming
            && !answer.cancel()
        {
            self.fanout.relay_stop();
        }
    }

    /// Starts the reconnect countdown when the last socket just left.
    fn note_if_unattended(&mut self, now: Duration) {
        if self.fanout.subscribers() == 0 && self.unattended_since.is_none() {
            self.unattended_since = Some(now);
        }
    }
}

/// A session in use.
pub struct LiveSession {
    id: SessionId,
    clock: Arc<dyn Clock>,
    state: Mutex<State>,
    /// Serialises the field-level writes of this session (model, handoff, end).
    control: tokio::sync::Mutex<()>,
    /// Wakes the actor when a turn is queued or the queue closes.
    turn_queued: AtomicWaker,
    retired: CancellationToken,
    /// Signalled when an answer streamed by another replica starts being mirrored here
    /// (the actor then watches that replica's lease).
    mirror_started: tokio::sync::Notify,
}

impl std::fmt::Debug for LiveSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.lock();
        f.debug_struct("LiveSession")
            .field("id", &self.id)
            .field("stored_seq", &state.stored_seq)
            .field("subscribers", &state.fanout.subscribers())
            .finish_non_exhaustive()
    }
}

impl LiveSession {
    pub(super) fn new(
        session: Session,
        client_keys: Vec<StoredKey>,
        fanout: Box<dyn SessionFanout>,
        clock: Arc<dyn Clock>,
        retired: CancellationToken,
    ) -> Self {
        let now = clock.monotonic();
        Self {
            id: session.id.clone(),
            state: Mutex::new(State {
                stored_seq: session.last_seq,
                session,
                streaming: None,
                queued_turns: 0,
                turns: TurnQueue::default(),
                last_activity: now,
                unattended_since: Some(now),
                unstored_answer: false,
                fanout,
                client_ids: RecentClientIds::seeded(client_keys),
                evicted: false,
            }),
            clock,
            control: tokio::sync::Mutex::new(()),
            turn_queued: AtomicWaker::new(),
            retired,
            mirror_started: tokio::sync::Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data behind, still consistent
        // enough to keep serving; poisoning would take the whole session down instead.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn now(&self) -> Duration {
        self.clock.monotonic()
    }

    // --- Reading -----------------------------------------------------------------------

    /// Its id.
    #[must_use]
    pub const fn id(&self) -> &SessionId {
        &self.id
    }

    /// Reads the session (a copy taken under the lock, without cloning it whole).
    pub fn read<R>(&self, f: impl FnOnce(&Session) -> R) -> R {
        f(&self.lock().session)
    }

    /// The model answering in it.
    #[must_use]
    pub fn model_id(&self) -> ModelId {
        self.read(|session| session.model_id.clone())
    }

    /// True once the cleanup task dropped this session from memory.
    #[must_use]
    pub fn is_evicted(&self) -> bool {
        self.lock().evicted
    }

    /// Since when no socket is bound, on the service's monotonic clock.
    #[must_use]
    pub fn unattended_since(&self) -> Option<Duration> {
        self.lock().unattended_since
    }

    // --- The answer ----------------------------------------------------------------------

    /// Starts streaming an answer and publishes its `loading` frame; returns the model
    /// that answers and the session's owner.
    pub(crate) fn start_answer(
        &self,
        message_id: MessageId,
        style: AnswerStyle,
        cancel: CancellationToken,
        loading: &Arc<Frame>,
    ) -> (ModelId, UserId) {
        let mut state = self.lock();
        let model_id = state.session.model_id.clone();
        state.streaming = Some(StreamingAnswer::new(message_id, model_id.clone(), style, cancel));
        state.publish(loading, None, &*self.clock);
        (model_id, state.session.owner.clone())
    }

    /// Appends streamed text to the answer and publishes its chunk frame.
    pub(crate) fn push_chunk(&self, delta: &str, chunk: &Arc<Frame>) {
        let mut state = self.lock();
        if let Some(streaming) = state.streaming.as_mut() {
            streaming.append(delta);
        }
        state.publish(chunk, None, &*self.clock);
    }

    /// Everything streamed so far, and the sequence number it is stored under.
    pub(crate) fn answer_to_store(&self) -> (String, Seq) {
        let state = self.lock();
        let text = state.streaming.as_ref().map(|answer| answer.text().to_owned()).unwrap_or_default();
        (text, state.session.next_seq())
    }

    /// Ends the answer: records it if it was `stored` (its seq, time and effects), then
    /// publishes its last `frames` (an error, if any, and `done`).
    pub(crate) fn finish_answer(
        &self,
        stored: Option<(Seq, Timestamp, &MessageEffects)>,
        frames: &[Arc<Frame>],
    ) {
        let now = self.now();
        let mut state = self.lock();
        if let Some((seq, at, effects)) = stored {
            state.session.record(seq, at, effects);
            state.stored_seq = seq;
        }
        state.streaming = None;
        state.last_activity = now;
        for frame in frames {
            state.publish(frame, None, &*self.clock);
        }
    }

    /// The actor stopped without ending the answer it streams here (it panicked): every
    /// socket gets `error` and a `done` with nothing stored, so no client waits for an
    /// end that would never come. A mirror, or an answer another replica took over, is
    /// left alone: it is ended where it runs. Returns the ended answer's id.
    pub(crate) fn abandon_answer(&self, error: &Arc<Frame>) -> Option<MessageId> {
        let now = self.now();
        let mut state = self.lock();
        let answer = state.streaming.take_if(|answer| !answer.is_mirror() && !answer.is_taken_over())?;
        let done = ServerEvent::AnswerDone {
            session_id: self.id.clone(),
            message_id: answer.message_id().clone(),
            model_id: answer.model_id().clone(),
            seq: None,
            finish_reason: chatbox_domain::FinishReason::Error,
            usage: None,
            timing: chatbox_domain::AnswerTiming::default(),
            style: answer.style(),
        };
        state.last_activity = now;
        state.publish(error, None, &*self.clock);
        state.publish(&Frame::new(done, error.timestamp), None, &*self.clock);
        Some(answer.message_id().clone())
    }

    /// An answer waits in the actor's outbox: the session stays in memory until it is
    /// written.
    pub(crate) fn hold_answer(&self) {
        self.lock().unstored_answer = true;
    }

    /// The held answer left the outbox: stored (its seq, time and effects), or dropped.
    pub(crate) fn release_held_answer(&self, stored: Option<(Seq, Timestamp, &MessageEffects)>) {
        let mut state = self.lock();
        if let Some((seq, at, effects)) = stored {
            state.session.record(seq, at, effects);
            state.stored_seq = seq;
        }
        state.unstored_answer = false;
    }

    /// Stops the answer in progress, if any (it is stored with what it has); one that
    /// runs on another replica is asked to stop there.
    pub fn stop_answer(&self) {
        self.lock().stop_answer();
    }

    // --- Field changes (under the control turn, after the store accepted them) ----------

    /// Waits for this session's turn to change one of its fields (model, handoff,
    /// status). It is held across the store write on purpose, so that the stored order of
    /// these rare changes and the in-memory order agree; the message path (the actor)
    /// never takes it, so streaming never waits on it.
    pub async fn control(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.control.lock().await
    }

    /// Applies a change the store accepted; returns the session as it is now.
    pub fn apply_stored_change(&self, change: impl FnOnce(&mut Session)) -> Session {
        let now = self.now();
        let mut state = self.lock();
        change(&mut state.session);
        state.last_activity = now;
        state.session.clone()
    }

    /// Sets the handoff state the store accepted. Taking over stops the answer in
    /// progress at once (it is stored with what it has).
    pub fn set_handoff(&self, next: HandoffState) {
        let now = self.now();
        let mut state = self.lock();
        if matches!(next, HandoffState::AdminAssisting { .. }) {
            state.stop_answer();
        }
        state.session.handoff = next;
        state.last_activity = now;
    }

    /// Sends `frame` to every socket of the session except `except`.
    pub fn publish(&self, frame: &Arc<Frame>, except: Option<SocketId>) {
        self.lock().publish(frame, except, &*self.clock);
    }

    // --- Lifecycle -------------------------------------------------------------------------

    /// Marks the session evicted if it has no socket, no work and no activity for `ttl`.
    pub(super) fn evict_if_idle(&self, ttl: Duration) -> bool {
        let now = self.now();
        let mut state = self.lock();
        let idle = state.fanout.subscribers() == 0
            && state.streaming.is_none()
            && state.queued_turns == 0
            && !state.unstored_answer
            && now.saturating_sub(state.last_activity) >= ttl;
        if idle {
            state.evicted = true;
            self.retired.cancel();
        }
        idle
    }

    /// Its actor ended. Unless the session was retired (evicted, or the service shuts
    /// down: the ends the actor waits for), the actor died: the session is marked
    /// evicted, so no socket joins it any more and the next message for it loads it
    /// again, with a new actor. Returns whether it was.
    pub(crate) fn actor_ended(&self) -> bool {
        let mut state = self.lock();
        let died = !self.retired.is_cancelled();
        if died {
            state.evicted = true;
            // What the actor held died with it (a turn it was taking, an answer waiting
            // for storage): nothing keeps this copy in memory once its sockets leave.
            state.queued_turns = 0;
            state.unstored_answer = false;
        }
        died
    }

    /// Completes when the session was evicted or the service shuts down its actors.
    pub async fn retired(&self) {
        self.retired.cancelled().await;
    }
}

fn ack_frame(
    session_id: &SessionId,
    key: &chatbox_domain::ClientMessageId,
    message_id: &MessageId,
    seq: Seq,
    at: Timestamp,
) -> Arc<Frame> {
    Frame::new(
        ServerEvent::MessageAck {
            session_id: session_id.clone(),
            message_id: message_id.clone(),
            seq,
            client_message_id: key.clone(),
        },
        at,
    )
}
