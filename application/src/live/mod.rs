//! Live sessions: the sessions in use, in memory, each with its sockets and its answer.
//!
//! - [`LiveSessions`] (here): the registry, a sharded map so there is no process-wide
//!   lock on the message path; making a session live (one per id: a live one always
//!   wins), evicting idle ones, retiring them all at shutdown.
//! - [`session`]: one [`LiveSession`] and the verbs that change it (admit a turn, store
//!   or refuse it, stream and finish an answer, join and replay a socket), each a short
//!   critical section that never awaits.
//! - `client_ids`: the bounded window of recent idempotency keys and who waits for them.
//! - `streaming`: the answer being streamed and its catch-up frames.
//!
//! Memory is bounded by the live sessions, not by history: a session with no socket, no
//! work and no activity for `SESSION_TTL` is evicted (it stays stored).

mod client_ids;
pub mod session;
mod streaming;

use std::sync::Arc;
use std::time::Duration;

use chatbox_domain::{Session, SessionId};
use dashmap::DashMap;
use dashmap::mapref::entry::Entry;
use tokio_util::sync::CancellationToken;

pub use client_ids::{REMEMBERED_CLIENT_IDS, StoredKey};
pub use session::{LiveSession, OrphanedAnswer, ReplayStep};

use crate::ports::{Clock, ReplicaEvents, SessionHub};

/// The registry of live sessions.
pub struct LiveSessions {
    sessions: DashMap<SessionId, Arc<LiveSession>>,
    clock: Arc<dyn Clock>,
    hub: Arc<dyn SessionHub>,
    /// Cancelled at shutdown. Every session's `retired` token is a child of it, so a
    /// session made live after shutdown began is born retired and its actor ends too.
    shutdown: CancellationToken,
}

impl std::fmt::Debug for LiveSessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveSessions").field("sessions", &self.sessions.len()).finish_non_exhaustive()
    }
}

impl LiveSessions {
    /// An empty registry; idleness is measured on `clock`, sockets are reached through
    /// `hub`.
    #[must_use]
    pub fn new(clock: Arc<dyn Clock>, hub: Arc<dyn SessionHub>) -> Self {
        Self { sessions: DashMap::new(), clock, hub, shutdown: CancellationToken::new() }
    }

    /// The live session with this id, if it is in memory and not evicted.
    #[must_use]
    pub fn get(&self, id: &SessionId) -> Option<Arc<LiveSession>> {
        self.sessions.get(id).map(|live| Arc::clone(&live)).filter(|live| !live.is_evicted())
    }

    /// Makes `session` live unless it already is, in which case the existing one wins.
    /// Returns the live session and whether it was created here (its actor is then
    /// to be started).
    pub fn activate(&self, session: Session, client_keys: Vec<StoredKey>) -> (Arc<LiveSession>, bool) {
        match self.sessions.entry(session.id.clone()) {
            Entry::Occupied(existing) if !existing.get().is_evicted() => (Arc::clone(existing.get()), false),
            entry => {
                let live = Arc::new_cyclic(|events: &std::sync::Weak<LiveSession>| {
                    let events: std::sync::Weak<dyn ReplicaEvents> = events.clone();
                    let fanout = self.hub.open(&session.id, events);
                    LiveSession::new(
                        session,
                        client_keys,
                        fanout,
                        Arc::clone(&self.clock),
                        self.shutdown.child_token(),
                    )
                });
                match entry {
                    Entry::Occupied(mut stale) => {
                        stale.insert(Arc::clone(&live));
                    }
                    Entry::Vacant(vacant) => {
                        vacant.insert(Arc::clone(&live));
                    }
                }
                (live, true)
            }
        }
    }

    /// Evicts sessions with no socket, no work, and no activity for `ttl`. Returns how
    /// many were evicted. Their stored data is untouched.
    pub fn evict_idle(&self, ttl: Duration) -> usize {
        let mut evicted = 0;
        self.sessions.retain(|_, live| {
            let evict = live.evict_if_idle(ttl);
            evicted += usize::from(evict);
            !evict
        });
        evicted
    }

    /// Retires every live session's actor (shutdown, after answers had their time).
    pub fn retire_all(&self) {
        self.shutdown.cancel();
    }

    /// True once shutdown began ([`Self::retire_all`]).
    #[must_use]
    pub fn is_shutting_down(&self) -> bool {
        self.shutdown.is_cancelled()
    }

    /// How many sessions are live.
    #[must_use]
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    /// True when none is.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::Frame;
    use crate::ports::{AnswerLease, SessionFanout};
    use crate::socket::{SocketBudget, SocketHandle, SocketId};
    use chatbox_domain::{ModelId, UserId};

    struct FixedClock;

    impl Clock for FixedClock {
        fn now(&self) -> chatbox_domain::Timestamp {
            chrono::DateTime::from_timestamp(1_800_000_000, 0).expect("time")
        }

