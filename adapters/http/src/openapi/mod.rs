//! The OpenAPI 3.1 document of every HTTP route, served at `P/openapi.json`.
//!
//! Which (method, path) pairs exist, which need a bearer token, and the answers their
//! access level gives (401, 403, 429) come from the route table
//! ([`ROUTES`](crate::routes::ROUTES)); what each route takes and answers besides is
//! described here by hand. A test checks that every route of the table has a
//! description and every description a route, and CI runs `schemathesis` against the
//! running server, so the document cannot drift from what the routes answer.

use http::StatusCode;
use serde_json::{Map, Value, json};

use crate::access::AccessLevel;
use crate::reply::{HttpResponse, json_response};
use crate::routes::route::{Method, Route};

mod files;
mod schemas;
use schemas::schemas;

fn error_response(description: &str) -> Value {
    json!({ "description": description, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } })
}

/// The operation of a method a path does not serve: 405 `METHOD_NOT_ALLOWED`.
fn not_allowed(path: &str, method: &str) -> Value {
    let id: String = path.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
    let parameters: Vec<Value> = path
        .split('/')
        .filter_map(|segment| segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(path_param)
        .collect();
    json!({
        "operationId": format!("{method}{id}_not_allowed"),
        "summary": "Not served on this path",
        "parameters": parameters,
        "responses": { "405": error_response("The path exists, not with this method") }
    })
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
        query_param("offset", &json!({ "type": "integer", "minimum": 0, "maximum": i64::MAX })),
    ]
}

fn message_params() -> Vec<Value> {
    vec![
        query_param("after_seq", &json!({ "type": "integer", "minimum": 0 })),
        query_param("limit", &json!({ "type": "integer", "minimum": 1, "maximum": 1000 })),
    ]
}

/// The usual answers of a route of the HTTP API besides its access level's: a malformed
/// parameter, storage unavailable.
fn api_answers(mut responses: Value) -> Value {
    if let Some(map) = responses.as_object_mut() {
        map.insert("400".into(), error_response("Malformed parameter or conflicting credentials"));
        map.insert("503".into(), error_response("Storage unavailable"));
    }
    responses
}

/// A page of the web UI: HTML, the same for everyone.
fn page_operation(id: &str, summary: &str) -> Value {
    operation(
        id,
        summary,
        vec![],
        json!({ "200": { "description": "The page", "content": { "text/html": { "schema": { "type": "string" } } } } }),
    )
}

fn operation(id: &str, summary: &str, parameters: Vec<Value>, responses: Value) -> Value {
    json!({ "operationId": id, "summary": summary, "parameters": parameters, "responses": responses })
}

/// What `level` adds to a route's operation: the answers of its check, and the bearer
/// security requirement.
fn guard(operation: &mut Value, level: AccessLevel) {
    let answers: Vec<(&str, Value)> = match level {
        AccessLevel::Public => vec![("429", limited())],
        AccessLevel::User => vec![("401", error_response("Missing or invalid token")), ("429", limited())],
        AccessLevel::Admin => vec![
            ("401", error_response("Missing or invalid token")),
            ("403", error_response("Admin role required")),
            ("429", limited()),
        ],
        AccessLevel::MetricsNetwork => vec![("403", error_response("Outside METRICS_ALLOWED_NETWORKS"))],
        AccessLevel::WebSocket | AccessLevel::Asset => vec![],
    };
    if let Some(responses) = operation.get_mut("responses").and_then(Value::as_object_mut) {
        for (status, answer) in answers {
            responses.insert(status.to_owned(), answer);
        }
    }
    if level.needs_bearer_token()
        && let Some(map) = operation.as_object_mut()
    {
        map.insert("security".into(), json!([{ "bearer": [] }]));
    }
}

/// A route's hand-written description: its operation without what its access level adds.
struct Described {
    method: Method,
    template: &'static str,
    operation: Value,
}

