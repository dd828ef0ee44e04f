//! Reading session documents of the earlier Go service (layout 1).
//!
//! Such a document has no `schema` field and embeds its messages:
//!
//! ```text
//! { _id, uid, nm, modelId, msgs: [ { content, ts, sender, fileId?, fileUrl?, meta? } ],
//!   ts, endTs?, dur, adminAssisted, assistingAdminId?, assistingAdminName?, helpRequested,
//!   totalTokens, lastActivity, maxRespTime, avgRespTime, shareToken?, _ts, _mt }
//! ```
//!
//! `content` is `base64(nonce ‖ ciphertext ‖ tag)` (AES-256-GCM under the raw bytes of a
//! 32-character key) when that service had a key, the text itself otherwise. A content
//! that has the shape of such a ciphertext (standard base64 of at least 28 bytes) must
//! open with one of the configured keys, or reading fails: it is never shown as text.
//! Anything else is taken as plaintext.
//!
//! Messages get `seq` = their position (from 1) and the deterministic id
//! `<session_id>:<seq>`, so every read, and every run of the migration, gives the same
//! messages. The response-time window starts empty (that service kept only a maximum
//! and an average, never written).

use chatbox_application::ports::SessionSummary;
use chatbox_domain::validation::Metadata;
use chatbox_domain::{
    HandoffState, MessageId, MessageKind, ModelId, Sender, Seq, Session, SessionId, SessionStatus,
    StoredMessage, UserId,
};
use mongodb::bson::{Bson, Document};

use crate::crypto::legacy_ciphertext_bytes;
use crate::documents::{
    Codec, DocumentError, boolean, count, date, field, optional_date, optional_string, string,
};

/// Field names of layout 1.
mod old {
    pub(super) const USER_ID: &str = "uid";
    pub(super) const NAME: &str = "nm";
    pub(super) const MODEL_ID: &str = "modelId";
    pub(super) const MESSAGES: &str = "msgs";
    pub(super) const STARTED: &str = "ts";
    pub(super) const ENDED: &str = "endTs";
    pub(super) const ADMIN_ASSISTED: &str = "adminAssisted";
    pub(super) const ADMIN_ID: &str = "assistingAdminId";
    pub(super) const ADMIN_NAME: &str = "assistingAdminName";
    pub(super) const HELP_REQUESTED: &str = "helpRequested";
    pub(super) const TOTAL_TOKENS: &str = "totalTokens";
    pub(super) const LAST_ACTIVITY: &str = "lastActivity";
    pub(super) const SHARE_TOKEN: &str = "shareToken";

    pub(super) const CONTENT: &str = "content";
    pub(super) const TIMESTAMP: &str = "ts";
    pub(super) const SENDER: &str = "sender";
    pub(super) const FILE_ID: &str = "fileId";
    pub(super) const FILE_URL: &str = "fileUrl";
    pub(super) const META: &str = "meta";
}

/// True for a session document of layout 1.
pub(crate) fn is_legacy(doc: &Document) -> bool {
    !doc.contains_key(field::SCHEMA)
}

/// The embedded messages (an empty Go slice may have been stored as null).
fn embedded(doc: &Document) -> Result<&[Bson], DocumentError> {
    match doc.get(old::MESSAGES) {
        Some(Bson::Array(items)) => Ok(items),
        Some(Bson::Null) => Ok(&[]),
        Some(_) => Err(DocumentError::WrongType(old::MESSAGES.into())),
        None => Err(DocumentError::Missing(old::MESSAGES.into())),
    }
}

fn non_empty(value: Option<&str>) -> Option<&str> {
    value.filter(|text| !text.is_empty())
}

/// The session of a layout-1 document.
pub(crate) fn session(doc: &Document) -> Result<Session, DocumentError> {
    let messages = u64::try_from(embedded(doc)?.len()).unwrap_or(u64::MAX);
    let invalid = |name: &str| DocumentError::Invalid(name.to_owned());
    let status = match optional_date(doc, old::ENDED)? {
        Some(at) => SessionStatus::Ended { at },
        None => SessionStatus::Active,
    };
    let admin = non_empty(optional_string(doc, old::ADMIN_ID)?);
    let handoff = match (boolean(doc, old::ADMIN_ASSISTED)?, admin, boolean(doc, old::HELP_REQUESTED)?) {
        (true, Some(admin_id), _) => HandoffState::AdminAssisting {
            admin_id: UserId::parse(admin_id).map_err(|_| invalid(old::ADMIN_ID))?,
            admin_name: optional_string(doc, old::ADMIN_NAME)?.unwrap_or_default().to_owned(),
        },
        (_, _, true) => HandoffState::HelpRequested,
        _ => HandoffState::Ai,
    };
    Ok(Session {
        id: SessionId::parse(string(doc, field::ID)?).map_err(|_| invalid(field::ID))?,
        owner: UserId::parse(string(doc, old::USER_ID)?).map_err(|_| invalid(old::USER_ID))?,
        name: non_empty(optional_string(doc, old::NAME)?).map(str::to_owned),
        model_id: ModelId::parse(string(doc, old::MODEL_ID)?).map_err(|_| invalid(old::MODEL_ID))?,
        status,
        handoff,
        created_at: date(doc, old::STARTED)?,
        last_activity: date(doc, old::LAST_ACTIVITY)?,
        message_count: messages,
        last_seq: Seq(messages),
        total_tokens: count(doc, old::TOTAL_TOKENS)?,
        response_times: chatbox_domain::session::ResponseTimes::default(),
        provider_conversation: None,
    })
}

