//! # Redis adapter: state shared between replicas
//!
//! What several replicas of the service must agree on lives in Redis. This crate holds the
//! pieces built so far:
//! - [`RedisSharedState`], the application's `SharedState` port: budgets, socket counts
//!   and a ping over one managed connection;
//! - [`RedisLimiter`]: the rate limiter of the domain (`chatbox_domain::rate_limit`, GCRA)
//!   with its one timestamp per key kept in Redis and decided by one Lua script, so every
//!   replica draws on the same budget and two replicas deciding at once cannot both spend
//!   its last unit;
//! - [`SocketCounts`]: a user's sockets counted across replicas, each slot lapsing unless
//!   its replica renews it, so a dead replica's slots free themselves.
//! - [`SessionStreams`]: each session's frames as a Redis Stream, bounded in length, read
//!   in order by every replica and continued from the last entry seen (the transport of
//!   the Redis fan-out being built); [`StreamFollower`] reads every stream a replica
//!   follows with one blocking read on a connection of its own, skipping its own entries.
//! - [`Leases`]: which replica runs a session's answer actor — a key set if absent with
//!   an expiry, renewed by its holder, renewed or released only by the token that holds
//!   it, with a fencing number that grows with every grant.
//!
//! Invariants:
//! - **One clock.** Decisions use the Redis server's clock (`TIME`), not each replica's.
//! - **Same rule as the domain.** For the same quota, cost and times, a decision here is
//!   the domain's decision (tested against it), at a resolution of one microsecond.
//! - **Nothing secret in errors or `Debug`.** A failure is described by its kind, never by
//!   the URL (which may carry a password) or a value read; the `Debug` of a type holding a
//!   connection leaves the connection out (the client's own `Debug` shows its address and
//!   credentials).

#![forbid(unsafe_code)]

mod codec;
mod error;
mod follow;
mod hub;
mod lease;
mod limiter;
mod shared;
mod sockets;
mod stream;

pub use error::RedisStateError;
pub use follow::StreamFollower;
pub use hub::{HubSettings, RedisHub};
pub use lease::{Grant, Leases};
pub use limiter::RedisLimiter;
pub use shared::RedisSharedState;
pub use sockets::{SLOT_TTL, SocketCounts};
pub use stream::{FROM_START, SessionStreams, StreamEntry};

/// Opens a managed connection to `url` (`redis://` or `rediss://`): it reconnects by
/// itself, with backoff, after a failure.
///
/// # Errors
/// When `url` is not a Redis URL, or no server answers it.
pub async fn connect(url: &str) -> Result<redis::aio::ConnectionManager, RedisStateError> {
    redis::aio::ConnectionManager::new(client(url)?).await.map_err(RedisStateError::from)
}

/// A managed connection to `url` that connects on first use and gives up on a call
/// (connecting or waiting for its answer) after `timeout`, so a Redis that stalls fails
/// calls instead of holding them; it reconnects by itself, with backoff.
///
/// # Errors
/// When `url` is not a Redis URL.
pub fn connect_lazily(
    url: &str,
    timeout: std::time::Duration,
) -> Result<redis::aio::ConnectionManager, RedisStateError> {
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout))
        .set_number_of_retries(1)
        .set_max_delay(std::time::Duration::from_secs(1));
    redis::aio::ConnectionManager::new_lazy_with_config(client(url)?, config).map_err(RedisStateError::from)
}

/// Whole milliseconds, at least one (Redis refuses an expiry of 0).
pub(crate) fn millis(duration: std::time::Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// The client of `url`; its text is never repeated in the error (it may hold a password).
pub(crate) fn client(url: &str) -> Result<redis::Client, RedisStateError> {
    redis::Client::open(url).map_err(|_| RedisStateError::InvalidUrl)
}
