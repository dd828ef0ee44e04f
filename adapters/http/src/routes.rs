//! The HTTP routes under the path prefix, and the JSON error replies of the error-code
//! table (`{"error","code"}` with the code's HTTP status).

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use chatbox_domain::ErrorCode;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use hyper::upgrade::OnUpgrade;
use serde_json::json;
use warp::Filter;
use warp::filters::BoxedFilter;

use crate::auth::{AuthError, AuthenticatedUser};
use crate::edge::Limited;
use crate::{HttpState, api, openapi, ws};

/// The response type of every route.
pub type HttpResponse = warp::reply::Response;

/// How long readiness waits for storage.
const READINESS_STORAGE_TIMEOUT: Duration = Duration::from_secs(2);

/// A JSON response.
pub(crate) fn json_response(status: StatusCode, body: &serde_json::Value) -> HttpResponse {
    let mut response = HttpResponse::new(body.to_string().into());
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// The error reply for `code`: `{"error": message, "code": CODE}` with the code's
/// status, and `Retry-After` (whole seconds, at least 1) when given.
pub(crate) fn error_response(code: ErrorCode, message: &str, retry_after: Option<Duration>) -> HttpResponse {
    let status = StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = json_response(status, &json!({ "error": message, "code": code.as_str() }));
    if let Some(wait) = retry_after {
        let seconds = wait.as_millis().div_ceil(1000).max(1);
        if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
    }
    response
}

/// The token of `Authorization: Bearer <token>`.
pub(crate) fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The caller of an HTTP route: `Authorization: Bearer` only (no query tokens here).
pub(crate) fn authenticate_http(
    state: &HttpState,
    headers: &HeaderMap,
) -> Result<AuthenticatedUser, AuthError> {
    state.jwt.verify(bearer_token(headers).ok_or(AuthError::Missing)?)
}

/// The reply to a failed authentication.
pub(crate) fn auth_error_response(error: AuthError) -> HttpResponse {
    match error {
        AuthError::Missing => error_response(ErrorCode::Unauthorized, "Authentication required", None),
        AuthError::Invalid => {
            error_response(ErrorCode::InvalidToken, "Invalid or expired authentication token", None)
        }
    }
}

/// The query string as key/value pairs. Parsed here rather than with warp's filter,
/// which logs the raw query (and so the `token`) when it cannot decode it.
pub(crate) fn query_pairs() -> impl Filter<Extract = (HashMap<String, String>,), Error = Infallible> + Clone {
    warp::filters::query::raw().or(warp::any().map(String::new)).unify().map(|raw: String| {
        serde_urlencoded::from_str::<Vec<(String, String)>>(&raw).unwrap_or_default().into_iter().collect()
    })
}

fn prefix(path: &str) -> BoxedFilter<()> {
    path.split('/')
        .filter(|segment| !segment.is_empty())
        .fold(warp::any().boxed(), |filter, segment| filter.and(warp::path(segment.to_owned())).boxed())
}

/// Every HTTP route, as `(method, path under the prefix)`: the OpenAPI document lists
/// exactly these (a test holds them together).
pub const ROUTES: &[(&str, &str)] = &[
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/ws"),
    ("get", "/openapi.json"),
    ("get", "/sessions"),
    ("get", "/sessions/{session_id}"),
    ("post", "/sessions/{session_id}/end"),
    ("post", "/sessions/{session_id}/share"),
    ("delete", "/sessions/{session_id}/share"),
    ("get", "/shared/{share_token}"),
    ("get", "/admin/sessions"),
    ("get", "/admin/sessions/{session_id}"),
    ("get", "/admin/users/{user_id}/sessions"),
    ("get", "/admin/metrics"),
    ("post", "/admin/takeover/{session_id}"),
    ("post", "/admin/release/{session_id}"),
    ("get", "/metrics/prometheus"),
];

/// Routes outside the prefix, as `(method, path)`.
pub const ROOT_ROUTES: &[(&str, &str)] = &[("get", "/metrics")];

type Route = BoxedFilter<(HttpResponse,)>;

/// Every route of the service.
pub fn routes(state: Arc<HttpState>) -> Route {
    let with_state = {
        let state = Arc::clone(&state);
        warp::any().map(move || Arc::clone(&state))
    };
    let base = prefix(&state.config.path_prefix);
    let client = api::client_ip(Arc::clone(&state));
    // A public route: counted per client address (probes and scrapers exempt).
    let public = {
        let state = Arc::clone(&state);
        client.clone().and_then(move |ip| {
            let state = Arc::clone(&state);
            async move {
                match api::public_request(&state, ip) {
                    Ok(()) => Ok::<_, warp::Rejection>(()),
                    Err(limited) => Err(warp::reject::custom(PublicLimited(limited))),
                }
            }
        })
    }
    .untuple_one()
    .boxed();

    let healthz = base
        .clone()
        .and(warp::path("healthz"))
        .and(warp::path::end())
        .and(warp::get())
        .and(public.clone())
        .map(|| json_response(StatusCode::OK, &json!({ "status": "ok" })))
        .boxed();

    let readyz = base
        .clone()
        .and(warp::path("readyz"))
        .and(warp::path::end())
        .and(warp::get())
        .and(public.clone())
        .and(with_state.clone())
        .then(|state: Arc<HttpState>| async move { readiness(&state).await })
        .boxed();

    let openapi = base
        .clone()
        .and(warp::path("openapi.json"))
        .and(warp::path::end())
        .and(warp::get())
        .and(public)
        .and(with_state.clone())
        .map(|state: Arc<HttpState>| openapi::response(&state.config.path_prefix))
        .boxed();

    let socket = base
        .clone()
        .and(warp::path("ws"))
        .and(warp::path::end())
        .and(warp::get())
        .and(with_state.clone())
        .and(warp::header::headers_cloned())
        .and(query_pairs())
        .and(warp::ext::optional::<OnUpgrade>())
        .map(
            |state: Arc<HttpState>,
             headers: HeaderMap,
             query: HashMap<String, String>,
             upgrade: Option<OnUpgrade>| { ws::upgrade(&state, &headers, &query, upgrade) },
        );

    // The session and admin routes: a path, a method, one handler each.
    let request = api::request(Arc::clone(&state));
    let at = |segments: &[&str]| {
        segments
            .iter()
            .fold(base.clone(), |path, segment| path.and(warp::path((*segment).to_owned())).boxed())
    };
    let fixed = |segments: &[&str]| at(segments).and(warp::path::end()).boxed();
    let param = |before: &[&str], after: &[&str]| {
        let path = at(before).and(warp::path::param::<String>());
        after
            .iter()
            .fold(path.boxed(), |path, segment| path.and(warp::path((*segment).to_owned())).boxed())
            .and(warp::path::end())
            .boxed()
    };
    let get = || warp::get().boxed();
    let post = || warp::post().boxed();
    let delete = || warp::delete().boxed();
    let list = api::endpoint(fixed(&["sessions"]), get(), request.clone(), api::user::list);
    let read = api::endpoint_with(param(&["sessions"], &[]), get(), request.clone(), api::user::read);
    let end = api::endpoint_with(param(&["sessions"], &["end"]), post(), request.clone(), api::user::end);
    let share =
        api::endpoint_with(param(&["sessions"], &["share"]), post(), request.clone(), api::user::share);
    let revoke =
        api::endpoint_with(param(&["sessions"], &["share"]), delete(), request.clone(), api::user::revoke);
    let shared = api::endpoint_with(param(&["shared"], &[]), get(), request.clone(), api::user::shared);
    let admin_sessions =
        api::endpoint(fixed(&["admin", "sessions"]), get(), request.clone(), api::admin::sessions);
    let admin_session =
        api::endpoint_with(param(&["admin", "sessions"], &[]), get(), request.clone(), api::admin::session);
    let admin_user_sessions = api::endpoint_with(
        param(&["admin", "users"], &["sessions"]),
        get(),
        request.clone(),
        api::admin::user_sessions,
    );
    let admin_metrics =
        api::endpoint(fixed(&["admin", "metrics"]), get(), request.clone(), api::admin::metrics);
    let takeover = api::endpoint_with(
        param(&["admin", "takeover"], &[]),
        post(),
        request.clone(),
        api::admin::take_over,
    );
    let release = api::endpoint_with(param(&["admin", "release"], &[]), post(), request, api::admin::release);

    // Each route is timed under its template (never the path itself, which holds ids).
    let http_routes = [
        (readyz, "/readyz"),
        (openapi, "/openapi.json"),
        (list, "/sessions"),
        (read, "/sessions/{session_id}"),
        (end, "/sessions/{session_id}/end"),
        (share, "/sessions/{session_id}/share"),
        (revoke, "/sessions/{session_id}/share"),
        (shared, "/shared/{share_token}"),
        (admin_sessions, "/admin/sessions"),
        (admin_session, "/admin/sessions/{session_id}"),
        (admin_user_sessions, "/admin/users/{user_id}/sessions"),
        (admin_metrics, "/admin/metrics"),
        (takeover, "/admin/takeover/{session_id}"),
        (release, "/admin/release/{session_id}"),
    ]
    .into_iter()
    .fold(crate::metrics::timed(&state, "/healthz", healthz), |all, (route, template)| {
        all.or(crate::metrics::timed(&state, template, route)).unify().boxed()
    });
    // CORS wraps the plain HTTP routes only: warp's filter refuses any request whose
    // Origin is not listed, and WebSocket upgrades have their own Origin rule.
    let http_routes = match cors(&state.config.cors_allowed_origins) {
        Some(cors) => http_routes.with(cors).map(warp::Reply::into_response).boxed(),
        None => http_routes,
    };
    let headers = state.security_headers.clone();
    let http_routes = crate::metrics::route(&state).or(http_routes).unify().boxed();
    crate::metrics::timed(&state, "/ws", socket)
        .or(http_routes)
        .unify()
        .recover(|rejection: warp::Rejection| async move { Ok::<_, Infallible>(rejected(&rejection)) })
        .unify()
        .map(move |mut response: HttpResponse| {
            headers.apply(response.headers_mut());
            response
        })
        .boxed()
}

/// A public route refused by the per-address limit; `rejected` answers its 429.
#[derive(Debug)]
struct PublicLimited(Limited);

impl warp::reject::Reject for PublicLimited {}

/// The CORS policy for `origins` (exact origins, credentials allowed), if any.
fn cors(origins: &[String]) -> Option<warp::cors::Builder> {
    if origins.is_empty() {
        return None;
    }
    Some(
        warp::cors()
            .allow_origins(origins.iter().map(String::as_str))
            .allow_methods(["GET", "POST", "DELETE", "OPTIONS"])
            .allow_headers(["authorization", "content-type", "accept", "origin"])
            .expose_headers(["content-length", "retry-after"])
            .allow_credentials(true)
            .max_age(std::time::Duration::from_secs(12 * 3600)),
    )
}

fn rejected(rejection: &warp::Rejection) -> HttpResponse {
    if let Some(PublicLimited(limited)) = rejection.find::<PublicLimited>() {
        return limited.response();
    }
    if rejection.is_not_found() {
        return error_response(ErrorCode::NotFound, "Not found", None);
    }
    if rejection.find::<warp::filters::cors::CorsForbidden>().is_some() {
        return error_response(ErrorCode::Forbidden, "Origin not allowed", None);
    }
    if rejection.find::<warp::reject::MethodNotAllowed>().is_some() {
        return error_response(ErrorCode::MethodNotAllowed, "Method not allowed", None);
    }
    error_response(ErrorCode::BadRequest, "Bad request", None)
}

async fn readiness(state: &HttpState) -> HttpResponse {
    let draining = state.gate.is_draining();
    let storage = tokio::time::timeout(READINESS_STORAGE_TIMEOUT, state.chat.storage_ready()).await;
    let storage_ok = matches!(storage, Ok(Ok(())));
    let models = state.chat.settings().models.len();
    let ready = !draining && storage_ok && models > 0;
    let body = json!({
        "status": if ready { "ready" } else { "not ready" },
        "checks": {
            "storage": { "status": if storage_ok { "ready" } else { "not ready" } },
            "llm": { "status": if models > 0 { "ready" } else { "not ready" }, "providers_count": models },
            "shutdown": { "status": if draining { "draining" } else { "running" } },
        }
    });
    json_response(if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE }, &body)
}
