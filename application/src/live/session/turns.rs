//! The turns of a live session: admitted from its sockets, waiting for its actor, then
//! stored (acknowledged, echoed) or refused.
//!
//! The waiting turns live in the session's state, behind its lock, so a turn is queued in
//! the same critical section that counts it, and the actor never sees a turn the state
//! does not count. Their bound is the session's (`queued_turns` against the queue limit),
//! checked before a turn is pushed. The queue allocates only while turns wait and gives
//! its buffer back once drained: a waiting session (most of them, most of the time) holds
//! an empty deque, not the block of slots a channel allocates up front.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::Arc;
use std::task::Poll;

use chatbox_domain::{MessageEffects, MessageId, Seq, StoredMessage, Timestamp};

use super::{LiveSession, State, ack_frame};
use crate::error::ChatError;
use crate::events::Frame;
use crate::live::client_ids::KeySeen;
use crate::socket::SocketHandle;
use crate::turn::Turn;

impl LiveSession {
    /// Admits a turn to the session's actor without waiting: refused if the session
    /// ended, an admin speaks without assisting, or `queue_limit` turns already wait. A
    /// repeated `client_message_id` is not queued again: if its message is stored the
    /// sender is acknowledged again (its first acknowledgement may have been lost with a
    /// socket); if it is still pending the sender gets the acknowledgement when it is.
    ///
    /// # Errors
    /// [`ChatError::SessionEnded`], [`ChatError::NotAssisting`], [`ChatError::Busy`].
    pub fn admit_turn(&self, turn: Turn, queue_limit: usize, now: Timestamp) -> Result<(), ChatError> {
        let mut state = self.lock();
        if !state.session.is_active() {
            return Err(ChatError::SessionEnded);
        }
        // An admin speaks only while assisting: a release ends it, even on a socket that
        // is still bound.
        if turn.sender == chatbox_domain::Sender::Admin
            && !state.session.handoff.assisted_by(turn.origin.user())
        {
            return Err(ChatError::NotAssisting);
        }
        if state.queued_turns >= queue_limit {
            return Err(ChatError::Busy);
        }
        if let Some(key) = &turn.client_message_id {
            match state.client_ids.admit(key, &turn.origin) {
                KeySeen::New => {}
                KeySeen::Pending => {
                    tracing::debug!(session_id = %self.id, "duplicate client_message_id: acknowledged once stored");
                    return Ok(());
                }
                KeySeen::Stored(message_id, seq) => {
                    tracing::debug!(session_id = %self.id, "duplicate client_message_id acknowledged again");
                    turn.origin.send(ack_frame(&self.id, key, &message_id, seq, now));
                    return Ok(());
                }
            }
        }
        state.queued_turns += 1;
        state.last_activity = self.now();
        // Queued under the lock, so the actor never sees a turn the state does not count.
        if let Err(turn) = state.turns.push(Box::new(turn)) {
            state.turn_left_queue(&turn, None);
            return Err(ChatError::Busy);
        }
        drop(state);
        self.turn_queued.wake();
        Ok(())
    }

