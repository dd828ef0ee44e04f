//! Leases with expiry: which replica runs a session's answer actor.
//!
//! A lease is one key holding its holder's token, set only if absent and expiring after
//! its time to live. The holder renews it while it works; a holder that stops (killed,
//! paused, cut off) stops renewing, and once the key expires another replica may take
//! it. Renewing and releasing are scripts that act only while the key still holds the
//! caller's token, so a holder whose lease expired and was taken can neither extend nor
//! delete the new holder's.
//!
//! Each grant also carries a fencing number, strictly greater than every earlier grant's
//! for the same name. A writer passes it with its writes, so a store can refuse a write
//! from an older grant that woke up late (the session store's unique `seq` plays that
//! part for messages).

use std::time::Duration;

use crate::connection::RedisConnection;
use redis::Script;

use crate::error::RedisStateError;
use crate::millis;

/// Extends the lease if it still holds the caller's token. KEYS[1] lease, ARGV[1] token,
/// ARGV[2] time to live in ms. Returns 1 when extended, 0 when the lease is not ours.
const RENEW: &str = r#"
if redis.call("GET", KEYS[1]) == ARGV[1] then
  return redis.call("PEXPIRE", KEYS[1], ARGV[2])
end
return 0
"#;

/// Takes the lease if nobody holds it and moves its fencing number on, in one step (a
/// grant never exists without its number). KEYS[1] lease, KEYS[2] fencing number; ARGV[1]
/// token, ARGV[2] time to live in ms, ARGV[3] the fencing number's life in ms. Returns the
/// new fencing number, or nil when the lease is held.
const ACQUIRE: &str = r#"
if not redis.call("SET", KEYS[1], ARGV[1], "NX", "PX", ARGV[2]) then
  return false
end
local fence = redis.call("INCR", KEYS[2])
redis.call("PEXPIRE", KEYS[2], ARGV[3])
return fence
"#;

/// Moves the fencing number on. KEYS[1] fencing number; ARGV[1] its life in ms.
const BUMP: &str = r#"
redis.call("INCR", KEYS[1])
return redis.call("PEXPIRE", KEYS[1], ARGV[1])
"#;

/// How long a session's fencing number lives after its last grant or change: a number
/// that expires starts over, which only makes the next grant count as possibly behind
/// (safe), while a session nobody writes any more leaves nothing behind.
const FENCE_LIFE: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// Deletes the lease if it still holds the caller's token. Returns 1 when released.
const RELEASE: &str = r#"
if redis.call("GET", KEYS[1]) == ARGV[1] then
  return redis.call("DEL", KEYS[1])
end
return 0
"#;

/// A lease held: its name, the holder's token and its fencing number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    name: String,
    token: String,
    fence: u64,
}

impl Grant {
    /// The lease's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Strictly greater than the fencing number of every earlier grant of this name.
    #[must_use]
    pub const fn fence(&self) -> u64 {
        self.fence
    }
}

/// Leases under one key prefix.
#[derive(Clone)]
pub struct Leases {
    connection: RedisConnection,
    prefix: String,
    acquire: Script,
    renew: Script,
    release: Script,
    bump: Script,
}

impl std::fmt::Debug for Leases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Leases").field("prefix", &self.prefix).finish_non_exhaustive()
    }
}

impl Leases {
    /// Leases named `prefix:lease:<name>` (fencing counters `prefix:fence:<name>`).
    #[must_use]
    pub fn new(connection: RedisConnection, prefix: impl Into<String>) -> Self {
        let prefix = connection.key_prefix(&prefix.into());
        Self {
            connection,
            prefix,
            acquire: Script::new(ACQUIRE),
            renew: Script::new(RENEW),
            release: Script::new(RELEASE),
            bump: Script::new(BUMP),
        }
    }

    fn key(&self, name: &str) -> String {
        format!("{}:lease:{name}", self.prefix)
    }

    fn fence_key(&self, name: &str) -> String {
        format!("{}:fence:{name}", self.prefix)
    }

    /// Takes the lease `name` for `holder` (a token unique to this holder and grant, e.g.
    /// the replica id and a counter) for `ttl`, unless someone holds it.
    ///
    /// # Errors
    /// When Redis cannot answer.
    pub async fn try_acquire(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<Option<Grant>, RedisStateError> {
        let mut connection = self.connection.clone();
        let fence: Option<u64> = self
            .acquire
            .key(self.key(name))
            .key(self.fence_key(name))
            .arg(holder)
            .arg(millis(ttl))
            .arg(millis(FENCE_LIFE))
            .invoke_async(&mut connection)
            .await?;
        Ok(fence.map(|fence| Grant { name: name.to_owned(), token: holder.to_owned(), fence }))
    }

    /// Extends `grant` to `ttl` from now; false when it is no longer held (it expired, and
    /// perhaps someone else holds the name now): its holder must stop.
    ///
    /// # Errors
    /// When Redis cannot answer.
    pub async fn renew(&self, grant: &Grant, ttl: Duration) -> Result<bool, RedisStateError> {
        let mut connection = self.connection.clone();
        let extended: i64 = self
            .renew
            .key(self.key(&grant.name))
            .arg(&grant.token)
            .arg(millis(ttl))
            .invoke_async(&mut connection)
            .await?;
        Ok(extended == 1)
    }

    /// Moves `name`'s fencing number on without a grant: the next grant's number then
    /// does not follow the previous grant's, so its holder knows someone wrote between.
    ///
    /// # Errors
    /// When Redis cannot answer.
    pub async fn bump(&self, name: &str) -> Result<(), RedisStateError> {
        let mut connection = self.connection.clone();
        let _: i64 =
            self.bump.key(self.fence_key(name)).arg(millis(FENCE_LIFE)).invoke_async(&mut connection).await?;
        Ok(())
    }

    /// Whether someone holds the lease `name`.
    ///
    /// # Errors
    /// When Redis cannot answer.
    pub async fn is_held(&self, name: &str) -> Result<bool, RedisStateError> {
        let mut connection = self.connection.clone();
        let count: i64 = redis::cmd("EXISTS").arg(self.key(name)).query_async(&mut connection).await?;
        Ok(count > 0)
    }

    /// Gives `grant` back, if it is still held; true when it was.
    ///
    /// # Errors
    /// When Redis cannot answer (the lease then ends at its expiry).
    pub async fn release(&self, grant: Grant) -> Result<bool, RedisStateError> {
        let mut connection = self.connection.clone();
        let released: i64 =
            self.release.key(self.key(&grant.name)).arg(&grant.token).invoke_async(&mut connection).await?;
        Ok(released == 1)
    }
}
