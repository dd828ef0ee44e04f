//! The mapping between domain types and BSON documents (layout version 2): field names,
//! the codec of encrypted fields and strict readers here; sessions in `session.rs`,
//! messages in `message.rs`, stored files' records in `file.rs`.
//!
//! A session document holds the session's fields flat (so the admin API can filter and
//! sort on them with indexes) and no messages; each message is its own document in the
//! messages collection. Field names are the constants of [`field`], shared with queries
//! and indexes.
//!
//! Reading is strict: a required field that is missing or of the wrong type, an unknown
//! enum spelling, a negative counter, or an encrypted value that does not open is a
//! [`DocumentError`], never a default. Optional message fields may be absent or null.
//! Errors name the field, never its value.
//!
//! Encrypted fields (message content, file URL, session name, a stored file's name) are stored as BSON binary
//! when a key is configured (see `crypto.rs`) and as strings otherwise; a reader accepts
//! both, so encryption can be turned on for an existing database.
//!
//! Times are stored as BSON dates (millisecond precision) and durations as whole
//! milliseconds, so values read back are truncated to the millisecond.

use std::time::Duration;

use chatbox_domain::Timestamp;
use mongodb::bson::spec::BinarySubtype;
use mongodb::bson::{Binary, Bson, DateTime, Document};
use thiserror::Error;

use crate::crypto::{CryptoError, KeyRing};

mod derived;
mod file;
mod message;
mod session;
mod summary;

pub(crate) use derived::{ResponseTotals, Timeline};
pub(crate) use file::{file_document, file_field, file_from_document};

pub(crate) use message::{message_document, message_from_document};
pub(crate) use session::{handoff_fields, session_document, session_from_document};
pub(crate) use summary::{needs_window, summary_from_document, summary_projection, with_window};

/// The layout version written in every session document of this layout. Documents of the
/// earlier Go service have no such field (see `legacy.rs`).
pub(crate) const SCHEMA_VERSION: i32 = 2;

/// Field names.
pub(crate) mod field {
    pub(crate) const ID: &str = "_id";
    pub(crate) const SCHEMA: &str = "schema";
    pub(crate) const USER_ID: &str = "user_id";
    pub(crate) const NAME: &str = "name";
    pub(crate) const MODEL_ID: &str = "model_id";
    pub(crate) const STATUS: &str = "status";
    pub(crate) const ENDED_AT: &str = "ended_at";
    pub(crate) const HANDOFF: &str = "handoff";
    pub(crate) const HELP_REQUESTED: &str = "help_requested";
    pub(crate) const ADMIN_ASSISTED: &str = "admin_assisted";
    pub(crate) const ASSISTING_ADMIN_ID: &str = "assisting_admin_id";
    pub(crate) const ASSISTING_ADMIN_NAME: &str = "assisting_admin_name";
    pub(crate) const CREATED_AT: &str = "created_at";
    pub(crate) const LAST_ACTIVITY: &str = "last_activity";
    pub(crate) const MESSAGE_COUNT: &str = "message_count";
    pub(crate) const LAST_SEQ: &str = "last_seq";
    pub(crate) const TOTAL_TOKENS: &str = "total_tokens";
    pub(crate) const RESPONSE_TIMES_MS: &str = "response_times_ms";
    pub(crate) const PROVIDER_CONVERSATION: &str = "provider_conversation";
    pub(crate) const SHARE_TOKEN: &str = "share_token";
    pub(crate) const DURATION_MS: &str = "duration_ms";
    pub(crate) const RESPONSE_COUNT: &str = "response_count";
    pub(crate) const RESPONSE_SUM_MS: &str = "response_sum_ms";
    pub(crate) const RESPONSE_MAX_MS: &str = "response_max_ms";
    pub(crate) const SHARE: &str = "share";
    pub(crate) const TOKEN_DIGEST: &str = "token_digest";
    pub(crate) const EXPIRES_AT: &str = "expires_at";
    pub(crate) const SHARE_TOKEN_DIGEST: &str = "share.token_digest";
    pub(crate) const SHARE_EXPIRES_AT: &str = "share.expires_at";

