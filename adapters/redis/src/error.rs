//! Failures of this adapter, described without the URL or any value read.

use thiserror::Error;

/// Why Redis could not answer.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum RedisStateError {
    /// The URL is not one the client accepts (its text is not repeated: it may hold a
    /// password).
    #[error(
        "REDIS_URL is not a valid Redis URL (redis://host:port/db, rediss://…, redis+sentinel://host:port,…/service[/db] or redis+cluster://host:port,…)"
    )]
    InvalidUrl,
    /// The server could not be reached, or the connection broke.
    #[error("Redis is unreachable ({0})")]
    Unavailable(String),
    /// The server answered with an error, or with something this adapter does not read.
    #[error("Redis refused the operation ({0})")]
    Refused(String),
}

impl From<redis::RedisError> for RedisStateError {
    /// Classifies a client error by its kind (its text may hold the URL).
    fn from(error: redis::RedisError) -> Self {
        let kind = format!("{:?}", error.kind());
        if error.is_io_error()
            || error.is_timeout()
            || error.is_connection_dropped()
            || error.is_connection_refusal()
        {
            Self::Unavailable(kind)
        } else {
            Self::Refused(kind)
        }
    }
}
