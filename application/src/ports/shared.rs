//! The shared-state port: what several replicas of the service must agree on, kept in a
//! store every replica reaches. In one process the use-cases keep the same budgets and
//! counts in memory (`limits.rs`) and no implementation of this port is wired.
//!
//! - [`SharedState::check_rate`]: one budget per key, decided by the domain's rule
//!   (`chatbox_domain::rate_limit`, GCRA) wherever the request arrives.
//! - [`SharedState::claim_socket`]: a user's sockets counted across replicas.
//! - [`SharedState::ping`]: whether the store answers (readiness).
//!
//! Contract:
//! - A rate decision is atomic per key (two replicas asking at once cannot both spend the
//!   last unit), a refusal spends nothing, and the decision for a quota, cost and time is
//!   the domain's.
//! - A socket claim is atomic per user: the cap holds however many replicas claim at
//!   once. A slot is held while its [`SocketSlot`] lives and given back when it is
//!   dropped; the slots of a replica that dies lapse by themselves after a while.
//! - Every call ends within a bounded time: a store that stalls is a store that failed.

use std::any::Any;
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use chatbox_domain::UserId;
use chatbox_domain::rate_limit::Quota;
use thiserror::Error;

/// The answer to one rate-limited request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitVerdict {
    /// Allowed, and paid for.
    Allowed,
    /// Refused; nothing was spent. The same request passes after `retry_after`.
    Limited {
        /// How long to wait.
        retry_after: Duration,
    },
}

/// The shared store could not decide (unreachable, too slow, or it refused the
/// operation). The text names the failure's kind, never an address or a credential.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("the shared state store is unavailable: {0}")]
pub struct SharedStateUnavailable(pub String);

/// A socket slot held in the shared count; dropping it gives the slot back.
pub struct SocketSlot {
    _held: Box<dyn Any + Send + Sync>,
}

impl SocketSlot {
    /// A slot that stays held as long as `held` lives.
    #[must_use]
    pub fn new(held: impl Any + Send + Sync) -> Self {
        Self { _held: Box::new(held) }
    }
}

impl fmt::Debug for SocketSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SocketSlot").finish_non_exhaustive()
    }
}

/// Budgets and counts shared by every replica.
#[async_trait]
pub trait SharedState: Send + Sync + fmt::Debug {
    /// Decides one request of `key` that costs `cost` requests (clamped to 1..=limit, as
    /// the domain does).
    ///
    /// # Errors
    /// When the store cannot decide; the caller refuses the request (fails closed).
    async fn check_rate(
        &self,
        key: &str,
        quota: Quota,
        cost: u32,
    ) -> Result<LimitVerdict, SharedStateUnavailable>;

    /// Takes a socket slot for `user` if fewer than `cap` are held across the replicas;
    /// `None` when the cap is reached.
    ///
    /// # Errors
    /// When the store cannot count.
    async fn claim_socket(
        &self,
        user: &UserId,
        cap: usize,
    ) -> Result<Option<SocketSlot>, SharedStateUnavailable>;

    /// Answers when the store is usable.
    ///
    /// # Errors
    /// When it is not.
    async fn ping(&self) -> Result<(), SharedStateUnavailable>;
}