/// The analytics flags of a layout-1 document, as the current layout stores them
/// (`help_requested`, `admin_assisted`, `assisting_admin_name`): that service kept them
/// as flags of their own, which may be set while the handoff state says otherwise.
pub(crate) fn analytics_fields(doc: &Document) -> Result<Document, DocumentError> {
    let mut fields = mongodb::bson::doc! {
        field::HELP_REQUESTED: boolean(doc, old::HELP_REQUESTED)?,
        field::ADMIN_ASSISTED: boolean(doc, old::ADMIN_ASSISTED)?,
    };
    if let Some(name) = non_empty(optional_string(doc, old::ADMIN_NAME)?) {
        fields.insert(field::ASSISTING_ADMIN_NAME, name);
    }
    Ok(fields)
}

/// The listing summary of a layout-1 document. That service kept no response-time
/// window, so there are no response times.
pub(crate) fn summary(doc: &Document) -> Result<SessionSummary, DocumentError> {
    let session = session(doc)?;
    let until = session.ended_at().unwrap_or(session.last_activity).timestamp_millis();
    let duration = until.saturating_sub(session.created_at.timestamp_millis());
    Ok(SessionSummary {
        duration_ms: u64::try_from(duration).unwrap_or(0),
        ended_at: session.ended_at(),
        help_requested: boolean(doc, old::HELP_REQUESTED)?,
        admin_assisted: boolean(doc, old::ADMIN_ASSISTED)?,
        assisting_admin_name: non_empty(optional_string(doc, old::ADMIN_NAME)?).map(str::to_owned),
        id: session.id,
        owner: session.owner,
        name: session.name,
        model_id: session.model_id,
        message_count: session.message_count,
        created_at: session.created_at,
        last_activity: session.last_activity,
        total_tokens: session.total_tokens,
        avg_response_ms: None,
        max_response_ms: None,
    })
}

/// The share token of a layout-1 document, carried over by the migration.
pub(crate) fn share_token(doc: &Document) -> Result<Option<String>, DocumentError> {
    Ok(non_empty(optional_string(doc, old::SHARE_TOKEN)?).map(str::to_owned))
}

/// The messages of a layout-1 document, oldest first.
pub(crate) fn messages(doc: &Document, codec: &Codec) -> Result<Vec<StoredMessage>, DocumentError> {
    let session_id = string(doc, field::ID)?;
    embedded(doc)?
        .iter()
        .zip(1u64..)
        .map(|(item, seq)| match item {
            Bson::Document(item) => message(session_id, Seq(seq), item, codec),
            _ => Err(DocumentError::WrongType(old::MESSAGES.into())),
        })
        .collect()
}

/// The deterministic id of the message at `seq` of a layout-1 session.
pub(crate) fn message_id(session_id: &str, seq: Seq) -> Result<MessageId, DocumentError> {
    MessageId::parse(&format!("{session_id}:{seq}")).map_err(|_| DocumentError::Invalid(field::ID.into()))
}

