//! The HTTP routes under the path prefix (and the scrape at the root): one table,
//! [`ROUTES`], declares each route once as (method, path template, access level holding
//! its handler); the warp router ([`routes()`]), the timing labels and the OpenAPI paths
//! are derived from it.
//!
//! - `route.rs`: what a route is ([`Route`], [`Access`]): the level decides the check and
//!   the proof its handler receives, so an admin handler cannot be declared under another
//!   level (it would not compile);
//! - `table.rs`: the table;
//! - `router.rs`: the warp filter built from it, with the access checks, the timing,
//!   CORS, the 404/405 replies and the security headers.

pub(crate) mod route;
mod router;
mod table;

pub use route::{Access, AssetRequest, Handled, Handler, Method, Route, SocketRequest};
pub use router::routes;
pub use table::ROUTES;
