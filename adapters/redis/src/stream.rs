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

use chatbox_domain::SessionId;
use redis::aio::ConnectionManager;

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
    connection: ConnectionManager,
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
    pub fn new(connection: ConnectionManager, prefix: impl Into<String>, max_len: usize) -> Self {
        Self { connection, prefix: prefix.into(), max_len: max_len.max(1) }
    }

    fn key(&self, session: &SessionId) -> String {
        stream_key(&self.prefix, session)
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
    format!("{prefix}:{}", session.as_str())
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