/// The hand-written descriptions, one per route of the table.
#[allow(clippy::too_many_lines)] // one entry per route, read top to bottom
fn described() -> Vec<Described> {
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
    let mut read_params = vec![path_param("session_id")];
    read_params.extend(message_params());
    let mut shared_params = vec![path_param("share_token")];
    shared_params.extend(message_params());
    let mut admin_read = vec![path_param("session_id")];
    admin_read.extend(message_params());
    let mut user_params = vec![path_param("user_id")];
    user_params.extend(admin_filters.iter().filter(|p| p["name"] != "user_id").cloned());
    let scrape = || {
        operation(
            "metrics",
            "Prometheus text exposition; only for METRICS_ALLOWED_NETWORKS",
            vec![],
            json!({ "200": { "description": "Metrics", "content": { "text/plain": { "schema": { "type": "string" } } } } }),
        )
    };
    let conflict = error_response("Another admin assists it, or it has ended");
    let describe = |method, template, operation| Described { method, template, operation };
    vec![
        describe(
            Method::Get,
            "/healthz",
            operation("healthz", "Liveness", vec![], json!({ "200": ok("Alive", "Health") })),
        ),
        describe(
            Method::Get,
            "/ui",
            page_operation(
                "chatPage",
                "The chat page (HTML embedded in the service; the token stays in the browser)",
            ),
        ),
        describe(
            Method::Get,
            "/ui/sessions",
            page_operation("sessionsPage", "The user's conversations page"),
        ),
        describe(Method::Get, "/ui/admin", page_operation("adminPage", "The admin dashboard page")),
        describe(
            Method::Get,
            "/ui/assets/{name}",
            operation(
                "uiAsset",
                "A script or style sheet of the pages, revalidated by its ETag",
                vec![path_param("name")],
                json!({
                    "200": { "description": "The file", "content": {
                        "text/javascript": { "schema": { "type": "string" } },
                        "text/css": { "schema": { "type": "string" } },
                        "image/svg+xml": { "schema": { "type": "string" } } } },
                    "304": { "description": "Not modified" },
                    "404": error_response("No such file"),
                }),
            ),
        ),
        describe(
            Method::Get,
            "/readyz",
            operation(
                "readyz",
                "Readiness: storage answers, a model is configured, not draining",
                vec![],
                json!({ "200": ok("Ready", "Readiness"), "503": ok("Not ready", "Readiness") }),
            ),
        ),
        describe(
            Method::Get,
            "/ws",
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
                    "400": error_response("Not a WebSocket upgrade, a malformed parameter, or conflicting credentials"),
                    "401": error_response("Missing or invalid token"),
                    "403": error_response("Origin not allowed"),
                    "429": error_response("Connection limit reached"),
                    "503": error_response("Draining for shutdown")
                }),
            ),
        ),
        describe(
            Method::Get,
            "/openapi.json",
            operation(
                "openapi",
                "This document",
                vec![],
                json!({ "200": { "description": "OpenAPI 3.1", "content": { "application/json": { "schema": { "type": "object" } } } } }),
            ),
        ),
        describe(
            Method::Get,
            "/sessions",
            operation(
                "listSessions",
                "The caller's sessions, most recent first",
                page_params(200),
                api_answers(json!({ "200": ok("Sessions", "UserSessions") })),
            ),
        ),
        describe(
            Method::Get,
            "/sessions/{session_id}",
            operation(
                "readSession",
                "One of the caller's sessions, messages paged by seq",
                read_params,
                api_answers(json!({ "200": ok("Conversation", "Conversation"), "404": not_found.clone() })),
            ),
        ),
        describe(
            Method::Post,
            "/sessions/{session_id}/end",
            operation(
                "endSession",
                "Ends the session (idempotent)",
                vec![path_param("session_id")],
                api_answers(json!({ "200": ok("Ended", "Ended"), "404": not_found.clone() })),
            ),
        ),
        describe(
            Method::Post,
            "/sessions/{session_id}/share",
            operation(
                "shareSession",
                "Creates a share link valid for SHARE_TTL (replaces any earlier one)",
                vec![path_param("session_id")],
                api_answers(json!({ "200": ok("Share link", "Share"), "404": not_found.clone() })),
            ),
        ),
        describe(
            Method::Delete,
            "/sessions/{session_id}/share",
            operation(
                "revokeShare",
                "Revokes the share link",
                vec![path_param("session_id")],
                api_answers(json!({ "204": { "description": "Revoked" }, "404": not_found.clone() })),
            ),
        ),
        describe(
            Method::Get,
            "/shared/{share_token}",
            operation(
                "readShared",
                "The read-only conversation a share link opens",
                shared_params,
                api_answers(
                    json!({ "200": ok("Conversation", "Conversation"), "404": error_response("Unknown, expired or revoked link") }),
                ),
            ),
        ),
        describe(
            Method::Get,
            "/admin/sessions",
            operation(
                "adminSessions",
                "Every session, filtered and sorted, with a total",
                admin_filters,
                api_answers(json!({ "200": ok("Sessions", "AdminSessions") })),
            ),
        ),
        describe(
            Method::Get,
            "/admin/sessions/{session_id}",
            operation(
                "adminSession",
                "One session in full",
                admin_read,
                api_answers(json!({ "200": ok("Conversation", "Conversation"), "404": not_found.clone() })),
            ),
        ),
        describe(
            Method::Get,
            "/admin/users/{user_id}/sessions",
            operation(
                "adminUserSessions",
                "One user's sessions",
                user_params,
                api_answers(
                    json!({ "200": ok("Sessions", "AdminSessions"), "404": error_response("Malformed user id") }),
                ),
            ),
        ),
        describe(
            Method::Get,
            "/admin/metrics",
            operation(
                "adminMetrics",
                "Aggregates over the sessions created in a time range",
                vec![query_param("start_time", &date), query_param("end_time", &date)],
                api_answers(json!({ "200": ok("Metrics", "AdminMetrics") })),
            ),
        ),
        describe(
            Method::Post,
            "/admin/takeover/{session_id}",
            operation(
                "takeOver",
                "The caller takes the conversation over from the model",
                vec![path_param("session_id")],
                api_answers(
                    json!({ "200": ok("Assisting", "Takeover"), "404": not_found.clone(), "409": conflict }),
                ),
            ),
        ),
        describe(
            Method::Post,
            "/admin/release/{session_id}",
            operation(
                "release",
                "The assisting admin hands the conversation back",
                vec![path_param("session_id")],
                api_answers(
                    json!({ "200": ok("Released", "Released"), "404": not_found, "409": error_response("The caller does not assist it") }),
                ),
            ),
        ),
        describe(Method::Get, "/metrics", scrape()),
        describe(Method::Get, "/metrics/prometheus", scrape()),
    ]
    .into_iter()
    .chain(files::described())
    .collect()
}

