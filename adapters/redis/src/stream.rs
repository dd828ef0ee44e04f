//! Each session's frames as a Redis Stream: what one replica publishes for a session,
//! every replica can read in the same order, and a replica that lost its place (a
//! reconnect, a socket moving to it) reads on from the last entry it saw.
//!
//! Why a stream rather than pub/sub: pub/sub forgets a message the moment it is sent, so
//! a replica that was reconnecting misses the live tail of an answer in progress; a
//! stream keeps the last `max_len` entries (trimmed approximately, as Redis does
//! cheaply), and entry ids give every reader an exact place to continue from. Stored
//! messages still come from the session store by `seq`; the stream carries the frames.
//!
//! An entry holds the frame already encoded (serialised once, by the replica that
//! published it) and the publishing replica's id, so a replica skips its own entries
//! (its local sockets already had them).

use crate::connection::RedisConnection;
use chatbox_domain::SessionId;

use crate::error::RedisStateError;

/// The id of the stream's beginning: reading after it reads everything kept.
pub const FROM_START: &str = "0-0";

/// One frame read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamEntry {
    /// Its place in the stream: read after it to continue.
    pub id: String,
    /// The replica that published it.
    pub origin: String,
    /// The frame, as written to sockets.
    pub frame: String,
}

/// The frame streams of sessions.
#[derive(Clone)]
pub struct SessionStreams {
    connection: RedisConnection,
    prefix: String,
    max_len: usize,
}

impl std::fmt::Debug for SessionStreams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionStreams")
            .field("prefix", &self.prefix)
            .field("max_len", &self.max_len)
            .finish_non_exhaustive()
    }
}

impl SessionStreams {
    /// Streams under `prefix:`, each keeping about its last `max_len` entries (at least
    /// one).
    #[must_use]
    pub fn new(connection: RedisConnection, prefix: impl Into<String>, max_len: usize) -> Self {
        let prefix = connection.key_prefix(&prefix.into());
        Self { connection, prefix, max_len: max_len.max(1) }
    }

    fn key(&self, session: &SessionId) -> String {
        stream_key(&self.prefix, session)
    }

    /// The keys of `session`'s stream and of its answer-start mark, for a script that
    /// writes both (the hub's writer).
    pub(crate) fn keys(&self, session: &SessionId) -> [String; 2] {
        [stream_key(&self.prefix, session), answering_key(&self.prefix, session)]
    }

    /// Appends `frame`, published by replica `origin`, to `session`'s stream; returns the
    /// entry's id.
    ///
    /// # Errors
    /// When Redis cannot answer.
    pub async fn append(
        &self,
        session: &SessionId,
        origin: &str,
        frame: &str,
    ) -> Result<String, RedisStateError> {
        let mut connection = self.connection.clone();
        redis::cmd("XADD")
            .arg(self.key(session))
            .arg("MAXLEN")
            .arg("~")
            .arg(self.max_len)
            .arg("*")
            .arg("origin")
            .arg(origin)
            .arg("frame")
            .arg(frame)
            .query_async(&mut connection)
            .await
            .map_err(RedisStateError::from)
    }

    /// Up to `count` entries of `session`'s stream after the entry `after` (exclusive;
    /// [`FROM_START`] for all that is kept), oldest first.
    ///
    /// # Errors
    /// When Redis cannot answer, or an entry is not one this adapter wrote.
    pub async fn read_after(
        &self,
        session: &SessionId,
        after: &str,
        count: usize,
    ) -> Result<Vec<StreamEntry>, RedisStateError> {
        let mut connection = self.connection.clone();
        let entries: Vec<(String, Vec<String>)> = redis::cmd("XRANGE")
            .arg(self.key(session))
            .arg(format!("({after}"))
            .arg("+")
            .arg("COUNT")
            .arg(count.max(1))
            .query_async(&mut connection)
            .await?;
        entries.into_iter().map(|(id, fields)| entry(id, &fields)).collect()
    }

    /// The id of the last entry of `session`'s stream, if it has one.
    ///
    /// # Errors
    /// When Redis cannot answer.
    pub async fn last_id(&self, session: &SessionId) -> Result<Option<String>, RedisStateError> {
        let mut connection = self.connection.clone();
        let entries: Vec<(String, Vec<String>)> = redis::cmd("XREVRANGE")
            .arg(self.key(session))
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(1)
            .query_async(&mut connection)
            .await?;
        Ok(entries.into_iter().next().map(|(id, _)| id))
    }

    /// The id of the entry that started `session`'s answer in progress, if one is (as
    /// the hub's writer records it).
    ///
    /// # Errors
    /// When Redis cannot answer.
    pub async fn answer_start(&self, session: &SessionId) -> Result<Option<String>, RedisStateError> {
        let mut connection = self.connection.clone();
        redis::cmd("GET")
            .arg(answering_key(&self.prefix, session))
            .query_async(&mut connection)
            .await
            .map_err(RedisStateError::from)
    }

    /// Forgets `session`'s stream (the session ended or left memory everywhere).
    ///
    /// # Errors
    /// When Redis cannot answer.
    pub async fn remove(&self, session: &SessionId) -> Result<(), RedisStateError> {
        let mut connection = self.connection.clone();
        redis::cmd("UNLINK")
            .arg(self.key(session))
            .query_async::<i64>(&mut connection)
            .await
            .map(drop)
            .map_err(RedisStateError::from)
    }
}

/// The key of `session`'s stream under `prefix`.
pub(crate) fn stream_key(prefix: &str, session: &SessionId) -> String {
    format!("{prefix}:frames:{}", session.as_str())
}

/// The key naming the entry that started `session`'s answer in progress, under `prefix`.
pub(crate) fn answering_key(prefix: &str, session: &SessionId) -> String {
    format!("{prefix}:answering:{}", session.as_str())
}

/// An entry from its id and its flat field list.
pub(crate) fn entry(id: String, fields: &[String]) -> Result<StreamEntry, RedisStateError> {
    let field = |name: &str| {
        fields
            .chunks_exact(2)
            .find(|pair| pair[0] == name)
            .map(|pair| pair[1].clone())
            .ok_or_else(|| RedisStateError::Refused(format!("stream entry without {name}")))
    };
    Ok(StreamEntry { origin: field("origin")?, frame: field("frame")?, id })
}

/// A stream entry id as its two numbers (milliseconds, sequence); `None` for text that
/// is not one.
pub(crate) fn id_parts(id: &str) -> Option<(u64, u64)> {
    let (millis, sequence) = id.split_once('-')?;
    Some((millis.parse().ok()?, sequence.parse().ok()?))
}

/// The id just before `id`, so that reading after it reads `id` itself.
pub(crate) fn before(id: &str) -> Option<String> {
    let (millis, sequence) = id_parts(id)?;
    Some(match sequence.checked_sub(1) {
        Some(sequence) => format!("{millis}-{sequence}"),
        None => format!("{}-{}", millis.checked_sub(1)?, u64::MAX),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_ordered_as_numbers_and_have_a_predecessor() {
        assert_eq!(id_parts("1700000000000-3"), Some((1_700_000_000_000, 3)));
        assert_eq!(id_parts("x-1"), None);
        assert_eq!(id_parts("17"), None);
        assert!(id_parts("99-0") < id_parts("100-0"), "numbers, not text");
        assert_eq!(before("100-3").as_deref(), Some("100-2"));
        assert_eq!(before("100-0"), Some(format!("99-{}", u64::MAX)));
        assert_eq!(before("0-0"), None);
    }
}