        fn monotonic(&self) -> Duration {
            Duration::from_secs(1_000)
        }
    }

    /// Just enough of a hub for the registry: a list of sockets per session.
    #[derive(Debug, Default)]
    struct ListFanout(crate::local_sockets::SocketList);

    impl SessionFanout for ListFanout {
        fn publish(&mut self, frame: &Arc<Frame>, except: Option<SocketId>, _: chatbox_domain::Seq) -> usize {
            self.0.send(frame, except)
        }
        fn local(&self) -> &crate::local_sockets::SocketList {
            &self.0
        }
        fn local_mut(&mut self) -> &mut crate::local_sockets::SocketList {
            &mut self.0
        }
    }

    #[derive(Debug, Default)]
    struct ListHub(crate::local_sockets::UserDirectory);

    #[async_trait::async_trait]
    impl SessionHub for ListHub {
        fn open(&self, _: &SessionId, _: std::sync::Weak<dyn ReplicaEvents>) -> Box<dyn SessionFanout> {
            Box::new(ListFanout::default())
        }
        fn local_users(&self) -> &crate::local_sockets::UserDirectory {
            &self.0
        }
        async fn lease_answerer(&self, _: &SessionId) -> Result<AnswerLease, crate::ports::LeaseUnavailable> {
            Ok(AnswerLease::new(()))
        }
    }

    fn registry() -> LiveSessions {
        LiveSessions::new(Arc::new(FixedClock), Arc::new(ListHub::default()))
    }

    fn session(id: &str) -> Session {
        Session::new(
            SessionId::parse(id).expect("id"),
            UserId::parse("u").expect("id"),
            ModelId::parse("m").expect("id"),
            FixedClock.now(),
        )
    }

    #[test]
    fn an_evicted_session_refuses_sockets_and_is_replaced_on_the_next_activation() {
        let sessions = registry();
        let (live, created) = sessions.activate(session("s"), Vec::new());
        assert!(created, "a new live session gets an actor");
        let (same, created_again) = sessions.activate(session("s"), Vec::new());
        assert!(Arc::ptr_eq(&live, &same) && !created_again, "the live one wins");

        assert!(!live.is_evicted());
        assert_eq!(sessions.evict_idle(Duration::ZERO), 1);
        assert!(live.is_evicted(), "a holder of the evicted session can tell");
        // A socket that resolved the session just before the eviction must not join it:
        // its actor is gone.
        let budget = SocketBudget { max_bytes: 4096, encode: |_| String::new() };
        let (socket, _queue) = SocketHandle::new(UserId::parse("u").expect("id"), budget);
        assert!(!live.join(&socket, FixedClock.now()));
        assert!(sessions.get(live.id()).is_none());
        let (fresh, created) = sessions.activate(session("s"), Vec::new());
        assert!(!Arc::ptr_eq(&live, &fresh) && created, "loaded again with a new actor");
        assert!(fresh.join(&socket, FixedClock.now()));
        assert_eq!(sessions.evict_idle(Duration::ZERO), 0, "a session with a socket is never evicted");
        fresh.leave(socket.id());
        assert_eq!(sessions.evict_idle(Duration::ZERO), 1, "evicted once its last socket left");
    }

    #[test]
    fn the_registry_finds_and_counts_its_live_sessions() {
        let sessions = registry();
        assert!(sessions.is_empty());
        assert_eq!(sessions.len(), 0);
        let (first, _) = sessions.activate(session("one"), Vec::new());
        let (second, _) = sessions.activate(session("two"), Vec::new());
        let _ = sessions.activate(session("one"), Vec::new());
        assert!(!sessions.is_empty());
        assert_eq!(sessions.len(), 2, "activating a live session again adds none");
        let found = sessions.get(first.id()).expect("live");
        assert!(Arc::ptr_eq(&found, &first));
        assert!(Arc::ptr_eq(&sessions.get(second.id()).expect("live"), &second));
        assert!(sessions.get(&SessionId::parse("three").expect("id")).is_none());
        assert_eq!(sessions.evict_idle(Duration::ZERO), 2);
        assert!(sessions.is_empty());
        assert_eq!(sessions.len(), 0);
    }

    #[tokio::test]
    async fn a_session_made_live_after_shutdown_began_is_retired_at_once() {
        let sessions = registry();
        assert!(!sessions.is_shutting_down());
        let (before, _) = sessions.activate(session("before"), Vec::new());
        sessions.retire_all();
        assert!(sessions.is_shutting_down());
        let (after, _) = sessions.activate(session("after"), Vec::new());
        let retired = async {
            before.retired().await;
            after.retired().await;
        };
        tokio::time::timeout(Duration::from_secs(5), retired).await.expect("both actors are told to stop");
    }
}
