//! What every HTTP request passes through before a route sees it: who the client is
//! (the TCP peer, and its address believing `X-Forwarded-For` only from trusted
//! proxies), the HTTP rate limits, and the security headers added to every response.

pub mod client_ip;
pub mod headers;
pub mod limits;

pub use client_ip::{ClientAddr, ClientIpPolicy};
pub use headers::SecurityHeaders;
pub use limits::{HttpLimiters, HttpQuotas, Limited};
