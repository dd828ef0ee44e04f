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
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};

use chatbox_domain::UserId;
use tokio::sync::Notify;

use crate::events::{Frame, Outbound};

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
    pub async fn recv(&mut self) -> Dequeued {
        loop {
            let queued = pin!(self.socket.queued.notified());
            if let Some(items) = self.socket.take(usize::MAX) {
                return items;
            }
            queued.await;
        }
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
    /// Wakes the writer: something was queued.
    queued: Notify,
    /// Wakes a replay waiting for room: the writer is done with some bytes.
    room: Notify,
    closing: AtomicBool,
    /// Wakes whoever waits for the close.
    closed: Notify,
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
            queued: Notify::new(),
            room: Notify::new(),
            closing: AtomicBool::new(false),
            closed: Notify::new(),
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
    pub async fn wait_for_room(&self) {
        let half = self.budget.max_bytes / 2;
        loop {
            let mut room = pin!(self.room.notified());
            let mut closed = pin!(self.closed.notified());
            // Registered before the checks, so a release or close between the checks
            // and the wait is not missed.
            room.as_mut().enable();
            closed.as_mut().enable();
            if self.queued_bytes() <= half || self.is_closing() {
                return;
            }
            tokio::select! {
                () = room => {}
                () = closed => {}
            }
        }
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
        self.queued.notify_one();
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
        self.room.notify_waiters();
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
        if !self.closing.swap(true, Ordering::AcqRel) {
            self.closed.notify_waiters();
        }
    }

    /// True once the socket is being closed.
    #[must_use]
    pub fn is_closing(&self) -> bool {
        self.closing.load(Ordering::Acquire)
    }

    /// Completes when the socket should close.
    pub async fn closed(&self) {
        let mut closed = pin!(self.closed.notified());
        closed.as_mut().enable();
        if self.is_closing() {
            return;
        }
        closed.await;
    }

    /// Why the server closes it, if it does.
    #[must_use]
    pub fn close_reason(&self) -> Option<CloseReason> {
        self.close_reason.get().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::ServerEvent;

    /// A stand-in encoder: the frame's size is its notification's length.
    fn encode(frame: &Frame) -> String {
        match &frame.event {
            ServerEvent::Notification { content } => content.clone(),
            _ => String::new(),
        }
    }

    pub(crate) fn budget(max_bytes: usize) -> SocketBudget {
        SocketBudget { max_bytes, encode }
    }

    fn note(bytes: usize) -> Arc<Frame> {
        Frame::new(
            ServerEvent::Notification { content: "x".repeat(bytes) },
            chatbox_domain::Timestamp::default(),
        )
    }

    #[test]
    fn the_queue_is_bounded_in_bytes_and_frees_them_when_the_writer_is_done() {
        let (socket, mut queue) = SocketHandle::new(UserId::parse("u").expect("id"), budget(1000));
        assert!(socket.send(note(10)) && socket.send(note(5000)), "one item of any size lands within budget");
        assert!(!socket.send(note(10)), "nothing fits behind it");
        assert_eq!(socket.close_reason(), Some(CloseReason::SlowConsumer));

        let (socket, mut queue_two) = SocketHandle::new(UserId::parse("u").expect("id"), budget(1000));
        assert!(socket.send(note(400)) && socket.send(note(400)));
        assert_eq!(socket.queued_bytes(), 800 + 2 * FRAME_OVERHEAD_BYTES);
        let first = queue_two.try_recv().expect("queued");
        assert_eq!(socket.queued_bytes(), 800 + 2 * FRAME_OVERHEAD_BYTES, "counted until written");
        drop(first);
        assert_eq!(socket.queued_bytes(), 400 + FRAME_OVERHEAD_BYTES);
        assert!(socket.send(note(400)), "room again once the writer is done");
        assert!(socket.send(note(400)), "within budget before it: lands");
        assert!(!socket.send(note(10)), "over the budget: a slow consumer");
        assert_eq!(socket.queued_bytes(), 1200 + 3 * FRAME_OVERHEAD_BYTES, "budget plus one item at most");
        assert!(socket.is_closing());
        drop(queue.try_recv());
    }

    fn user() -> UserId {
        UserId::parse("u").expect("id")
    }

    fn contents(taken: &Dequeued) -> Vec<usize> {
        taken
            .frames()
            .iter()
            .map(|frame| match &frame.event {
                ServerEvent::Notification { content } => content.len(),
                _ => usize::MAX,
            })
            .collect()
    }

    #[test]
    fn the_writer_takes_everything_queued_in_order_and_frees_its_bytes_once_done() {
        let (socket, mut queue) = SocketHandle::new(user(), budget(10_000));
        assert!(queue.try_recv_all().is_none(), "nothing queued");
        assert!(socket.send(note(1)) && socket.send_batch(vec![note(2), note(3)]) && socket.send(note(4)));
        let taken = queue.try_recv_all().expect("queued");
        assert_eq!(contents(&taken), [1, 2, 3, 4], "every item, the batch's frames in place");
        assert_eq!(socket.queued_bytes(), 10 + 4 * FRAME_OVERHEAD_BYTES, "counted until written");
        assert!(queue.try_recv_all().is_none(), "all of it was taken");
        drop(taken);
        assert_eq!(socket.queued_bytes(), 0);
    }

    #[test]
    fn a_drained_queue_gives_back_a_bursts_memory_and_keeps_a_few_slots() {
        let (socket, mut queue) = SocketHandle::new(user(), budget(1 << 20));
        assert_eq!(socket.held_slots(), 0, "an idle socket's queue holds nothing");
        for _ in 0..2 {
            assert!(socket.send(note(1)));
        }
        drop(queue.try_recv_all());
        assert_eq!(socket.held_slots(), KEPT_SLOTS, "a few slots are kept for the next frames");
        for _ in 0..100 {
            assert!(socket.send(note(1)));
        }
        drop(queue.try_recv());
        assert!(socket.held_slots() >= 99, "a queue still holding items keeps its slots");
        drop(queue.try_recv_all());
        assert_eq!(socket.held_slots(), 0, "a drained burst gives its memory back");
    }

    #[test]
    fn dropping_the_writers_end_closes_the_socket() {
        let (socket, queue) = SocketHandle::new(user(), budget(1000));
        drop(queue);
        assert!(socket.is_closing());
        assert_eq!(socket.close_reason(), Some(CloseReason::Disconnected));
        assert!(!socket.send(note(1)), "nothing can be written any more");
        let shown = format!("{socket:?}");
        assert!(shown.contains("SocketHandle") && shown.contains("closing: true"), "{shown}");
    }

    #[test]
    fn a_queue_holding_its_whole_budget_is_full() {
        // Two items of 436 + 64 bytes: exactly the 1000-byte budget.
        let (socket, _queue) = SocketHandle::new(user(), budget(1000));
        assert!(socket.send(note(436)) && socket.send(note(436)));
        assert_eq!(socket.queued_bytes(), 1000);
        assert!(!socket.send(note(0)), "at the budget: a slow consumer");
        assert_eq!(socket.close_reason(), Some(CloseReason::SlowConsumer));

        let (socket, _queue) = SocketHandle::new(user(), budget(1000));
        assert!(socket.send(note(436)) && socket.send(note(435)));
        assert_eq!(socket.queued_bytes(), 999);
        assert!(socket.send(note(0)), "one byte under the budget: one more item lands");
        assert!(!socket.is_closing());
    }

    #[test]
    fn frames_encoded_ahead_keep_the_sockets_encoding() {
        let (socket, _queue) = SocketHandle::new(user(), budget(1000));
        let frame = note(3);
        socket.encode_ahead([&frame]);
        assert_eq!(&frame.encoded(|_| String::new())[..], b"xxx", "serialised once, by the socket's encoder");
    }

    #[tokio::test(start_paused = true)]
    async fn a_socket_is_open_until_closed_and_the_first_reason_wins() {
        let patience = std::time::Duration::from_secs(60);
        let (socket, _queue) = SocketHandle::new(user(), budget(1000));
        assert!(!socket.is_closing());
        assert_eq!(socket.close_reason(), None);
        assert!(tokio::time::timeout(patience, socket.closed()).await.is_err(), "open: closed() waits");
        socket.close(CloseReason::TokenExpired);
        socket.close(CloseReason::SlowConsumer);
        tokio::time::timeout(patience, socket.closed()).await.expect("closing");
        assert!(socket.is_closing());
        assert_eq!(socket.close_reason(), Some(CloseReason::TokenExpired));
        assert!(!socket.send(note(1)), "a closing socket takes nothing");
    }

    #[tokio::test(start_paused = true)]
    async fn a_replay_waits_until_at_most_half_the_budget_is_queued() {
        let patience = std::time::Duration::from_secs(60);
        let writer_pause = std::time::Duration::from_secs(1);

        // 436 + 64 bytes: exactly half of 1000.
        let (socket, _queue) = SocketHandle::new(user(), budget(1000));
        assert!(socket.send(note(436)));
        tokio::time::timeout(patience, socket.wait_for_room()).await.expect("half the budget queued: room");

        // One byte past half: it waits until the writer is done with an item.
        let (socket, mut queue) = SocketHandle::new(user(), budget(1000));
        assert!(socket.send(note(437)));
        assert_eq!(socket.queued_bytes(), 501);
        assert!(tokio::time::timeout(patience, socket.wait_for_room()).await.is_err(), "over half: waits");
        let writer = async {
            tokio::time::sleep(writer_pause).await;
            drop(queue.try_recv().expect("queued"));
        };
        let (waited, ()) = tokio::join!(tokio::time::timeout(patience, socket.wait_for_room()), writer);
        waited.expect("room once the writer is done");

        // A socket that closes meanwhile stops the wait too.
        let (socket, _queue) = SocketHandle::new(user(), budget(1000));
        assert!(socket.send(note(437)));
        let closer = async {
            tokio::time::sleep(writer_pause).await;
            socket.close(CloseReason::Disconnected);
        };
        let (waited, ()) = tokio::join!(tokio::time::timeout(patience, socket.wait_for_room()), closer);
        waited.expect("no waiting on a closing socket");
    }
}
