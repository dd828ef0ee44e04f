//! How a session's frame travels between replicas: one JSON object per stream entry,
//! holding the event (every field, so the receiving replica rebuilds the same
//! [`ServerEvent`] and serialises it for its own sockets), its time, and the session's
//! last stored `seq` when it was published (a copy that already has later messages
//! drops it as stale). A request to stop the answer travels as `{"stop":true}`.
//!
//! This is the replicas' own format, not the clients': it may change between releases,
//! and during a rolling update the replicas of both releases read each other's entries,
//! so a field is only ever added with a default, and an entry that cannot be read is
//! skipped (its message is still in the store).

use std::sync::Arc;
use std::time::Duration;

use chatbox_application::events::{AnswerStyle, Frame, ServerEvent};
use chatbox_application::settings::ModelInfo;
use chatbox_domain::validation::Metadata;
use chatbox_domain::{
    AnswerTiming, ClientMessageId, ErrorCode, FinishReason, MessageId, MessageKind, ModelId, Sender, Seq,
    SessionId, StoredMessage, Timestamp, Usage, UserId,
};
use serde_json::{Map, Value, json};

/// The `state` values of a session-wide `connection_status`: a frame naming another is
/// not rebuilt (the field is a `&'static str`).
const STATES: [&str; 6] =
    ["connected", "resumed", "model_changed", "model_selected", "ended", "help_requested"];

/// What one stream entry carries.
#[derive(Debug)]
pub enum Carried {
    /// A frame, with the session's last stored `seq` when it was published.
    Frame(Arc<Frame>, Seq),
    /// Stop the answer in progress.
    Stop,
}

/// The entry text of a stop request.
pub const STOP: &str = r#"{"stop":true}"#;

/// The entry text of `frame`, published when the session's last stored `seq` was `at`.
/// `None` for a frame that never concerns a session's other sockets (`pong`).
#[must_use]
pub fn encode(frame: &Frame, at: Seq) -> Option<String> {
    let event = event_json(&frame.event)?;
    Some(json!({ "at": at.0, "ts": time(frame.timestamp), "event": event }).to_string())
}

/// Reads an entry; `None` when it is not one this format describes.
#[must_use]
pub fn decode(text: &str, models: &Arc<[ModelInfo]>) -> Option<Carried> {
    let value: Value = serde_json::from_str(text).ok()?;
    if value.get("stop").and_then(Value::as_bool) == Some(true) {
        return Some(Carried::Stop);
    }
    let at = Seq(value.get("at")?.as_u64()?);
    let timestamp = parse_time(value.get("ts")?)?;
    let event = event_from(value.get("event")?, models)?;
    Some(Carried::Frame(Frame::new(event, timestamp), at))
}

fn time(at: Timestamp) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

fn parse_time(value: &Value) -> Option<Timestamp> {
    chrono::DateTime::parse_from_rfc3339(value.as_str()?).ok().map(|at| at.with_timezone(&chrono::Utc))
}

const fn style_name(style: AnswerStyle) -> &'static str {
    match style {
        AnswerStyle::AiResponse => "ai_response",
        AnswerStyle::Assistant => "assistant",
    }
}

