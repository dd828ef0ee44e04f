//! The OpenAPI 3.1 document of every HTTP route, served at `P/openapi.json`.
//!
//! Written here rather than derived, next to [`ROUTES`](crate::routes::ROUTES): a test
//! checks that the document lists exactly the routes the router serves, and CI runs
//! `schemathesis` against the running server, so the document cannot drift from what
//! the routes answer.

use http::StatusCode;
use serde_json::{Value, json};

use crate::routes::{HttpResponse, json_response};

mod schemas;
use schemas::schemas;

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
