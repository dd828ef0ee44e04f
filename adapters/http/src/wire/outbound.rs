//! Outbound: each server event encoded into its JSON frame, once per frame (the
//! application caches the bytes), into a buffer of about the frame's length.

use std::borrow::Cow;
use std::collections::BTreeMap;

use chatbox_application::events::{AnswerStyle, Frame, ServerEvent};
use chatbox_domain::{ClientMessageId, MessageKind, Sender, SessionId, Timestamp};
use chrono::SecondsFormat;
use serde::Serialize;

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
    metadata: BTreeMap<&'a str, Cow<'a, str>>,
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

impl OutFrame<'_> {
    /// About the length of the frame's JSON: its texts, and room for the field names and
    /// punctuation. Enough for a frame without escapes, so it is written into one
    /// allocation (a longer one grows its buffer once); the bytes are kept as long as the
    /// frame, so it is not much more either.
    fn len_hint(&self) -> usize {
        /// A field's name in quotes, its colon and comma, and a value's quotes (the
        /// longest name needs a few bytes more, which the others leave over).
        const PER_FIELD: usize = 20;
        let texts = [
            self.session_id,
            self.content,
            self.file_id,
            self.file_url,
            self.model_id,
            self.sender,
            self.message_id,
            self.client_message_id,
            self.user_id,
        ];
        let texts = texts.into_iter().flatten().map(|text| text.len().saturating_add(PER_FIELD));
        let metadata =
            self.metadata.iter().map(|(key, value)| key.len().saturating_add(value.len()).saturating_add(6));
        let models =
            self.models.iter().flatten().map(|m| m.id.len().saturating_add(m.name.len()).saturating_add(20));
        let error =
            self.error.iter().map(|e| e.code.len().saturating_add(e.message.len()).saturating_add(80));
        let numbers = if self.seq.is_some() { PER_FIELD } else { 0 };
        texts
            .chain(metadata)
            .chain(models)
            .chain(error)
            .fold(48 + self.kind.len() + self.timestamp.len() + numbers, usize::saturating_add)
    }
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

/// Encodes a frame as its JSON text, written into one allocation of about its length.
#[must_use]
pub fn encode(frame: &Frame) -> String {
    if let ServerEvent::AnswerChunk { session_id, message_id, model_id, delta, style } = &frame.event
        && let Some(text) = super::chunk::encode(
            answer_type(*style),
            session_id.as_str(),
            delta,
            model_id.as_str(),
            frame.timestamp,
            message_id.as_str(),
        )
    {
        return text;
    }
    encode_fields(frame)
}

/// Encodes any frame through its outbound shape (the chunk's own writer is checked
/// against this).
pub(super) fn encode_fields(frame: &Frame) -> String {
    let out = out_frame(frame);
    let mut text = Vec::with_capacity(out.len_hint());
    match serde_json::to_writer(&mut text, &out).map(|()| String::from_utf8(text)) {
        Ok(Ok(text)) => text,
        _ => String::from(r#"{"type":"error"}"#),
    }
}

/// The outbound shape of a frame, borrowing from it.
fn out_frame(frame: &Frame) -> OutFrame<'_> {
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
            out.metadata.insert("state", Cow::Borrowed(state));
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
                out.metadata.insert("prompt_tokens", usage.prompt_tokens.to_string().into());
                out.metadata.insert("completion_tokens", usage.completion_tokens.to_string().into());
                out.metadata.insert("total_tokens", usage.total_tokens().to_string().into());
                out.metadata.insert("usage_estimated", usage.estimated.to_string().into());
            }
            if let Some(first_token) = timing.first_token {
                out.metadata.insert("time_to_first_token_ms", first_token.as_millis().to_string().into());
            }
            out.metadata.insert("duration_ms", timing.total.as_millis().to_string().into());
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
                out.metadata.insert(key, Cow::Borrowed(value));
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
            out.metadata.insert("admin_id", admin_id.as_str().into());
            out.metadata.insert("admin_name", admin_name.as_str().into());
        }
        ServerEvent::Typing { session_id, user_id, typing } => {
            out.kind = "typing_indicator";
            out.sender = Some(Sender::User.as_str());
            out.session_id = Some(session_id.as_str());
            out.user_id = Some(user_id.as_str());
            out.metadata.insert("typing", typing.to_string().into());
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
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chatbox_domain::{ModelId, Seq};
    use serde_json::Value;

    fn now() -> Timestamp {
        chrono::DateTime::from_timestamp(1_800_000_000, 0).expect("time")
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

    /// The frames sent most, and a few others: each is written into the buffer sized
    /// for it, without growing it, and the buffer is not much larger than the frame.
    #[test]
    fn frames_are_written_into_one_buffer_of_about_their_length() {
        let session_id = SessionId::parse("0f8c5e2a4b7d4c1e9a3b6d8f0e2c4a6b").expect("id");
        let message_id =
            chatbox_domain::MessageId::parse("2b4d6f8a-0c1e-4a3b-8d5f-7e9a1c3b5d7f").expect("id");
        let model_id = ModelId::parse("gpt-4o-mini").expect("id");
        let events = [
            ServerEvent::AnswerChunk {
                session_id: session_id.clone(),
                message_id: message_id.clone(),
                model_id: model_id.clone(),
                delta: "déjà vu, 12 tokens".into(),
                style: AnswerStyle::AiResponse,
            },
            ServerEvent::AnswerDone {
                session_id: session_id.clone(),
                message_id,
                model_id: model_id.clone(),
                seq: Some(Seq(41)),
                finish_reason: chatbox_domain::FinishReason::Length,
                usage: Some(chatbox_domain::Usage {
                    prompt_tokens: 1200,
                    completion_tokens: 800,
                    estimated: true,
                }),
                timing: chatbox_domain::AnswerTiming {
                    first_token: Some(std::time::Duration::from_millis(350)),
                    total: std::time::Duration::from_millis(41_000),
                },
                style: AnswerStyle::Assistant,
            },
            ServerEvent::ConnectionStatus {
                user_id: chatbox_domain::UserId::parse("user-42").expect("id"),
                session_id: session_id.clone(),
                models: vec![chatbox_application::settings::ModelInfo {
                    id: model_id.clone(),
                    name: "GPT-4o mini".into(),
                }]
                .into(),
                model_id,
                state: "connected",
                content: None,
            },
            ServerEvent::Error {
                session_id: Some(session_id),
                code: chatbox_domain::ErrorCode::TooManyRequests,
                message: "Too many messages, slow down".into(),
                retry_after: Some(std::time::Duration::from_secs(3)),
            },
            ServerEvent::Pong,
        ];
        for event in events {
            let frame = Frame::new(event, now());
            let hint = out_frame(&frame).len_hint();
            let text = encode_fields(&frame);
            assert_eq!(text.capacity(), hint, "written without growing: {text}");
            assert!(hint - text.len() <= 64, "{hint} bytes for {}: {text}", text.len());
        }
    }
}
