//! The JSON wire format of `protocol.md`: inbound frames parsed into application
//! commands, and server events encoded into outbound frames.
//!
//! Inbound, unknown fields are ignored, metadata scalars are turned into strings, and
//! every limit is checked before anything reaches the use-cases. Outbound, each event is
//! encoded once per frame (the application caches the bytes).

use std::collections::BTreeMap;

use chatbox_application::commands::{AttachedFile, Attachment, ClientCommand, SendMessage};
use chatbox_application::events::{AnswerStyle, Frame, ServerEvent};
use chatbox_domain::upload::FileId;
use chatbox_domain::validation::{self, InvalidValue, MessageContent, Metadata};
use chatbox_domain::{ClientMessageId, MessageKind, ModelId, Sender, Seq, SessionId, Timestamp};
use chrono::SecondsFormat;
use serde::{Deserialize, Serialize};
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

#[derive(Serialize)]
struct ModelDto<'a> {
    id: &'a str,
    name: &'a str,
}

#[derive(Serialize)]
struct ErrorDto<'a> {
    code: &'a str,
    message: &'a str,
    recoverable: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    retry_after: Option<u64>,
}

#[derive(Serialize, Default)]
struct OutFrame<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    session_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    file_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    file_url: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    model_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    models: Option<Vec<ModelDto<'a>>>,
    timestamp: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    sender: Option<&'a str>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    metadata: BTreeMap<&'a str, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ErrorDto<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seq: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_message_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_id: Option<&'a str>,
}

fn rfc3339(timestamp: Timestamp) -> String {
    timestamp.to_rfc3339_opts(SecondsFormat::Millis, true)
}

const fn answer_type(style: AnswerStyle) -> &'static str {
    match style {
        AnswerStyle::AiResponse => "ai_response",
        AnswerStyle::Assistant => "assistant",
    }
}

