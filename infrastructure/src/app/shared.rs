//! The hub and the shared state: with `HUB_BACKEND=memory` the in-process fan-out and
//! no shared state (this process keeps every limit and count); with `redis`, per
//! `REDIS_*`, the fan-out across replicas ([`RedisHub`]) and the shared limits and
//! counts, watched by the application's [`SharedStateClient`].
//!
//! A Redis that does not answer at start-up does not stop the start: the service comes
//! up not ready (`/readyz` 503, so no traffic is routed to it), refuses what needs the
//! shared state, and serves as soon as Redis answers; the outage is logged and counted
//! like one that begins later.

use std::sync::Arc;

use anyhow::Context;
use chatbox_application::ports::{Metrics, SessionHub};
use chatbox_application::settings::ModelInfo;
use chatbox_application::shared_state::SharedStateClient;
use chatbox_memory_store::LocalHub;
use chatbox_redis::{HubSettings, RedisHub, RedisSharedState, connect_lazily};
use tracing::info;

use crate::config::{HubBackend, HubSection};

/// The fan-out, and the state the replicas share when there are replicas.
pub(super) struct Replicas {
    pub hub: Arc<dyn SessionHub>,
    pub shared_state: Option<Arc<SharedStateClient>>,
}

/// Opens the configured hub; `models` are the configured ones (frames from other
/// replicas name them).
///
/// # Errors
/// When `REDIS_URL` is not a URL the client accepts (its text is never repeated).
pub(super) async fn open(
    section: &HubSection,
    models: Arc<[ModelInfo]>,
    metrics: Arc<dyn Metrics>,
) -> anyhow::Result<Replicas> {
    let (HubBackend::Redis, Some(redis)) = (section.backend, &section.redis) else {
        // Every socket of a session is in this process: the in-process fan-out.
        return Ok(Replicas { hub: Arc::new(LocalHub::new()), shared_state: None });
    };
    let connection = connect_lazily(redis.url.expose(), redis.timeout).context("cannot use Redis")?;
    // Unique among the replicas, and telling in Redis: socket slots and leases carry it.
    let replica = format!("{}-{}", host_name(), uuid::Uuid::new_v4().simple());
    let store = RedisSharedState::new(connection.clone(), &redis.key_prefix, &replica);
    let client = Arc::new(SharedStateClient::new(Arc::new(store), metrics, redis.timeout));
    let settings = HubSettings::new(&redis.key_prefix, &replica, models);
    let hub = RedisHub::start(connection, settings);
    if client.ping().await.is_ok() {
        info!(key_prefix = %redis.key_prefix, replica = %replica, "Redis shared state ready");
    }
    Ok(Replicas { hub: Arc::new(hub), shared_state: Some(client) })
}

/// The host's name (the pod's, in Kubernetes), or `replica` when it cannot be read.
fn host_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|name| !name.trim().is_empty())
        .unwrap_or_else(|| "replica".to_owned())
}
