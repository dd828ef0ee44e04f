//! The shutdown sequence, in order: readiness turns 503, new sockets are refused (503)
//! and new messages too (`SERVICE_UNAVAILABLE`); answers still running get until the
//! deadline (`SHUTDOWN_TIMEOUT` less a short grace) to finish, then are cancelled, and
//! either way are stored and end with their `done` frame; then every socket writes what
//! is queued for it and gets close 1001 "Server shutting down"; every tracked task
//! (sockets, session actors, cleanup loops) is awaited; the listener closes last, so
//! probes keep getting answers while the server drains.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chatbox_application::ChatService;
use chatbox_http::HttpState;
use chatbox_mongodb_store::MongoSessionRepository;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use super::background::Cleanup;
use super::listener::Server;

/// What is running, as shutdown finds it.
pub(super) struct Running {
    pub chat: ChatService,
    pub http: Arc<HttpState>,
    pub tasks: TaskTracker,
    pub cleanup: Cleanup,
    pub server: Server,
    /// The MongoDB store, when in use: closed once nothing uses it.
    pub mongo: Option<Arc<MongoSessionRepository>>,
}

/// Drains and stops everything within `timeout`.
pub(super) async fn shut_down(running: Running, timeout: Duration) {
    let Running { chat, http, tasks, cleanup, server, mongo } = running;
    let deadline = Instant::now() + timeout;
    info!(timeout = %humantime::format_duration(timeout), "Shutdown started: draining");
    http.gate.start_draining();
    cleanup.stop();
    chat.begin_shutdown();
    tasks.close();

    // The answers finish (or are cut at their deadline, leaving a short grace so the
    // cut ones are still stored) while their sockets stay open to receive them...
    let grace = (timeout / 10).clamp(Duration::from_millis(100), Duration::from_secs(3));
    let answers_deadline = deadline.checked_sub(grace).unwrap_or(deadline);
    if tokio::time::timeout_at(answers_deadline.into(), chat.actors_stopped()).await.is_err() {
        warn!("Shutdown deadline reached: cancelling the answers still running");
        chat.cancel_running_answers();
        let _ = tokio::time::timeout_at(deadline.into(), chat.actors_stopped()).await;
    }
    // ...then every socket writes what is queued for it (the answers' last frames
    // included) and closes with 1001.
    http.shutdown.cancel();
    if tokio::time::timeout_at(deadline.into(), tasks.wait()).await.is_err() {
        warn!(
            remaining = tasks.len() + chat.running_actors(),
            "Shutdown deadline passed with tasks still running"
        );
    }
    server.stop().await;
    if let Some(mongo) = mongo {
        mongo.close().await;
    }
    // The last line: how many tracked tasks (sockets, actors, loops) were left behind.
    info!(tasks_running = tasks.len() + chat.running_actors(), "Shutdown complete");
}
