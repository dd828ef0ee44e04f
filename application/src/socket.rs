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
use dashmap::DashMap;
use dashmap::mapref::entry::Entry;
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

/// Every open socket, by user: for what concerns a user rather than a session (a refused
/// connection on another device). Entries disappear with their last socket.
#[derive(Debug, Default)]
pub struct SocketDirectory {
    by_user: DashMap<UserId, Vec<Arc<SocketHandle>>>,
}

impl SocketDirectory {
    /// Adds a socket.
    pub fn register(&self, socket: &Arc<SocketHandle>) {
        self.by_user.entry(socket.user().clone()).or_default().push(Arc::clone(socket));
    }

    /// Removes a socket.
    pub fn unregister(&self, socket: &SocketHandle) {
        if let Entry::Occupied(mut sockets) = self.by_user.entry(socket.user().clone()) {
            sockets.get_mut().retain(|s| s.id() != socket.id());
            if sockets.get().is_empty() {
                sockets.remove();
            }
        }
    }

    /// Sends `frame` to every socket of `user`.
    pub fn send_to_user(&self, user: &UserId, frame: &Arc<Frame>) {
        if let Some(sockets) = self.by_user.get(user) {
            for socket in sockets.iter() {
                socket.send(Arc::clone(frame));
            }
        }
    }

    /// Users with at least one socket.
    #[must_use]
    pub fn users(&self) -> usize {
        self.by_user.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::ServerEvent;

    #[test]
    fn the_directory_reaches_every_socket_of_a_user_and_forgets_the_last_one() {
        let directory = SocketDirectory::default();
        let alice = UserId::parse("alice").expect("id");
        let (phone, mut phone_queue) = SocketHandle::new(alice.clone(), 4);
        let (laptop, mut laptop_queue) = SocketHandle::new(alice.clone(), 4);
        let (other, mut other_queue) = SocketHandle::new(UserId::parse("bob").expect("id"), 4);
        for socket in [&phone, &laptop, &other] {
            directory.register(socket);
        }
        let frame = Frame::new(
            ServerEvent::Notification { content: "hi".into() },
            chatbox_domain::Timestamp::default(),
        );
        directory.send_to_user(&alice, &frame);
        assert!(phone_queue.try_recv().is_ok() && laptop_queue.try_recv().is_ok());
        assert!(other_queue.try_recv().is_err(), "another user's socket hears nothing");
        directory.unregister(&phone);
        directory.unregister(&laptop);
        assert_eq!(directory.users(), 1);
    }
}
