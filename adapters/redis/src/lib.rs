//! # Redis adapter: state shared between replicas
//!
//! What several replicas of the service must agree on lives in Redis:
//! - [`RedisHub`], the application's `SessionHub` port across replicas: each session's
//!   frames reach its sockets on every replica, and one replica at a time writes it (see
//!   the `hub` module);
//! - [`RedisConnection`]: the one connection everything here shares, to one Redis or to
//!   the primary a set of Sentinels names (followed through failovers), or a Redis
//!   Cluster (every key under one hash tag, so one slot holds a deployment);
//! - [`RedisSharedState`], the application's `SharedState` port: budgets, socket counts
//!   and a ping over one managed connection;
//! - [`RedisLimiter`]: the rate limiter of the domain (`chatbox_domain::rate_limit`, GCRA)
//!   with its one timestamp per key kept in Redis and decided by one Lua script, so every
//!   replica draws on the same budget and two replicas deciding at once cannot both spend
//!   its last unit;
//! - [`SocketCounts`]: a user's sockets counted across replicas, each slot lapsing unless
//!   its replica renews it, so a dead replica's slots free themselves.
//! - [`SessionStreams`]: each session's frames as a Redis Stream, bounded in length, read
//!   in order by every replica and continued from the last entry seen (the hub's
//!   transport); [`StreamFollower`] reads every stream a replica
//!   follows with one blocking read on a connection of its own, skipping its own entries.
//! - [`Leases`]: which replica writes a session — a key set if absent with
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
mod connection;
mod error;
mod follow;
mod hub;
mod lease;
mod limiter;
mod shared;
mod sockets;
mod stream;
mod url;

pub use connection::RedisConnection;
pub use error::RedisStateError;
pub use follow::StreamFollower;
pub use hub::{HubSettings, RedisHub};
pub use lease::{Grant, Leases};
pub use limiter::RedisLimiter;
pub use shared::RedisSharedState;
pub use sockets::{SLOT_TTL, SocketCounts};
pub use stream::{FROM_START, SessionStreams, StreamEntry};

/// Opens a connection to `url` (see [`RedisConnection`]) and waits until the primary
/// answers.
///
/// # Errors
/// When `url` is not a Redis, Sentinel or Cluster URL, or nothing answers.
pub async fn connect(url: &str) -> Result<RedisConnection, RedisStateError> {
    let mut connection = RedisConnection::open(url, std::time::Duration::from_secs(5))?;
    let _: String = redis::cmd("PING").query_async(&mut connection).await?;
    Ok(connection)
}

/// A connection to `url` (see [`RedisConnection`]) that connects on first use and gives
/// up on a call (connecting or waiting for its answer) after `timeout`, so a Redis that
/// stalls fails calls instead of holding them.
///
/// # Errors
/// When `url` is not a Redis, Sentinel or Cluster URL.
pub fn connect_lazily(url: &str, timeout: std::time::Duration) -> Result<RedisConnection, RedisStateError> {
    RedisConnection::open(url, timeout)
}

/// Whole milliseconds, at least one (Redis refuses an expiry of 0).
pub(crate) fn millis(duration: std::time::Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// The client of `url`; its text is never repeated in the error (it may hold a password).
pub(crate) fn client(url: &str) -> Result<redis::Client, RedisStateError> {
    redis::Client::open(url).map_err(|_| RedisStateError::InvalidUrl)
}
