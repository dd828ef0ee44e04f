//! The OpenAPI 3.1 document of every HTTP route, served at `P/openapi.json`.
//!
//! Written here rather than derived, next to [`ROUTES`](crate::routes::ROUTES): a test
//! checks that the document lists exactly the routes the router serves, and CI runs
//! `schemathesis` against the running server, so the document cannot drift from what
//! the routes answer.

use http::StatusCode;
use serde_json::{Value, json};

use crate::routes::{HttpResponse, json_response};

fn error_response(description: &str) -> Value {
    json!({ "description": description, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } })
}

fn limited() -> Value {
    json!({
        "description": "Rate limited",
        "headers": { "Retry-After": { "schema": { "type": "integer", "minimum": 1 } } },
        "content": { "application/json": { "schema": { "$ref": "#/components/schemas/RateLimited" } } }
    })
}

fn ok(description: &str, schema: &str) -> Value {
    json!({ "description": description, "content": { "application/json": { "schema": { "$ref": format!("#/components/schemas/{schema}") } } } })
}

fn path_param(name: &str) -> Value {
    json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string", "minLength": 1, "maxLength": 128 } })
}

fn query_param(name: &str, schema: &Value) -> Value {
    json!({ "name": name, "in": "query", "required": false, "schema": schema })
}

fn page_params(max: u64) -> Vec<Value> {
    vec![
        query_param("limit", &json!({ "type": "integer", "minimum": 1, "maximum": max })),
        query_param("offset", &json!({ "type": "integer", "minimum": 0 })),
    ]
}

fn message_params() -> Vec<Value> {
    vec![
        query_param("after_seq", &json!({ "type": "integer", "minimum": 0 })),
        query_param("limit", &json!({ "type": "integer", "minimum": 1, "maximum": 1000 })),
    ]
}

/// The usual answers of an authenticated route.
fn authenticated(mut responses: Value, admin: bool) -> Value {
    if let Some(map) = responses.as_object_mut() {
        map.insert("400".into(), error_response("Malformed parameter"));
        map.insert("401".into(), error_response("Missing or invalid token"));
        map.insert("429".into(), limited());
        map.insert("503".into(), error_response("Storage unavailable"));
        if admin {
            map.insert("403".into(), error_response("Admin role required"));
        }
    }
    responses
}

fn operation(id: &str, summary: &str, parameters: Vec<Value>, responses: Value, secured: bool) -> Value {
    let mut op =
        json!({ "operationId": id, "summary": summary, "parameters": parameters, "responses": responses });
    if secured && let Some(map) = op.as_object_mut() {
        map.insert("security".into(), json!([{ "bearer": [] }]));
    }
    op
}

