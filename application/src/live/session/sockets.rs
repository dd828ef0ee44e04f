//! The socket verbs of a live session: joining it (with the answer in progress), a
//! replay page by page that ends in the subscription, and leaving. Each is one critical
//! section that queues to the socket everything it has not seen before it can receive
//! anything live, so a socket sees each message once.

use std::sync::Arc;

use chatbox_domain::{Seq, Timestamp};

use super::{LiveSession, State};
use crate::events::Frame;
use crate::socket::{SocketHandle, SocketId};

/// What one page of a replay did (see [`LiveSession::replay_page`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayStep {
    /// A full page was queued; read the next one once the socket has room.
    More,
    /// Messages were stored after the page: read on from the cursor.
    Behind,
    /// Joined: the page, the answer in progress, then live frames.
    Joined,
    /// The session was evicted meanwhile: load it again and read on from the cursor.
    Evicted,
    /// The socket is closing: nothing more to do.
    Closed,
}

impl LiveSession {
    /// Subscribes a socket with no replay: it gets the answer in progress (if any), then
    /// live frames. False once the session was evicted (its actor is gone: load it again).
    #[must_use]
    pub fn join(&self, socket: &Arc<SocketHandle>, now: Timestamp) -> bool {
        let mut state = self.lock();
        if state.evicted {
            return false;
        }
        let frames = match state.streaming.as_mut() {
            Some(answer) => answer.catch_up_frames(&self.id, now),
            None => Vec::new(),
        };
        self.subscribe(&mut state, socket, frames);
        true
    }

    /// Queues one page of a socket's replay (`page`: stored messages after `cursor`, in
    /// order, as frames) and, once the replay has caught up, subscribes the socket in the
    /// same critical section. `cursor` advances past every message queued.
    ///
    /// A message storage returned that this session has not recorded as stored yet (its
    /// write landed, the actor has not taken the answer) is left out: the actor publishes
    /// it live in a moment, so the socket sees it once, then.
    #[must_use]
    pub fn replay_page(
        &self,
        socket: &Arc<SocketHandle>,
        mut page: Vec<(Seq, Arc<Frame>)>,
        page_was_full: bool,
        cursor: &mut Seq,
        now: Timestamp,
    ) -> ReplayStep {
        let mut state = self.lock();
        let recorded = page.partition_point(|(seq, _)| *seq <= state.stored_seq);
        let held_back = recorded < page.len();
        page.truncate(recorded);
        if let Some((last, _)) = page.last() {
            *cursor = *last;
        }
        let mut frames: Vec<Arc<Frame>> = page.into_iter().map(|(_, frame)| frame).collect();
        let step = if state.evicted {
            ReplayStep::Evicted
        } else if page_was_full && !held_back {
            ReplayStep::More
        } else if state.stored_seq > *cursor {
            ReplayStep::Behind
        } else {
            if let Some(answer) = state.streaming.as_mut() {
                frames.extend(answer.catch_up_frames(&self.id, now));
            }
            self.subscribe(&mut state, socket, frames);
            return ReplayStep::Joined;
        };
        if socket.send_batch(frames) { step } else { ReplayStep::Closed }
    }

    fn subscribe(&self, state: &mut State, socket: &Arc<SocketHandle>, frames: Vec<Arc<Frame>>) {
        // Queued before the socket can receive anything live, in the same section.
        socket.send_batch(frames);
        state.fanout.subscribe(Arc::clone(socket));
        state.unattended_since = None;
        state.last_activity = self.now();
    }

    /// Unsubscribes a socket.
    pub fn leave(&self, socket: SocketId) {
        let now = self.now();
        let mut state = self.lock();
        state.fanout.unsubscribe(socket);
        state.note_if_unattended(now);
        state.last_activity = now;
    }
}
