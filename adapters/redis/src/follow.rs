//! Following many sessions' frame streams on one connection: what other replicas publish
//! for the sessions this replica serves.
//!
//! One `XREAD BLOCK` names every followed stream with the last entry read from it, so a
//! replica needs one reader connection however many sessions it serves, and each stream
//! continues exactly where it was. The read blocks its connection, so the follower has a
//! connection of its own (not the shared, multiplexed one). The followed set changes
//! between reads: a caller blocks for short intervals and follows or unfollows in between.

use std::collections::BTreeMap;
use std::time::Duration;

use chatbox_domain::SessionId;

use crate::connection::{BlockingConnection, RedisConnection};
use crate::error::RedisStateError;
use crate::stream::{StreamEntry, entry, stream_key};

/// How much longer than its block a read may take before the server counts as gone.
const READ_MARGIN: Duration = Duration::from_secs(5);

/// One stream of an `XREAD` answer: its key and its entries (id, flat field list).
type RawStream = (String, Vec<(String, Vec<String>)>);

/// Reads the frame streams of the sessions it follows, skipping its own replica's.
pub struct StreamFollower {
    /// Of its own (a read blocks it); `next` bounds each read by its block and a margin.
    connection: BlockingConnection,
    prefix: String,
    origin: String,
    /// The stream key of each followed session, and the last entry read from it.
    followed: BTreeMap<String, (SessionId, String)>,
}

impl std::fmt::Debug for StreamFollower {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamFollower")
            .field("origin", &self.origin)
            .field("followed", &self.followed.len())
            .finish_non_exhaustive()
    }
}

impl StreamFollower {
    /// A follower of streams under `prefix:` (as [`crate::SessionStreams`] writes them)
    /// for replica `origin`, on a connection of its own to the primary `shared` reaches.
    ///
    /// # Errors
    /// When no primary answers.
    pub async fn connect(
        shared: &RedisConnection,
        prefix: impl Into<String>,
        origin: impl Into<String>,
    ) -> Result<Self, RedisStateError> {
        let connection = shared.blocking_connection().await?;
        let prefix = shared.key_prefix(&prefix.into());
        Ok(Self { connection, prefix, origin: origin.into(), followed: BTreeMap::new() })
    }

    /// Follows `session` from after the entry `after` (an id read before, or
    /// [`crate::FROM_START`]). Following it again moves its place.
    pub fn follow(&mut self, session: &SessionId, after: &str) {
        self.followed.insert(stream_key(&self.prefix, session), (session.clone(), after.to_owned()));
    }

    /// Where `session`'s stream is read up to (the last entry read, this replica's own
    /// included), if it is followed.
    #[must_use]
    pub fn position(&self, session: &SessionId) -> Option<&str> {
        self.followed.get(&stream_key(&self.prefix, session)).map(|(_, after)| after.as_str())
    }

    /// Whether `session` is followed.
    #[must_use]
    pub fn follows(&self, session: &SessionId) -> bool {
        self.followed.contains_key(&stream_key(&self.prefix, session))
    }

    /// The followed sessions.
    pub fn sessions(&self) -> impl Iterator<Item = &SessionId> {
        self.followed.values().map(|(session, _)| session)
    }

    /// Replaces a connection that failed with a new one to the primary `shared` reaches
    /// now; every stream is read on from where it was.
    ///
    /// # Errors
    /// When no primary answers.
    pub async fn reconnect(&mut self, shared: &RedisConnection) -> Result<(), RedisStateError> {
        self.connection = shared.blocking_connection().await?;
        Ok(())
    }

    /// Stops following `session`.
    pub fn unfollow(&mut self, session: &SessionId) {
        self.followed.remove(&stream_key(&self.prefix, session));
    }

    /// How many sessions are followed.
    #[must_use]
    pub fn len(&self) -> usize {
        self.followed.len()
    }

    /// True when no session is followed.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.followed.is_empty()
    }

    /// The entries other replicas appended to the followed streams, up to `count` per
    /// stream, oldest first within each; waits up to `block` (at least a millisecond) for
    /// the first. Every followed stream's place moves past what was read, this replica's
    /// own entries included.
    ///
    /// # Errors
    /// When Redis cannot answer, or an entry is not one this adapter wrote.
    pub async fn next(
        &mut self,
        block: Duration,
        count: usize,
    ) -> Result<Vec<(SessionId, StreamEntry)>, RedisStateError> {
        if self.followed.is_empty() {
            return Ok(Vec::new());
        }
        let millis = u64::try_from(block.as_millis()).unwrap_or(u64::MAX).max(1);
        let mut command = redis::cmd("XREAD");
        command.arg("COUNT").arg(count.max(1)).arg("BLOCK").arg(millis).arg("STREAMS");
        for key in self.followed.keys() {
            command.arg(key);
        }
        for (_, after) in self.followed.values() {
            command.arg(after);
        }
        // Nil when the block ran out with nothing new. A server that stops answering (a
        // half-open connection) is given the block and a margin, then reported.
        let answer = tokio::time::timeout(
            block.saturating_add(READ_MARGIN),
            command.query_async(&mut self.connection),
        )
        .await
        .map_err(|_| RedisStateError::Unavailable("no answer to a blocking read".to_owned()))?;
        let streams: Option<Vec<RawStream>> = answer?;
        let mut read = Vec::new();
        for (key, entries) in streams.unwrap_or_default() {
            let Some((session, after)) = self.followed.get_mut(&key) else { continue };
            for (id, fields) in entries {
                let entry = entry(id, &fields)?;
                after.clone_from(&entry.id);
                if entry.origin != self.origin {
                    read.push((session.clone(), entry));
                }
            }
        }
        Ok(read)
    }
}
