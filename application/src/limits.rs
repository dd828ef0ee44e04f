//! Keyed rate limiting (messages per user, HTTP requests per admin, user or client
//! address, help alerts per session) and the socket caps.
//!
//! Both are sharded maps touched without awaiting. Limiter state is bounded: a key whose
//! bucket has fully recovered carries no information and is dropped by
//! [`KeyedLimiter::cleanup`]; no key is ever refused because the map is large, so a
//! flood of new keys cannot lock other users out.

use std::hash::Hash;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use chatbox_domain::UserId;
use chatbox_domain::rate_limit::{self, Decision, LimiterState, Quota};
use dashmap::DashMap;
use dashmap::mapref::entry::Entry;
use thiserror::Error;

/// A GCRA limiter with one bucket per key.
#[derive(Debug)]
pub struct KeyedLimiter<K: Eq + Hash> {
    quota: Quota,
    keys: DashMap<K, LimiterState>,
}

/// The per-user message limiter (`RATE_LIMIT` per `RATE_WINDOW`).
pub type MessageLimiter = KeyedLimiter<UserId>;

impl<K: Eq + Hash + Clone> KeyedLimiter<K> {
    /// A limiter with the given quota per key.
    #[must_use]
    pub fn new(quota: Quota) -> Self {
        Self { quota, keys: DashMap::new() }
    }

    /// Counts one request of `key` at monotonic time `now`.
    ///
    /// # Errors
    /// The time to wait when the key is over the quota.
    pub fn check(&self, key: &K, now: Duration) -> Result<(), Duration> {
        let mut entry = self.keys.entry(key.clone()).or_insert_with(|| LimiterState::fresh(now));
        match rate_limit::check(self.quota, Some(*entry), now) {
            Decision::Allowed(next) => {
                *entry = next;
                Ok(())
            }
            Decision::Limited { retry_after } => Err(retry_after),
        }
    }

    /// Forgets fully recovered keys; returns (before, after).
    pub fn cleanup(&self, now: Duration) -> (usize, usize) {
        let before = self.keys.len();
        self.keys.retain(|_, state| !state.is_idle(now));
        (before, self.keys.len())
    }

    /// Keys currently tracked.
    #[must_use]
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// True when no key is tracked.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// Why a socket was refused before the upgrade.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum GateError {
    /// The user holds `MAX_CONNECTIONS_PER_USER` sockets.
    #[error("too many connections for this user")]
    PerUser,
    /// The process holds `MAX_CONNECTIONS` sockets.
    #[error("too many connections")]
    Global,
    /// The server is draining for shutdown.
    #[error("server is shutting down")]
    Draining,
}

/// Counts sockets per user and in total. A slot is taken before the upgrade and held by
/// a [`ConnectionPermit`]; dropping the permit (socket closed, or upgrade failed) gives it
/// back, so a failed upgrade never leaks a slot.
#[derive(Debug)]
pub struct ConnectionGate {
    max_total: usize,
    max_per_user: usize,
    total: AtomicUsize,
    per_user: DashMap<UserId, usize>,
    draining: AtomicBool,
}

impl ConnectionGate {
    /// A gate with the two caps.
    #[must_use]
    pub fn new(max_total: usize, max_per_user: usize) -> Arc<Self> {
        Arc::new(Self {
            max_total,
            max_per_user,
            total: AtomicUsize::new(0),
            per_user: DashMap::new(),
            draining: AtomicBool::new(false),
        })
    }

    /// Takes a slot for `user`.
    ///
    /// # Errors
    /// [`GateError`] when a cap is reached or the server drains.
    pub fn try_acquire(self: &Arc<Self>, user: &UserId) -> Result<ConnectionPermit, GateError> {
        if self.is_draining() {
            return Err(GateError::Draining);
        }
        // Reserve the global slot first; give it back if the per-user cap refuses.
        let reserved = self
            .total
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < self.max_total).then_some(n + 1));
        if reserved.is_err() {
            return Err(GateError::Global);
        }
        match self.per_user.entry(user.clone()) {
            Entry::Occupied(held) if *held.get() >= self.max_per_user => {
                drop(held);
                self.total.fetch_sub(1, Ordering::AcqRel);
                Err(GateError::PerUser)
            }
            Entry::Occupied(mut held) => {
                *held.get_mut() += 1;
                Ok(ConnectionPermit { gate: Arc::clone(self), user: user.clone() })
            }
            Entry::Vacant(vacant) => {
                vacant.insert(1);
                Ok(ConnectionPermit { gate: Arc::clone(self), user: user.clone() })
            }
        }
    }

    fn release(&self, user: &UserId) {
        if let Entry::Occupied(mut held) = self.per_user.entry(user.clone()) {
            if *held.get() <= 1 {
                held.remove();
                crate::sparse_maps::shrink_if_sparse(&self.per_user);
            } else {
                *held.get_mut() -= 1;
            }
        }
        self.total.fetch_sub(1, Ordering::AcqRel);
    }

    /// `MAX_CONNECTIONS_PER_USER`.
    #[must_use]
    pub const fn max_per_user(&self) -> usize {
        self.max_per_user
    }

    /// Sockets open now.
    #[must_use]
    pub fn total(&self) -> usize {
        self.total.load(Ordering::Acquire)
    }

    /// Users holding at least one socket now (the size of the per-user map).
    #[must_use]
    pub fn users(&self) -> usize {
        self.per_user.len()
    }

    /// Sockets `user` holds now.
    #[must_use]
    pub fn held_by(&self, user: &UserId) -> usize {
        self.per_user.get(user).map_or(0, |n| *n)
    }

    /// Refuse new sockets from now on (shutdown).
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Release);
    }

    /// True once draining started.
    #[must_use]
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }
}

