//! What a route is: a method, a path template, and its access level holding the handler
//! ([`Access`]). The level decides the check the router applies before the handler runs
//! and the proof the handler receives, so the two cannot disagree: a handler written
//! for admins takes an [`AdminCaller`], which only [`Access::Admin`] supplies.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use http::HeaderMap;
use hyper::upgrade::OnUpgrade;

use crate::access::{AccessLevel, AdminCaller, UserCaller, Visitor};
use crate::api::{ApiRequest, ApiResult, PathParams};
use crate::metrics::HttpMetrics;
use crate::reply::HttpResponse;
use crate::state::HttpState;

/// What a handler of the HTTP API gives back: its outcome, to come.
pub type Handled = Pin<Box<dyn Future<Output = ApiResult> + Send>>;

/// What the WebSocket upgrade gives back: its reply, to come.
pub type Answered = Pin<Box<dyn Future<Output = HttpResponse> + Send>>;

/// A handler of the HTTP API, given the request and the proof its access check made.
pub type Handler<Caller> = fn(ApiRequest, Caller) -> Handled;

/// Who may call a route, with the handler that answers once the check has passed. The
/// handler's type follows from the level, so a handler written for admins (taking an
/// [`AdminCaller`]) fits only [`Access::Admin`]:
///
/// ```
/// use chatbox_http::access::AdminCaller;
/// use chatbox_http::api::{ApiRequest, ApiResult};
/// use chatbox_http::routes::{Access, Route};
///
/// async fn purge(_: ApiRequest, _: AdminCaller) -> ApiResult {
///     unimplemented!()
/// }
///
/// const PURGE: Route =
///     Route::post("/admin/purge", Access::Admin(|request, caller| Box::pin(purge(request, caller))));
/// ```
///
/// The same handler declared under any other level does not compile:
///
/// ```compile_fail
/// use chatbox_http::access::AdminCaller;
/// use chatbox_http::api::{ApiRequest, ApiResult};
/// use chatbox_http::routes::{Access, Route};
///
/// async fn purge(_: ApiRequest, _: AdminCaller) -> ApiResult {
///     unimplemented!()
/// }
///
/// const PURGE: Route =
///     Route::post("/admin/purge", Access::User(|request, caller| Box::pin(purge(request, caller))));
/// ```
#[derive(Debug, Clone, Copy)]
pub enum Access {
    /// Anyone, counted per client address.
    Public(Handler<Visitor>),
    /// A bearer token, counted per user.
    User(Handler<UserCaller>),
    /// A bearer token with an admin role, counted per admin.
    Admin(Handler<AdminCaller>),
    /// Clients inside `METRICS_ALLOWED_NETWORKS`, by TCP peer (the scrape).
    MetricsNetwork(fn(&HttpMetrics) -> HttpResponse),
    /// The WebSocket upgrade: its handshake authenticates by itself.
    WebSocket(fn(SocketRequest) -> Answered),
    /// Anyone, not counted: the embedded web pages and their files (a page load is
    /// several requests, and answering one costs less than counting it).
    Asset(fn(&AssetRequest) -> HttpResponse),
}

impl Access {
    /// The level, without the handler.
    #[must_use]
    pub const fn level(&self) -> AccessLevel {
        match self {
            Self::Public(_) => AccessLevel::Public,
            Self::User(_) => AccessLevel::User,
            Self::Admin(_) => AccessLevel::Admin,
            Self::MetricsNetwork(_) => AccessLevel::MetricsNetwork,
            Self::WebSocket(_) => AccessLevel::WebSocket,
            Self::Asset(_) => AccessLevel::Asset,
        }
    }
}

/// What the WebSocket upgrade receives.
#[derive(Debug)]
pub struct SocketRequest {
    pub(crate) state: Arc<HttpState>,
    pub(crate) headers: HeaderMap,
    pub(crate) query: HashMap<String, String>,
    pub(crate) upgrade: Option<OnUpgrade>,
}

/// What a page or file route receives.
#[derive(Debug)]
pub struct AssetRequest {
    pub(crate) state: Arc<HttpState>,
    pub(crate) headers: HeaderMap,
    pub(crate) path_params: PathParams,
}

