//! The JSON wire format of `protocol.md`: inbound frames parsed into application
//! commands, and server events encoded into outbound frames.
//!
//! Inbound, unknown fields are ignored, metadata scalars are turned into strings, and
//! every limit is checked before anything reaches the use-cases. Outbound
//! (`outbound.rs`), each event is encoded once per frame (the application caches the
//! bytes).

mod chunk;
mod outbound;

pub use outbound::encode;

use chatbox_application::commands::{AttachedFile, Attachment, ClientCommand, SendMessage};
use chatbox_application::events::AnswerStyle;
use chatbox_domain::upload::FileId;
use chatbox_domain::validation::{self, InvalidValue, MessageContent, Metadata};
use chatbox_domain::{ClientMessageId, MessageKind, ModelId, Seq, SessionId, Timestamp};
use serde::Deserialize;
use serde_json::Value;
use thiserror::Error;

/// Why a frame was refused. The text is safe to show to its sender.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum WireError {
    /// Not JSON, not an object, or a field of the wrong type.
    #[error("Invalid message format")]
    Malformed,
    /// `type` missing.
    #[error("Required field missing: type")]
    MissingType,
    /// `type` not known.
    #[error("Unknown message type")]
    UnknownType,
    /// A required field is missing.
    #[error("Required field missing: {0}")]
    MissingField(&'static str),
    /// A field broke its rule.
    #[error("{0}")]
    Invalid(#[from] InvalidValue),
    /// Binary frames are not part of the protocol.
    #[error("Binary frames are not supported")]
    Binary,
}

impl WireError {
    /// The wire error code.
    #[must_use]
    pub const fn code(&self) -> chatbox_domain::ErrorCode {
        match self {
            Self::MissingField(_) => chatbox_domain::ErrorCode::MissingField,
            _ => chatbox_domain::ErrorCode::InvalidFormat,
        }
    }
}

#[derive(Debug, Deserialize)]
struct InboundFrame {
    #[serde(rename = "type")]
    kind: Option<String>,
    session_id: Option<String>,
    content: Option<String>,
    file_id: Option<String>,
    file_url: Option<String>,
    model_id: Option<String>,
    client_message_id: Option<String>,
    metadata: Option<serde_json::Map<String, Value>>,
    timestamp: Option<String>,
    last_seq: Option<u64>,
}

/// A parsed inbound frame.
#[derive(Debug, Clone)]
pub enum Inbound {
    /// A command for the use-cases.
    Command(ClientCommand),
    /// An application-level `ping`.
    Ping,
}

/// Parses one text frame.
///
/// # Errors
/// A [`WireError`] describing the first problem found.
pub fn parse_frame(text: &str, max_content_chars: usize, now: Timestamp) -> Result<Inbound, WireError> {
    // One JSON object per frame: serde would also read a struct from an array of its
    // fields in order, so anything that does not start as an object is refused first.
    if !text.trim_start().starts_with('{') {
        return Err(WireError::Malformed);
    }
    let frame: InboundFrame = serde_json::from_str(text).map_err(|_| WireError::Malformed)?;
    let kind =
        frame.kind.as_deref().map(str::trim).filter(|k| !k.is_empty()).ok_or(WireError::MissingType)?;
    if let Some(timestamp) = &frame.timestamp {
        let parsed = chrono::DateTime::parse_from_rfc3339(timestamp)
            .map_err(|_| InvalidValue::Malformed { field: "timestamp" })?;
        validation::check_client_timestamp(parsed.with_timezone(&chrono::Utc), now)?;
    }
    let session_id = optional(frame.session_id.as_deref(), SessionId::parse)?;
    let metadata = metadata(frame.metadata)?;
    let client_message_id = optional(frame.client_message_id.as_deref(), ClientMessageId::parse)?;
    let command = match kind {
        "ping" => return Ok(Inbound::Ping),
        "user_message" | "user" => {
            let content = frame.content.ok_or(WireError::MissingField("content"))?;
            ClientCommand::SendMessage(SendMessage {
                session_id,
                content: MessageContent::parse(&content, max_content_chars)?,
                model_id: optional(frame.model_id.as_deref(), ModelId::parse)?,
                client_message_id,
                metadata,
                style: if kind == "user" { AnswerStyle::Assistant } else { AnswerStyle::AiResponse },
            })
        }
        "model_select" => ClientCommand::SelectModel {
            session_id,
            model_id: ModelId::parse(frame.model_id.as_deref().ok_or(WireError::MissingField("model_id"))?)?,
        },
        "stop" => ClientCommand::Stop { session_id },
        "help_request" => ClientCommand::HelpRequest { session_id },
        "typing_indicator" => {
            ClientCommand::Typing { session_id, typing: metadata.get("typing").is_some_and(|v| v == "true") }
        }
        "file_upload" | "voice_message" => ClientCommand::Attachment(Attachment {
            kind: if kind == "file_upload" { MessageKind::File } else { MessageKind::Voice },
            session_id,
            file: attached_file(frame.file_id.as_deref(), frame.file_url.as_deref())?,
            content: MessageContent::parse_optional(
                frame.content.as_deref().unwrap_or_default(),
                max_content_chars,
            )?,
            metadata,
            client_message_id,
        }),
        "resume" => ClientCommand::Resume {
            session_id: session_id.ok_or(WireError::MissingField("session_id"))?,
            last_seq: Seq(frame.last_seq.ok_or(WireError::MissingField("last_seq"))?),
        },
        _ => return Err(WireError::UnknownType),
    };
    Ok(Inbound::Command(command))
}

/// The file of an attachment frame: an id of this service's uploads names an upload
/// (its `file_url`, if any, is the server's to set); any other id needs a public
/// `https` link.
fn attached_file(file_id: Option<&str>, file_url: Option<&str>) -> Result<AttachedFile, WireError> {
    let file_id = file_id.ok_or(WireError::MissingField("file_id"))?;
    if let Ok(upload) = FileId::parse(file_id.trim()) {
        return Ok(AttachedFile::Upload(upload));
    }
    Ok(AttachedFile::Link {
        file_id: validation::parse_file_id(file_id)?,
        file_url: validation::parse_file_url(file_url.ok_or(WireError::MissingField("file_url"))?)?,
    })
}

fn optional<T>(
    value: Option<&str>,
    parse: impl FnOnce(&str) -> Result<T, InvalidValue>,
) -> Result<Option<T>, WireError> {
    match value.map(str::trim) {
        None | Some("") => Ok(None),
        Some(value) => Ok(Some(parse(value)?)),
    }
}

/// Metadata values: strings kept, numbers and booleans turned into strings, nulls
/// dropped; nested values refused.
fn metadata(raw: Option<serde_json::Map<String, Value>>) -> Result<Metadata, WireError> {
    let mut metadata = Metadata::new();
    for (key, value) in raw.unwrap_or_default() {
        let text = match value {
            Value::String(text) => text,
            Value::Number(number) => number.to_string(),
            Value::Bool(flag) => flag.to_string(),
            Value::Null => continue,
            Value::Array(_) | Value::Object(_) => {
                return Err(InvalidValue::Malformed { field: "metadata" }.into());
            }
        };
        metadata.insert(key, text);
    }
    validation::check_metadata(&metadata)?;
    Ok(metadata)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every code a client can meet is explained in the protocol's error table (or, for
    /// the handshake and HTTP-only codes, in its tables of refusals and routes).
    #[test]
    fn every_error_code_is_documented_in_the_protocol() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/protocol.md");
        let protocol = std::fs::read_to_string(path).expect("docs/protocol.md");
        for code in chatbox_domain::ErrorCode::ALL {
            let cell = format!("| `{}` |", code.as_str());
            assert!(protocol.contains(&cell), "docs/protocol.md has no table row for {}", code.as_str());
        }
    }

    fn now() -> Timestamp {
        chrono::DateTime::from_timestamp(1_800_000_000, 0).expect("time")
    }

    fn parse(text: &str) -> Result<Inbound, WireError> {
        parse_frame(text, 10, now())
    }

    #[test]
    fn user_and_user_message_parse_with_their_answer_style() {
        let Ok(Inbound::Command(ClientCommand::SendMessage(m))) =
            parse(r#"{"type":"user","content":"Hello","extra":1}"#)
        else {
            panic!("parsed");
        };
        assert_eq!((m.content.as_str(), m.style), ("Hello", AnswerStyle::Assistant));
        let Ok(Inbound::Command(ClientCommand::SendMessage(m))) =
            parse(r#"{"type":"user_message","content":"Hi","metadata":{"size":12,"ok":true,"n":null}}"#)
        else {
            panic!("parsed");
        };
        assert_eq!(m.style, AnswerStyle::AiResponse);
        assert_eq!(m.metadata.get("size").map(String::as_str), Some("12"));
        assert_eq!(m.metadata.get("ok").map(String::as_str), Some("true"));
        assert!(!m.metadata.contains_key("n"));
    }

    #[test]
    fn bad_frames_get_specific_errors() {
        assert_eq!(parse("not json").err(), Some(WireError::Malformed));
        assert_eq!(parse("[1,2]").err(), Some(WireError::Malformed));
        assert_eq!(parse(r#"{"content":"x"}"#).err(), Some(WireError::MissingType));
        assert_eq!(parse(r#"{"type":"nope"}"#).err(), Some(WireError::UnknownType));
        assert_eq!(parse(r#"{"type":"user_message"}"#).err(), Some(WireError::MissingField("content")));
        assert_eq!(parse(r#"{"type":"user_message","content":5}"#).err(), Some(WireError::Malformed));
        assert!(matches!(
            parse(r#"{"type":"user_message","content":"12345678901"}"#),
            Err(WireError::Invalid(_))
        ));
        assert!(matches!(
            parse(r#"{"type":"user_message","content":"ok","metadata":{"a":{"b":1}}}"#),
            Err(WireError::Invalid(_))
        ));
        let far_future = r#"{"type":"user_message","content":"ok","timestamp":"2099-01-01T00:00:00Z"}"#;
        assert!(matches!(parse(far_future), Err(WireError::Invalid(InvalidValue::InFuture))));
        let long_id = format!(r#"{{"type":"stop","session_id":"{}"}}"#, "s".repeat(129));
        assert!(matches!(parse(&long_id), Err(WireError::Invalid(_))));
        assert!(matches!(parse(r#"{"type":"ping"}"#), Ok(Inbound::Ping)));
        assert!(matches!(
            parse(r#"{"type":"file_upload","file_id":"f","file_url":"http://x.example.com/a"}"#),
            Err(WireError::Invalid(InvalidValue::NotHttps))
        ));
    }
}