fn schemas() -> Value {
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

/// The document, for the path prefix `prefix`.
#[must_use]
#[allow(clippy::too_many_lines)] // one entry per route, read top to bottom
pub fn document(prefix: &str) -> Value {
    let date = json!({ "type": "string", "description": "RFC 3339 or YYYY-MM-DD" });
    let boolean = json!({ "enum": ["true", "false"] });
    let mut admin_filters = vec![
        query_param("user_id", &json!({ "type": "string" })),
        query_param("status", &json!({ "enum": ["active", "ended"] })),
        query_param("admin_assisted", &boolean),
        query_param("help_requested", &boolean),
        query_param("start_time_from", &date),
        query_param("start_time_to", &date),
        query_param(
            "sort_by",
            &json!({ "enum": ["start_time", "end_time", "last_activity", "duration", "message_count", "total_tokens", "user_id"] }),
        ),
        query_param("sort_order", &json!({ "enum": ["asc", "desc"] })),
    ];
    admin_filters.extend(page_params(1000));
    let not_found = error_response("No such session (or not yours)");
    let public_limited = json!({ "429": limited() });
    let mut paths = serde_json::Map::new();
    let mut add = |path: &str, method: &str, op: Value| {
        let entry = paths.entry(format!("{prefix}{path}")).or_insert_with(|| json!({}));
        if let Some(map) = entry.as_object_mut() {
            map.insert(method.to_owned(), op);
        }
    };
    let with = |mut base: Value, extra: &[(&str, Value)]| {
        if let Some(map) = base.as_object_mut() {
            for (status, response) in extra {
                map.insert((*status).to_owned(), response.clone());
            }
        }
        base
    };
    add(
        "/healthz",
        "get",
        operation(
            "healthz",
            "Liveness",
            vec![],
            with(json!({ "200": ok("Alive", "Health") }), &[("429", limited())]),
            false,
        ),
    );
    add(
        "/readyz",
        "get",
        operation(
            "readyz",
            "Readiness: storage answers, a model is configured, not draining",
            vec![],
            with(
                json!({ "200": ok("Ready", "Readiness"), "503": ok("Not ready", "Readiness") }),
                &[("429", limited())],
            ),
            false,
        ),
    );
    add(
        "/ws",
        "get",
        operation(
            "websocket",
            "WebSocket upgrade (see docs/protocol.md)",
            vec![
                query_param("token", &json!({ "type": "string" })),
                query_param("session_id", &json!({ "type": "string" })),
                query_param("last_seq", &json!({ "type": "integer", "minimum": 0 })),
            ],
            json!({
                "101": { "description": "Switching protocols" },
                "400": error_response("Not a WebSocket upgrade"),
                "401": error_response("Missing or invalid token"),
                "403": error_response("Origin not allowed"),
                "429": error_response("Connection limit reached"),
                "503": error_response("Draining for shutdown")
            }),
            false,
        ),
    );
    add(
        "/openapi.json",
        "get",
        operation(
            "openapi",
            "This document",
            vec![],
            with(
                json!({ "200": { "description": "OpenAPI 3.1", "content": { "application/json": { "schema": { "type": "object" } } } } }),
                &[("429", limited())],
            ),
            false,
        ),
    );
    add(
        "/sessions",
        "get",
        operation(
            "listSessions",
            "The caller's sessions, most recent first",
            page_params(200),
            authenticated(json!({ "200": ok("Sessions", "UserSessions") }), false),
            true,
        ),
    );
    let mut read_params = vec![path_param("session_id")];
    read_params.extend(message_params());
    add(
        "/sessions/{session_id}",
        "get",
        operation(
            "readSession",
            "One of the caller's sessions, messages paged by seq",
            read_params.clone(),
            authenticated(
                json!({ "200": ok("Conversation", "Conversation"), "404": not_found.clone() }),
                false,
            ),
            true,
        ),
    );
    add(
        "/sessions/{session_id}/end",
        "post",
        operation(
            "endSession",
            "Ends the session (idempotent)",
            vec![path_param("session_id")],
            authenticated(json!({ "200": ok("Ended", "Ended"), "404": not_found.clone() }), false),
            true,
        ),
    );
    add(
        "/sessions/{session_id}/share",
        "post",
        operation(
            "shareSession",
            "Creates a share link valid for SHARE_TTL (replaces any earlier one)",
            vec![path_param("session_id")],
            authenticated(json!({ "200": ok("Share link", "Share"), "404": not_found.clone() }), false),
            true,
        ),
    );
    add(
        "/sessions/{session_id}/share",
        "delete",
        operation(
            "revokeShare",
            "Revokes the share link",
            vec![path_param("session_id")],
            authenticated(json!({ "204": { "description": "Revoked" }, "404": not_found.clone() }), false),
            true,
        ),
    );
    let mut shared_params = vec![path_param("share_token")];
    shared_params.extend(message_params());
    add(
        "/shared/{share_token}",
        "get",
        operation(
            "readShared",
            "The read-only conversation a share link opens",
            shared_params,
            with(
                json!({ "200": ok("Conversation", "Conversation"), "400": error_response("Malformed parameter"), "404": error_response("Unknown, expired or revoked link"), "503": error_response("Storage unavailable") }),
                &[("429", public_limited["429"].clone())],
            ),
            false,
        ),
    );
    add(
        "/admin/sessions",
        "get",
        operation(
            "adminSessions",
            "Every session, filtered and sorted, with a total",
            admin_filters.clone(),
            authenticated(json!({ "200": ok("Sessions", "AdminSessions") }), true),
            true,
        ),
    );
    let mut admin_read = vec![path_param("session_id")];
    admin_read.extend(message_params());
    add(
        "/admin/sessions/{session_id}",
        "get",
        operation(
            "adminSession",
            "One session in full",
            admin_read,
            authenticated(
                json!({ "200": ok("Conversation", "Conversation"), "404": not_found.clone() }),
                true,
            ),
            true,
        ),
    );
    let mut user_params = vec![path_param("user_id")];
    user_params.extend(admin_filters.into_iter().filter(|p| p["name"] != "user_id"));
    add(
        "/admin/users/{user_id}/sessions",
        "get",
        operation(
            "adminUserSessions",
            "One user's sessions",
            user_params,
            authenticated(
                json!({ "200": ok("Sessions", "AdminSessions"), "404": error_response("Malformed user id") }),
                true,
            ),
            true,
        ),
    );
    add(
        "/admin/metrics",
        "get",
        operation(
            "adminMetrics",
            "Aggregates over the sessions created in a time range",
            vec![query_param("start_time", &date), query_param("end_time", &date)],
            authenticated(json!({ "200": ok("Metrics", "AdminMetrics") }), true),
            true,
        ),
    );
    let scrape = || {
        operation(
            "metrics",
            "Prometheus text exposition; only for METRICS_ALLOWED_NETWORKS",
            vec![],
            json!({
                "200": { "description": "Metrics", "content": { "text/plain": { "schema": { "type": "string" } } } },
                "403": error_response("Outside METRICS_ALLOWED_NETWORKS")
            }),
            false,
        )
    };
    add("/metrics/prometheus", "get", scrape());
    let conflict = error_response("Another admin assists it, or it has ended");
    add(
        "/admin/takeover/{session_id}",
        "post",
        operation(
            "takeOver",
            "The caller takes the conversation over from the model",
            vec![path_param("session_id")],
            authenticated(
                json!({ "200": ok("Assisting", "Takeover"), "404": not_found.clone(), "409": conflict }),
                true,
            ),
            true,
        ),
    );
    add(
        "/admin/release/{session_id}",
        "post",
        operation(
            "release",
            "The assisting admin hands the conversation back",
            vec![path_param("session_id")],
            authenticated(
                json!({ "200": ok("Released", "Released"), "404": not_found, "409": error_response("The caller does not assist it") }),
                true,
            ),
            true,
        ),
    );
    paths.insert("/metrics".to_owned(), json!({ "get": scrape() }));
    json!({
        "openapi": "3.1.0",
        "info": { "title": "Chatbox", "version": env!("CARGO_PKG_VERSION"), "description": "WebSocket gateway for LLM chat: HTTP routes." },
        "paths": paths,
        "components": {
            "schemas": schemas(),
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer", "bearerFormat": "JWT" } }
        }
    })
}

/// `GET P/openapi.json`.
#[must_use]
pub fn response(prefix: &str) -> HttpResponse {
    json_response(StatusCode::OK, &document(prefix))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::routes::{ROOT_ROUTES, ROUTES};

    #[test]
    fn the_document_lists_exactly_the_routes_the_router_serves() {
        let document = document("/chat");
        let documented: BTreeSet<(String, String)> = document["paths"]
            .as_object()
            .expect("paths")
            .iter()
            .flat_map(|(path, methods)| {
                methods.as_object().expect("methods").keys().map(move |m| (m.clone(), path.clone()))
            })
            .collect();
        let served: BTreeSet<(String, String)> = ROUTES
            .iter()
            .map(|(method, path)| ((*method).to_owned(), format!("/chat{path}")))
            .chain(ROOT_ROUTES.iter().map(|(method, path)| ((*method).to_owned(), (*path).to_owned())))
            .collect();
        assert_eq!(documented, served);
    }

    #[test]
    fn every_reference_resolves() {
        let document = document("/chat");
        let text = document.to_string();
        let schemas = document["components"]["schemas"].as_object().expect("schemas");
        for reference in text.split("#/components/schemas/").skip(1) {
            let name: String = reference.chars().take_while(|c| c.is_ascii_alphanumeric()).collect();
            assert!(schemas.contains_key(&name), "{name} is defined");
        }
    }
}
