//! The background tasks: the session cleanup (live state idle past `SESSION_TTL`) and
//! the rate limiter cleanup (every limiter's recovered keys), each on its interval as a
//! tracked task, until stopped. Each run is quick and synchronous, so stopping never
//! waits on one for long.

use std::sync::Arc;
use std::time::Duration;

use chatbox_application::ChatService;
use chatbox_http::HttpState;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::config::{ChatSection, LimitsSection};

/// The cleanup loops, running.
pub(super) struct Cleanup {
    stop: CancellationToken,
}

impl Cleanup {
    /// Starts both loops on `tasks`.
    pub(super) fn start(
        tasks: &TaskTracker,
        chat: &ChatService,
        http: &Arc<HttpState>,
        chat_settings: &ChatSection,
        limits: &LimitsSection,
    ) -> Self {
        let stop = CancellationToken::new();
        spawn_session_cleanup(tasks, chat, chat_settings, stop.clone());
        spawn_rate_limiter_cleanup(tasks, chat, http, limits.rate_limit_cleanup_interval, stop.clone());
        Self { stop }
    }

    /// Ends both loops (their tasks then finish on their own).
    pub(super) fn stop(&self) {
        self.stop.cancel();
    }
}

fn spawn_session_cleanup(
    tasks: &TaskTracker,
    chat: &ChatService,
    settings: &ChatSection,
    stop: CancellationToken,
) {
    let interval = settings.session_cleanup_interval;
    info!(
        "Starting session cleanup task interval={} ttl={}",
        humantime::format_duration(interval),
        humantime::format_duration(settings.session_ttl)
    );
    let sessions = chat.clone();
    spawn_periodic(tasks, interval, stop.clone(), move || {
        let count = sessions.cleanup_sessions();
        info!("Cleaned up expired sessions count={count}");
    });
    spawn_file_cleanup(tasks, chat.clone(), interval, stop);
}

/// Deletes uploaded files whose time is up (`UPLOAD_ORPHAN_AGE`, `UPLOAD_RETENTION`),
/// every `SESSION_CLEANUP_INTERVAL`. A run cut short by shutdown loses nothing: a file's
/// bytes go before its record, and the next start finds what is left.
fn spawn_file_cleanup(tasks: &TaskTracker, chat: ChatService, interval: Duration, stop: CancellationToken) {
    tasks.spawn(async move {
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                _ = ticks.tick() => {}
            }
            let outcome = tokio::select! {
                () = stop.cancelled() => break,
                outcome = chat.cleanup_files() => outcome,
            };
            match outcome {
                Ok(deleted) => info!(
                    "Cleaned up expired files orphans={} retention={}",
                    deleted.orphans, deleted.retained
                ),
                Err(error) => warn!("Cleaning up expired files failed: {error}"),
            }
        }
    });
}

/// Cleans every limiter: messages per user, help alerts per session, and the HTTP
/// limiters per admin, user and client address; the log line reports their sum.
fn spawn_rate_limiter_cleanup(
    tasks: &TaskTracker,
    chat: &ChatService,
    http: &Arc<HttpState>,
    interval: Duration,
    stop: CancellationToken,
) {
    info!("Starting rate limiter cleanup task interval={}", humantime::format_duration(interval));
    let chat = chat.clone();
    let http = Arc::clone(http);
    spawn_periodic(tasks, interval, stop, move || {
        let counts = [
            chat.cleanup_rate_limiter(),
            chat.cleanup_alert_limiter(),
            http.limiters.cleanup(chat.clock().monotonic()),
        ];
        let (before, after) = counts.iter().fold((0, 0), |(b, a), (before, after)| (b + before, a + after));
        info!(
            "Rate limiter cleanup completed before={before} after={after} removed={}",
            before.saturating_sub(after)
        );
    });
}

/// Runs `job` every `interval` (first run after one interval) until `stop`, as a tracked
/// task.
fn spawn_periodic(
    tasks: &TaskTracker,
    interval: Duration,
    stop: CancellationToken,
    mut job: impl FnMut() + Send + 'static,
) {
    tasks.spawn(async move {
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                _ = ticks.tick() => job(),
            }
        }
    });
}