fn message(
    session_id: &str,
    seq: Seq,
    doc: &Document,
    codec: &Codec,
) -> Result<StoredMessage, DocumentError> {
    let file_id = non_empty(optional_string(doc, old::FILE_ID)?).map(str::to_owned);
    let file_url = non_empty(optional_string(doc, old::FILE_URL)?).map(str::to_owned);
    let metadata: Metadata = match doc.get(old::META) {
        None | Some(Bson::Null) => Metadata::new(),
        Some(Bson::Document(meta)) => meta
            .iter()
            .map(|(key, value)| match value {
                Bson::String(value) => Ok((key.clone(), value.clone())),
                _ => Err(DocumentError::WrongType(old::META.into())),
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(DocumentError::WrongType(old::META.into())),
    };
    let mut message = StoredMessage::text(
        message_id(session_id, seq)?,
        seq,
        Sender::parse(string(doc, old::SENDER)?).ok_or_else(|| DocumentError::Invalid(old::SENDER.into()))?,
        content(string(doc, old::CONTENT)?, codec)?,
        date(doc, old::TIMESTAMP)?,
    );
    if file_id.is_some() || file_url.is_some() {
        message.kind = MessageKind::File;
    }
    message.file_id = file_id;
    message.file_url = file_url;
    message.metadata = metadata;
    Ok(message)
}

/// A layout-1 content: opened if it has a ciphertext's shape, as it is otherwise.
fn content(text: &str, codec: &Codec) -> Result<String, DocumentError> {
    if legacy_ciphertext_bytes(text).is_none() {
        return Ok(text.to_owned());
    }
    let crypto =
        |error| DocumentError::Crypto { field: format!("{}.{}", old::MESSAGES, old::CONTENT), error };
    let keys = codec.keys().ok_or_else(|| crypto(crate::crypto::CryptoError::NoKey))?;
    keys.open_legacy(text).map_err(crypto)
}

#[cfg(test)]
mod tests {
    use mongodb::bson::{DateTime, doc};

    use super::*;
    use crate::crypto::{EncryptionKey, KeyId, KeyRing};

    const GO_KEY: &str = "0123456789abcdef0123456789abcdef";

    fn go_document(content: &str) -> Document {
        doc! {
            "_id": "a".repeat(32), "uid": "u1", "nm": "Hello", "modelId": "gpt-4",
            "msgs": [
                { "content": content, "ts": DateTime::from_millis(1_000), "sender": "user" },
                { "content": "plain answer", "ts": DateTime::from_millis(2_000), "sender": "ai",
                  "fileUrl": "https://f/x", "meta": { "k": "v" } },
            ],
            "ts": DateTime::from_millis(500), "dur": 0_i64, "adminAssisted": false, "helpRequested": true,
            "totalTokens": 12_i32, "lastActivity": DateTime::from_millis(2_000), "maxRespTime": 0_i64,
            "avgRespTime": 0_i64, "shareToken": "tok",
        }
    }

    fn codec_with_go_key() -> Codec {
        let (key, _) = EncryptionKey::parse(GO_KEY).expect("key");
        Codec::new(Some(KeyRing::new(KeyId::parse("go").expect("id"), &key, &[]).expect("ring")))
    }

    #[test]
    fn a_go_document_reads_as_a_session_and_messages() {
        let (key, _) = EncryptionKey::parse(GO_KEY).expect("key");
        let sealed = KeyRing::seal_legacy(&key, "Hello there").expect("seal");
        let doc = go_document(&sealed);
        assert!(is_legacy(&doc));
        let session = session(&doc).expect("session");
        assert_eq!((session.message_count, session.last_seq, session.total_tokens), (2, Seq(2), 12));
        assert_eq!(session.handoff, HandoffState::HelpRequested);
        assert_eq!(session.name.as_deref(), Some("Hello"));
        assert!(session.is_active());
        let messages = messages(&doc, &codec_with_go_key()).expect("messages");
        assert_eq!(messages[0].content, "Hello there");
        assert_eq!(messages[0].id.as_str(), format!("{}:1", "a".repeat(32)));
        assert_eq!(
            (messages[1].seq, messages[1].kind, messages[1].sender),
            (Seq(2), MessageKind::File, Sender::Ai)
        );
        assert_eq!(messages[1].metadata.get("k").map(String::as_str), Some("v"));
        assert_eq!(share_token(&doc).expect("token").as_deref(), Some("tok"));
    }

    #[test]
    fn a_go_ciphertext_that_does_not_open_is_an_error() {
        let (other, _) = EncryptionKey::parse(&"z".repeat(32)).expect("key");
        let doc = go_document(&KeyRing::seal_legacy(&other, "Hello there").expect("seal"));
        let error = messages(&doc, &codec_with_go_key()).expect_err("wrong key");
        assert!(matches!(error, DocumentError::Crypto { .. }), "{error}");
        assert!(messages(&doc, &Codec::default()).is_err(), "no key configured");
    }

    #[test]
    fn strict_about_broken_go_documents() {
        let mut doc = go_document("hi");
        doc.insert("msgs", Bson::Null);
        assert_eq!(session(&doc).expect("null msgs is an empty Go slice").message_count, 0);
        for (name, value) in [
            ("uid", Bson::Int32(1)),
            ("msgs", Bson::String("x".into())),
            ("modelId", Bson::String(String::new())),
        ] {
            let mut doc = go_document("hi");
            doc.insert(name, value);
            assert!(session(&doc).is_err(), "{name}");
        }
    }
}