fn style_from(value: &Value) -> Option<AnswerStyle> {
    match value.as_str()? {
        "ai_response" => Some(AnswerStyle::AiResponse),
        "assistant" => Some(AnswerStyle::Assistant),
        _ => None,
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

fn usage_json(usage: Option<Usage>) -> Value {
    usage.map_or(Value::Null, |usage| {
        json!({ "prompt": usage.prompt_tokens, "completion": usage.completion_tokens, "estimated": usage.estimated })
    })
}

fn usage_from(value: Option<&Value>) -> Option<Usage> {
    let value = value.filter(|v| !v.is_null())?;
    Some(Usage {
        prompt_tokens: value.get("prompt")?.as_u64()?,
        completion_tokens: value.get("completion")?.as_u64()?,
        estimated: value.get("estimated")?.as_bool()?,
    })
}

fn timing_json(timing: AnswerTiming) -> Value {
    json!({ "first_token_ms": timing.first_token.map(millis), "total_ms": millis(timing.total) })
}

fn timing_from(value: &Value) -> Option<AnswerTiming> {
    Some(AnswerTiming {
        first_token: value.get("first_token_ms").and_then(Value::as_u64).map(Duration::from_millis),
        total: Duration::from_millis(value.get("total_ms")?.as_u64()?),
    })
}

fn message_json(message: &StoredMessage) -> Value {
    json!({
        "id": message.id.as_str(),
        "seq": message.seq.0,
        "sender": message.sender.as_str(),
        "kind": message.kind.as_str(),
        "content": message.content,
        "ts": time(message.timestamp),
        "file_id": message.file_id,
        "file_url": message.file_url,
        "metadata": message.metadata,
        "client_message_id": message.client_message_id.as_ref().map(ClientMessageId::as_str),
        "finish_reason": message.finish_reason.map(FinishReason::as_str),
        "usage": usage_json(message.usage),
        "model_id": message.model_id,
        "timing": message.timing.map_or(Value::Null, timing_json),
    })
}

fn text(value: &Value, name: &str) -> Option<String> {
    value.get(name)?.as_str().map(str::to_owned)
}

fn optional_text(value: &Value, name: &str) -> Option<Option<String>> {
    match value.get(name) {
        None | Some(Value::Null) => Some(None),
        Some(Value::String(text)) => Some(Some(text.clone())),
        Some(_) => None,
    }
}

fn message_from(value: &Value) -> Option<StoredMessage> {
    let metadata: Metadata = match value.get("metadata") {
        Some(Value::Object(map)) => {
            map.iter().map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned()))).collect::<Option<_>>()?
        }
        _ => Metadata::default(),
    };
    Some(StoredMessage {
        id: MessageId::parse(value.get("id")?.as_str()?).ok()?,
        seq: Seq(value.get("seq")?.as_u64()?),
        sender: Sender::parse(value.get("sender")?.as_str()?)?,
        kind: MessageKind::parse(value.get("kind")?.as_str()?)?,
        content: text(value, "content")?,
        timestamp: parse_time(value.get("ts")?)?,
        file_id: optional_text(value, "file_id")?,
        file_url: optional_text(value, "file_url")?,
        metadata,
        client_message_id: match optional_text(value, "client_message_id")? {
            Some(key) => Some(ClientMessageId::parse(&key).ok()?),
            None => None,
        },
        finish_reason: match optional_text(value, "finish_reason")? {
            Some(reason) => Some(FinishReason::parse(&reason)?),
            None => None,
        },
        usage: usage_from(value.get("usage")),
        model_id: optional_text(value, "model_id")?,
        timing: value.get("timing").filter(|t| !t.is_null()).and_then(timing_from),
    })
}

/// The event as JSON, tagged by `type`.
fn event_json(event: &ServerEvent) -> Option<Value> {
    Some(match event {
        ServerEvent::ConnectionStatus { user_id, session_id, model_id, state, content, .. } => json!({
            "type": "status", "user_id": user_id.as_str(), "session_id": session_id.as_str(),
            "model_id": model_id.as_str(), "state": state, "content": content,
        }),
        ServerEvent::Loading { session_id, message_id, style } => json!({
            "type": "loading", "session_id": session_id.as_str(), "message_id": message_id.as_str(),
            "style": style_name(*style),
        }),
        ServerEvent::AnswerChunk { session_id, message_id, model_id, delta, style } => json!({
            "type": "chunk", "session_id": session_id.as_str(), "message_id": message_id.as_str(),
            "model_id": model_id.as_str(), "delta": &**delta, "style": style_name(*style),
        }),
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
            json!({
                "type": "done", "session_id": session_id.as_str(), "message_id": message_id.as_str(),
                "model_id": model_id.as_str(), "seq": seq.map(|seq| seq.0),
                "finish_reason": finish_reason.as_str(), "usage": usage_json(*usage),
                "timing": timing_json(*timing), "style": style_name(*style),
            })
        }
        ServerEvent::Stored { session_id, message } => json!({
            "type": "stored", "session_id": session_id.as_str(), "message": message_json(message),
        }),
        ServerEvent::MessageAck { session_id, message_id, seq, client_message_id } => json!({
            "type": "ack", "session_id": session_id.as_str(), "message_id": message_id.as_str(),
            "seq": seq.0, "client_message_id": client_message_id.as_str(),
        }),
        ServerEvent::Typing { session_id, user_id, typing } => json!({
            "type": "typing", "session_id": session_id.as_str(), "user_id": user_id.as_str(), "typing": typing,
        }),
        ServerEvent::Error { session_id, code, message, retry_after } => json!({
            "type": "error", "session_id": session_id.as_ref().map(SessionId::as_str), "code": code.as_str(),
            "message": message, "retry_after_ms": retry_after.map(millis),
        }),
        ServerEvent::Handoff { session_id, joined, admin_id, admin_name } => json!({
            "type": "handoff", "session_id": session_id.as_str(), "joined": joined,
            "admin_id": admin_id.as_str(), "admin_name": admin_name,
        }),
        ServerEvent::Notification { content } => json!({ "type": "notification", "content": content }),
        ServerEvent::Pong => return None,
    })
}

