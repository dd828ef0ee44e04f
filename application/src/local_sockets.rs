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
