//! The shared state choice: none with `HUB_BACKEND=memory` (this process keeps every
//! limit and count), or Redis per `REDIS_*`, watched by the application's
//! [`SharedStateClient`].
//!
//! A Redis that does not answer at start-up does not stop the start: the service comes
//! up not ready (`/readyz` 503, so no traffic is routed to it), refuses what needs the
//! shared state, and serves as soon as Redis answers; the outage is logged and counted
//! like one that begins later.

use std::sync::Arc;

use anyhow::Context;
use chatbox_application::ports::Metrics;
use chatbox_application::shared_state::SharedStateClient;
use chatbox_redis::{RedisSharedState, connect_lazily};
use tracing::info;

use crate::config::{HubBackend, HubSection};

/// Opens the configured shared state, if any.
///
/// # Errors
/// When `REDIS_URL` is not a URL the client accepts (its text is never repeated).
pub(super) async fn open(
    hub: &HubSection,
    metrics: Arc<dyn Metrics>,
) -> anyhow::Result<Option<Arc<SharedStateClient>>> {
    let (HubBackend::Redis, Some(redis)) = (hub.backend, &hub.redis) else {
        return Ok(None);
    };
    let connection = connect_lazily(redis.url.expose(), redis.timeout).context("cannot use Redis")?;
    // Unique among the replicas, and telling in Redis: the socket slots carry it.
    let replica = format!("{}-{}", host_name(), uuid::Uuid::new_v4().simple());
    let store = RedisSharedState::new(connection, &redis.key_prefix, &replica);
    let client = Arc::new(SharedStateClient::new(Arc::new(store), metrics, redis.timeout));
    if client.ping().await.is_ok() {
        info!(key_prefix = %redis.key_prefix, replica = %replica, "Redis shared state ready");
    }
    Ok(Some(client))
}

/// The host's name (the pod's, in Kubernetes), or `replica` when it cannot be read.
fn host_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|name| !name.trim().is_empty())
        .unwrap_or_else(|| "replica".to_owned())
}