    pub(crate) const SESSION_ID: &str = "session_id";
    pub(crate) const SEQ: &str = "seq";
    pub(crate) const SENDER: &str = "sender";
    pub(crate) const KIND: &str = "kind";
    pub(crate) const CONTENT: &str = "content";
    pub(crate) const TIMESTAMP: &str = "timestamp";
    pub(crate) const FILE_ID: &str = "file_id";
    pub(crate) const FILE_URL: &str = "file_url";
    pub(crate) const METADATA: &str = "metadata";
    pub(crate) const CLIENT_MESSAGE_ID: &str = "client_message_id";
    pub(crate) const FINISH_REASON: &str = "finish_reason";
    pub(crate) const USAGE: &str = "usage";
    pub(crate) const TIMING: &str = "timing";
}

/// A stored document that does not map to a domain value. Names the field, not its value.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DocumentError {
    /// A required field is absent.
    #[error("field {0} is missing")]
    Missing(String),
    /// A field has the wrong BSON type.
    #[error("field {0} has the wrong type")]
    WrongType(String),
    /// A field's value breaks its rule (unknown spelling, negative count, bad id…).
    #[error("field {0} is invalid")]
    Invalid(String),
    /// An encrypted field does not open.
    #[error("field {field}: {error}")]
    Crypto {
        /// The field.
        field: String,
        /// Why it does not open.
        error: CryptoError,
    },
    /// The document's layout version is not one this build reads.
    #[error("unknown layout version")]
    UnknownSchema,
}

/// Seals and opens the encrypted fields: with a key ring when one is configured, as plain
/// strings otherwise.
#[derive(Debug, Clone, Default)]
pub(crate) struct Codec {
    keys: Option<KeyRing>,
}

impl Codec {
    pub(crate) const fn new(keys: Option<KeyRing>) -> Self {
        Self { keys }
    }

    pub(crate) const fn keys(&self) -> Option<&KeyRing> {
        self.keys.as_ref()
    }

    /// The stored form of an encrypted field.
    pub(crate) fn seal(&self, name: &str, text: &str) -> Result<Bson, DocumentError> {
        match &self.keys {
            None => Ok(Bson::String(text.to_owned())),
            Some(keys) => {
                let bytes = keys
                    .seal(text)
                    .map_err(|error| DocumentError::Crypto { field: name.to_owned(), error })?;
                Ok(Bson::Binary(Binary { subtype: BinarySubtype::Generic, bytes }))
            }
        }
    }

    /// Reads an encrypted field: a string is plaintext (written without a key), a binary
    /// must open.
    pub(crate) fn open(&self, name: &str, value: &Bson) -> Result<String, DocumentError> {
        match value {
            Bson::String(text) => Ok(text.clone()),
            Bson::Binary(Binary { subtype: BinarySubtype::Generic, bytes }) => {
                let keys = self.keys.as_ref().ok_or_else(|| DocumentError::Crypto {
                    field: name.to_owned(),
                    error: CryptoError::NoKey,
                })?;
                keys.open(bytes).map_err(|error| DocumentError::Crypto { field: name.to_owned(), error })
            }
            _ => Err(DocumentError::WrongType(name.to_owned())),
        }
    }

    pub(crate) fn seal_optional(&self, name: &str, text: Option<&str>) -> Result<Bson, DocumentError> {
        text.map_or(Ok(Bson::Null), |text| self.seal(name, text))
    }

    pub(crate) fn open_optional(&self, doc: &Document, name: &str) -> Result<Option<String>, DocumentError> {
        match doc.get(name) {
            None | Some(Bson::Null) => Ok(None),
            Some(value) => self.open(name, value).map(Some),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Strict readers.

pub(crate) fn required<'a>(doc: &'a Document, name: &str) -> Result<&'a Bson, DocumentError> {
    doc.get(name).ok_or_else(|| DocumentError::Missing(name.to_owned()))
}

pub(crate) fn string<'a>(doc: &'a Document, name: &str) -> Result<&'a str, DocumentError> {
    match required(doc, name)? {
        Bson::String(text) => Ok(text),
        _ => Err(DocumentError::WrongType(name.to_owned())),
    }
}

