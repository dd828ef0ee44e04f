//! An in-process stand-in for what Redis is to the replicas, for the use-case tests:
//! each service gets a [`BusHub`]; a frame one publishes in a session reaches the
//! session's copies on the others, in publication order, through one delivery task (so
//! no copy's lock is ever taken under another's); a session's writer lease is one permit
//! shared by all, handed out as possibly behind when another replica held it last (or a
//! field changed without it); a replica can be cut off, as if it died (its lease is freed
//! and nothing it publishes reaches the others any more), and the replicas partitioned
//! (frames between them are lost, as during a Redis outage).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use async_trait::async_trait;
use chatbox_application::events::Frame;
use chatbox_application::local_sockets::{SocketList, UserDirectory};
use chatbox_application::ports::{AnswerLease, LeaseUnavailable, ReplicaEvents, SessionFanout, SessionHub};
use chatbox_application::socket::SocketId;
use chatbox_domain::{Seq, SessionId};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

/// What travels between replicas.
enum Delivery {
    Frame(Weak<dyn ReplicaEvents>, Arc<Frame>, Seq),
    Stop(Weak<dyn ReplicaEvents>),
}

/// A session's lease: its permit, who held it last, and the permit of a cut-off holder.
#[derive(Default)]
struct Lease {
    permit: Option<Arc<Semaphore>>,
    last_holder: Option<usize>,
}

/// A session's copy on a replica: the replica, the session, the copy.
type SessionCopy = (usize, SessionId, Weak<dyn ReplicaEvents>);

#[derive(Default)]
struct Bus {
    copies: Mutex<Vec<SessionCopy>>,
    leases: Mutex<HashMap<SessionId, Lease>>,
    cut_off: Mutex<Vec<usize>>,
    /// While set, nothing travels between replicas (frames are lost, as in an outage).
    partitioned: AtomicBool,
    /// Leases granted, by replica.
    grants: Mutex<HashMap<usize, usize>>,
    /// While set, no lease can be asked for (the store of leases is unreachable).
    leases_unreachable: AtomicBool,
    /// While set, every lease is handed out as current, whoever held it before (a store
    /// of leases that lost its memory).
    amnesia: AtomicBool,
    deliveries: Mutex<Option<mpsc::UnboundedSender<Delivery>>>,
}

/// The bus the replicas of one test share.
#[derive(Clone, Default)]
pub struct ReplicaBus {
    bus: Arc<Bus>,
}

impl ReplicaBus {
    /// The hub of replica number `replica`.
    pub fn hub(&self, replica: usize) -> BusHub {
        BusHub { bus: Arc::clone(&self.bus), replica, users: UserDirectory::default() }
    }

    /// How many writer leases replica `replica` was granted.
    pub fn grants(&self, replica: usize) -> usize {
        self.bus.grants.lock().expect("lock").get(&replica).copied().unwrap_or(0)
    }

    /// While `down`, asking for a lease fails (Redis unreachable).
    pub fn leases_unreachable(&self, down: bool) {
        self.bus.leases_unreachable.store(down, Ordering::SeqCst);
    }

    /// While `forgets`, leases say nobody else held them (as after Redis came back empty).
    pub fn amnesia(&self, forgets: bool) {
        self.bus.amnesia.store(forgets, Ordering::SeqCst);
    }

    /// While `lost`, frames between replicas are lost (the store keeps every message).
    pub fn partition(&self, lost: bool) {
        self.bus.partitioned.store(lost, Ordering::SeqCst);
    }

    /// Replica `replica` dies: its leases are free, and what it publishes reaches nobody.
    pub fn cut_off(&self, replica: usize) {
        self.bus.cut_off.lock().expect("lock").push(replica);
        for lease in self.bus.leases.lock().expect("lock").values_mut() {
            if lease.last_holder == Some(replica) {
                // A fresh permit: the dead replica's is never given back.
                lease.permit = None;
            }
        }
    }
}

impl Bus {
    fn is_cut_off(&self, replica: usize) -> bool {
        self.partitioned.load(Ordering::SeqCst) || self.cut_off.lock().expect("lock").contains(&replica)
    }

