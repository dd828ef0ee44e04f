//! The turns admitted to a live session and waiting for its actor.
//!
//! The queue lives in the session's state, behind the session's lock, so a turn is queued
//! in the same critical section that counts it, and the actor never sees a turn the state
//! does not count. Its bound is the session's (`queued_turns` against the queue limit),
//! checked before a turn is pushed. It allocates only while turns wait and gives its
//! buffer back once drained: a waiting session (most of them, most of the time) holds an
//! empty deque, not the block of slots a channel allocates up front.

use std::collections::VecDeque;

use crate::turn::Turn;

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
        if self.waiting.is_empty() && self.waiting.capacity() > 0 {
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
    use crate::live::session::tests::{socket, turn};
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
}
