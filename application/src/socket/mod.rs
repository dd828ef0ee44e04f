//! A socket as the use-cases see it: an id, its user, and a bounded outbound queue. The
//! inbound adapter owns the real socket and drains the queue.
//!
//! The queue is bounded in bytes (`WS_SEND_BUFFER`), not in frames, since frame sizes
//! vary from a few bytes to a whole answer. A socket whose queue is full is a slow
//! consumer: it is closed (with a reason the adapter turns into a close code) instead of
//! growing memory or silently losing frames in the middle of an answer.
//!
//! Idle sockets are the common case, so an idle socket's queue holds no memory: the
//! queue is a plain deque (which allocates on its first item, and gives its memory back
//! once drained) behind a lock held only to push or take, and the writer takes
//! everything queued at once, so frames that arrive while it writes leave in one batch.

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::task::Poll;

use chatbox_domain::UserId;
use futures::task::AtomicWaker;

use crate::events::{Frame, Outbound};
use crate::wait::Signal;

/// A process-unique socket number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SocketId(u64);

impl SocketId {
    /// The next unused id.
    #[must_use]
    pub fn next() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        Self(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

impl fmt::Display for SocketId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Why the server closes a socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// Its outbound queue overflowed.
    SlowConsumer,
    /// Its token expired.
    TokenExpired,
    /// The server is shutting down.
    ShuttingDown,
    /// The connection ended for another reason (the client left, the network broke).
    Disconnected,
}

/// The size rule of a socket's outbound queue.
#[derive(Debug, Clone, Copy)]
pub struct SocketBudget {
    /// The most bytes of serialised frames a socket may have waiting to be written.
    pub max_bytes: usize,
    /// The wire encoder. Frames are serialised when first queued (once, however many
    /// sockets they go to), so the queue counts exact bytes.
    pub encode: fn(&Frame) -> String,
}

/// What each queued frame costs beyond its bytes (the queue's own bookkeeping); it also
/// bounds how many tiny frames a queue can hold.
const FRAME_OVERHEAD_BYTES: usize = 64;

/// A drained queue keeps at most this many slots, so a burst's memory goes back once
/// the socket is idle again.
const KEPT_SLOTS: usize = 4;

/// One or more items taken from a socket's queue, in order. Their bytes count against
/// the socket's budget until this is dropped, that is, until the writer is done with it.
#[derive(Debug)]
pub struct Dequeued {
    frames: Vec<Arc<Frame>>,
    bytes: usize,
    socket: Arc<SocketHandle>,
}

impl Dequeued {
    /// The frames, in order.
    #[must_use]
    pub fn frames(&self) -> &[Arc<Frame>] {
        &self.frames
    }
}

impl Drop for Dequeued {
    fn drop(&mut self) {
        self.socket.release(self.bytes);
    }
}

/// The receiving end of a socket's queue, drained by the adapter's writer. Dropping it
/// closes the socket: nothing could write what is queued after that.
#[derive(Debug)]
pub struct OutboundQueue {
    socket: Arc<SocketHandle>,
}

impl OutboundQueue {
    /// Everything queued, once there is something.
    pub fn recv(&mut self) -> impl Future<Output = Dequeued> + Send + '_ {
        std::future::poll_fn(|cx| {
            // Registered before looking: a frame queued after the look wakes this waker.
            self.socket.queued.register(cx.waker());
            self.socket.take(usize::MAX).map_or(Poll::Pending, Poll::Ready)
        })
    }

    /// The next item if one is waiting.
    pub fn try_recv(&mut self) -> Option<Dequeued> {
        self.socket.take(1)
    }

    /// Everything queued, if anything is.
    pub fn try_recv_all(&mut self) -> Option<Dequeued> {
        self.socket.take(usize::MAX)
    }
}

impl Drop for OutboundQueue {
    fn drop(&mut self) {
        self.socket.close(CloseReason::Disconnected);
    }
}

/// The use-cases' handle on one socket.
pub struct SocketHandle {
    id: SocketId,
    user: UserId,
    budget: SocketBudget,
    /// Unbounded in items, bounded in bytes by `queued_bytes` and `budget`.
    items: Mutex<VecDeque<(Outbound, usize)>>,
    /// Bytes queued or taken and not yet written.
    queued_bytes: AtomicUsize,
    /// Wakes the writer (one task): something was queued. A waker rather than a
    /// `Notify`, which would take a lock at every frame.
    queued: AtomicWaker,
    /// Wakes the replay waiting for room (one at a time: the socket's own commands run
    /// in turn): the writer is done with some bytes, or the socket closes.
    room: AtomicWaker,
    /// Raised when the socket should close; waited for by the writer.
    closing: Signal,
    close_reason: OnceLock<CloseReason>,
}

impl fmt::Debug for SocketHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SocketHandle")
            .field("id", &self.id)
            .field("user", &self.user)
            .field("queued_bytes", &self.queued_bytes())
            .field("closing", &self.is_closing())
            .finish_non_exhaustive()
    }
}

impl SocketHandle {
    /// A handle and the receiving end of its queue (for the adapter's writer).
    #[must_use]
    pub fn new(user: UserId, budget: SocketBudget) -> (Arc<Self>, OutboundQueue) {
        let handle = Arc::new(Self {
            id: SocketId::next(),
            user,
            budget,
            items: Mutex::new(VecDeque::new()),
            queued_bytes: AtomicUsize::new(0),
            queued: AtomicWaker::new(),
            room: AtomicWaker::new(),
            closing: Signal::default(),
            close_reason: OnceLock::new(),
        });
        let queue = OutboundQueue { socket: Arc::clone(&handle) };
        (handle, queue)
    }

