//! The JSON shapes of the session routes: a session summary, a stored message, a page of
//! a conversation. Field names are the earlier service's (its web pages read them);
//! `session_id` is repeated next to `id` because its admin page reads that name.

use chatbox_application::MessagePage;
use chatbox_application::ports::SessionSummary;
use chatbox_domain::{StoredMessage, Timestamp};
use chrono::SecondsFormat;
use serde_json::{Map, Value, json};

/// RFC 3339 with milliseconds, in UTC.
#[must_use]
pub fn time(timestamp: Timestamp) -> String {
    timestamp.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A session of a listing.
#[must_use]
pub fn summary(session: &SessionSummary) -> Value {
    let mut object = json!({
        "id": session.id.as_str(),
        "session_id": session.id.as_str(),
        "user_id": session.owner.as_str(),
        "name": session.name.as_deref().unwrap_or("New Chat"),
        "model_id": session.model_id.as_str(),
        "message_count": session.message_count,
        "start_time": time(session.created_at),
        "last_activity": time(session.last_activity),
        "is_active": session.ended_at.is_none(),
        "duration": session.duration_ms / 1000,
        "total_tokens": session.total_tokens,
        "avg_response_time": session.avg_response_ms.unwrap_or(0),
        "max_response_time": session.max_response_ms.unwrap_or(0),
        "help_requested": session.help_requested,
        "admin_assisted": session.admin_assisted,
    });
    if let Some(map) = object.as_object_mut() {
        if let Some(ended) = session.ended_at {
            map.insert("end_time".into(), Value::String(time(ended)));
        }
        if let Some(admin) = &session.assisting_admin_name {
            map.insert("assisting_admin_name".into(), Value::String(admin.clone()));
        }
    }
    object
}

/// A stored message.
#[must_use]
pub fn message(message: &StoredMessage) -> Value {
    let mut object = Map::new();
    object.insert("message_id".into(), json!(message.id.as_str()));
    object.insert("seq".into(), json!(message.seq.0));
    object.insert("type".into(), json!(message.kind.as_str()));
    object.insert("sender".into(), json!(message.sender.as_str()));
    object.insert("content".into(), json!(message.content));
    object.insert("timestamp".into(), json!(time(message.timestamp)));
    if let Some(file_id) = &message.file_id {
        object.insert("file_id".into(), json!(file_id));
    }
    if let Some(file_url) = &message.file_url {
        object.insert("file_url".into(), json!(file_url));
    }
    if !message.metadata.is_empty() {
        object.insert("metadata".into(), json!(message.metadata));
    }
    if let Some(model_id) = &message.model_id {
        object.insert("model_id".into(), json!(model_id));
    }
    if let Some(reason) = message.finish_reason {
        object.insert("finish_reason".into(), json!(reason.as_str()));
    }
    if let Some(id) = &message.client_message_id {
        object.insert("client_message_id".into(), json!(id.as_str()));
    }
    Value::Object(object)
}

/// A page of a conversation: `{session_id, name, model_id, messages, has_more}` (plus
/// the owner and status for admins).
#[must_use]
pub fn conversation(page: &MessagePage, for_admin: bool) -> Value {
    let session = &page.session;
    let mut object = json!({
        "session_id": session.id.as_str(),
        "name": session.display_name(),
        "model_id": session.model_id.as_str(),
        "is_active": session.is_active(),
        "messages": page.messages.iter().map(message).collect::<Vec<_>>(),
        "has_more": page.more,
    });
    if for_admin && let Some(map) = object.as_object_mut() {
        map.insert("user_id".into(), json!(session.owner.as_str()));
        map.insert("start_time".into(), json!(time(session.created_at)));
        map.insert("last_activity".into(), json!(time(session.last_activity)));
        map.insert("message_count".into(), json!(session.message_count));
        map.insert("total_tokens".into(), json!(session.total_tokens));
        map.insert("handoff".into(), json!(handoff_name(&session.handoff)));
        if let Some(ended) = session.ended_at() {
            map.insert("end_time".into(), json!(time(ended)));
        }
    }
    object
}

fn handoff_name(state: &chatbox_domain::HandoffState) -> &'static str {
    match state {
        chatbox_domain::HandoffState::Ai => "ai",
        chatbox_domain::HandoffState::HelpRequested => "help_requested",
        chatbox_domain::HandoffState::AdminAssisting { .. } => "admin_assisting",
    }
}