    /// Queues a delivery to every copy of `session` on the other replicas.
    fn send(&self, from: usize, session: &SessionId, make: impl Fn(Weak<dyn ReplicaEvents>) -> Delivery) {
        if self.is_cut_off(from) {
            return;
        }
        let mut deliveries = self.deliveries.lock().expect("lock");
        let sender = deliveries.get_or_insert_with(|| {
            let (sender, mut receiver) = mpsc::unbounded_channel::<Delivery>();
            tokio::spawn(async move {
                while let Some(delivery) = receiver.recv().await {
                    match delivery {
                        Delivery::Frame(copy, frame, at) => {
                            if let Some(copy) = copy.upgrade() {
                                copy.apply_remote(frame, at);
                            }
                        }
                        Delivery::Stop(copy) => {
                            if let Some(copy) = copy.upgrade() {
                                copy.stop_requested();
                            }
                        }
                    }
                }
            });
            sender
        });
        for (replica, copy_of, copy) in self.copies.lock().expect("lock").iter() {
            if *replica != from && copy_of == session {
                let _ = sender.send(make(copy.clone()));
            }
        }
    }

    fn permit(&self, session: &SessionId) -> Arc<Semaphore> {
        let mut leases = self.leases.lock().expect("lock");
        let lease = leases.entry(session.clone()).or_default();
        Arc::clone(lease.permit.get_or_insert_with(|| Arc::new(Semaphore::new(1))))
    }
}

/// One replica's hub.
pub struct BusHub {
    bus: Arc<Bus>,
    replica: usize,
    users: UserDirectory,
}

impl std::fmt::Debug for BusHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BusHub").field("replica", &self.replica).finish_non_exhaustive()
    }
}

struct BusFanout {
    bus: Arc<Bus>,
    replica: usize,
    session: SessionId,
    local: SocketList,
}

impl std::fmt::Debug for BusFanout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BusFanout").field("replica", &self.replica).finish_non_exhaustive()
    }
}

impl SessionFanout for BusFanout {
    fn publish(&mut self, frame: &Arc<Frame>, except: Option<SocketId>, stored_seq: Seq) -> usize {
        let remaining = self.local.send(frame, except);
        self.bus
            .send(self.replica, &self.session, |copy| Delivery::Frame(copy, Arc::clone(frame), stored_seq));
        remaining
    }

    fn relay_stop(&mut self) {
        self.bus.send(self.replica, &self.session, Delivery::Stop);
    }

    fn local(&self) -> &SocketList {
        &self.local
    }

    fn local_mut(&mut self) -> &mut SocketList {
        &mut self.local
    }
}

#[async_trait]
impl SessionHub for BusHub {
    fn open(&self, session: &SessionId, events: Weak<dyn ReplicaEvents>) -> Box<dyn SessionFanout> {
        self.bus.copies.lock().expect("lock").push((self.replica, session.clone(), events));
        Box::new(BusFanout {
            bus: Arc::clone(&self.bus),
            replica: self.replica,
            session: session.clone(),
            local: SocketList::default(),
        })
    }

    fn local_users(&self) -> &UserDirectory {
        &self.users
    }

    async fn lease_answerer(&self, session: &SessionId) -> Result<AnswerLease, LeaseUnavailable> {
        if self.bus.leases_unreachable.load(Ordering::SeqCst) {
            return Err(LeaseUnavailable);
        }
        let permit: OwnedSemaphorePermit =
            self.bus.permit(session).acquire_owned().await.expect("the semaphore is never closed");
        *self.bus.grants.lock().expect("lock").entry(self.replica).or_default() += 1;
        let mut leases = self.bus.leases.lock().expect("lock");
        let lease = leases.entry(session.clone()).or_default();
        let behind = lease.last_holder != Some(self.replica) && !self.bus.amnesia.load(Ordering::SeqCst);
        lease.last_holder = Some(self.replica);
        Ok(if behind { AnswerLease::after_others(permit) } else { AnswerLease::new(permit) })
    }

    async fn field_changed(&self, session: &SessionId) {
        self.bus.leases.lock().expect("lock").entry(session.clone()).or_default().last_holder = None;
    }

    async fn answerer_gone(&self, session: &SessionId) {
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if self.bus.permit(session).available_permits() == 1 {
                return;
            }
        }
    }
}
