//! A store shared "by replicas" for the use-case tests: budgets decided by the domain's
//! rule on the runtime's clock, socket slots counted per user, and a switch that makes
//! every call fail or hang, as an unreachable or stalled Redis would.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chatbox_application::ports::{LimitVerdict, SharedState, SharedStateUnavailable, SocketSlot};
use chatbox_domain::UserId;
use chatbox_domain::rate_limit::{self, Decision, LimiterState, Quota};
use tokio::time::Instant;

/// How the store answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SharedMode {
    /// Normally.
    Up,
    /// Every call fails at once.
    Down,
    /// Every call waits forever.
    Stalled,
}

#[derive(Debug)]
struct Inner {
    mode: SharedMode,
    budgets: HashMap<String, LimiterState>,
    sockets: HashMap<UserId, usize>,
}

/// The store; clones share it, as replicas share one Redis.
#[derive(Debug, Clone)]
pub struct SharedStore {
    inner: Arc<Mutex<Inner>>,
    epoch: Instant,
}

impl Default for SharedStore {
    fn default() -> Self {
        let inner = Inner { mode: SharedMode::Up, budgets: HashMap::new(), sockets: HashMap::new() };
        Self { inner: Arc::new(Mutex::new(inner)), epoch: Instant::now() }
    }
}

/// A held slot: gives itself back when dropped.
struct Held {
    store: SharedStore,
    user: UserId,
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Some(count) = self.store.lock().sockets.get_mut(&self.user) {
            *count = count.saturating_sub(1);
        }
    }
}

impl SharedStore {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().expect("lock")
    }

    /// Switches how the store answers.
    pub fn set(&self, mode: SharedMode) {
        self.lock().mode = mode;
    }

    /// Sockets `user` holds.
    pub fn sockets_of(&self, user: &str) -> usize {
        self.lock().sockets.get(&UserId::parse(user).expect("id")).copied().unwrap_or(0)
    }

    async fn answering(&self) -> Result<(), SharedStateUnavailable> {
        let mode = self.lock().mode;
        match mode {
            SharedMode::Up => Ok(()),
            SharedMode::Down => Err(SharedStateUnavailable("connection refused".into())),
            SharedMode::Stalled => std::future::pending().await,
        }
    }
}

#[async_trait]
impl SharedState for SharedStore {
    async fn check_rate(
        &self,
        key: &str,
        quota: Quota,
        cost: u32,
    ) -> Result<LimitVerdict, SharedStateUnavailable> {
        self.answering().await?;
        let now = self.epoch.elapsed();
        let mut inner = self.lock();
        let state = inner.budgets.get(key).copied();
        Ok(match rate_limit::check_cost(quota, state, now, cost) {
            Decision::Allowed(next) => {
                inner.budgets.insert(key.to_owned(), next);
                LimitVerdict::Allowed
            }
            Decision::Limited { retry_after } => LimitVerdict::Limited { retry_after },
        })
    }

    async fn claim_socket(
        &self,
        user: &UserId,
        cap: usize,
    ) -> Result<Option<SocketSlot>, SharedStateUnavailable> {
        self.answering().await?;
        let mut inner = self.lock();
        let held = inner.sockets.entry(user.clone()).or_default();
        if *held >= cap {
            return Ok(None);
        }
        *held += 1;
        Ok(Some(SocketSlot::new(Held { store: self.clone(), user: user.clone() })))
    }

    async fn ping(&self) -> Result<(), SharedStateUnavailable> {
        self.answering().await
    }
}
