//! The fan-out port: how a frame reaches the sockets of a session or of a user, and who
//! runs a session's answer.
//!
//! Everything that assumes one process goes through here, so that a shared backend (a
//! message bus between replicas) can replace the in-process one without touching the
//! use-cases:
//! - a session's sockets: [`SessionHub::open`] gives the session's [`SessionFanout`] when
//!   it becomes live; sockets subscribe to it and frames are published through it;
//! - a user's sockets: [`SessionHub::register`], [`SessionHub::publish_to_user`],
//!   [`SessionHub::user_sockets`];
//! - the single answerer of a session: [`SessionHub::lease_answerer`].
//!
//! # Contract
//! - A [`SessionFanout`] is owned by its live session and only ever called under that
//!   session's lock, which is what makes a resume exact: a message is published in the
//!   same critical section that records it as stored, and a socket subscribes in the
//!   critical section that checks what it has already been sent. An implementation
//!   therefore needs no lock of its own for its local subscribers, must never block, and
//!   must deliver each publication to each local subscriber at most once, in publication
//!   order.
//! - Frames are handed over as shared [`Frame`]s: serialised once, when first queued,
//!   however many sockets get them. A publication costs no task hop.
//! - Queues are the sockets' own, bounded in bytes: a socket that cannot take a frame is
//!   closed as a slow consumer and dropped from the fan-out, never waited for.

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use chatbox_domain::{SessionId, UserId};

use crate::events::Frame;
use crate::socket::{SocketHandle, SocketId};

/// The sockets of one live session.
pub trait SessionFanout: Send + fmt::Debug {
    /// Sends `frame` to every subscribed socket except `except`. Sockets that are closing
    /// or overflow are dropped. Returns how many stay subscribed.
    fn publish(&mut self, frame: &Arc<Frame>, except: Option<SocketId>) -> usize;

    /// Adds a socket (a socket already subscribed is not added twice).
    fn subscribe(&mut self, socket: Arc<SocketHandle>);

    /// Removes a socket.
    fn unsubscribe(&mut self, socket: SocketId);

    /// How many sockets are subscribed here.
    fn subscribers(&self) -> usize;
}

/// The right to be the one answerer of a session: held by its actor while it runs,
/// released when dropped.
pub struct AnswerLease {
    _held: Box<dyn Any + Send>,
}

impl AnswerLease {
    /// A lease that stays held as long as `held` lives.
    #[must_use]
    pub fn new(held: impl Any + Send) -> Self {
        Self { _held: Box::new(held) }
    }
}

impl fmt::Debug for AnswerLease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AnswerLease").finish_non_exhaustive()
    }
}

/// Fan-out of frames to sessions' and users' sockets, and the answer leases.
#[async_trait]
pub trait SessionHub: Send + Sync + fmt::Debug {
    /// The fan-out of a session that becomes live here.
    fn open(&self, session: &SessionId) -> Box<dyn SessionFanout>;

    /// A socket connected: what is published to its user reaches it.
    fn register(&self, socket: &Arc<SocketHandle>);

    /// A socket closed.
    fn unregister(&self, socket: &SocketHandle);

    /// Sends `frame` to every registered socket of `user`.
    fn publish_to_user(&self, user: &UserId, frame: &Arc<Frame>);

    /// How many sockets `user` has registered.
    fn user_sockets(&self, user: &UserId) -> usize;

    /// How many users have a registered socket (memory reports).
    fn users(&self) -> usize;

    /// Waits until this caller is the one answerer of `session` (an actor that is still
    /// finishing holds it until it stops).
    async fn lease_answerer(&self, session: &SessionId) -> AnswerLease;
}