/// One held socket slot; dropping it gives the slot back.
#[derive(Debug)]
pub struct ConnectionPermit {
    gate: Arc<ConnectionGate>,
    user: UserId,
}

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        self.gate.release(&self.user);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(id: &str) -> UserId {
        UserId::parse(id).expect("valid")
    }

    #[test]
    fn the_gate_gives_its_memory_back_once_its_users_left() {
        let gate = ConnectionGate::new(10_000, 1);
        let permits: Vec<_> =
            (0..5_000).map(|n| gate.try_acquire(&user(&format!("user-{n}"))).expect("slot")).collect();
        let full = gate.per_user.capacity();
        drop(permits);
        assert!(gate.per_user.capacity() < full / 4, "{} of {full} slots kept", gate.per_user.capacity());
    }

    #[test]
    fn per_user_and_global_caps_and_release_on_drop() {
        let gate = ConnectionGate::new(3, 2);
        assert_eq!(gate.max_per_user(), 2);
        let a1 = gate.try_acquire(&user("a")).expect("first");
        let _a2 = gate.try_acquire(&user("a")).expect("second");
        assert_eq!(gate.try_acquire(&user("a")).err(), Some(GateError::PerUser));
        let _b1 = gate.try_acquire(&user("b")).expect("b");
        assert_eq!(gate.try_acquire(&user("c")).err(), Some(GateError::Global));
        drop(a1);
        assert_eq!(gate.held_by(&user("a")), 1);
        assert!(gate.try_acquire(&user("c")).is_ok());
        assert_eq!(gate.total(), 2, "the permit of c was dropped at the end of the statement");
    }

    #[test]
    fn refused_attempts_do_not_leak_slots() {
        let gate = ConnectionGate::new(10, 1);
        let _held = gate.try_acquire(&user("a")).expect("first");
        for _ in 0..100 {
            assert!(gate.try_acquire(&user("a")).is_err());
        }
        assert_eq!(gate.total(), 1);
        gate.start_draining();
        assert_eq!(gate.try_acquire(&user("b")).err(), Some(GateError::Draining));
    }

    #[test]
    fn limiter_refuses_over_quota_and_forgets_recovered_keys() {
        let quota = Quota::new(2, Duration::from_secs(10)).expect("quota");
        let limiter = MessageLimiter::new(quota);
        let now = Duration::from_secs(100);
        assert!(limiter.check(&user("a"), now).is_ok());
        assert!(limiter.check(&user("a"), now).is_ok());
        assert_eq!(limiter.check(&user("a"), now), Err(Duration::from_secs(5)));
        assert!(limiter.check(&user("b"), now).is_ok(), "other users are unaffected");
        assert_eq!(limiter.cleanup(now + Duration::from_secs(20)), (2, 0));
    }

    #[test]
    fn a_limiter_tracks_one_key_per_user_until_it_recovers() {
        let quota = Quota::new(2, Duration::from_secs(10)).expect("quota");
        let limiter = MessageLimiter::new(quota);
        assert!(limiter.is_empty());
        assert_eq!(limiter.len(), 0);
        let now = Duration::from_secs(100);
        for id in ["a", "a", "b"] {
            limiter.check(&user(id), now).expect("within quota");
        }
        assert!(!limiter.is_empty());
        assert_eq!(limiter.len(), 2, "one bucket per key, however many requests");
        assert_eq!(limiter.cleanup(now + Duration::from_secs(20)), (2, 0));
        assert!(limiter.is_empty());
        assert_eq!(limiter.len(), 0);
    }

    #[test]
    fn the_gate_counts_sockets_per_user_and_users_holding_one() {
        let gate = ConnectionGate::new(10, 3);
        assert_eq!((gate.users(), gate.held_by(&user("a"))), (0, 0));
        let a1 = gate.try_acquire(&user("a")).expect("a");
        let a2 = gate.try_acquire(&user("a")).expect("a");
        let b1 = gate.try_acquire(&user("b")).expect("b");
        assert_eq!(gate.held_by(&user("a")), 2);
        assert_eq!(gate.held_by(&user("b")), 1);
        assert_eq!(gate.held_by(&user("c")), 0, "a user with no socket holds none");
        assert_eq!(gate.users(), 2);
        drop(a1);
        assert_eq!(gate.users(), 2, "a still holds a socket");
        drop(b1);
        assert_eq!(gate.users(), 1, "b left with its last socket");
        drop(a2);
        assert_eq!((gate.users(), gate.total()), (0, 0));
    }
}
