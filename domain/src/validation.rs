//! Validation of every inbound value: the limits of the wire contract and the newtypes
//! that can only hold a value that passed them.

use std::collections::BTreeMap;

use thiserror::Error;

use crate::Timestamp;

mod host;

pub use host::{host_is_internal, ip_is_internal, is_invalid_numeric_host};

/// The limits of the wire contract.
pub mod limits {
    use std::time::Duration;

    /// `session_id`, in bytes.
    pub const SESSION_ID_MAX_BYTES: usize = 128;
    /// A user id from a token, in bytes.
    pub const USER_ID_MAX_BYTES: usize = 255;
    /// A message id, in bytes.
    pub const MESSAGE_ID_MAX_BYTES: usize = 128;
    /// `model_id`, in bytes.
    pub const MODEL_ID_MAX_BYTES: usize = 100;
    /// `client_message_id`, in bytes.
    pub const CLIENT_MESSAGE_ID_MAX_BYTES: usize = 64;
    /// `file_id`, in bytes.
    pub const FILE_ID_MAX_BYTES: usize = 255;
    /// `file_url`, in bytes.
    pub const FILE_URL_MAX_BYTES: usize = 2048;
    /// Keys in `metadata`.
    pub const METADATA_MAX_KEYS: usize = 32;
    /// A `metadata` key, in bytes.
    pub const METADATA_KEY_MAX_BYTES: usize = 64;
    /// A `metadata` value, in bytes.
    pub const METADATA_VALUE_MAX_BYTES: usize = 1000;
    /// How far in the future a client timestamp may be.
    pub const TIMESTAMP_MAX_FUTURE: Duration = Duration::from_secs(60);
}

/// Why an inbound value was refused. The text names the field and the rule, never the
/// value itself (it may be large or sensitive).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum InvalidValue {
    /// A required value is empty.
    #[error("{field} is required")]
    Empty {
        /// The field.
        field: &'static str,
    },
    /// Over a byte limit.
    #[error("{field} exceeds {max} bytes")]
    TooLong {
        /// The field.
        field: &'static str,
        /// The limit.
        max: usize,
    },
    /// Over a character limit.
    #[error("{field} exceeds {max} characters")]
    TooManyCharacters {
        /// The field.
        field: &'static str,
        /// The limit.
        max: usize,
    },
    /// Not of the required shape.
    #[error("{field} is malformed")]
    Malformed {
        /// The field.
        field: &'static str,
    },
    /// A URL that is not `https`.
    #[error("file_url must be an https URL")]
    NotHttps,
    /// A URL pointing at a loopback, private or link-local host.
    #[error("file_url must not point at a private, loopback or link-local host")]
    PrivateHost,
    /// Too many metadata keys.
    #[error("metadata has more than {max} keys")]
    TooManyKeys {
        /// The limit.
        max: usize,
    },
    /// A timestamp too far in the future.
    #[error("timestamp is more than one minute in the future")]
    InFuture,
}

/// Message text: at most `max_chars` Unicode scalar values, NUL bytes removed, not blank.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageContent(String);

impl MessageContent {
    /// Parses user text against the configured character limit.
    ///
    /// # Errors
    /// [`InvalidValue::Empty`] for blank text, [`InvalidValue::TooManyCharacters`] over
    /// the limit.
    pub fn parse(text: &str, max_chars: usize) -> Result<Self, InvalidValue> {
        let cleaned: String = text.chars().filter(|&c| c != '\0').collect();
        if cleaned.trim().is_empty() {
            return Err(InvalidValue::Empty { field: "content" });
        }
        if cleaned.chars().count() > max_chars {
            return Err(InvalidValue::TooManyCharacters { field: "content", max: max_chars });
        }
        Ok(Self(cleaned))
    }

    /// Optional text (an attachment's caption): empty is allowed.
    ///
    /// # Errors
    /// [`InvalidValue::TooManyCharacters`] over the limit.
    pub fn parse_optional(text: &str, max_chars: usize) -> Result<String, InvalidValue> {
        if text.is_empty() {
            return Ok(String::new());
        }
        match Self::parse(text, max_chars) {
            Ok(content) => Ok(content.into_inner()),
            Err(InvalidValue::Empty { .. }) => Ok(String::new()),
            Err(other) => Err(other),
        }
    }

