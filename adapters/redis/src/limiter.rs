//! The cluster-wide rate limiter: the domain's GCRA with each key's timestamp in Redis.
//!
//! One script call per decision (`gcra.lua`): read the key's TAT, decide, store the new TAT
//! with an expiry at that time. Redis runs a script alone, so two replicas deciding for one
//! key at the same moment are ordered, and the last unit of a budget is spent once.

use std::time::Duration;

use crate::connection::RedisConnection;
use chatbox_application::ports::LimitVerdict;
use chatbox_domain::rate_limit::Quota;
use redis::Script;

use crate::error::RedisStateError;

/// Rate limits shared by every replica connected to the same Redis.
#[derive(Clone)]
pub struct RedisLimiter {
    connection: RedisConnection,
    script: Script,
    prefix: String,
}

impl std::fmt::Debug for RedisLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisLimiter").field("prefix", &self.prefix).finish_non_exhaustive()
    }
}

impl RedisLimiter {
    /// A limiter whose keys are `prefix:` followed by the caller's key.
    #[must_use]
    pub fn new(connection: RedisConnection, prefix: impl Into<String>) -> Self {
        let prefix = connection.key_prefix(&prefix.into());
        Self { connection, script: Script::new(include_str!("gcra.lua")), prefix }
    }

    /// Decides one request of `key` costing `cost` (clamped to 1..=limit, as the domain
    /// does), on the Redis server's clock.
    ///
    /// # Errors
    /// When Redis cannot answer.
    pub async fn check(&self, key: &str, quota: Quota, cost: u32) -> Result<LimitVerdict, RedisStateError> {
        self.decide(key, quota, cost, None).await
    }

    /// As [`Self::check`], at `now` (time since the Unix epoch): for tests that hold the
    /// decision against the domain's at chosen times.
    ///
    /// # Errors
    /// When Redis cannot answer.
    pub async fn check_at(
        &self,
        key: &str,
        quota: Quota,
        cost: u32,
        now: Duration,
    ) -> Result<LimitVerdict, RedisStateError> {
        self.decide(key, quota, cost, Some(micros(now))).await
    }

    async fn decide(
        &self,
        key: &str,
        quota: Quota,
        cost: u32,
        now_micros: Option<u64>,
    ) -> Result<LimitVerdict, RedisStateError> {
        let cost = cost.clamp(1, quota.limit());
        let interval = micros(quota.emission_interval());
        let window = micros(quota.window());
        let now = now_micros.map(|now| now.to_string()).unwrap_or_default();
        let mut connection = self.connection.clone();
        let (allowed, retry_after): (u8, u64) = self
            .script
            .key(format!("{}:{key}", self.prefix))
            .arg(interval)
            .arg(window)
            .arg(cost)
            .arg(now)
            .invoke_async(&mut connection)
            .await?;
        Ok(if allowed == 1 {
            LimitVerdict::Allowed
        } else {
            LimitVerdict::Limited { retry_after: Duration::from_micros(retry_after) }
        })
    }
}

/// Whole microseconds, saturating (a window of half a million years is not a concern).
fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}
