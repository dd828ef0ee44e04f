//! A user's sockets counted across replicas: one sorted set per user whose members are
//! the slots held (`<replica>:<n>`), each scored with the time it lapses.
//!
//! - **Claim** is one script: drop the lapsed slots, refuse at the cap, add the slot. Redis
//!   runs it alone, so replicas claiming at once cannot pass the cap together.
//! - **Hold**: every slot lapses after [`SLOT_TTL`] unless its replica renews it; a live
//!   replica renews all of its slots every third of that, so only the slots of a replica
//!   that died (or lost Redis for that long) lapse. A renewal re-adds a slot that lapsed
//!   meanwhile, so the count is whole again once Redis is back.
//! - **Release**: dropping a [`SocketSlot`] removes it (in a task: drop cannot wait); if
//!   that fails, the slot lapses on its own.
//!
//! Times are the Redis server's (`TIME`), so replicas' clocks need not agree.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use crate::connection::RedisConnection;
use chatbox_application::ports::SocketSlot;
use chatbox_domain::UserId;
use redis::Script;

use crate::error::RedisStateError;
use crate::millis;

/// How long a slot lives without renewal: a replica that dies frees its users' slots
/// within this time.
pub const SLOT_TTL: Duration = Duration::from_secs(60);

/// Drops lapsed slots, refuses at the cap, adds the slot. KEYS[1] the user's set;
/// ARGV[1] cap, ARGV[2] slot, ARGV[3] time to live in ms. Returns 1 when added.
const CLAIM: &str = r#"
local time = redis.call("TIME")
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
redis.call("ZREMRANGEBYSCORE", KEYS[1], "-inf", now)
if redis.call("ZCARD", KEYS[1]) >= tonumber(ARGV[1]) then
  return 0
end
redis.call("ZADD", KEYS[1], now + tonumber(ARGV[3]), ARGV[2])
redis.call("PEXPIRE", KEYS[1], ARGV[3])
return 1
"#;

/// Renews slots: KEYS are users' sets, ARGV[1] the time to live in ms, ARGV[1 + i] the
/// slot in KEYS[i]. Returns how many were renewed.
const RENEW: &str = r#"
local time = redis.call("TIME")
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
for i, key in ipairs(KEYS) do
  redis.call("ZADD", key, now + tonumber(ARGV[1]), ARGV[i + 1])
  redis.call("PEXPIRE", key, ARGV[1])
end
return #KEYS
"#;

/// At most this many slots per renewal call, so one call stays short.
const RENEW_BATCH: usize = 256;

/// The slots this replica holds: slot name → the user's set.
#[derive(Debug, Default)]
struct Held {
    slots: Mutex<HashMap<String, String>>,
}

impl Held {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The socket counts of one replica.
#[derive(Clone)]
pub struct SocketCounts {
    connection: RedisConnection,
    prefix: String,
    replica: String,
    next: Arc<AtomicU64>,
    held: Arc<Held>,
    claim: Script,
    ttl: Duration,
}

impl std::fmt::Debug for SocketCounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SocketCounts")
            .field("prefix", &self.prefix)
            .field("replica", &self.replica)
            .field("held", &self.held.lock().len())
            .finish_non_exhaustive()
    }
}

/// A slot held: released when dropped.
struct HeldSlot {
    counts: SocketCounts,
    key: String,
    slot: String,
}

impl Drop for HeldSlot {
    fn drop(&mut self) {
        self.counts.held.lock().remove(&self.slot);
        let (mut connection, key, slot) =
            (self.counts.connection.clone(), self.key.clone(), self.slot.clone());
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                // Best effort: a slot not removed lapses after its time to live.
                let _: Result<i64, _> =
                    redis::cmd("ZREM").arg(key).arg(slot).query_async(&mut connection).await;
            });
        }
    }
}

impl SocketCounts {
    /// Counts under `prefix:sockets:<user>`; this replica's slots are named
    /// `<replica>:<n>` and live `ttl` without renewal ([`SLOT_TTL`] in service). Starts
    /// the task that renews them, which ends when every clone is dropped.
    #[must_use]
    pub fn new(
        connection: RedisConnection,
        prefix: impl Into<String>,
        replica: impl Into<String>,
        ttl: Duration,
    ) -> Self {
        let prefix = connection.key_prefix(&prefix.into());
        let counts = Self {
            connection,
            prefix,
            replica: replica.into(),
            next: Arc::new(AtomicU64::new(0)),
            held: Arc::new(Held::default()),
            claim: Script::new(CLAIM),
            ttl,
        };
        tokio::spawn(renew_while_held(counts.connection.clone(), Arc::downgrade(&counts.held), ttl));
        counts
    }

    /// Takes a slot of `user` if fewer than `cap` are held across the replicas.
    ///
    /// # Errors
    /// When Redis cannot answer.
    pub async fn claim(&self, user: &UserId, cap: usize) -> Result<Option<SocketSlot>, RedisStateError> {
        let key = format!("{}:sockets:{user}", self.prefix);
        let slot = format!("{}:{}", self.replica, self.next.fetch_add(1, Ordering::Relaxed));
        let mut connection = self.connection.clone();
        let added: i64 = self
            .claim
            .key(&key)
            .arg(cap)
            .arg(&slot)
            .arg(millis(self.ttl))
            .invoke_async(&mut connection)
            .await?;
        if added != 1 {
            return Ok(None);
        }
        self.held.lock().insert(slot.clone(), key.clone());
        Ok(Some(SocketSlot::new(HeldSlot { counts: self.clone(), key, slot })))
    }

    /// Slots `user` holds across the replicas now (lapsed ones excluded).
    ///
    /// # Errors
    /// When Redis cannot answer.
    pub async fn held_by(&self, user: &UserId) -> Result<usize, RedisStateError> {
        let mut connection = self.connection.clone();
        let now_ms: (u64, u64) = redis::cmd("TIME").query_async(&mut connection).await?;
        let now = now_ms.0.saturating_mul(1000).saturating_add(now_ms.1 / 1000);
        let count: usize = redis::cmd("ZCOUNT")
            .arg(format!("{}:sockets:{user}", self.prefix))
            .arg(format!("({now}"))
            .arg("+inf")
            .query_async(&mut connection)
            .await?;
        Ok(count)
    }
}

/// Renews every held slot each third of `ttl`, until the table is dropped. A failed
/// renewal is tried again at the next tick (the slots lapse only if Redis stays away for
/// two more thirds).
async fn renew_while_held(mut connection: RedisConnection, held: Weak<Held>, ttl: Duration) {
    let script = Script::new(RENEW);
    let mut ticks = tokio::time::interval(ttl / 3);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        let Some(table) = held.upgrade() else { return };
        let slots: Vec<(String, String)> =
            table.lock().iter().map(|(slot, key)| (slot.clone(), key.clone())).collect();
        drop(table);
        for batch in slots.chunks(RENEW_BATCH) {
            let mut invocation = script.prepare_invoke();
            invocation.arg(millis(ttl));
            for (slot, key) in batch {
                invocation.key(key).arg(slot);
            }
            let _: Result<i64, _> = invocation.invoke_async(&mut connection).await;
        }
    }
}
