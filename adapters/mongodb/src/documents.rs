//! The mapping between domain types and BSON documents (layout version 2).
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
//! Encrypted fields (message content, file URL, session name) are stored as BSON binary
//! when a key is configured (see `crypto.rs`) and as strings otherwise; a reader accepts
//! both, so encryption can be turned on for an existing database.
//!
//! Times are stored as BSON dates (millisecond precision) and durations as whole
//! milliseconds, so values read back are truncated to the millisecond.

use std::time::Duration;

use chatbox_domain::validation::Metadata;
use chatbox_domain::{
    AnswerTiming, ClientMessageId, FinishReason, HandoffState, MessageId, MessageKind, ModelId,
    ProviderConversation, Sender, Seq, Session, SessionId, SessionStatus, StoredMessage, Timestamp, Usage,
    UserId,
};
use mongodb::bson::spec::BinarySubtype;
use mongodb::bson::{Binary, Bson, DateTime, Document, doc};
use thiserror::Error;

use crate::crypto::{CryptoError, KeyRing};

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

const STATUS_ACTIVE: &str = "active";
const STATUS_ENDED: &str = "ended";
const HANDOFF_AI: &str = "ai";
const HANDOFF_HELP: &str = "help_requested";
const HANDOFF_ADMIN: &str = "admin_assisting";

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

    fn seal_optional(&self, name: &str, text: Option<&str>) -> Result<Bson, DocumentError> {
        text.map_or(Ok(Bson::Null), |text| self.seal(name, text))
    }

    fn open_optional(&self, doc: &Document, name: &str) -> Result<Option<String>, DocumentError> {
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

fn bson_count(value: &Bson, name: &str) -> Result<u64, DocumentError> {
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

fn optional_document<'a>(doc: &'a Document, name: &str) -> Result<Option<&'a Document>, DocumentError> {
    match doc.get(name) {
        None | Some(Bson::Null) => Ok(None),
        Some(Bson::Document(inner)) => Ok(Some(inner)),
        Some(_) => Err(DocumentError::WrongType(name.to_owned())),
    }
}