impl AssetRequest {
    /// The request's headers.
    #[must_use]
    pub const fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The segment of the path that matched `{name}` (empty if none did).
    #[must_use]
    pub fn path_param(&self, name: &str) -> &str {
        self.path_params.get(name)
    }

    /// The origins that may embed the pages and hand them a token (space separated).
    #[must_use]
    pub fn embedders(&self) -> &str {
        self.state.security_headers.embedders()
    }

    /// The configured path prefix (`/chat` by default).
    #[must_use]
    pub fn path_prefix(&self) -> &str {
        &self.state.config.path_prefix
    }
}

/// An HTTP method a route answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Method {
    /// `GET`.
    Get,
    /// `POST`.
    Post,
    /// `DELETE`.
    Delete,
}

impl Method {
    /// As sent on the wire: `GET`, `POST`, `DELETE`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Post => "POST",
            Self::Delete => "DELETE",
        }
    }

    /// Every method a route can answer.
    pub const ALL: [Self; 3] = [Self::Get, Self::Post, Self::Delete];

    /// As an OpenAPI path item names it: `get`, `post`, `delete`.
    #[must_use]
    pub const fn openapi_name(self) -> &'static str {
        match self {
            Self::Get => "get",
            Self::Post => "post",
            Self::Delete => "delete",
        }
    }
}

/// Where a route's template is mounted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mount {
    /// Under the path prefix (`CHATBOX_PATH_PREFIX`).
    Prefix,
    /// At the root, outside the prefix.
    Root,
}

/// One route: declared once in the table, from which the router, the timing labels and
/// the OpenAPI paths are derived.
#[derive(Debug, Clone, Copy)]
pub struct Route {
    method: Method,
    template: &'static str,
    mount: Mount,
    timed_as: &'static str,
    access: Access,
}

impl Route {
    const fn new(method: Method, template: &'static str, access: Access) -> Self {
        Self { method, template, mount: Mount::Prefix, timed_as: template, access }
    }

    /// `GET template` under the path prefix. `template` starts with `/`; a `{name}`
    /// segment matches any one segment, which the handler reads by its name.
    #[must_use]
    pub const fn get(template: &'static str, access: Access) -> Self {
        Self::new(Method::Get, template, access)
    }

    /// `POST template` under the path prefix.
    #[must_use]
    pub const fn post(template: &'static str, access: Access) -> Self {
        Self::new(Method::Post, template, access)
    }

    /// `DELETE template` under the path prefix.
    #[must_use]
    pub const fn delete(template: &'static str, access: Access) -> Self {
        Self::new(Method::Delete, template, access)
    }

    /// The same route at the root, outside the path prefix.
    #[must_use]
    pub const fn at_root(self) -> Self {
        Self { mount: Mount::Root, ..self }
    }

    /// The same route, timed under `label` instead of its template (an alias sharing
    /// another route's series).
    #[must_use]
    pub const fn timed_as(self, label: &'static str) -> Self {
        Self { timed_as: label, ..self }
    }

    /// Its method.
    #[must_use]
    pub const fn method(&self) -> Method {
        self.method
    }

    /// Its template, as declared (under the prefix unless [`at_root`](Self::at_root)).
    #[must_use]
    pub const fn template(&self) -> &'static str {
        self.template
    }

    /// Its full template for the path prefix `prefix`, e.g. `/chat/sessions/{session_id}`.
    #[must_use]
    pub fn full_template(&self, prefix: &str) -> String {
        match self.mount {
            Mount::Prefix => format!("{prefix}{}", self.template),
            Mount::Root => self.template.to_owned(),
        }
    }

    /// Whether it sits under the path prefix.
    #[must_use]
    pub const fn is_under_prefix(&self) -> bool {
        matches!(self.mount, Mount::Prefix)
    }

    /// The `route` label its requests are timed under: its template (never the path
    /// itself, which holds ids).
    #[must_use]
    pub const fn timing_label(&self) -> &'static str {
        self.timed_as
    }

    /// Who may call it.
    #[must_use]
    pub const fn access_level(&self) -> AccessLevel {
        self.access.level()
    }

    /// Its access level with the handler.
    pub(crate) const fn access(&self) -> Access {
        self.access
    }
}