/// Absent or null is `None`.
pub(crate) fn optional_string<'a>(doc: &'a Document, name: &str) -> Result<Option<&'a str>, DocumentError> {
    match doc.get(name) {
        None | Some(Bson::Null) => Ok(None),
        Some(Bson::String(text)) => Ok(Some(text)),
        Some(_) => Err(DocumentError::WrongType(name.to_owned())),
    }
}

/// A non-negative integer stored as int32 or int64 (drivers pick either for small values).
pub(crate) fn count(doc: &Document, name: &str) -> Result<u64, DocumentError> {
    bson_count(required(doc, name)?, name)
}

pub(crate) fn bson_count(value: &Bson, name: &str) -> Result<u64, DocumentError> {
    let number = match value {
        Bson::Int32(n) => i64::from(*n),
        Bson::Int64(n) => *n,
        _ => return Err(DocumentError::WrongType(name.to_owned())),
    };
    u64::try_from(number).map_err(|_| DocumentError::Invalid(name.to_owned()))
}

pub(crate) fn boolean(doc: &Document, name: &str) -> Result<bool, DocumentError> {
    match required(doc, name)? {
        Bson::Boolean(value) => Ok(*value),
        _ => Err(DocumentError::WrongType(name.to_owned())),
    }
}

pub(crate) fn date(doc: &Document, name: &str) -> Result<Timestamp, DocumentError> {
    match required(doc, name)? {
        Bson::DateTime(value) => to_timestamp(*value, name),
        _ => Err(DocumentError::WrongType(name.to_owned())),
    }
}

pub(crate) fn optional_date(doc: &Document, name: &str) -> Result<Option<Timestamp>, DocumentError> {
    match doc.get(name) {
        None | Some(Bson::Null) => Ok(None),
        Some(Bson::DateTime(value)) => to_timestamp(*value, name).map(Some),
        Some(_) => Err(DocumentError::WrongType(name.to_owned())),
    }
}

pub(crate) fn optional_document<'a>(
    doc: &'a Document,
    name: &str,
) -> Result<Option<&'a Document>, DocumentError> {
    match doc.get(name) {
        None | Some(Bson::Null) => Ok(None),
        Some(Bson::Document(inner)) => Ok(Some(inner)),
        Some(_) => Err(DocumentError::WrongType(name.to_owned())),
    }
}

pub(crate) fn to_timestamp(value: DateTime, name: &str) -> Result<Timestamp, DocumentError> {
    chrono::DateTime::from_timestamp_millis(value.timestamp_millis())
        .ok_or_else(|| DocumentError::Invalid(name.to_owned()))
}

pub(crate) fn bson_date(at: Timestamp) -> Bson {
    Bson::DateTime(DateTime::from_millis(at.timestamp_millis()))
}

/// Counters are `u64` in the domain and int64 in BSON: values beyond `i64::MAX` are
/// stored as `i64::MAX` (they saturate in the domain too).
pub(crate) fn bson_count_value(value: u64) -> Bson {
    Bson::Int64(i64::try_from(value).unwrap_or(i64::MAX))
}

pub(crate) fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

pub(crate) fn parsed<T, E>(result: Result<T, E>, name: &str) -> Result<T, DocumentError> {
    result.map_err(|_| DocumentError::Invalid(name.to_owned()))
}

/// Shared by the tests of the submodules.
#[cfg(test)]
pub(crate) mod test_support {
    use chatbox_domain::Timestamp;

    use super::Codec;
    use crate::crypto::{EncryptionKey, KeyId, KeyRing};

    pub(crate) fn at(seconds: i64) -> Timestamp {
        chrono::DateTime::from_timestamp(seconds, 0).expect("time")
    }

    /// A codec with a key ring holding one key of `byte`s.
    pub(crate) fn codec_with(byte: u8) -> Codec {
        Codec::new(Some(
            KeyRing::new(KeyId::parse("k").expect("id"), &EncryptionKey::from_bytes([byte; 32]), &[])
                .expect("ring"),
        ))
    }
}