fn session_id(value: &Value) -> Option<SessionId> {
    SessionId::parse(value.get("session_id")?.as_str()?).ok()
}

fn message_id(value: &Value) -> Option<MessageId> {
    MessageId::parse(value.get("message_id")?.as_str()?).ok()
}

fn model_id(value: &Value) -> Option<ModelId> {
    ModelId::parse(value.get("model_id")?.as_str()?).ok()
}

fn user_id(value: &Value, name: &str) -> Option<UserId> {
    UserId::parse(value.get(name)?.as_str()?).ok()
}

fn event_from(value: &Value, models: &Arc<[ModelInfo]>) -> Option<ServerEvent> {
    let _: &Map<String, Value> = value.as_object()?;
    Some(match value.get("type")?.as_str()? {
        "status" => {
            let state = value.get("state")?.as_str()?;
            ServerEvent::ConnectionStatus {
                user_id: user_id(value, "user_id")?,
                session_id: session_id(value)?,
                models: Arc::clone(models),
                model_id: model_id(value)?,
                state: STATES.into_iter().find(|known| *known == state)?,
                content: optional_text(value, "content")?,
            }
        }
        "loading" => ServerEvent::Loading {
            session_id: session_id(value)?,
            message_id: message_id(value)?,
            style: style_from(value.get("style")?)?,
        },
        "chunk" => ServerEvent::AnswerChunk {
            session_id: session_id(value)?,
            message_id: message_id(value)?,
            model_id: model_id(value)?,
            delta: Arc::from(value.get("delta")?.as_str()?),
            style: style_from(value.get("style")?)?,
        },
        "done" => ServerEvent::AnswerDone {
            session_id: session_id(value)?,
            message_id: message_id(value)?,
            model_id: model_id(value)?,
            seq: value.get("seq").and_then(Value::as_u64).map(Seq),
            finish_reason: FinishReason::parse(value.get("finish_reason")?.as_str()?)?,
            usage: usage_from(value.get("usage")),
            timing: timing_from(value.get("timing")?)?,
            style: style_from(value.get("style")?)?,
        },
        "stored" => ServerEvent::Stored {
            session_id: session_id(value)?,
            message: Arc::new(message_from(value.get("message")?)?),
        },
        "ack" => ServerEvent::MessageAck {
            session_id: session_id(value)?,
            message_id: message_id(value)?,
            seq: Seq(value.get("seq")?.as_u64()?),
            client_message_id: ClientMessageId::parse(value.get("client_message_id")?.as_str()?).ok()?,
        },
        "typing" => ServerEvent::Typing {
            session_id: session_id(value)?,
            user_id: user_id(value, "user_id")?,
            typing: value.get("typing")?.as_bool()?,
        },
        "error" => {
            let code = value.get("code")?.as_str()?;
            ServerEvent::Error {
                session_id: match optional_text(value, "session_id")? {
                    Some(id) => Some(SessionId::parse(&id).ok()?),
                    None => None,
                },
                code: ErrorCode::ALL.iter().copied().find(|known| known.as_str() == code)?,
                message: text(value, "message")?,
                retry_after: value.get("retry_after_ms").and_then(Value::as_u64).map(Duration::from_millis),
            }
        }
        "handoff" => ServerEvent::Handoff {
            session_id: session_id(value)?,
            joined: value.get("joined")?.as_bool()?,
            admin_id: user_id(value, "admin_id")?,
            admin_name: text(value, "admin_name")?,
        },
        "notification" => ServerEvent::Notification { content: text(value, "content")? },
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn models() -> Arc<[ModelInfo]> {
        Arc::from(vec![ModelInfo { id: ModelId::parse("m").expect("id"), name: "M".into() }])
    }

    fn at() -> Timestamp {
        chrono::DateTime::from_timestamp(1_800_000_000, 123_456_000).expect("time")
    }

    fn every_event() -> Vec<ServerEvent> {
        let session_id = SessionId::parse("s1").expect("id");
        let message_id = MessageId::parse("m1").expect("id");
        let model_id = ModelId::parse("m").expect("id");
        let mut message =
            StoredMessage::text(message_id.clone(), Seq(7), Sender::Ai, "héllo \"x\"".into(), at());
        message.file_id = Some("f".into());
        message.metadata.insert("k".into(), "v".into());
        message.client_message_id = Some(ClientMessageId::parse("c1").expect("id"));
        message.finish_reason = Some(FinishReason::Length);
        message.usage = Some(Usage { prompt_tokens: 3, completion_tokens: 4, estimated: true });
        message.model_id = Some("m".into());
        message.timing =
            Some(AnswerTiming { first_token: Some(Duration::from_millis(5)), total: Duration::from_secs(2) });
        vec![
            ServerEvent::ConnectionStatus {
                user_id: UserId::parse("u").expect("id"),
                session_id: session_id.clone(),
                models: models(),
                model_id: model_id.clone(),
                state: "help_requested",
                content: Some("help".into()),
            },
            ServerEvent::Loading {
                session_id: session_id.clone(),
                message_id: message_id.clone(),
                style: AnswerStyle::Assistant,
            },
            ServerEvent::AnswerChunk {
                session_id: session_id.clone(),
                message_id: message_id.clone(),
                model_id: model_id.clone(),
                delta: Arc::from("tok"),
                style: AnswerStyle::AiResponse,
            },
            ServerEvent::AnswerDone {
                session_id: session_id.clone(),
                message_id: message_id.clone(),
                model_id,
                seq: Some(Seq(8)),
                finish_reason: FinishReason::Cancelled,
                usage: None,
                timing: AnswerTiming { first_token: None, total: Duration::from_millis(1500) },
                style: AnswerStyle::AiResponse,
            },
            ServerEvent::Stored { session_id: session_id.clone(), message: Arc::new(message) },
            ServerEvent::MessageAck {
                session_id: session_id.clone(),
                message_id,
                seq: Seq(9),
                client_message_id: ClientMessageId::parse("c2").expect("id"),
            },
            ServerEvent::Typing {
                session_id: session_id.clone(),
                user_id: UserId::parse("u").expect("id"),
                typing: true,
            },
            ServerEvent::Error {
                session_id: Some(session_id.clone()),
                code: ErrorCode::LlmTimeout,
                message: "slow".into(),
                retry_after: Some(Duration::from_millis(2500)),
            },
            ServerEvent::Handoff {
                session_id,
                joined: true,
                admin_id: UserId::parse("ada").expect("id"),
                admin_name: "Ada".into(),
            },
            ServerEvent::Notification { content: "note".into() },
        ]
    }

    #[test]
    fn every_session_event_travels_between_replicas_unchanged() {
        for event in every_event() {
            let frame = Frame::new(event.clone(), at());
            let text = encode(&frame, Seq(6)).expect("encoded");
            let Some(Carried::Frame(read, published_at)) = decode(&text, &models()) else {
                panic!("not read back: {text}");
            };
            assert_eq!(read.event, event, "{text}");
            assert_eq!(read.timestamp, at());
            assert_eq!(published_at, Seq(6));
        }
    }

    #[test]
    fn a_stop_and_unreadable_entries_are_told_apart() {
        assert!(matches!(decode(STOP, &models()), Some(Carried::Stop)));
        assert!(encode(&Frame::new(ServerEvent::Pong, at()), Seq(0)).is_none());
        for junk in [
            "",
            "{}",
            "[1]",
            r#"{"at":1,"ts":"x","event":{}}"#,
            r#"{"at":1,"ts":"2026-01-01T00:00:00Z","event":{"type":"status","state":"dancing"}}"#,
        ] {
            assert!(decode(junk, &models()).is_none(), "{junk}");
        }
    }
}
