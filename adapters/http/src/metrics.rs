//! Metrics at the HTTP edge: what the adapter records into ([`HttpMetrics`]), who may
//! scrape, and the scrape itself.
//!
//! The scrape answers at `/metrics` and `P/metrics/prometheus` (the path prefix's), to
//! clients whose address is in `METRICS_ALLOWED_NETWORKS` (an empty list allows every
//! client; the route table applies this check, access level `MetricsNetwork`) and with
//! 403 `FORBIDDEN` to the others. The address is the TCP peer's ([`ClientAddr`]):
//! `X-Forwarded-For` is not believed here, since anyone can send it.

use std::net::IpAddr;
use std::sync::Arc;

use chatbox_application::ports::{Metrics, MetricsExposition, NoMetrics};
use chatbox_domain::ErrorCode;
use http::{HeaderValue, StatusCode, header};
use ipnet::IpNet;
use tracing::warn;

use crate::edge::ClientAddr;
use crate::frame_type::FrameCounters;
use crate::reply::{HttpResponse, error_response};

/// What the HTTP adapter needs for metrics.
#[derive(Clone)]
pub struct HttpMetrics {
    /// Where sockets record their events.
    pub recorder: Arc<dyn Metrics>,
    /// What the scrape route serves.
    pub exposition: Arc<dyn MetricsExposition>,
    /// `METRICS_ALLOWED_NETWORKS`: who may scrape; empty allows everyone.
    pub allowed_networks: Vec<IpNet>,
    /// A counter per frame type and direction, handed out by `recorder` once; sockets
    /// reach them through the state they already hold, so a socket's task carries
    /// nothing more for them.
    frames: Arc<FrameCounters>,
}

impl HttpMetrics {
    /// Records into `recorder`, serves `exposition` to `allowed_networks`.
    #[must_use]
    pub fn new(
        recorder: Arc<dyn Metrics>,
        exposition: Arc<dyn MetricsExposition>,
        allowed_networks: Vec<IpNet>,
    ) -> Self {
        let frames = Arc::new(FrameCounters::new(recorder.as_ref()));
        Self { recorder, exposition, allowed_networks, frames }
    }

    /// No metrics: nothing recorded, an empty scrape for everyone.
    #[must_use]
    pub fn none() -> Self {
        Self::new(Arc::new(NoMetrics), Arc::new(NoMetrics), Vec::new())
    }

    /// The frame counters.
    pub(crate) fn frames(&self) -> &FrameCounters {
        &self.frames
    }

    /// Whether `client` may scrape.
    pub(crate) fn allows(&self, client: Option<ClientAddr>) -> bool {
        if self.allowed_networks.is_empty() {
            return true;
        }
        // An IPv4 client on a dual-stack listener shows as ::ffff:a.b.c.d.
        client.is_some_and(|ClientAddr(address)| {
            let ip: IpAddr = address.ip().to_canonical();
            self.allowed_networks.iter().any(|network| network.contains(&ip))
        })
    }
}

impl std::fmt::Debug for HttpMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpMetrics")
            .field("allowed_networks", &self.allowed_networks)
            .finish_non_exhaustive()
    }
}

/// `GET /metrics` and `GET P/metrics/prometheus`, for a client the route table let
/// through.
pub(crate) fn scrape(metrics: &HttpMetrics) -> HttpResponse {
    match metrics.exposition.render() {
        Ok(text) => {
            let mut response = HttpResponse::new(text.into());
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(metrics.exposition.content_type()));
            response
        }
        Err(error) => {
            warn!(%error, "metrics scrape failed");
            let mut response = error_response(ErrorCode::ServiceError, "Metrics are unavailable", None);
            *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            response
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use super::*;

    fn client(address: &str) -> Option<ClientAddr> {
        Some(ClientAddr(address.parse::<SocketAddr>().expect("address")))
    }

    fn allowing(networks: &[&str]) -> HttpMetrics {
        HttpMetrics {
            allowed_networks: networks.iter().map(|n| n.parse().expect("cidr")).collect(),
            ..HttpMetrics::none()
        }
    }

    #[test]
    fn only_clients_in_the_allowed_networks_may_scrape() {
        let metrics = allowing(&["10.0.0.0/8", "::1/128"]);
        assert!(metrics.allows(client("10.1.2.3:5000")));
        assert!(metrics.allows(client("[::ffff:10.1.2.3]:5000")), "IPv4 on a dual-stack socket");
        assert!(metrics.allows(client("[::1]:5000")));
        assert!(!metrics.allows(client("127.0.0.1:5000")));
        assert!(!metrics.allows(client("[::ffff:192.168.0.1]:5000")));
        assert!(!metrics.allows(None), "no address, no scrape");
        assert!(allowing(&[]).allows(client("203.0.113.9:1")), "an empty list allows everyone");
    }
}
