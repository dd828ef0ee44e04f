//! Session documents: the session's fields flat, no messages (see `docs/storage.md`).

use std::time::Duration;

use chatbox_domain::{
    HandoffState, ModelId, ProviderConversation, Seq, Session, SessionId, SessionStatus, UserId,
};
use mongodb::bson::{Bson, Document, doc};

use super::{
    Codec, DocumentError, SCHEMA_VERSION, boolean, bson_count, bson_count_value, bson_date, count, date,
    field, millis, optional_date, optional_document, parsed, required, string,
};

const STATUS_ACTIVE: &str = "active";
const STATUS_ENDED: &str = "ended";
const HANDOFF_AI: &str = "ai";
const HANDOFF_HELP: &str = "help_requested";
const HANDOFF_ADMIN: &str = "admin_assisting";

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
    document.extend(super::derived::session_fields(session));
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use chatbox_domain::{MessageEffects, ModelId, ProviderConversation, Seq, SessionId, UserId};

    use super::*;
    use crate::documents::test_support::at;
    use crate::documents::{Codec, field};

    fn codec() -> Codec {
        crate::documents::test_support::codec_with(1)
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
    fn reading_is_strict() {
        let session = session_document(&full_session(), &Codec::default()).expect("to document");
        for name in [field::HANDOFF, field::TOTAL_TOKENS, field::NAME, field::SCHEMA, field::HELP_REQUESTED] {
            let mut document = session.clone();
            document.remove(name);
            assert!(session_from_document(&document, &Codec::default()).is_err(), "without {name}");
        }
    }
}
