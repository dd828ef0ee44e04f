//! Metrics wiring: one [`Telemetry`] per application, handed to the use-cases (recording),
//! to the storage (timed operations), and to the HTTP adapter (sockets, frames, and the
//! scrape route limited to `METRICS_ALLOWED_NETWORKS`).
//!
//! The gauges read live state at scrape time through a `Weak` handle: the metrics are
//! owned (indirectly) by that state, so a strong handle would be a cycle that keeps a
//! stopped application alive.

use std::sync::{Arc, Weak};

use anyhow::Context;
use chatbox_application::ports::{Metrics, MetricsExposition, SessionRepository};
use chatbox_http::{HttpMetrics, HttpState};
use chatbox_telemetry::{Gauge, MeteredRepository, Telemetry};

use crate::config::{HttpSection, ProvidersSection};

/// The application's metrics.
#[derive(Debug, Clone)]
pub struct ServiceMetrics {
    telemetry: Arc<Telemetry>,
}

impl ServiceMetrics {
    /// Metrics whose `provider` label takes the configured provider ids.
    ///
    /// # Errors
    /// When the exporter cannot be set up.
    pub fn new(providers: &ProvidersSection) -> anyhow::Result<Self> {
        let telemetry = Telemetry::new(providers.ids()).context("cannot set up the metrics")?;
        Ok(Self { telemetry: Arc::new(telemetry) })
    }

    /// Where the use-cases record.
    #[must_use]
    pub fn recorder(&self) -> Arc<dyn Metrics> {
        Arc::clone(&self.telemetry) as Arc<dyn Metrics>
    }

    /// `repository`, with every operation timed.
    #[must_use]
    pub fn timed(&self, repository: Arc<dyn SessionRepository>) -> Arc<dyn SessionRepository> {
        Arc::new(MeteredRepository::new(repository, self.recorder()))
    }

    /// What the HTTP adapter records into and serves (to `METRICS_ALLOWED_NETWORKS`).
    #[must_use]
    pub fn http(&self, http: &HttpSection) -> HttpMetrics {
        HttpMetrics::new(
            self.recorder(),
            Arc::clone(&self.telemetry) as Arc<dyn MetricsExposition>,
            http.metrics_allowed_networks.clone(),
        )
    }

    /// Publishes the gauges read from the running service.
    pub fn observe(&self, http: &Arc<HttpState>) {
        let state: Weak<HttpState> = Arc::downgrade(http);
        self.telemetry.observe(Gauge::LiveSessions, move || {
            state.upgrade().map_or(0, |http| u64::try_from(http.chat.live_sessions()).unwrap_or(u64::MAX))
        });
    }
}
