//! The errors a use-case reports to the socket or request that caused it.

use std::time::Duration;

use chatbox_domain::ErrorCode;
use chatbox_domain::upload::UploadRefusal;
use chatbox_domain::validation::InvalidValue;
use thiserror::Error;

use crate::ports::RepositoryError;

/// When a client refused because shared state is unreachable may try again.
pub const SHARED_STATE_RETRY: Duration = Duration::from_secs(2);

/// A use-case failure. Its `Display` text is safe to show to the client: internal
/// details (driver errors, provider bodies) are logged where they happen, never here.
#[derive(Debug, Error)]
pub enum ChatError {
    /// An inbound value broke a rule.
    #[error("{0}")]
    Invalid(#[from] InvalidValue),
    /// A required field is missing.
    #[error("Required field missing: {0}")]
    MissingField(&'static str),
    /// The model id is not configured.
    #[error("Unknown model")]
    UnknownModel,
    /// Too many messages; retry after the given time.
    #[error("Too many requests, please slow down")]
    RateLimited {
        /// When the next message will be accepted.
        retry_after: Duration,
    },
    /// The connection kept sending far past its command budget: it is closed.
    #[error("Too many requests: the connection is closed")]
    Flooding,
    /// The session's answer queue is full.
    #[error("Busy: too many messages waiting for an answer, please retry")]
    Busy,
    /// The session has ended.
    #[error("Session has ended")]
    SessionEnded,
    /// The session is not the caller's, or does not exist.
    #[error("Session not found")]
    NotFound,
    /// Storage failed.
    #[error("Storage is temporarily unavailable")]
    Storage(#[source] RepositoryError),
    /// A fault of the server itself (details are logged where it happens).
    #[error("An internal error occurred")]
    Internal,
    /// Another admin already assists the session.
    #[error("Session is already assisted by another admin")]
    AssistedByAnother,
    /// The caller does not assist the session (release, or an admin speaking after it).
    #[error("You are not assisting this session")]
    NotAssisting,
    /// The route needs a role the caller does not have.
    #[error("Forbidden")]
    Forbidden,
    /// The server is shutting down: it finishes what it holds and takes nothing new.
    #[error("Server is shutting down")]
    ShuttingDown,
    /// The state replicas share (limits, socket counts) cannot be reached: the request is
    /// refused rather than let past a limit nobody can check.
    #[error("Service temporarily unavailable, please retry shortly")]
    SharedStateUnavailable,
    /// A query value is out of range or malformed (HTTP routes).
    #[error("{0}")]
    BadRequest(&'static str),
    /// An upload was refused.
    #[error("{0}")]
    Upload(UploadRefusal),
    /// An upload did not finish within `UPLOAD_TIMEOUT`.
    #[error("The upload took too long; nothing was kept")]
    UploadTimeout,
    /// Object storage failed or did not answer in time.
    #[error("File storage is temporarily unavailable")]
    FileStorage,
    /// No such file, or not one the caller may use (the two are not told apart).
    #[error("File not found")]
    FileNotFound,
    /// A download's range asks for no byte of the file.
    #[error("Range not satisfiable")]
    RangeNotSatisfiable {
        /// The file's size, for `Content-Range: bytes */size`.
        size: u64,
    },
}

impl ChatError {
    /// The wire error code.
    #[must_use]
    pub const fn code(&self) -> ErrorCode {
        match self {
            Self::Invalid(_) | Self::UnknownModel => ErrorCode::InvalidFormat,
            Self::MissingField(_) => ErrorCode::MissingField,
            Self::RateLimited { .. } | Self::Flooding => ErrorCode::TooManyRequests,
            Self::Busy | Self::Internal => ErrorCode::ServiceError,
            Self::SessionEnded => ErrorCode::SessionEnded,
            Self::NotFound => ErrorCode::NotFound,
            Self::Storage(_) => ErrorCode::DatabaseError,
            Self::AssistedByAnother | Self::NotAssisting => ErrorCode::Conflict,
            Self::Forbidden => ErrorCode::Forbidden,
            Self::ShuttingDown => ErrorCode::ServiceUnavailable,
            Self::BadRequest(_) => ErrorCode::BadRequest,
            Self::SharedStateUnavailable => ErrorCode::SharedStateUnavailable,
            Self::Upload(refusal) => refusal.code(),
            Self::UploadTimeout => ErrorCode::UploadTimeout,
            Self::FileStorage => ErrorCode::FileStorageUnavailable,
            Self::FileNotFound => ErrorCode::NotFound,
            Self::RangeNotSatisfiable { .. } => ErrorCode::RangeNotSatisfiable,
        }
    }

    /// `retry_after` for the error frame.
    #[must_use]
    pub const fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RateLimited { retry_after } => Some(*retry_after),
            Self::SharedStateUnavailable => Some(SHARED_STATE_RETRY),
            _ => None,
        }
    }
}

impl From<RepositoryError> for ChatError {
    fn from(error: RepositoryError) -> Self {
        Self::Storage(error)
    }
}
