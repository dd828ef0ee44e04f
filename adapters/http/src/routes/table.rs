//! The route table: every HTTP route, declared once, as (method, path template, access
//! level holding its handler). The router (`router.rs`), the timing labels and the
//! OpenAPI paths are derived from it.
//!
//! Adding a route is one entry here plus its handler: `async fn(ApiRequest, Caller) ->
//! ApiResult`, where `Caller` is the proof its level's check hands over ([`Visitor`],
//! [`UserCaller`](crate::access::UserCaller), [`AdminCaller`](crate::access::AdminCaller)),
//! and a description in `openapi/` (a test fails until it has one).

use super::route::{Access, Route};
use crate::access::Visitor;
use crate::api::{ApiRequest, ApiResult, admin, files, health, user};
use crate::{metrics, openapi, ui, ws};

/// `handler!(f)`: the `async fn` `f` as a handler of the table (its future boxed).
macro_rules! handler {
    ($handler:path) => {
        |request, caller| Box::pin($handler(request, caller))
    };
}

/// Every route of the service, in the order the router tries them.
pub static ROUTES: &[Route] = &[
    Route::get("/healthz", Access::Public(handler!(health::healthz))),
    Route::get("/readyz", Access::Public(handler!(health::readyz))),
    Route::get("/ws", Access::WebSocket(|request| Box::pin(ws::upgrade(request)))),
    Route::get("/openapi.json", Access::Public(handler!(openapi_document))),
    Route::get("/sessions", Access::User(handler!(user::list))),
    Route::get("/sessions/{session_id}", Access::User(handler!(user::read))),
    Route::post("/sessions/{session_id}/end", Access::User(handler!(user::end))),
    Route::post("/sessions/{session_id}/share", Access::User(handler!(user::share))),
    Route::delete("/sessions/{session_id}/share", Access::User(handler!(user::revoke))),
    Route::get("/shared/{share_token}", Access::Public(handler!(user::shared))),
    Route::post("/uploads", Access::User(handler!(files::upload))),
    // Where the earlier web client posts its uploads.
    Route::post("/api/upload", Access::User(handler!(files::upload))).at_root().timed_as("/uploads"),
    Route::get("/files/{file_id}", Access::Public(handler!(files::download))),
    Route::get("/admin/sessions", Access::Admin(handler!(admin::sessions))),
    Route::get("/admin/sessions/{session_id}", Access::Admin(handler!(admin::session))),
    Route::get("/admin/users/{user_id}/sessions", Access::Admin(handler!(admin::user_sessions))),
    Route::get("/admin/metrics", Access::Admin(handler!(admin::metrics))),
    Route::post("/admin/takeover/{session_id}", Access::Admin(handler!(admin::take_over))),
    Route::post("/admin/release/{session_id}", Access::Admin(handler!(admin::release))),
    Route::get("/ui", Access::Asset(ui::chat_page)),
    Route::get("/ui/sessions", Access::Asset(ui::sessions_page)),
    Route::get("/ui/admin", Access::Asset(ui::admin_page)),
    Route::get("/ui/assets/{name}", Access::Asset(ui::asset)),
    // The scrape, at the root and under the prefix: one series.
    Route::get("/metrics", Access::MetricsNetwork(metrics::scrape)).at_root(),
    Route::get("/metrics/prometheus", Access::MetricsNetwork(metrics::scrape)).timed_as("/metrics"),
];

/// `GET P/openapi.json`: the document of this table.
async fn openapi_document(request: ApiRequest, _: Visitor) -> ApiResult {
    Ok(openapi::response(&request.state.config.path_prefix, ROUTES))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::access::AccessLevel;

    #[test]
    fn the_admin_paths_are_exactly_the_admin_routes_and_each_route_is_declared_once() {
        for route in ROUTES {
            let admin_path = route.template().starts_with("/admin/");
            let admin_level = route.access_level() == AccessLevel::Admin;
            assert_eq!(admin_path, admin_level, "{} {}", route.method().as_str(), route.template());
        }
        let declared: BTreeSet<_> = ROUTES.iter().map(|r| (r.method(), r.full_template("P"))).collect();
        assert_eq!(declared.len(), ROUTES.len(), "no (method, path) twice");
    }

    #[test]
    fn only_the_scrape_and_the_upgrade_skip_the_plain_http_checks() {
        let special: Vec<_> = ROUTES
            .iter()
            .filter(|r| matches!(r.access_level(), AccessLevel::MetricsNetwork | AccessLevel::WebSocket))
            .map(|r| (r.full_template("/chat"), r.timing_label()))
            .collect();
        assert_eq!(
            special,
            [
                ("/chat/ws".to_owned(), "/ws"),
                ("/metrics".to_owned(), "/metrics"),
                ("/chat/metrics/prometheus".to_owned(), "/metrics")
            ]
        );
    }
}
