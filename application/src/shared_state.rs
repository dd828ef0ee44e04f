//! The state replicas share, as the use-cases and the HTTP edge use it: the
//! [`SharedState`] port's calls, each ended after a bounded time, with the store's
//! reachability watched.
//!
//! Invariants:
//! - **Fails closed.** A limit or a cap that cannot be checked refuses the request
//!   (`SHARED_STATE_UNAVAILABLE`, retry shortly) instead of letting it past: a store
//!   outage never turns into an unlimited service.
//! - **Once per change.** An outage is logged and counted when it starts and when it ends,
//!   never per call, so a flood during an outage adds no log lines.
//! - **Nothing secret.** Errors carry the failure's kind only (the port's contract).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chatbox_domain::UserId;
use chatbox_domain::rate_limit::Quota;
use tracing::{info, warn};

use crate::ports::{LimitVerdict, Metrics, SharedState, SharedStateUnavailable, SocketSlot};

/// Why the replicas' shared count refused a socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionRefused {
    /// The user holds `MAX_CONNECTIONS_PER_USER` sockets across the replicas.
    Cap,
    /// The store could not count.
    Unavailable,
}

/// The shared state store, watched.
pub struct SharedStateClient {
    store: Arc<dyn SharedState>,
    metrics: Arc<dyn Metrics>,
    timeout: Duration,
    reachable: AtomicBool,
}

impl std::fmt::Debug for SharedStateClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedStateClient")
            .field("store", &self.store)
            .field("reachable", &self.reachable.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl SharedStateClient {
    /// Calls to `store` end after `timeout` at the latest; `metrics` hears of each change
    /// of reachability. The store counts as reachable at first (it answered at start-up).
    #[must_use]
    pub fn new(store: Arc<dyn SharedState>, metrics: Arc<dyn Metrics>, timeout: Duration) -> Self {
        metrics.shared_state_reachable(true);
        Self { store, metrics, timeout, reachable: AtomicBool::new(true) }
    }

    /// Decides one request of `key` (see [`SharedState::check_rate`]).
    ///
    /// # Errors
    /// When the store cannot decide in time.
    pub async fn check_rate(
        &self,
        key: &str,
        quota: Quota,
        cost: u32,
    ) -> Result<LimitVerdict, SharedStateUnavailable> {
        self.watched(self.store.check_rate(key, quota, cost)).await
    }

    /// Takes a socket slot for `user` under `cap` (see [`SharedState::claim_socket`]).
    ///
    /// # Errors
    /// When the store cannot count in time.
    pub async fn claim_socket(
        &self,
        user: &UserId,
        cap: usize,
    ) -> Result<Option<SocketSlot>, SharedStateUnavailable> {
        self.watched(self.store.claim_socket(user, cap)).await
    }

    /// Whether the store answers in time (readiness).
    ///
    /// # Errors
    /// When it does not.
    pub async fn ping(&self) -> Result<(), SharedStateUnavailable> {
        self.watched(self.store.ping()).await
    }

    async fn watched<T>(
        &self,
        call: impl Future<Output = Result<T, SharedStateUnavailable>>,
    ) -> Result<T, SharedStateUnavailable> {
        let result = tokio::time::timeout(self.timeout, call)
            .await
            .unwrap_or_else(|_| Err(SharedStateUnavailable("no answer within the timeout".into())));
        let reachable = result.is_ok();
        if self.reachable.swap(reachable, Ordering::AcqRel) != reachable {
            match &result {
                Ok(_) => info!("shared state reachable again: limits and socket counts are shared once more"),
                Err(error) => {
                    warn!(%error, "shared state unreachable: messages, limited requests and new sockets are refused until it answers")
                }
            }
            self.metrics.shared_state_reachable(reachable);
        }
        result
    }
}