/// The document of `routes`, for the path prefix `prefix`.
#[must_use]
pub fn document(prefix: &str, routes: &[Route]) -> Value {
    let described = described();
    let mut paths = Map::new();
    for route in routes {
        let mut operation = described
            .iter()
            .find(|d| d.method == route.method() && d.template == route.template())
            .map_or_else(|| json!({ "summary": "Not described", "responses": {} }), |d| d.operation.clone());
        guard(&mut operation, route.access_level());
        let item = paths.entry(route.full_template(prefix)).or_insert_with(|| json!({}));
        if let Some(methods) = item.as_object_mut() {
            methods.insert(route.method().openapi_name().to_owned(), operation);
        }
    }
    // A path answers every other method of the API with 405.
    for (path, item) in &mut paths {
        let Some(methods) = item.as_object_mut() else { continue };
        for method in Method::ALL.map(Method::openapi_name) {
            if !methods.contains_key(method) {
                methods.insert(method.to_owned(), not_allowed(path, method));
            }
        }
    }
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

/// `GET P/openapi.json`: the document of `routes`.
#[must_use]
pub fn response(prefix: &str, routes: &[Route]) -> HttpResponse {
    json_response(StatusCode::OK, &document(prefix, routes))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::routes::ROUTES;

    /// An operation documented only as 405: the path does not serve that method.
    fn refused(operation: &Value) -> bool {
        operation["responses"].as_object().is_some_and(|r| r.len() == 1 && r.contains_key("405"))
    }

    #[test]
    fn the_document_lists_exactly_the_routes_of_the_table_with_bearer_security_where_they_need_it() {
        let document = document("/chat", ROUTES);
        let documented: BTreeSet<(String, String, bool)> = document["paths"]
            .as_object()
            .expect("paths")
            .iter()
            .flat_map(|(path, methods)| {
                let methods = methods.as_object().expect("methods");
                assert_eq!(
                    methods.len(),
                    Method::ALL.len(),
                    "{path}: every method is documented, served or 405"
                );
                methods.iter().filter(|(_, operation)| !refused(operation)).map(move |(method, operation)| {
                    (method.clone(), path.clone(), operation.get("security").is_some())
                })
            })
            .collect();
        let table: BTreeSet<(String, String, bool)> = ROUTES
            .iter()
            .map(|route| {
                (
                    route.method().openapi_name().to_owned(),
                    route.full_template("/chat"),
                    route.access_level().needs_bearer_token(),
                )
            })
            .collect();
        assert_eq!(documented, table);
        assert_eq!(documented.len(), ROUTES.len(), "no (method, path) declared twice");
    }

    #[test]
    fn every_operation_declares_exactly_the_parameters_of_its_path() {
        let document = document("/chat", ROUTES);
        for (path, methods) in document["paths"].as_object().expect("paths") {
            let in_path: BTreeSet<&str> = path
                .split('/')
                .filter_map(|segment| segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
                .collect();
            for (method, operation) in methods.as_object().expect("methods") {
                let declared: BTreeSet<&str> = operation["parameters"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|parameter| parameter["in"] == "path")
                    .filter_map(|parameter| parameter["name"].as_str())
                    .collect();
                assert_eq!(declared, in_path, "{method} {path}");
            }
        }
    }

    #[test]
    fn every_route_of_the_table_is_described_and_every_description_is_a_route() {
        let described: BTreeSet<(Method, &str)> =
            described().iter().map(|d| (d.method, d.template)).collect();
        let table: BTreeSet<(Method, &str)> = ROUTES.iter().map(|r| (r.method(), r.template())).collect();
        assert_eq!(described, table);
    }

    #[test]
    fn each_access_level_documents_its_refusals() {
        let document = document("/chat", ROUTES);
        for route in ROUTES {
            let path = route.full_template("/chat");
            let responses = &document["paths"][&path][route.method().openapi_name()]["responses"];
            let has = |status: &str| responses.get(status).is_some();
            match route.access_level() {
                AccessLevel::Public => assert!(has("429"), "{path}"),
                AccessLevel::User => assert!(has("401") && has("429") && !has("403"), "{path}"),
                AccessLevel::Admin => assert!(has("401") && has("403") && has("429"), "{path}"),
                AccessLevel::MetricsNetwork => assert!(has("403") && !has("401"), "{path}"),
                AccessLevel::WebSocket => assert!(has("101"), "{path}"),
                AccessLevel::Asset => assert!(has("200") && !has("401") && !has("429"), "{path}"),
            }
        }
    }

    #[test]
    fn every_reference_resolves() {
        let document = document("/chat", ROUTES);
        let text = document.to_string();
        let schemas = document["components"]["schemas"].as_object().expect("schemas");
        for reference in text.split("#/components/schemas/").skip(1) {
            let name: String = reference.chars().take_while(|c| c.is_ascii_alphanumeric()).collect();
            assert!(schemas.contains_key(&name), "{name} is defined");
        }
    }
}
