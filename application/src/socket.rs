//! A socket as the use-cases see it: an id, its user, and a bounded outbound queue. The
//! inbound adapter owns the real socket and drains the queue.
//!
//! A socket whose queue is full is a slow consumer: it is closed (with a reason the
//! adapter turns into a close code) instead of growing memory or silently losing frames
//! in the middle of an answer.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use chatbox_domain::UserId;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

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

/// The use-cases' handle on one socket.
#[derive(Debug)]
pub struct SocketHandle {
    id: SocketId,
    user: UserId,
    queue: mpsc::Sender<Outbound>,
    closing: CancellationToken,
    close_reason: OnceLock<CloseReason>,
}

impl SocketHandle {
    /// A handle and the receiving end of its queue (for the adapter's writer).
    #[must_use]
    pub fn new(user: UserId, capacity: usize) -> (Arc<Self>, mpsc::Receiver<Outbound>) {
        let (queue, receiver) = mpsc::channel(capacity.max(1));
        let handle = Self {
            id: SocketId::next(),
            user,
            queue,
            closing: CancellationToken::new(),
            close_reason: OnceLock::new(),
        };
        (Arc::new(handle), receiver)
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

    /// Queues a frame. Never waits: a full queue closes the socket as a slow consumer
    /// and returns false.
    pub fn send(&self, frame: Arc<Frame>) -> bool {
        self.push(Outbound::Frame(frame))
    }

    /// Queues frames that must arrive together and in order, in one slot.
    pub fn send_batch(&self, frames: Vec<Arc<Frame>>) -> bool {
        if frames.is_empty() {
            return true;
        }
        self.push(Outbound::Batch(frames))
    }

    fn push(&self, item: Outbound) -> bool {
        if self.closing.is_cancelled() {
            return false;
        }
        match self.queue.try_send(item) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.close(CloseReason::SlowConsumer);
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    /// Asks the adapter to close the socket; the first reason given wins.
    pub fn close(&self, reason: CloseReason) {
        let _ = self.close_reason.set(reason);
        self.closing.cancel();
    }

    /// True once the socket is being closed.
    #[must_use]
    pub fn is_closing(&self) -> bool {
        self.closing.is_cancelled()
    }

    /// Completes when the socket should close.
    pub async fn closed(&self) {
        self.closing.cancelled().await;
    }

    /// Why the server closes it, if it does.
    #[must_use]
    pub fn close_reason(&self) -> Option<CloseReason> {
        self.close_reason.get().copied()
    }
}
