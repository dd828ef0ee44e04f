//! The in-process [`SessionHub`]: one process holds every socket, so fan-out is a walk
//! over a list and a lease is a local semaphore.
//!
//! - A session's [`LocalFanout`] is the plain list of its sockets
//!   (`chatbox_application::local_sockets`), owned by the live session and called under
//!   its lock, so publishing takes no lock of its own, serialises nothing and hops to no
//!   task.
//! - The user directory is the same crate's sharded map of each user's sockets.
//! - A session's answer lease is a one-permit semaphore, kept in a map only while
//!   someone holds or awaits it.

use std::sync::{Arc, Weak};

use async_trait::async_trait;
use chatbox_application::events::Frame;
use chatbox_application::local_sockets::{SocketList, UserDirectory};
use chatbox_application::ports::{AnswerLease, LeaseUnavailable, ReplicaEvents, SessionFanout, SessionHub};
use chatbox_application::socket::SocketId;
use chatbox_domain::{Seq, SessionId};
use dashmap::DashMap;
use tokio::sync::Semaphore;

/// The sockets of one session in this process.
#[derive(Debug, Default)]
pub struct LocalFanout {
    subscribers: SocketList,
}

impl SessionFanout for LocalFanout {
    fn publish(&mut self, frame: &Arc<Frame>, except: Option<SocketId>, _stored_seq: Seq) -> usize {
        self.subscribers.send(frame, except)
    }

    fn local(&self) -> &SocketList {
        &self.subscribers
    }

    fn local_mut(&mut self) -> &mut SocketList {
        &mut self.subscribers
    }
}

/// Fan-out within one process.
#[derive(Debug, Default)]
pub struct LocalHub {
    users: UserDirectory,
    leases: Arc<DashMap<SessionId, Arc<Semaphore>>>,
}

impl LocalHub {
    /// A hub with no sockets.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }
}

/// A held lease: gives its permit back, and forgets the session's semaphore when nobody
/// else holds or awaits it.
struct HeldLease {
    session: SessionId,
    permit: Option<tokio::sync::OwnedSemaphorePermit>,
    leases: Arc<DashMap<SessionId, Arc<Semaphore>>>,
}

impl Drop for HeldLease {
    fn drop(&mut self) {
        drop(self.permit.take());
        // Only the map holds it now: nobody waits, so the entry can go. A waiter that
        // clones it concurrently does so under the same shard lock, before or after.
        self.leases.remove_if(&self.session, |_, semaphore| Arc::strong_count(semaphore) == 1);
    }
}

#[async_trait]
impl SessionHub for LocalHub {
    fn open(&self, _session: &SessionId, _events: Weak<dyn ReplicaEvents>) -> Box<dyn SessionFanout> {
        Box::new(LocalFanout::default())
    }

    fn local_users(&self) -> &UserDirectory {
        &self.users
    }

    async fn lease_answerer(&self, session: &SessionId) -> Result<AnswerLease, LeaseUnavailable> {
        let semaphore =
            Arc::clone(&self.leases.entry(session.clone()).or_insert_with(|| Arc::new(Semaphore::new(1))));
        // The semaphore is never closed, so acquiring only waits for the holder.
        let permit = semaphore.acquire_owned().await.ok();
        Ok(AnswerLease::new(HeldLease { session: session.clone(), permit, leases: Arc::clone(&self.leases) }))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use chatbox_application::events::ServerEvent;
    use chatbox_application::socket::{OutboundQueue, SocketBudget, SocketHandle};
    use chatbox_domain::UserId;

    use super::*;

    fn socket(user: &str) -> (Arc<SocketHandle>, OutboundQueue) {
        let budget = SocketBudget { max_bytes: 4096, encode: |_| "frame".to_owned() };
        SocketHandle::new(UserId::parse(user).expect("id"), budget)
    }

    /// No other replica: nobody to hand events to.
    fn no_events() -> Weak<dyn ReplicaEvents> {
        struct Nobody;
        impl ReplicaEvents for Nobody {
            fn apply_remote(&self, _: Arc<Frame>, _: Seq) {}
            fn stop_requested(&self) {}
        }
        Weak::<Nobody>::new()
    }

    fn frame() -> Arc<Frame> {
        Frame::new(ServerEvent::Notification { content: "hi".into() }, chatbox_domain::Timestamp::default())
    }

    #[test]
    fn the_users_sockets_are_reached_and_counted() {
        let hub = LocalHub::new();
        let (phone, mut phone_queue) = socket("alice");
        hub.register(&phone);
        let alice = UserId::parse("alice").expect("id");
        assert_eq!((hub.local_users().sockets_of(&alice), hub.users()), (1, 1));
        hub.publish_to_user(&alice, &frame());
        assert!(phone_queue.try_recv().is_some());
        hub.unregister(&phone);
        assert_eq!((hub.local_users().sockets_of(&alice), hub.users()), (0, 0));
    }

    #[test]
    fn a_session_fanout_skips_the_sender_and_drops_closed_sockets() {
        let hub = LocalHub::new();
        let mut fanout = hub.open(&SessionId::parse("s").expect("id"), no_events());
        let (sender, mut sender_queue) = socket("u");
        let (reader, mut reader_queue) = socket("u");
        let (gone, gone_queue) = socket("u");
        for socket in [&sender, &reader, &gone, &reader] {
            fanout.subscribe(Arc::clone(socket));
        }
        assert_eq!(fanout.subscribers(), 3, "a socket is subscribed once");
        drop(gone_queue);
        gone.close(chatbox_application::socket::CloseReason::Disconnected);
        assert_eq!(fanout.publish(&frame(), Some(sender.id()), Seq(0)), 2, "a closing socket is dropped");
        assert!(sender_queue.try_recv().is_none(), "the sender is skipped");
        assert!(reader_queue.try_recv().is_some());
        assert_eq!(fanout.subscribers(), 2);
        fanout.unsubscribe(reader.id());
        assert_eq!(fanout.subscribers(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_session_has_one_answerer_at_a_time_and_its_lease_is_forgotten_after() {
        let hub = Arc::new(LocalHub::new());
        let session = SessionId::parse("s").expect("id");
        let first = hub.lease_answerer(&session).await.expect("in process");
        let waiting = {
            let (hub, session) = (Arc::clone(&hub), session.clone());
            tokio::spawn(async move { hub.lease_answerer(&session).await.expect("in process") })
        };
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert!(!waiting.is_finished(), "the second answerer waits while the first holds the lease");
        drop(first);
        let second =
            tokio::time::timeout(Duration::from_secs(1), waiting).await.expect("granted").expect("task");
        drop(second);
        assert!(hub.leases.is_empty(), "no semaphore is kept for a session nobody leases");
        let other = hub.lease_answerer(&SessionId::parse("t").expect("id")).await.expect("in process");
        drop(other);
        assert!(hub.leases.is_empty());
    }
}