/// Encodes a frame as its JSON text.
#[must_use]
pub fn encode(frame: &Frame) -> String {
    let mut out = OutFrame { timestamp: rfc3339(frame.timestamp), ..OutFrame::default() };
    match &frame.event {
        ServerEvent::ConnectionStatus { user_id, session_id, models, model_id, state, content } => {
            out.kind = "connection_status";
            out.sender = Some(Sender::System.as_str());
            out.user_id = Some(user_id.as_str());
            out.session_id = Some(session_id.as_str());
            out.models = Some(models.iter().map(|m| ModelDto { id: m.id.as_str(), name: &m.name }).collect());
            out.model_id = Some(model_id.as_str());
            out.content = content.as_deref();
            out.metadata.insert("state", (*state).to_owned());
        }
        ServerEvent::Loading { session_id, message_id, .. } => {
            out.kind = "loading";
            out.sender = Some(Sender::Ai.as_str());
            out.session_id = Some(session_id.as_str());
            out.message_id = Some(message_id.as_str());
        }
        ServerEvent::AnswerChunk { session_id, message_id, model_id, delta, style } => {
            out.kind = answer_type(*style);
            out.sender = Some(Sender::Ai.as_str());
            out.session_id = Some(session_id.as_str());
            out.message_id = Some(message_id.as_str());
            out.model_id = Some(model_id.as_str());
            out.content = Some(delta);
            out.metadata.insert("streaming", "true".into());
            out.metadata.insert("done", "false".into());
        }
        ServerEvent::AnswerDone {
            session_id,
            message_id,
            model_id,
            seq,
            finish_reason,
            usage,
            timing,
            style,
        } => {
            out.kind = answer_type(*style);
            out.sender = Some(Sender::Ai.as_str());
            out.session_id = Some(session_id.as_str());
            out.message_id = Some(message_id.as_str());
            out.model_id = Some(model_id.as_str());
            out.content = Some("");
            out.seq = seq.map(|s| s.0);
            out.metadata.insert("streaming", "true".into());
            out.metadata.insert("done", "true".into());
            out.metadata.insert("finish_reason", finish_reason.as_str().into());
            if let Some(usage) = usage {
                out.metadata.insert("prompt_tokens", usage.prompt_tokens.to_string());
                out.metadata.insert("completion_tokens", usage.completion_tokens.to_string());
                out.metadata.insert("total_tokens", usage.total_tokens().to_string());
                out.metadata.insert("usage_estimated", usage.estimated.to_string());
            }
            if let Some(first_token) = timing.first_token {
                out.metadata.insert("time_to_first_token_ms", first_token.as_millis().to_string());
            }
            out.metadata.insert("duration_ms", timing.total.as_millis().to_string());
        }
        ServerEvent::Stored { session_id, message } => {
            out.kind = match (message.kind, message.sender) {
                (MessageKind::File, _) => "file_upload",
                (MessageKind::Voice, _) => "voice_message",
                (MessageKind::Text, Sender::Ai) => "ai_response",
                (MessageKind::Text, _) => "user_message",
            };
            out.timestamp = rfc3339(message.timestamp);
            out.sender = Some(message.sender.as_str());
            out.session_id = Some(session_id.as_str());
            out.content = Some(&message.content);
            out.file_id = message.file_id.as_deref();
            out.file_url = message.file_url.as_deref();
            out.message_id = Some(message.id.as_str());
            out.seq = Some(message.seq.0);
            out.client_message_id = message.client_message_id.as_ref().map(ClientMessageId::as_str);
            out.model_id = message.model_id.as_deref();
            for (key, value) in &message.metadata {
                out.metadata.insert(key, value.clone());
            }
            if let Some(reason) = message.finish_reason {
                out.metadata.insert("streaming", "false".into());
                out.metadata.insert("done", "true".into());
                out.metadata.insert("finish_reason", reason.as_str().into());
            }
        }
        ServerEvent::MessageAck { session_id, message_id, seq, client_message_id } => {
            out.kind = "message_ack";
            out.sender = Some(Sender::System.as_str());
            out.session_id = Some(session_id.as_str());
            out.message_id = Some(message_id.as_str());
            out.seq = Some(seq.0);
            out.client_message_id = Some(client_message_id.as_str());
        }
        ServerEvent::Handoff { session_id, joined, admin_id, admin_name } => {
            out.kind = if *joined { "admin_join" } else { "admin_leave" };
            out.sender = Some(Sender::System.as_str());
            out.session_id = Some(session_id.as_str());
            out.content = Some(if *joined {
                "An administrator joined the conversation."
            } else {
                "The administrator left the conversation."
            });
            out.metadata.insert("admin_id", admin_id.as_str().to_owned());
            out.metadata.insert("admin_name", admin_name.clone());
        }
        ServerEvent::Typing { session_id, user_id, typing } => {
            out.kind = "typing_indicator";
            out.sender = Some(Sender::User.as_str());
            out.session_id = Some(session_id.as_str());
            out.user_id = Some(user_id.as_str());
            out.metadata.insert("typing", typing.to_string());
        }
        ServerEvent::Error { session_id, code, message, retry_after } => {
            out.kind = "error";
            out.sender = Some(Sender::System.as_str());
            out.session_id = session_id.as_ref().map(SessionId::as_str);
            out.error = Some(ErrorDto {
                code: code.as_str(),
                message,
                recoverable: code.recoverable(),
                retry_after: retry_after.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)),
            });
        }
        ServerEvent::Notification { content } => {
            out.kind = "notification";
            out.sender = Some(Sender::System.as_str());
            out.content = Some(content);
        }
        ServerEvent::Pong => out.kind = "pong",
    }
    serde_json::to_string(&out).unwrap_or_else(|_| String::from(r#"{"type":"error"}"#))
}

#[cfg(test)]
mod tests {

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

    use super::*;

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

    #[test]
    fn done_frames_carry_empty_content_finish_reason_and_usage() {
        let frame = Frame::new(
            ServerEvent::AnswerDone {
                session_id: SessionId::parse("s").expect("id"),
                message_id: chatbox_domain::MessageId::parse("m").expect("id"),
                model_id: ModelId::parse("demo").expect("id"),
                seq: Some(Seq(2)),
                finish_reason: chatbox_domain::FinishReason::Stop,
                usage: Some(chatbox_domain::Usage {
                    prompt_tokens: 3,
                    completion_tokens: 4,
                    estimated: false,
                }),
                timing: chatbox_domain::AnswerTiming {
                    first_token: Some(std::time::Duration::from_millis(120)),
                    total: std::time::Duration::from_millis(900),
                },
                style: AnswerStyle::Assistant,
            },
            now(),
        );
        let json: Value = serde_json::from_str(&encode(&frame)).expect("json");
        assert_eq!(json["type"], "assistant");
        assert_eq!(json["content"], "");
        assert_eq!(json["seq"], 2);
        assert_eq!(json["metadata"]["done"], "true");
        assert_eq!(json["metadata"]["finish_reason"], "stop");
        assert_eq!(json["metadata"]["total_tokens"], "7");
        assert_eq!(json["metadata"]["time_to_first_token_ms"], "120");
        assert_eq!(json["metadata"]["duration_ms"], "900");
        assert_eq!(json["timestamp"], "2027-01-15T08:00:00.000Z");
        let error = Frame::new(
            ServerEvent::Error {
                session_id: None,
                code: chatbox_domain::ErrorCode::TooManyRequests,
                message: "slow".into(),
                retry_after: Some(std::time::Duration::from_millis(1500)),
            },
            now(),
        );
        let json: Value = serde_json::from_str(&encode(&error)).expect("json");
        assert_eq!(json["error"]["retry_after"], 1500);
        assert_eq!(json["error"]["recoverable"], true);
    }
}
