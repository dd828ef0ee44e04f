//! The warp router, derived from the route table: for each route its path (under the
//! prefix, `{name}` segments captured), its method, its access check applied before the
//! handler, and its timing under its label; then what wraps them all.
//!
//! Order of a request through it:
//! - the WebSocket upgrade first, then the scrape routes, then the plain HTTP routes;
//!   only the last are wrapped in CORS (warp's filter refuses any request whose Origin
//!   is not listed, and WebSocket upgrades have their own Origin rule);
//! - within a route: path, method, then the access check (Public: the per-address
//!   limit; User: token then per-user limit; Admin: token, role, then per-admin limit;
//!   `MetricsNetwork`: the TCP peer's network), then the handler. A refusal is a reply of
//!   the route, timed and CORS-wrapped like any other;
//! - requests no route takes get 404, a known path with another method 405, a refused
//!   Origin 403; every reply gets the security headers.

use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Instant;

use chatbox_application::ports::Metrics;
use chatbox_domain::ErrorCode;
use http::HeaderMap;
use hyper::upgrade::OnUpgrade;
use warp::Filter;
use warp::filters::BoxedFilter;

use super::route::{Access, AssetRequest, Handler, Method, Route, SocketRequest};
use super::table::ROUTES;
use crate::access::{self, Denied};
use crate::api::files::RequestBody;
use crate::api::{ApiRequest, PathParams};
use crate::edge::ClientAddr;
use crate::reply::{HttpResponse, error_response, query_pairs};
use crate::state::HttpState;

type Reply = BoxedFilter<(HttpResponse,)>;

/// Every route of the service.
pub fn routes(state: Arc<HttpState>) -> Reply {
    let mut sockets = Vec::new();
    let mut scrapes = Vec::new();
    let mut http_routes = Vec::new();
    for route in ROUTES {
        let filter = timed(&state.metrics.recorder, route.timing_label(), endpoint(&state, route));
        match route.access() {
            Access::WebSocket(_) => sockets.push(filter),
            Access::MetricsNetwork(_) => scrapes.push(filter),
            Access::Public(_) | Access::User(_) | Access::Admin(_) | Access::Asset(_) => {
                http_routes.push(filter);
            }
        }
    }
    // CORS wraps every plain HTTP route, the scrapes included (a scraper sends no
    // Origin); WebSocket upgrades have their own Origin rule.
    let http_routes = any_of(scrapes).or(any_of(http_routes)).unify().boxed();
    let http_routes = match cors(&state.config.cors_allowed_origins) {
        Some(cors) => http_routes.with(cors).map(warp::Reply::into_response).boxed(),
        None => http_routes,
    };
    let headers = state.security_headers.clone();
    any_of(sockets)
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

/// One route: its path, its method, its access check, its handler.
fn endpoint(state: &Arc<HttpState>, route: &Route) -> Reply {
    let matched = path(&state.config.path_prefix, route).and(method(route.method())).boxed();
    match route.access() {
        Access::Public(handler) => guarded(
            matched,
            request(state, route.method()),
            |request| access::visitor(&request.state, request.client),
            handler,
        ),
        Access::User(handler) => guarded(
            matched,
            request(state, route.method()),
            |request| access::user(&request.state, &request.headers),
            handler,
        ),
        Access::Admin(handler) => guarded(
            matched,
            request(state, route.method()),
            |request| access::admin(&request.state, &request.headers),
            handler,
        ),
        Access::MetricsNetwork(handler) => {
            let state = Arc::clone(state);
            matched
                .and(warp::ext::optional::<ClientAddr>())
                .map(move |_: PathParams, client: Option<ClientAddr>| {
                    match access::scraper(&state.metrics, client) {
                        Ok(()) => handler(&state.metrics),
                        Err(denied) => denied.response(),
                    }
                })
                .boxed()
        }
        Access::Asset(handler) => {
            let state = Arc::clone(state);
            matched
                .and(warp::header::headers_cloned())
                .map(move |path_params: PathParams, headers| {
                    handler(&AssetRequest { state: Arc::clone(&state), headers, path_params })
                })
                .boxed()
        }
        Access::WebSocket(handler) => {
            let state = Arc::clone(state);
            matched
                .and(warp::header::headers_cloned())
                .and(query_pairs())
                .and(warp::ext::optional::<OnUpgrade>())
                .then(move |_: PathParams, headers, query, upgrade| {
                    handler(SocketRequest { state: Arc::clone(&state), headers, query, upgrade })
                })
                .boxed()
        }
    }
}

/// A route of the HTTP API: once `matched`, the request is read, `check` decides (its
/// refusal is the reply), and `handler` answers with the proof `check` made.
fn guarded<Caller, Check, Checked>(
    matched: BoxedFilter<(PathParams,)>,
    request: BoxedFilter<(ApiRequest,)>,
    check: Check,
    handler: Handler<Caller>,
) -> Reply
where
    Caller: Send + 'static,
    Check: Fn(&ApiRequest) -> Checked + Clone + Send + Sync + 'static,
    Checked: Future<Output = Result<Caller, Denied>> + Send + 'static,
{
    matched
        .and(request)
        .then(move |path_params: PathParams, mut request: ApiRequest| {
            request.path_params = path_params;
            let admitted = check(&request);
            async move {
                match admitted.await {
                    Ok(caller) => handler(request, caller).await.unwrap_or_else(|error| error.response()),
                    Err(denied) => denied.response(),
                }
            }
        })
        .boxed()
}

/// The path of `route` (the whole path), with what its `{name}` segments matched.
fn path(prefix: &str, route: &Route) -> BoxedFilter<(PathParams,)> {
    let start = warp::any().map(PathParams::default).boxed();
    let start = if route.is_under_prefix() {
        prefix
            .split('/')
            .filter(|segment| !segment.is_empty())
            .fold(start, |filter, segment| filter.and(warp::path(segment.to_owned())).boxed())
    } else {
        start
    };
    route
        .template()
        .split('/')
        .filter(|segment| !segment.is_empty())
        .fold(start, |filter, segment| match segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            Some(name) => filter
                .and(warp::path::param::<String>())
                .map(move |mut params: PathParams, value: String| {
                    params.insert(name, value);
                    params
                })
                .boxed(),
            None => filter.and(warp::path(segment)).boxed(),
        })
        .and(warp::path::end())
        .boxed()
}

