//! The fan-out port: how a frame reaches the sockets of a session or of a user, and who
//! runs a session's answer.
//!
//! Everything that assumes one process goes through here, so that a shared backend (a
//! message bus between replicas) can replace the in-process one without touching the
//! use-cases:
//! - a session's sockets: [`SessionHub::open`] gives the session's [`SessionFanout`] when
//!   it becomes live; sockets subscribe to it and frames are published through it;
//! - a user's sockets: [`SessionHub::register`], [`SessionHub::publish_to_user`];
//! - the single answerer of a session: [`SessionHub::lease_answerer`];
//! - what other replicas did in a session this replica serves: handed to the session's
//!   live copy here through its [`ReplicaEvents`].
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
//! - Across replicas, a publication also reaches the session's live copies on the other
//!   replicas, in publication order, where [`ReplicaEvents::apply_remote`] records it and
//!   delivers it to their sockets ([`SessionFanout::deliver`]). Only the holder of the
//!   answer lease stores messages, so the copies agree on every `seq`.
//! - An answer lease is held while its actor works (a turn, its answer, an answer
//!   waiting to be stored) and given back when it is idle. One that says
//!   [`AnswerLease::may_be_behind`] was held by another replica since: its holder first
//!   brings the session up to date from the store.

use std::any::Any;
use std::fmt;
use std::sync::{Arc, Weak};

use async_trait::async_trait;
use chatbox_domain::{Seq, SessionId, UserId};

use crate::events::Frame;
use crate::local_sockets::{SocketList, UserDirectory};
use crate::socket::{SocketHandle, SocketId};

/// The writer's lease could not be asked for (the store of leases is unreachable).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the writer's lease cannot be reached")]
pub struct LeaseUnavailable;

/// The sockets of one live session.
pub trait SessionFanout: Send + fmt::Debug {
    /// Sends `frame` to every subscribed socket except `except`, and to the session's
    /// copies on other replicas. Sockets that are closing or overflow are dropped. Returns
    /// how many stay subscribed here. `stored_seq` is the session's last stored `seq` as
    /// the frame is published: a copy elsewhere that already has a later message drops
    /// the frame as stale.
    fn publish(&mut self, frame: &Arc<Frame>, except: Option<SocketId>, stored_seq: Seq) -> usize;

    /// The session's sockets in this process: the socket verbs below go through them.
    fn local(&self) -> &SocketList;

    /// As [`Self::local`], to change them.
    fn local_mut(&mut self) -> &mut SocketList;

    /// Adds a socket (a socket already subscribed is not added twice).
    fn subscribe(&mut self, socket: Arc<SocketHandle>) {
        self.local_mut().add(socket);
    }

    /// Removes a socket.
    fn unsubscribe(&mut self, socket: SocketId) {
        self.local_mut().remove(socket);
    }

    /// How many sockets are subscribed here.
    fn subscribers(&self) -> usize {
        self.local().len()
    }

    /// Sends `frame`, which another replica published, to the sockets subscribed here
    /// (and to no other replica). Returns how many stay subscribed.
    fn deliver(&mut self, frame: &Arc<Frame>) -> usize {
        self.local_mut().send(frame, None)
    }

    /// Asks the replica streaming the session's answer to stop it (a `stop` or a
    /// takeover arrived here, and the answer runs elsewhere). Nothing to do in one
    /// process.
    fn relay_stop(&mut self) {}
}

/// What another replica did in a session, handed to its live copy on this replica.
pub trait ReplicaEvents: Send + Sync {
    /// Another replica published `frame` in the session when its last stored `seq` was
    /// `published_at`: record what it says (a stored message, an answer's progress, a
    /// handoff, an end) and deliver it to the sockets here, unless it is stale.
    fn apply_remote(&self, frame: Arc<Frame>, published_at: Seq);

    /// Another replica asks for the answer this replica streams to stop.
    fn stop_requested(&self);
}

/// The right to be the one writer of a session: held by its actor while it works,
/// released when dropped.
pub struct AnswerLease {
    _held: Box<dyn Any + Send + Sync>,
    may_be_behind: bool,
}

impl AnswerLease {
    /// A lease that stays held as long as `held` lives, held by nobody else before in
    /// between (one process).
    #[must_use]
    pub fn new(held: impl Any + Send + Sync) -> Self {
        Self { _held: Box::new(held), may_be_behind: false }
    }

    /// A lease that another replica may have held since this one last did: the session's
    /// copy here may miss what that replica stored.
    #[must_use]
    pub fn after_others(held: impl Any + Send + Sync) -> Self {
        Self { _held: Box::new(held), may_be_behind: true }
    }

    /// Whether the session's copy here may be behind the store.
    #[must_use]
    pub const fn may_be_behind(&self) -> bool {
        self.may_be_behind
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
    /// The fan-out of a session that becomes live here; what other replicas do in it is
    /// handed to `events` (its live copy here) while that lives.
    fn open(&self, session: &SessionId, events: Weak<dyn ReplicaEvents>) -> Box<dyn SessionFanout>;

    /// The user directory of this process: the user-level verbs below go through it
    /// unless a hub reaches users' sockets some other way.
    fn local_users(&self) -> &UserDirectory;

    /// A socket connected: what is published to its user reaches it.
    fn register(&self, socket: &Arc<SocketHandle>) {
        self.local_users().register(socket);
    }

    /// A socket closed.
    fn unregister(&self, socket: &SocketHandle) {
        self.local_users().unregister(socket);
    }

    /// Sends `frame` to every registered socket of `user`.
    fn publish_to_user(&self, user: &UserId, frame: &Arc<Frame>) {
        self.local_users().send(user, frame);
    }

    /// How many users have a registered socket (memory reports).
    fn users(&self) -> usize {
        self.local_users().users()
    }

    /// Waits until this caller is the one writer of `session` (an actor that is still
    /// finishing, here or on another replica, holds it until it is idle). Across
    /// replicas, it returns once every frame other replicas published in the session
    /// before it was granted has been applied here.
    ///
    /// # Errors
    /// [`LeaseUnavailable`] when the store of leases cannot be reached for a while (not
    /// while another replica holds the lease: that is waited for).
    async fn lease_answerer(&self, session: &SessionId) -> Result<AnswerLease, LeaseUnavailable>;

    /// A field of `session` (its model, handoff or status) was stored here without the
    /// writer's lease: the next holder on another replica must read the session from the
    /// store before it writes. Nothing to do in one process.
    async fn field_changed(&self, session: &SessionId) {
        let _ = session;
    }

    /// Completes once nobody holds `session`'s lease: watched while another replica
    /// streams an answer here, so that an answer whose replica died is ended. In one
    /// process there is no other replica, and it never completes.
    async fn answerer_gone(&self, session: &SessionId) {
        let _ = session;
        std::future::pending::<()>().await;
    }
}