    /// Its id.
    #[must_use]
    pub const fn id(&self) -> SocketId {
        self.id
    }

    /// Its user.
    #[must_use]
    pub const fn user(&self) -> &UserId {
        &self.user
    }

    /// Queues a frame. Never waits: a frame that does not fit the socket's byte budget
    /// closes the socket as a slow consumer and returns false.
    pub fn send(&self, frame: Arc<Frame>) -> bool {
        self.push(Outbound::Frame(frame))
    }

    /// Queues frames that must arrive together and in order, as one item.
    pub fn send_batch(&self, frames: Vec<Arc<Frame>>) -> bool {
        if frames.is_empty() {
            return true;
        }
        self.push(Outbound::Batch(frames))
    }

    /// Serialises frames about to be queued (once: a frame keeps its bytes), so that
    /// queueing them later, under a session's lock, costs no serialisation.
    pub fn encode_ahead<'a>(&self, frames: impl IntoIterator<Item = &'a Arc<Frame>>) {
        for frame in frames {
            frame.encoded(self.budget.encode);
        }
    }

    /// Bytes waiting to be written now.
    #[must_use]
    pub fn queued_bytes(&self) -> usize {
        self.queued_bytes.load(Ordering::Acquire)
    }

    /// Waits until at most half the budget is queued (or the socket closes), so that a
    /// long replay is queued at the pace the client reads it instead of overflowing.
    pub fn wait_for_room(&self) -> impl Future<Output = ()> + Send + '_ {
        let half = self.budget.max_bytes / 2;
        std::future::poll_fn(move |cx| {
            // Registered before the checks, so a release or close between the checks
            // and the wait is not missed.
            self.room.register(cx.waker());
            if self.queued_bytes() <= half || self.is_closing() { Poll::Ready(()) } else { Poll::Pending }
        })
    }

    fn push(&self, item: Outbound) -> bool {
        if self.is_closing() {
            return false;
        }
        let frames = match &item {
            Outbound::Frame(frame) => std::slice::from_ref(frame),
            Outbound::Batch(frames) => frames.as_slice(),
        };
        let bytes = frames.iter().fold(0usize, |sum, frame| {
            sum.saturating_add(frame.encoded(self.budget.encode).len()).saturating_add(FRAME_OVERHEAD_BYTES)
        });
        // A queue within its budget takes one more item whatever its size, so a frame
        // larger than the budget (the catch-up of a long answer) still gets through: a
        // socket holds at most its budget plus one item.
        let max = self.budget.max_bytes;
        let reserved = self.queued_bytes.fetch_update(Ordering::AcqRel, Ordering::Acquire, |queued| {
            (queued < max).then(|| queued.saturating_add(bytes))
        });
        if reserved.is_err() {
            self.close(CloseReason::SlowConsumer);
            return false;
        }
        self.lock_items().push_back((item, bytes));
        self.queued.wake();
        true
    }

    /// Takes up to `most` items off the queue.
    fn take(self: &Arc<Self>, most: usize) -> Option<Dequeued> {
        let mut items = self.lock_items();
        let count = items.len().min(most);
        if count == 0 {
            return None;
        }
        let mut frames = Vec::with_capacity(count);
        let mut bytes = 0usize;
        for (item, size) in items.drain(..count) {
            bytes = bytes.saturating_add(size);
            match item {
                Outbound::Frame(frame) => frames.push(frame),
                Outbound::Batch(batch) => frames.extend(batch),
            }
        }
        if items.is_empty() && items.capacity() > KEPT_SLOTS {
            *items = VecDeque::new();
        }
        drop(items);
        Some(Dequeued { frames, bytes, socket: Arc::clone(self) })
    }

    fn release(&self, bytes: usize) {
        self.queued_bytes.fetch_sub(bytes, Ordering::AcqRel);
        self.room.wake();
    }

    /// The slots the queue holds allocated.
    #[cfg(test)]
    fn held_slots(&self) -> usize {
        self.lock_items().capacity()
    }

    fn lock_items(&self) -> MutexGuard<'_, VecDeque<(Outbound, usize)>> {
        // Pushing and taking leave the deque whole at every step: a panic elsewhere
        // while it was held leaves nothing inconsistent behind.
        self.items.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Asks the adapter to close the socket; the first reason given wins.
    pub fn close(&self, reason: CloseReason) {
        let _ = self.close_reason.set(reason);
        if self.closing.raise() {
            self.room.wake();
        }
    }

    /// True once the socket is being closed.
    #[must_use]
    pub fn is_closing(&self) -> bool {
        self.closing.is_raised()
    }

    /// Completes when the socket should close. One task waits for it (the socket's
    /// writer): a wait from another task would take its place.
    pub fn closed(&self) -> impl Future<Output = ()> + Send + '_ {
        self.closing.raised()
    }

    /// Why the server closes it, if it does.
    #[must_use]
    pub fn close_reason(&self) -> Option<CloseReason> {
        self.close_reason.get().copied()
    }
}

#[cfg(test)]
mod tests;