fn method(method: Method) -> BoxedFilter<()> {
    match method {
        Method::Get => warp::get().boxed(),
        Method::Post => warp::post().boxed(),
        Method::Delete => warp::delete().boxed(),
    }
}

/// Reads an [`ApiRequest`] (its path parameters come from the path filter). A `POST`
/// carries its body, as a stream nobody has read yet: a handler that does not read it
/// drops it, and the server drains or closes as for any unread body.
fn request(state: &Arc<HttpState>, method: Method) -> BoxedFilter<(ApiRequest,)> {
    let state = Arc::clone(state);
    let body = if method == Method::Post {
        warp::body::stream().map(|stream| Some(RequestBody::new(stream))).boxed()
    } else {
        warp::any().map(|| None).boxed()
    };
    warp::ext::optional::<ClientAddr>()
        .and(warp::header::headers_cloned())
        .and(query_pairs())
        .and(body)
        .map(move |peer: Option<ClientAddr>, headers: HeaderMap, query, body: Option<RequestBody>| {
            let peer = peer.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |addr| addr.0.ip());
            let client = state.client_ip.client_ip(peer, &headers);
            ApiRequest {
                state: Arc::clone(&state),
                headers,
                query,
                client,
                path_params: PathParams::default(),
                body,
            }
        })
        .boxed()
}

/// `filter`, with each response it gives recorded in
/// `chatbox_http_request_duration_seconds` under `label` (a template such as
/// `/sessions/{session_id}/end`, never the path itself), the method and the status.
/// Requests that `filter` rejects (another route's) are not recorded here.
fn timed(recorder: &Arc<dyn Metrics>, label: &'static str, filter: Reply) -> Reply {
    let recorder = Arc::clone(recorder);
    warp::any()
        .map(Instant::now)
        .and(warp::method())
        .and(filter)
        .map(move |started: Instant, method: http::Method, response: HttpResponse| {
            recorder.http_request(label, method.as_str(), response.status().as_u16(), started.elapsed());
            response
        })
        .boxed()
}

/// The first of `filters` that takes the request (none: a 404 rejection).
fn any_of(filters: Vec<Reply>) -> Reply {
    filters.into_iter().reduce(|all, next| all.or(next).unify().boxed()).unwrap_or_else(|| {
        warp::any().and_then(|| async { Err::<HttpResponse, _>(warp::reject::not_found()) }).boxed()
    })
}

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
