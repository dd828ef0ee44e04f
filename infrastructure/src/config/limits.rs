//! The limits section: how many sockets and sessions a user may hold and how fast users,
//! admins, anonymous clients and single connections may act; and its conversion into
//! the quotas and the connection gate the use-cases and the HTTP adapter enforce.
//!
//! Fields are named after their variables: the range rules (`#[validate]`) report under
//! the field's name in upper case.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chatbox_application::limits::ConnectionGate;
use chatbox_domain::rate_limit::Quota;
use chatbox_http::edge::HttpQuotas;
use validator::Validate;

use super::reader::Reader;

/// Requests per user per minute on the user routes (not configurable).
const USER_HTTP_REQUESTS_PER_MINUTE: u32 = 120;
const MINUTE: Duration = Duration::from_secs(60);

/// `MAX_CONNECTIONS*`, `MAX_ACTIVE_SESSIONS_PER_USER`, `*RATE_*`, `WS_COMMAND_BUDGET`.
#[derive(Debug, Clone, Validate)]
pub struct LimitsSection {
    /// `MAX_CONNECTIONS`.
    #[validate(range(min = 1, message = "must be at least 1"))]
    pub max_connections: usize,
    /// `MAX_CONNECTIONS_PER_USER`.
    #[validate(range(min = 1, message = "must be at least 1"))]
    pub max_connections_per_user: usize,
    /// `MAX_ACTIVE_SESSIONS_PER_USER`.
    #[validate(range(min = 1, message = "must be at least 1"))]
    pub max_active_sessions_per_user: usize,
    /// `RATE_LIMIT`: messages per user per `RATE_WINDOW`.
    #[validate(range(min = 1, message = "must be at least 1"))]
    pub rate_limit: u32,
    /// `RATE_WINDOW`.
    pub rate_window: Duration,
    /// `ADMIN_RATE_LIMIT`.
    #[validate(range(min = 1, message = "must be at least 1"))]
    pub admin_rate_limit: u32,
    /// `ADMIN_RATE_WINDOW`.
    pub admin_rate_window: Duration,
    /// `PUBLIC_RATE_LIMIT`: requests per client address per minute on the public routes.
    #[validate(range(min = 1, message = "must be at least 1"))]
    pub public_rate_limit: u32,
    /// `RATE_LIMIT_CLEANUP_INTERVAL`.
    pub rate_limit_cleanup_interval: Duration,
    /// `WS_COMMAND_BUDGET` (extension): budget units per connection per minute.
    #[validate(range(min = 10, max = 1_000_000, message = "must be between 10 and 1000000"))]
    pub ws_command_budget: u32,
}

impl LimitsSection {
    /// Reads the section.
    pub(super) fn read(r: &mut Reader<'_>) -> Self {
        let section = Self {
            max_connections: r.number("MAX_CONNECTIONS", 10_000),
            max_connections_per_user: r.number("MAX_CONNECTIONS_PER_USER", 10),
            max_active_sessions_per_user: r.number("MAX_ACTIVE_SESSIONS_PER_USER", 20),
            rate_limit: r.number("RATE_LIMIT", 100),
            rate_window: r.duration("RATE_WINDOW", "1m"),
            admin_rate_limit: r.number("ADMIN_RATE_LIMIT", 20),
            admin_rate_window: r.duration("ADMIN_RATE_WINDOW", "1m"),
            public_rate_limit: r.number("PUBLIC_RATE_LIMIT", 60),
            rate_limit_cleanup_interval: r.duration("RATE_LIMIT_CLEANUP_INTERVAL", "5m"),
            ws_command_budget: r.number("WS_COMMAND_BUDGET", 120),
        };
        r.check_ranges(&section);
        section
    }

    /// Messages per user: `RATE_LIMIT` per `RATE_WINDOW`.
    ///
    /// # Errors
    /// When either is zero (validation refuses that first).
    pub fn message_quota(&self) -> anyhow::Result<Quota> {
        Quota::new(self.rate_limit, self.rate_window).context("RATE_LIMIT and RATE_WINDOW must be positive")
    }

    /// Command budget units per connection per minute.
    ///
    /// # Errors
    /// When the budget is zero (validation refuses that first).
    pub fn command_quota(&self) -> anyhow::Result<Quota> {
        Quota::new(self.ws_command_budget, MINUTE).context("WS_COMMAND_BUDGET must be positive")
    }

    /// The HTTP routes' quotas: per admin, per user, per client address.
    ///
    /// # Errors
    /// When a configured limit or window is zero (validation refuses that first).
    pub fn http_quotas(&self) -> anyhow::Result<HttpQuotas> {
        Ok(HttpQuotas {
            admin: Quota::new(self.admin_rate_limit, self.admin_rate_window)
                .context("ADMIN_RATE_LIMIT and ADMIN_RATE_WINDOW must be positive")?,
            user: Quota::new(USER_HTTP_REQUESTS_PER_MINUTE, MINUTE).context("the user route quota")?,
            public: Quota::new(self.public_rate_limit, MINUTE)
                .context("PUBLIC_RATE_LIMIT must be positive")?,
        })
    }

    /// The socket caps: in total and per user.
    #[must_use]
    pub fn connection_gate(&self) -> Arc<ConnectionGate> {
        ConnectionGate::new(self.max_connections, self.max_connections_per_user)
    }
}
