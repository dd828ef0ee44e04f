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
        std::future::ready(())
    });
    // Uploaded files whose time is up (`UPLOAD_ORPHAN_AGE`, `UPLOAD_RETENTION`). A run
    // cut short by shutdown loses nothing: a file's bytes go before its record, and the
    // next run finds what is left.
    let files = chat.clone();
    spawn_periodic(tasks, interval, stop, move || {
        let files = files.clone();
        async move {
            match files.cleanup_files().await {
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
        std::future::ready(())
    });
}

/// Runs `job` every `interval` (first run after one interval; a run that takes longer
/// delays the next) until `stop`, which also ends a run in progress, as a tracked task.
fn spawn_periodic<Run>(
    tasks: &TaskTracker,
    interval: Duration,
    stop: CancellationToken,
    mut job: impl FnMut() -> Run + Send + 'static,
) where
    Run: Future<Output = ()> + Send,
{
    tasks.spawn(async move {
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                _ = ticks.tick() => {}
            }
            tokio::select! {
                () = stop.cancelled() => break,
                () = job() => {}
            }
        }
    });
}
