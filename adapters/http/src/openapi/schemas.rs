//! The OpenAPI document's component schemas: the JSON bodies the routes answer with
//! (`api/json.rs` builds them), kept next to each other so a field added there has one
//! place to be declared here.

use serde_json::{Value, json};

/// Every component schema, by name.
pub(super) fn schemas() -> Value {
    let time = json!({ "type": "string", "format": "date-time" });
    json!({
        "Error": {
            "type": "object", "required": ["error", "code"],
            "properties": { "error": { "type": "string" }, "code": { "type": "string" } }
        },
        "RateLimited": {
            "type": "object", "required": ["error", "message", "retry_after_ms"],
            "properties": {
                "error": { "const": "rate_limit_exceeded" },
                "message": { "type": "string" },
                "retry_after_ms": { "type": "integer", "minimum": 0 }
            }
        },
        "Health": { "type": "object", "required": ["status"], "properties": { "status": { "const": "ok" } } },
        "Readiness": {
            "type": "object", "required": ["status", "checks"],
            "properties": { "status": { "enum": ["ready", "not ready"] }, "checks": { "type": "object" } }
        },
        "SessionSummary": {
            "type": "object",
            "required": ["id", "session_id", "user_id", "name", "model_id", "message_count", "start_time",
                "last_activity", "is_active", "duration", "total_tokens", "avg_response_time",
                "max_response_time", "help_requested", "admin_assisted"],
            "properties": {
                "id": { "type": "string" }, "session_id": { "type": "string" }, "user_id": { "type": "string" },
                "name": { "type": "string" }, "model_id": { "type": "string" },
                "message_count": { "type": "integer", "minimum": 0 },
                "start_time": time, "last_activity": time, "end_time": time,
                "is_active": { "type": "boolean" },
                "duration": { "type": "integer", "minimum": 0, "description": "seconds" },
                "total_tokens": { "type": "integer", "minimum": 0 },
                "avg_response_time": { "type": "integer", "minimum": 0, "description": "milliseconds" },
                "max_response_time": { "type": "integer", "minimum": 0, "description": "milliseconds" },
                "help_requested": { "type": "boolean" }, "admin_assisted": { "type": "boolean" },
                "assisting_admin_name": { "type": "string" }
            }
        },
        "UserSessions": {
            "type": "object", "required": ["sessions", "user_id", "count", "limit", "offset", "truncated"],
            "properties": {
                "sessions": { "type": "array", "items": { "$ref": "#/components/schemas/SessionSummary" } },
                "user_id": { "type": "string" }, "count": { "type": "integer" }, "limit": { "type": "integer" },
                "offset": { "type": "integer" }, "truncated": { "type": "boolean" }
            }
        },
        "AdminSessions": {
            "type": "object", "required": ["sessions", "count", "total", "limit", "offset"],
            "properties": {
                "sessions": { "type": "array", "items": { "$ref": "#/components/schemas/SessionSummary" } },
                "count": { "type": "integer" }, "total": { "type": "integer" },
                "limit": { "type": "integer" }, "offset": { "type": "integer" }
            }
        },
        "Message": {
            "type": "object", "required": ["message_id", "seq", "type", "sender", "content", "timestamp"],
            "properties": {
                "message_id": { "type": "string" }, "seq": { "type": "integer", "minimum": 1 },
                "type": { "enum": ["text", "file_upload", "voice_message"] },
                "sender": { "enum": ["user", "ai", "admin", "system"] },
                "content": { "type": "string" }, "timestamp": time,
                "file_id": { "type": "string" }, "file_url": { "type": "string" },
                "metadata": { "type": "object", "additionalProperties": { "type": "string" } },
                "model_id": { "type": "string" }, "finish_reason": { "type": "string" },
                "client_message_id": { "type": "string" }
            }
        },
        "Conversation": {
            "type": "object", "required": ["session_id", "name", "model_id", "is_active", "messages", "has_more"],
            "properties": {
                "session_id": { "type": "string" }, "name": { "type": "string" }, "model_id": { "type": "string" },
                "is_active": { "type": "boolean" },
                "messages": { "type": "array", "items": { "$ref": "#/components/schemas/Message" } },
                "has_more": { "type": "boolean" }, "read_only": { "type": "boolean" },
                "user_id": { "type": "string" }, "start_time": time, "last_activity": time, "end_time": time,
                "message_count": { "type": "integer" }, "total_tokens": { "type": "integer" },
                "handoff": { "enum": ["ai", "help_requested", "admin_assisting"] }
            }
        },
        "Ended": {
            "type": "object", "required": ["status", "session_id"],
            "properties": { "status": { "const": "ended" }, "session_id": { "type": "string" } }
        },
        "Upload": {
            "type": "object", "required": ["file_id", "file_url", "name", "size", "type", "sha256"],
            "properties": {
                "file_id": { "type": "string", "pattern": "^[0-9a-f]{32}$" },
                "file_url": { "type": "string" },
                "name": { "type": "string" },
                "size": { "type": "integer", "minimum": 1 },
                "type": { "type": "string" },
                "sha256": { "type": "string", "pattern": "^[0-9a-f]{64}$" }
            }
        },
        "Share": {
            "type": "object", "required": ["share_token", "expires_at", "session_id"],
            "properties": { "share_token": { "type": "string" }, "expires_at": time, "session_id": { "type": "string" } }
        },
        "AdminMetrics": {
            "type": "object",
            "required": ["total_sessions", "active_sessions", "help_requested_sessions", "admin_assisted_sessions",
                "total_messages", "total_tokens", "avg_response_time_ms", "max_response_time_ms",
                "connected_sockets", "live_sessions", "time_range"],
            "properties": {
                "total_sessions": { "type": "integer" }, "active_sessions": { "type": "integer" },
                "help_requested_sessions": { "type": "integer" }, "admin_assisted_sessions": { "type": "integer" },
                "total_messages": { "type": "integer" }, "total_tokens": { "type": "integer" },
                "avg_response_time_ms": { "type": "integer" }, "max_response_time_ms": { "type": "integer" },
                "connected_sockets": { "type": "integer" }, "live_sessions": { "type": "integer" },
                "time_range": {
                    "type": "object",
                    "properties": { "start_time": { "type": ["string", "null"] }, "end_time": { "type": ["string", "null"] } }
                }
            }
        },
        "Takeover": {
            "type": "object", "required": ["status", "session_id", "admin_id", "admin_name"],
            "properties": {
                "status": { "const": "assisting" }, "session_id": { "type": "string" },
                "admin_id": { "type": "string" }, "admin_name": { "type": "string" }
            }
        },
        "Released": {
            "type": "object", "required": ["status", "session_id"],
            "properties": { "status": { "const": "released" }, "session_id": { "type": "string" } }
        }
    })
}
