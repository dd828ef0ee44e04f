//! The application's [`SharedState`] port on Redis: the message and HTTP budgets
//! ([`RedisLimiter`]), the per-user socket counts ([`SocketCounts`]) and a ping, over one
//! managed connection that reconnects by itself with backoff.

use crate::connection::RedisConnection;
use async_trait::async_trait;
use chatbox_application::ports::{LimitVerdict, SharedState, SharedStateUnavailable, SocketSlot};
use chatbox_domain::UserId;
use chatbox_domain::rate_limit::Quota;

use crate::error::RedisStateError;
use crate::limiter::RedisLimiter;
use crate::sockets::{SLOT_TTL, SocketCounts};

/// What the replicas share, in Redis.
#[derive(Debug, Clone)]
pub struct RedisSharedState {
    connection: RedisConnection,
    limiter: RedisLimiter,
    sockets: SocketCounts,
}

impl RedisSharedState {
    /// The shared state under `prefix`, for the replica named `replica` (unique among
    /// the replicas: its socket slots are named after it).
    #[must_use]
    pub fn new(connection: RedisConnection, prefix: &str, replica: &str) -> Self {
        Self {
            limiter: RedisLimiter::new(connection.clone(), prefix),
            sockets: SocketCounts::new(connection.clone(), prefix, replica, SLOT_TTL),
            connection,
        }
    }

    /// The socket counts (tests read them).
    #[must_use]
    pub const fn sockets(&self) -> &SocketCounts {
        &self.sockets
    }
}

fn unavailable(error: RedisStateError) -> SharedStateUnavailable {
    SharedStateUnavailable(error.to_string())
}

#[async_trait]
impl SharedState for RedisSharedState {
    async fn check_rate(
        &self,
        key: &str,
        quota: Quota,
        cost: u32,
    ) -> Result<LimitVerdict, SharedStateUnavailable> {
        self.limiter.check(key, quota, cost).await.map_err(unavailable)
    }

    async fn claim_socket(
        &self,
        user: &UserId,
        cap: usize,
    ) -> Result<Option<SocketSlot>, SharedStateUnavailable> {
        self.sockets.claim(user, cap).await.map_err(unavailable)
    }

    async fn ping(&self) -> Result<(), SharedStateUnavailable> {
        let mut connection = self.connection.clone();
        redis::cmd("PING")
            .query_async::<String>(&mut connection)
            .await
            .map(drop)
            .map_err(|error| unavailable(error.into()))
    }
}