    /// The actor's next turn, once one is queued; `None` once the queue is closed and
    /// drained. One actor waits at a time.
    pub(crate) fn next_turn(&self) -> impl Future<Output = Option<Box<Turn>>> + Send + '_ {
        poll_fn(|cx| {
            // Registered before looking: a turn queued after the look wakes this waker.
            self.turn_queued.register(cx.waker());
            let mut state = self.lock();
            match state.turns.pop() {
                Some(turn) => Poll::Ready(Some(turn)),
                None if state.turns.is_finished() => Poll::Ready(None),
                None => Poll::Pending,
            }
        })
    }

    /// Refuses new turns (they get [`ChatError::Busy`]); those already queued are still
    /// taken by the actor.
    pub(crate) fn close_turns(&self) {
        self.lock().turns.close();
        self.turn_queued.wake();
    }

    /// For an actor that is gone (it died): closes the queue and refuses every turn
    /// still waiting in it with `error`, so their senders (and whoever repeated their
    /// keys) may send them again instead of waiting for an acknowledgement that would
    /// never come. Returns how many were refused.
    pub(crate) fn refuse_stranded_turns(&self, error: &Arc<Frame>) -> usize {
        let stranded: Vec<Box<Turn>> = {
            let mut state = self.lock();
            state.turns.close();
            std::iter::from_fn(|| state.turns.pop()).collect()
        };
        self.turn_queued.wake();
        for turn in &stranded {
            self.refuse_turn(turn, error);
        }
        stranded.len()
    }

    /// Whether turns wait for the actor.
    pub(crate) fn turns_waiting(&self) -> bool {
        !self.lock().turns.is_empty()
    }

    /// The sequence number and effects the next stored user message gets.
    pub(crate) fn next_message(&self, user_text: Option<&str>) -> (Seq, MessageEffects) {
        let state = self.lock();
        (state.session.next_seq(), state.session.user_message_effects(user_text))
    }

    /// The turn's message was stored: records it, publishes `echo` to every other socket,
    /// and acknowledges it to its origin and to every socket that repeated its key.
    /// Returns whether the model answers in this session now.
    pub(crate) fn turn_stored(
        &self,
        turn: &Turn,
        message: &StoredMessage,
        effects: &MessageEffects,
        echo: &Arc<Frame>,
    ) -> bool {
        let now = self.now();
        let mut state = self.lock();
        state.session.record(message.seq, message.timestamp, effects);
        state.stored_seq = message.seq;
        state.last_activity = now;
        let waiters = state.turn_left_queue(turn, Some((&message.id, message.seq)));
        state.publish(echo, Some(turn.origin.id()), &*self.clock);
        if let Some(key) = &turn.client_message_id {
            // Only now, with the message stored, is the sender told it is safe.
            let ack = ack_frame(&self.id, key, &message.id, message.seq, message.timestamp);
            for socket in std::iter::once(&turn.origin).chain(&waiters) {
                socket.send(Arc::clone(&ack));
            }
        }
        state.session.handoff.ai_answers()
    }

    /// The turn could not be stored: its origin and every socket that repeated its key
    /// get `error` and may send it again.
    pub(crate) fn refuse_turn(&self, turn: &Turn, error: &Arc<Frame>) {
        let waiters = self.lock().turn_left_queue(turn, None);
        for socket in std::iter::once(&turn.origin).chain(&waiters) {
            socket.send(Arc::clone(error));
        }
    }
}

impl State {
    /// A turn left the queue, stored or not. Returns the other sockets that sent its key
    /// while it waited: they are owed the same answer as its origin.
    pub(super) fn turn_left_queue(
        &mut self,
        turn: &Turn,
        stored: Option<(&MessageId, Seq)>,
    ) -> Vec<Arc<SocketHandle>> {
        self.queued_turns = self.queued_turns.saturating_sub(1);
        let Some(key) = &turn.client_message_id else {
            return Vec::new();
        };
        match stored {
            Some((message_id, seq)) => self.client_ids.stored(key, message_id, seq),
            None => self.client_ids.forget(key),
        }
    }
}

/// Turns waiting for the actor, in the order admitted.
#[derive(Debug, Default)]
pub(super) struct TurnQueue {
    waiting: VecDeque<Box<Turn>>,
    closed: bool,
}

impl TurnQueue {
    /// Queues a turn; a closed queue gives it back.
    pub(super) fn push(&mut self, turn: Box<Turn>) -> Result<(), Box<Turn>> {
        if self.closed {
            return Err(turn);
        }
        self.waiting.push_back(turn);
        Ok(())
    }

    /// The next turn, if any; the buffer is given back once the last one is taken.
    pub(super) fn pop(&mut self) -> Option<Box<Turn>> {
        let turn = self.waiting.pop_front();
        if self.waiting.is_empty() {
            self.waiting = VecDeque::new();
        }
        turn
    }

    /// Refuses every turn from now on; those already queued are still taken.
    pub(super) const fn close(&mut self) {
        self.closed = true;
    }

