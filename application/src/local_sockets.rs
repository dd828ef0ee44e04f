//! The sockets of this process, as every fan-out keeps them: a session's subscribers
//! ([`SocketList`]) and each user's sockets ([`UserDirectory`]). Shared by the in-process
//! hub and the one that spans replicas (which adds the other replicas on top): plain
//! bookkeeping, no I/O.
//!
//! - A [`SocketList`] is owned by its live session and only touched under that session's
//!   lock (the fan-out port's contract), so it takes no lock of its own, serialises
//!   nothing and hops to no task: it queues the shared frame on each socket.
//! - The [`UserDirectory`] is a sharded map of each user's sockets; an entry disappears
//!   with the user's last socket.

use std::sync::Arc;

use chatbox_domain::UserId;
use dashmap::DashMap;
use dashmap::mapref::entry::Entry;

use crate::events::Frame;
use crate::socket::{SocketHandle, SocketId};

/// The sockets of one session in this process.
#[derive(Debug, Default)]
pub struct SocketList {
    subscribers: Vec<Arc<SocketHandle>>,
}

impl SocketList {
    /// Queues `frame` on every socket but `except`; drops sockets that are closing or
    /// overflow. Returns how many stay.
    pub fn send(&mut self, frame: &Arc<Frame>, except: Option<SocketId>) -> usize {
        self.subscribers.retain(|socket| Some(socket.id()) == except || socket.send(Arc::clone(frame)));
        self.subscribers.len()
    }

    /// Adds a socket (one already in the list is not added twice).
    pub fn add(&mut self, socket: Arc<SocketHandle>) {
        if !self.subscribers.iter().any(|known| known.id() == socket.id()) {
            self.subscribers.push(socket);
        }
    }

    /// Removes a socket.
    pub fn remove(&mut self, socket: SocketId) {
        self.subscribers.retain(|known| known.id() != socket);
    }

    /// How many sockets are in the list.
    #[must_use]
    pub fn len(&self) -> usize {
        self.subscribers.len()
    }

    /// True when none is.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.subscribers.is_empty()
    }
}

/// Each user's sockets in this process.
#[derive(Debug, Default)]
pub struct UserDirectory {
    by_user: DashMap<UserId, Vec<Arc<SocketHandle>>>,
}

impl UserDirectory {
    /// Adds a socket of its user.
    pub fn register(&self, socket: &Arc<SocketHandle>) {
        self.by_user.entry(socket.user().clone()).or_default().push(Arc::clone(socket));
    }

    /// Removes a socket; its user's entry goes with their last socket.
    pub fn unregister(&self, socket: &SocketHandle) {
        if let Entry::Occupied(mut sockets) = self.by_user.entry(socket.user().clone()) {
            sockets.get_mut().retain(|known| known.id() != socket.id());
            if sockets.get().is_empty() {
                sockets.remove();
                crate::sparse_maps::shrink_if_sparse(&self.by_user);
            }
        }
    }

    /// Queues `frame` on every socket of `user`.
    pub fn send(&self, user: &UserId, frame: &Arc<Frame>) {
        if let Some(sockets) = self.by_user.get(user) {
            for socket in sockets.iter() {
                socket.send(Arc::clone(frame));
            }
        }
    }

    /// How many sockets `user` has.
    #[must_use]
    pub fn sockets_of(&self, user: &UserId) -> usize {
        self.by_user.get(user).map_or(0, |sockets| sockets.len())
    }

    /// How many users have a socket.
    #[must_use]
    pub fn users(&self) -> usize {
        self.by_user.len()
    }
}

#[cfg(test)]
mod tests {
    use chatbox_domain::Timestamp;

    use super::*;
    use crate::events::ServerEvent;
    use crate::socket::{CloseReason, OutboundQueue, SocketBudget};

    fn socket(user: &str) -> (Arc<SocketHandle>, OutboundQueue) {
        let budget = SocketBudget { max_bytes: 4096, encode: |_| "frame".to_owned() };
        SocketHandle::new(UserId::parse(user).expect("id"), budget)
    }

    fn frame() -> Arc<Frame> {
        Frame::new(ServerEvent::Notification { content: "hi".into() }, Timestamp::default())
    }

    #[test]
    fn a_list_skips_the_sender_counts_once_and_drops_closed_sockets() {
        let mut list = SocketList::default();
        assert!(list.is_empty());
        let (sender, mut sender_queue) = socket("u");
        let (reader, mut reader_queue) = socket("u");
        let (gone, gone_queue) = socket("u");
        for socket in [&sender, &reader, &gone, &reader] {
            list.add(Arc::clone(socket));
        }
        assert_eq!(list.len(), 3, "a socket is listed once");
        assert!(!list.is_empty());
        drop(gone_queue);
        gone.close(CloseReason::Disconnected);
        assert_eq!(list.send(&frame(), Some(sender.id())), 2, "a closing socket is dropped");
        assert!(sender_queue.try_recv().is_none(), "the sender is skipped");
        assert!(reader_queue.try_recv().is_some());
        list.remove(reader.id());
        list.remove(sender.id());
        assert!(list.is_empty());
    }

    #[test]
    fn the_directory_reaches_every_socket_of_a_user_and_forgets_the_last_one() {
        let users = UserDirectory::default();
        let (phone, mut phone_queue) = socket("alice");
        let (laptop, mut laptop_queue) = socket("alice");
        let (other, mut other_queue) = socket("bob");
        for socket in [&phone, &laptop, &other] {
            users.register(socket);
        }
        let alice = UserId::parse("alice").expect("id");
        assert_eq!((users.sockets_of(&alice), users.users()), (2, 2));
        users.send(&alice, &frame());
        assert!(phone_queue.try_recv().is_some() && laptop_queue.try_recv().is_some());
        assert!(other_queue.try_recv().is_none(), "another user's socket hears nothing");
        users.unregister(&phone);
        assert_eq!(users.sockets_of(&alice), 1, "the laptop stays when the phone goes");
        users.send(&alice, &frame());
        assert!(laptop_queue.try_recv().is_some() && phone_queue.try_recv().is_none());
        users.unregister(&laptop);
        assert_eq!(
            (users.sockets_of(&alice), users.users()),
            (0, 1),
            "alice's entry went with her last socket"
        );
    }

    #[test]
    fn the_directory_gives_its_memory_back_once_its_users_left() {
        let users = UserDirectory::default();
        let sockets: Vec<_> = (0..5_000).map(|n| socket(&format!("user-{n}"))).collect();
        for (socket, _) in &sockets {
            users.register(socket);
        }
        let full = users.by_user.capacity();
        for (socket, _) in &sockets {
            users.unregister(socket);
        }
        assert!(users.by_user.capacity() < full / 4, "{} of {full} slots kept", users.by_user.capacity());
    }
}
