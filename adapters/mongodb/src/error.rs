//! Failures of this adapter, as the port's [`RepositoryError`] and as start-up errors.
//!
//! Invariants: no error text carries the connection string's password, stored content,
//! or a session id (session ids double as capabilities for resume). Driver failures are
//! described by their class and server code (see `retry.rs`), not by the driver's text.

use chatbox_application::ports::RepositoryError;
use thiserror::Error;

use crate::documents::DocumentError;
use crate::operation::Operation;
use crate::retry::Signals;

/// Why the repository could not be set up.
#[derive(Debug, Error)]
pub enum ConnectError {
    /// `MONGO_URI` is not a connection string the driver accepts.
    #[error("MONGO_URI is not a valid MongoDB connection string: {0}")]
    InvalidUri(String),
    /// No server answered within the attempts.
    #[error("MongoDB is unreachable after {attempts} attempt(s) ({reason})")]
    Unreachable {
        /// Attempts made.
        attempts: u32,
        /// The class of the last failure.
        reason: String,
    },
    /// A server answered but refused us (for example wrong credentials); not retried.
    #[error("MongoDB refused the connection ({0})")]
    Refused(String),
    /// The indexes could not be created (for example an index of the same name exists
    /// with other options).
    #[error("cannot create the MongoDB indexes ({0})")]
    Indexes(String),
}

/// A driver failure as the port's error: transient classes are `Unavailable`.
pub(crate) fn storage_error(operation: Operation, error: &mongodb::error::Error) -> RepositoryError {
    let signals = Signals::of(error);
    let text = format!("mongodb {}: {}", operation.as_str(), signals.describe());
    if signals.is_transient() { RepositoryError::Unavailable(text) } else { RepositoryError::Other(text) }
}

/// A stored document that does not map to the domain.
pub(crate) fn unreadable(what: &str, error: &DocumentError) -> RepositoryError {
    RepositoryError::Other(format!("stored {what} is unreadable: {error}"))
}

/// Removes the password of `uri` (as written, and percent-decoded) from `text`.
#[must_use]
pub(crate) fn redact(text: &str, uri: &str) -> String {
    let Some(password) = password_of(uri) else {
        return text.to_owned();
    };
    let mut out = text.to_owned();
    let decoded = percent_decode(password);
    for secret in [password, decoded.as_str()] {
        if !secret.is_empty() {
            out = out.replace(secret, "***");
        }
    }
    out
}

/// The password part of `scheme://user:password@host/…`, if any.
fn password_of(uri: &str) -> Option<&str> {
    let rest = uri.split_once("://").map_or(uri, |(_, rest)| rest);
    // The user information ends at the last '@' before the path.
    let authority = rest.split(['/', '?']).next().unwrap_or(rest);
    let (userinfo, _) = authority.rsplit_once('@')?;
    userinfo.split_once(':').map(|(_, password)| password)
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = text.get(i + 1..i + 3)
            && let Ok(byte) = u8::from_str_radix(hex, 16)
        {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_of_the_uri_never_survives() {
        let uri = "mongodb://chat:s3cr%40t@db1.example:27017,db2.example/chat?authSource=admin";
        let text = "failed for mongodb://chat:s3cr%40t@db1 with password s3cr@t";
        let redacted = redact(text, uri);
        assert!(!redacted.contains("s3cr"), "{redacted}");
        assert_eq!(redact("no password here", "mongodb://localhost/"), "no password here");
        assert_eq!(redact("user only", "mongodb://user@host/"), "user only");
    }
}