    /// Closed and drained: the actor has nothing more to take.
    pub(super) fn is_finished(&self) -> bool {
        self.closed && self.waiting.is_empty()
    }

    /// Whether no turn waits.
    pub(super) fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live::session::tests::{HandClock, live, now, secs, socket, turn};
    use chatbox_domain::Sender;

    fn keyed(key: &str) -> Box<Turn> {
        let (origin, _queue) = socket("owner");
        Box::new(turn(&origin, Sender::User, Some(key)))
    }

    fn key(turn: &Turn) -> &str {
        turn.client_message_id.as_ref().map_or("", |key| key.as_str())
    }

    #[test]
    fn turns_leave_in_order_and_the_buffer_goes_once_drained() {
        let mut queue = TurnQueue::default();
        assert!(queue.is_empty() && queue.pop().is_none());
        queue.push(keyed("a")).expect("open");
        queue.push(keyed("b")).expect("open");
        assert!(!queue.is_empty());
        assert_eq!(queue.pop().as_deref().map(key), Some("a"));
        assert!(queue.waiting.capacity() > 0, "a turn still waits");
        assert_eq!(queue.pop().as_deref().map(key), Some("b"));
        assert_eq!(queue.waiting.capacity(), 0, "drained: nothing kept allocated");
    }

    #[test]
    fn a_closed_queue_refuses_turns_and_finishes_once_drained() {
        let mut queue = TurnQueue::default();
        queue.push(keyed("queued")).expect("open");
        queue.close();
        let refused = queue.push(keyed("late")).expect_err("closed");
        assert_eq!(key(&refused), "late", "the refused turn comes back");
        assert!(!queue.is_finished(), "a turn queued before the close is still taken");
        assert_eq!(queue.pop().as_deref().map(key), Some("queued"));
        assert!(queue.is_finished());
    }

    /// Counts the wakes of the task it stands for.
    #[derive(Default)]
    struct WakeCount(std::sync::atomic::AtomicUsize);

    impl futures::task::ArcWake for WakeCount {
        fn wake_by_ref(this: &Arc<Self>) {
            this.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }

    #[test]
    fn a_waiting_actor_is_woken_by_the_next_turn_and_ends_once_closed_and_drained() {
        let clock = Arc::new(HandClock::default());
        let live = live(&clock, secs(10));
        let (alice, _queue) = socket("owner");
        let wakes = Arc::new(WakeCount::default());
        let waker = futures::task::waker(Arc::clone(&wakes));
        let mut cx = std::task::Context::from_waker(&waker);
        let key = |turn: &Turn| turn.client_message_id.as_ref().map(|key| key.as_str().to_owned());

        // The actor waits first; a turn admitted while it waits wakes it.
        let mut waiting = std::pin::pin!(live.next_turn());
        assert!(waiting.as_mut().poll(&mut cx).is_pending(), "nothing queued yet");
        live.admit_turn(turn(&alice, Sender::User, Some("first")), 3, now()).expect("admitted");
        assert_eq!(wakes.0.load(std::sync::atomic::Ordering::SeqCst), 1, "the waiting actor is woken");
        let Poll::Ready(Some(first)) = waiting.as_mut().poll(&mut cx) else { panic!("the turn is taken") };
        assert_eq!(key(&first).as_deref(), Some("first"));

        // A close wakes the waiting actor, which finds the end (nothing was queued); new
        // turns are refused. (That turns queued before a close are still taken is the
        // queue's own test.)
        let mut waiting = std::pin::pin!(live.next_turn());
        assert!(waiting.as_mut().poll(&mut cx).is_pending(), "nothing queued");
        live.close_turns();
        assert_eq!(wakes.0.load(std::sync::atomic::Ordering::SeqCst), 2, "the close wakes the actor");
        assert!(matches!(waiting.as_mut().poll(&mut cx), Poll::Ready(None)), "closed and drained: the end");
        let refused = live.admit_turn(turn(&alice, Sender::User, Some("late")), 3, now());
        assert!(matches!(refused, Err(ChatError::Busy)), "closed: {refused:?}");
    }
}
