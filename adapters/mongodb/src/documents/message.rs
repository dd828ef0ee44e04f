//! Message documents: one per message, optional fields left out when empty.

use std::time::Duration;

use chatbox_domain::validation::Metadata;
use chatbox_domain::{
    AnswerTiming, ClientMessageId, FinishReason, MessageId, MessageKind, Sender, Seq, SessionId,
    StoredMessage, Usage,
};
use mongodb::bson::{Bson, Document, doc};

use super::{
    Codec, DocumentError, boolean, bson_count, bson_count_value, bson_date, count, date, field, millis,
    optional_document, optional_string, parsed, required, string,
};

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
    use std::time::Duration;

    use chatbox_domain::{
        AnswerTiming, ClientMessageId, FinishReason, MessageId, MessageKind, Sender, Seq, SessionId, Usage,
    };

    use super::*;
    use crate::crypto::CryptoError;
    use crate::documents::test_support::{at, codec_with};
    use crate::documents::{Codec, DocumentError, field};

    fn codec() -> Codec {
        codec_with(1)
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
    }

    #[test]
    fn an_encrypted_field_that_does_not_open_is_an_error_not_text() {
        let id = SessionId::parse("s1").expect("id");
        let document = message_document(&id, &full_message(), &codec()).expect("to document");
        let other = codec_with(2);
        let error = message_from_document(&document, &other).expect_err("wrong key");
        assert!(matches!(error, DocumentError::Crypto { error: CryptoError::Authentication, .. }), "{error}");
        let error = message_from_document(&document, &Codec::default()).expect_err("no key");
        assert!(matches!(error, DocumentError::Crypto { error: CryptoError::NoKey, .. }), "{error}");
    }
}