    /// The text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The owned text.
    #[must_use]
    pub fn into_inner(self) -> String {
        self.0
    }
}

/// An attachment id (≤255 bytes, not blank).
///
/// # Errors
/// [`InvalidValue`] when empty or too long.
pub fn parse_file_id(value: &str) -> Result<String, InvalidValue> {
    let value = value.trim();
    if value.is_empty() {
        return Err(InvalidValue::Empty { field: "file_id" });
    }
    if value.len() > limits::FILE_ID_MAX_BYTES {
        return Err(InvalidValue::TooLong { field: "file_id", max: limits::FILE_ID_MAX_BYTES });
    }
    // It is stored and echoed to other devices like every id: no control characters.
    if value.chars().any(char::is_control) {
        return Err(InvalidValue::Malformed { field: "file_id" });
    }
    Ok(value.to_owned())
}

/// An attachment URL: `https` only, ≤2048 bytes, and no host that names this machine or
/// a private network (a literal address in those ranges, `localhost`, `*.local`,
/// `*.internal`). Names are not resolved here; that is I/O.
///
/// # Errors
/// [`InvalidValue`] naming the broken rule.
pub fn parse_file_url(value: &str) -> Result<String, InvalidValue> {
    let value = value.trim();
    if value.is_empty() {
        return Err(InvalidValue::Empty { field: "file_url" });
    }
    if value.len() > limits::FILE_URL_MAX_BYTES {
        return Err(InvalidValue::TooLong { field: "file_url", max: limits::FILE_URL_MAX_BYTES });
    }
    let Some(rest) = strip_prefix_ignore_case(value, "https://") else {
        return Err(InvalidValue::NotHttps);
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') || value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(InvalidValue::Malformed { field: "file_url" });
    }
    let host = if let Some(bracketed) = authority.strip_prefix('[') {
        bracketed.split(']').next().unwrap_or_default()
    } else {
        authority.split(':').next().unwrap_or_default()
    };
    if host.is_empty() || is_invalid_numeric_host(host) {
        return Err(InvalidValue::Malformed { field: "file_url" });
    }
    if host_is_internal(host) {
        return Err(InvalidValue::PrivateHost);
    }
    Ok(value.to_owned())
}

fn strip_prefix_ignore_case<'a>(value: &'a str, prefix: &str) -> Option<&'a str> {
    let head = value.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix).then(|| &value[prefix.len()..])
}

/// Frame metadata: string values only, ≤32 keys, keys ≤64 bytes, values ≤1000 bytes.
pub type Metadata = BTreeMap<String, String>;

/// Checks metadata already turned into strings.
///
/// # Errors
/// [`InvalidValue`] naming the broken limit.
pub fn check_metadata(metadata: &Metadata) -> Result<(), InvalidValue> {
    if metadata.len() > limits::METADATA_MAX_KEYS {
        return Err(InvalidValue::TooManyKeys { max: limits::METADATA_MAX_KEYS });
    }
    for (key, value) in metadata {
        if key.is_empty() || key.len() > limits::METADATA_KEY_MAX_BYTES {
            return Err(InvalidValue::TooLong { field: "metadata key", max: limits::METADATA_KEY_MAX_BYTES });
        }
        if value.len() > limits::METADATA_VALUE_MAX_BYTES {
            return Err(InvalidValue::TooLong {
                field: "metadata value",
                max: limits::METADATA_VALUE_MAX_BYTES,
            });
        }
    }
    Ok(())
}

/// A client timestamp is only believed if it is not more than one minute ahead of `now`.
///
/// # Errors
/// [`InvalidValue::InFuture`].
pub fn check_client_timestamp(client: Timestamp, now: Timestamp) -> Result<(), InvalidValue> {
    let ahead = client.signed_duration_since(now);
    match ahead.to_std() {
        Ok(ahead) if ahead > limits::TIMESTAMP_MAX_FUTURE => Err(InvalidValue::InFuture),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests;
