//! The rate-limit port for budgets that several replicas share: one budget per key,
//! decided by the domain's rule (`chatbox_domain::rate_limit`, GCRA) wherever the request
//! arrives. In one process the use-cases keep their budgets in memory (`limits.rs`); a
//! store every replica reaches implements this port for a cluster.
//!
//! Contract: a decision is atomic per key (two replicas asking at once cannot both spend
//! the last unit), a refusal spends nothing, and the decision for a quota, cost and time
//! is the domain's.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use chatbox_domain::rate_limit::Quota;
use thiserror::Error;

/// The answer to one request.
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

/// The shared store could not decide (unreachable, or it refused the operation). The
/// text names the failure's kind, never an address or a credential.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("the shared rate limiter is unavailable: {0}")]
pub struct LimiterUnavailable(pub String);

/// Budgets shared by every replica.
#[async_trait]
pub trait SharedLimiter: Send + Sync + fmt::Debug {
    /// Decides one request of `key` that costs `cost` requests (clamped to 1..=limit, as
    /// the domain does).
    ///
    /// # Errors
    /// When the store cannot decide; the caller chooses to fail open or closed.
    async fn check(&self, key: &str, quota: Quota, cost: u32) -> Result<LimitVerdict, LimiterUnavailable>;
}