fn to_timestamp(value: DateTime, name: &str) -> Result<Timestamp, DocumentError> {
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

fn parsed<T, E>(result: Result<T, E>, name: &str) -> Result<T, DocumentError> {
    result.map_err(|_| DocumentError::Invalid(name.to_owned()))
}

// ---------------------------------------------------------------------------------------
// Sessions.

/// The document of a new session.
pub(crate) fn session_document(session: &Session, codec: &Codec) -> Result<Document, DocumentError> {
    let mut document = doc! {
        field::ID: session.id.as_str(),
        field::SCHEMA: SCHEMA_VERSION,
        field::USER_ID: session.owner.as_str(),
        field::NAME: codec.seal_optional(field::NAME, session.name.as_deref())?,
        field::MODEL_ID: session.model_id.as_str(),
        field::STATUS: if session.is_active() { STATUS_ACTIVE } else { STATUS_ENDED },
        field::ENDED_AT: session.ended_at().map_or(Bson::Null, bson_date),
        field::HELP_REQUESTED: matches!(session.handoff, HandoffState::HelpRequested),
        field::ADMIN_ASSISTED: matches!(session.handoff, HandoffState::AdminAssisting { .. }),
        field::ASSISTING_ADMIN_ID: Bson::Null,
        field::ASSISTING_ADMIN_NAME: Bson::Null,
        field::CREATED_AT: bson_date(session.created_at),
        field::LAST_ACTIVITY: bson_date(session.last_activity),
        field::MESSAGE_COUNT: bson_count_value(session.message_count),
        field::LAST_SEQ: bson_count_value(session.last_seq.0),
        field::TOTAL_TOKENS: bson_count_value(session.total_tokens),
        field::RESPONSE_TIMES_MS: session.response_times.iter().map(|d| Bson::Int64(millis(d))).collect::<Vec<_>>(),
        field::PROVIDER_CONVERSATION: session.provider_conversation.as_ref().map_or(Bson::Null, |c| {
            Bson::Document(doc! { field::MODEL_ID: c.model_id.as_str(), "id": c.id.as_str() })
        }),
    };
    document.extend(handoff_fields(&session.handoff));
    Ok(document)
}

/// The `$set` fields of a handoff change. `help_requested` and `admin_assisted` are
/// analytics flags: once true they stay true (a released session was still assisted);
/// `assisting_admin_*` name the admin who assists now or assisted last; `handoff` is the
/// current state.
pub(crate) fn handoff_fields(handoff: &HandoffState) -> Document {
    match handoff {
        HandoffState::Ai => doc! { field::HANDOFF: HANDOFF_AI },
        HandoffState::HelpRequested => doc! { field::HANDOFF: HANDOFF_HELP, field::HELP_REQUESTED: true },
        HandoffState::AdminAssisting { admin_id, admin_name } => doc! {
            field::HANDOFF: HANDOFF_ADMIN,
            field::ADMIN_ASSISTED: true,
            field::ASSISTING_ADMIN_ID: admin_id.as_str(),
            field::ASSISTING_ADMIN_NAME: admin_name.as_str(),
        },
    }
}

/// Reads a session document of this layout.
pub(crate) fn session_from_document(doc: &Document, codec: &Codec) -> Result<Session, DocumentError> {
    match doc.get(field::SCHEMA) {
        Some(Bson::Int32(SCHEMA_VERSION)) => {}
        Some(Bson::Int64(version)) if *version == i64::from(SCHEMA_VERSION) => {}
        _ => return Err(DocumentError::UnknownSchema),
    }
    let status = match string(doc, field::STATUS)? {
        STATUS_ACTIVE => SessionStatus::Active,
        STATUS_ENDED => SessionStatus::Ended {
            at: optional_date(doc, field::ENDED_AT)?
                .ok_or_else(|| DocumentError::Missing(field::ENDED_AT.into()))?,
        },
        _ => return Err(DocumentError::Invalid(field::STATUS.into())),
    };
    let handoff = match string(doc, field::HANDOFF)? {
        HANDOFF_AI => HandoffState::Ai,
        HANDOFF_HELP => HandoffState::HelpRequested,
        HANDOFF_ADMIN => HandoffState::AdminAssisting {
            admin_id: parsed(
                UserId::parse(string(doc, field::ASSISTING_ADMIN_ID)?),
                field::ASSISTING_ADMIN_ID,
            )?,
            admin_name: string(doc, field::ASSISTING_ADMIN_NAME)?.to_owned(),
        },
        _ => return Err(DocumentError::Invalid(field::HANDOFF.into())),
    };
    // Present in every document of this layout even if the domain does not read them.
    boolean(doc, field::HELP_REQUESTED)?;
    boolean(doc, field::ADMIN_ASSISTED)?;
    let response_times = match required(doc, field::RESPONSE_TIMES_MS)? {
        Bson::Array(items) => items
            .iter()
            .map(|item| bson_count(item, field::RESPONSE_TIMES_MS).map(Duration::from_millis))
            .collect::<Result<_, _>>()?,
        _ => return Err(DocumentError::WrongType(field::RESPONSE_TIMES_MS.into())),
    };
    let provider_conversation = optional_document(doc, field::PROVIDER_CONVERSATION)?
        .map(|inner| -> Result<_, DocumentError> {
            Ok(ProviderConversation {
                model_id: parsed(
                    ModelId::parse(string(inner, field::MODEL_ID)?),
                    field::PROVIDER_CONVERSATION,
                )?,
                id: string(inner, "id")?.to_owned(),
            })
        })
        .transpose()?;
    Ok(Session {
        id: parsed(SessionId::parse(string(doc, field::ID)?), field::ID)?,
        owner: parsed(UserId::parse(string(doc, field::USER_ID)?), field::USER_ID)?,
        name: match required(doc, field::NAME)? {
            Bson::Null => None,
            value => Some(codec.open(field::NAME, value)?),
        },
        model_id: parsed(ModelId::parse(string(doc, field::MODEL_ID)?), field::MODEL_ID)?,
        status,
        handoff,
        created_at: date(doc, field::CREATED_AT)?,
        last_activity: date(doc, field::LAST_ACTIVITY)?,
        message_count: count(doc, field::MESSAGE_COUNT)?,
        last_seq: Seq(count(doc, field::LAST_SEQ)?),
        total_tokens: count(doc, field::TOTAL_TOKENS)?,
        response_times,
        provider_conversation,
    })
}

// ---------------------------------------------------------------------------------------
// Messages.

/// The document of a message. Optional fields are left out when empty.
pub(crate) fn message_document(
    session_id: &SessionId,
    message: &StoredMessage,
    codec: &Codec,
) -> Result<Document, DocumentError> {
    let mut document = doc! {
        field::ID: message.id.as_str(),
        field::SESSION_ID: session_id.as_str(),
        field::SEQ: bson_count_value(message.seq.0),
        field::SENDER: message.sender.as_str(),
        field::KIND: message.kind.as_str(),
        field::CONTENT: codec.seal(field::CONTENT, &message.content)?,
        field::TIMESTAMP: bson_date(message.timestamp),
    };
    if let Some(file_id) = &message.file_id {
        document.insert(field::FILE_ID, file_id.as_str());
    }
    if let Some(file_url) = &message.file_url {
        document.insert(field::FILE_URL, codec.seal(field::FILE_URL, file_url)?);
    }
    if !message.metadata.is_empty() {
        // Pairs, not a sub-document: client keys may hold '.' or start with '$'.
        let pairs: Vec<Bson> = message
            .metadata
            .iter()
            .map(|(k, v)| Bson::Document(doc! { "k": k.as_str(), "v": v.as_str() }))
            .collect();
        document.insert(field::METADATA, pairs);
    }
    if let Some(id) = &message.client_message_id {
        document.insert(field::CLIENT_MESSAGE_ID, id.as_str());
    }
    if let Some(reason) = message.finish_reason {
        document.insert(field::FINISH_REASON, reason.as_str());
    }
    if let Some(usage) = message.usage {
        document.insert(
            field::USAGE,
            doc! {
                "prompt_tokens": bson_count_value(usage.prompt_tokens),
                "completion_tokens": bson_count_value(usage.completion_tokens),
                "estimated": usage.estimated,
            },
        );
    }
    if let Some(model_id) = &message.model_id {
        document.insert(field::MODEL_ID, model_id.as_str());
    }
    if let Some(timing) = message.timing {
        document.insert(
            field::TIMING,
            doc! {
                "first_token_ms": timing.first_token.map_or(Bson::Null, |d| Bson::Int64(millis(d))),
                "total_ms": millis(timing.total),
            },
        );
    }
    Ok(document)
}

/// Reads a message document.
pub(crate) fn message_from_document(doc: &Document, codec: &Codec) -> Result<StoredMessage, DocumentError> {
    let metadata = match doc.get(field::METADATA) {
        None | Some(Bson::Null) => Metadata::new(),
        Some(Bson::Array(pairs)) => pairs
            .iter()
            .map(|pair| match pair {
                Bson::Document(pair) => Ok((string(pair, "k")?.to_owned(), string(pair, "v")?.to_owned())),
                _ => Err(DocumentError::WrongType(field::METADATA.into())),
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(DocumentError::WrongType(field::METADATA.into())),
    };
    let usage = optional_document(doc, field::USAGE)?
        .map(|usage| -> Result<_, DocumentError> {
            Ok(Usage {
                prompt_tokens: count(usage, "prompt_tokens")?,
                completion_tokens: count(usage, "completion_tokens")?,
                estimated: boolean(usage, "estimated")?,
            })
        })
        .transpose()?;
    let timing = optional_document(doc, field::TIMING)?
        .map(|timing| -> Result<_, DocumentError> {
            let first_token = match timing.get("first_token_ms") {
                None | Some(Bson::Null) => None,
                Some(value) => Some(Duration::from_millis(bson_count(value, "timing.first_token_ms")?)),
            };
            Ok(AnswerTiming { first_token, total: Duration::from_millis(count(timing, "total_ms")?) })
        })
        .transpose()?;
    Ok(StoredMessage {
        id: parsed(MessageId::parse(string(doc, field::ID)?), field::ID)?,
        seq: Seq(count(doc, field::SEQ)?),
        sender: Sender::parse(string(doc, field::SENDER)?)
            .ok_or_else(|| DocumentError::Invalid(field::SENDER.into()))?,
        kind: MessageKind::parse(string(doc, field::KIND)?)
            .ok_or_else(|| DocumentError::Invalid(field::KIND.into()))?,
        content: codec.open(field::CONTENT, required(doc, field::CONTENT)?)?,
        timestamp: date(doc, field::TIMESTAMP)?,
        file_id: optional_string(doc, field::FILE_ID)?.map(str::to_owned),
        file_url: codec.open_optional(doc, field::FILE_URL)?,
        metadata,
        client_message_id: optional_string(doc, field::CLIENT_MESSAGE_ID)?
            .map(|id| parsed(ClientMessageId::parse(id), field::CLIENT_MESSAGE_ID))
            .transpose()?,
        finish_reason: optional_string(doc, field::FINISH_REASON)?
            .map(|reason| {
                FinishReason::parse(reason).ok_or_else(|| DocumentError::Invalid(field::FINISH_REASON.into()))
            })
            .transpose()?,
        usage,
        model_id: optional_string(doc, field::MODEL_ID)?.map(str::to_owned),
        timing,
    })
}

#[cfg(test)]
mod tests {
    use chatbox_domain::MessageEffects;

    use super::*;
    use crate::crypto::{EncryptionKey, KeyId};

    fn at(seconds: i64) -> Timestamp {
        chrono::DateTime::from_timestamp(seconds, 0).expect("time")
    }

    fn codec() -> Codec {
        Codec::new(Some(
            KeyRing::new(KeyId::parse("k").expect("id"), &EncryptionKey::from_bytes([1; 32]), &[])
                .expect("ring"),
        ))
    }

    fn full_session() -> Session {
        let mut session = Session::new(
            SessionId::parse("s1").expect("id"),
            UserId::parse("u1").expect("id"),
            ModelId::parse("demo").expect("id"),
            at(1_700_000_000),
        );
        let effects = MessageEffects {
            name: Some("Hello".into()),
            tokens: 42,
            response_time: Some(Duration::from_millis(1500)),
            provider_conversation: Some(ProviderConversation {
                model_id: ModelId::parse("dify").expect("id"),
                id: "conv".into(),
            }),
        };
        session.record(Seq(1), at(1_700_000_005), &effects);
        session.handoff = HandoffState::AdminAssisting {
            admin_id: UserId::parse("a1").expect("id"),
            admin_name: "Ann".into(),
        };
        session.end(at(1_700_000_009));
        session
    }

    fn full_message() -> StoredMessage {
        let mut message = StoredMessage::text(
            MessageId::parse("m1").expect("id"),
            Seq(3),
            Sender::Ai,
            "the answer".into(),
            at(1_700_000_001),
        );
        message.kind = MessageKind::File;
        message.file_id = Some("f1".into());
        message.file_url = Some("https://files.example/secret.pdf".into());
        message.metadata.insert("a.b".into(), "1".into());
        message.metadata.insert("$x".into(), "2".into());
        message.client_message_id = Some(ClientMessageId::parse("c1").expect("id"));
        message.finish_reason = Some(FinishReason::Length);
        message.usage = Some(Usage { prompt_tokens: 5, completion_tokens: 7, estimated: true });
        message.model_id = Some("demo".into());
        message.timing = Some(AnswerTiming {
            first_token: Some(Duration::from_millis(12)),
            total: Duration::from_millis(900),
        });
        message
    }

    #[test]
    fn sessions_round_trip_with_and_without_encryption() {
        let session = full_session();
        for codec in [Codec::default(), codec()] {
            let document = session_document(&session, &codec).expect("to document");
            assert_eq!(session_from_document(&document, &codec).expect("from document"), session);
        }
        let sealed = session_document(&session, &codec()).expect("to document");
        assert!(matches!(sealed.get(field::NAME), Some(Bson::Binary(_))), "the name is encrypted");
        assert_eq!(sealed.get_bool(field::ADMIN_ASSISTED), Ok(true));
        assert_eq!(sealed.get_str(field::ASSISTING_ADMIN_ID), Ok("a1"));
    }

    #[test]
    fn messages_round_trip_with_and_without_encryption() {
        let message = full_message();
        let id = SessionId::parse("s1").expect("id");
        for codec in [Codec::default(), codec()] {
            let document = message_document(&id, &message, &codec).expect("to document");
            assert_eq!(message_from_document(&document, &codec).expect("from document"), message);
        }
        let minimal = StoredMessage::text(
            MessageId::parse("m2").expect("id"),
            Seq(1),
            Sender::User,
            String::new(),
            at(5),
        );
        let document = message_document(&id, &minimal, &codec()).expect("to document");
        assert!(!document.contains_key(field::USAGE) && !document.contains_key(field::METADATA));
        assert_eq!(message_from_document(&document, &codec()).expect("from document"), minimal);
    }

    #[test]
    fn reading_is_strict() {
        let id = SessionId::parse("s1").expect("id");
        let good = message_document(&id, &full_message(), &Codec::default()).expect("to document");
        let broken: [(&str, Option<Bson>); 6] = [
            (field::SEQ, None),
            (field::SEQ, Some(Bson::Int64(-1))),
            (field::SENDER, Some(Bson::String("robot".into()))),
            (field::TIMESTAMP, Some(Bson::String("yesterday".into()))),
            (field::FINISH_REASON, Some(Bson::String("maybe".into()))),
            (field::CONTENT, Some(Bson::Int32(1))),
        ];
        for (name, value) in broken {
            let mut document = good.clone();
            match value {
                Some(value) => document.insert(name, value),
                None => document.remove(name),
            };
            let error = message_from_document(&document, &Codec::default()).expect_err(name);
            assert!(error.to_string().contains(name), "{error} names {name}");
        }
        let session = session_document(&full_session(), &Codec::default()).expect("to document");
        for name in [field::HANDOFF, field::TOTAL_TOKENS, field::NAME, field::SCHEMA, field::HELP_REQUESTED] {
            let mut document = session.clone();
            document.remove(name);
            assert!(session_from_document(&document, &Codec::default()).is_err(), "without {name}");
        }
    }

    #[test]
    fn an_encrypted_field_that_does_not_open_is_an_error_not_text() {
        let id = SessionId::parse("s1").expect("id");
        let document = message_document(&id, &full_message(), &codec()).expect("to document");
        let other = Codec::new(Some(
            KeyRing::new(KeyId::parse("k").expect("id"), &EncryptionKey::from_bytes([2; 32]), &[])
                .expect("ring"),
        ));
        let error = message_from_document(&document, &other).expect_err("wrong key");
        assert!(matches!(error, DocumentError::Crypto { error: CryptoError::Authentication, .. }), "{error}");
        let error = message_from_document(&document, &Codec::default()).expect_err("no key");
        assert!(matches!(error, DocumentError::Crypto { error: CryptoError::NoKey, .. }), "{error}");
    }
}
