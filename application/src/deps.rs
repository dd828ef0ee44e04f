//! What the use-cases and the session actors share: the ports, the settings, the live
//! sessions, the limiters and the task tracker. One value per service, behind an `Arc`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chatbox_domain::{ModelId, SessionId, UserId};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::files::Files;
use crate::limits::{KeyedLimiter, MessageLimiter};
use crate::live::LiveSessions;
use crate::ports::{
    Clock, IdGenerator, LlmProvider, Metrics, Notifier, Randomness, RepositoryError, SessionCatalog,
    SessionHub, SessionRepository,
};
use crate::settings::ChatSettings;
use crate::shared_state::SharedStateClient;

/// Everything the use-cases and the session actors share.
pub(crate) struct Deps {
    pub repo: Arc<dyn SessionRepository>,
    pub providers: HashMap<ModelId, Arc<dyn LlmProvider>>,
    pub clock: Arc<dyn Clock>,
    pub ids: Arc<dyn IdGenerator>,
    pub random: Arc<dyn Randomness>,
    pub catalog: Arc<dyn SessionCatalog>,
    /// Files in conversations (none: uploads are off, attachments are links only).
    pub files: Option<Files>,
    pub notifiers: Vec<Arc<dyn Notifier>>,
    /// Help alerts per session.
    pub help_alerts: KeyedLimiter<SessionId>,
    /// Help alerts per user.
    pub help_alerts_per_user: KeyedLimiter<UserId>,
    /// What the answers count and time.
    pub metrics: Arc<dyn Metrics>,
    pub settings: ChatSettings,
    pub live: LiveSessions,
    pub limiter: MessageLimiter,
    /// The fan-out to sockets, and the answer leases.
    pub hub: Arc<dyn SessionHub>,
    /// The limits and caps shared by every replica, when configured.
    pub shared: Option<Arc<SharedStateClient>>,
    pub tasks: TaskTracker,
    /// The session actors, apart from the other tasks: shutdown waits for them (the
    /// answers) before it closes the sockets.
    pub actors: TaskTracker,
    /// Cancelled when answers still running at shutdown must stop.
    pub answers_cutoff: CancellationToken,
}

impl Deps {
    /// Runs a storage call within `storage_timeout`: a store that stalls is a store that
    /// failed, so one slow write cannot freeze a session.
    pub async fn storage<T>(
        &self,
        call: impl std::future::Future<Output = Result<T, RepositoryError>>,
    ) -> Result<T, RepositoryError> {
        tokio::time::timeout(self.settings.storage_timeout, call)
            .await
            .unwrap_or_else(|_| Err(RepositoryError::Unavailable("storage call timeout".into())))
    }

    /// Now, on the service's monotonic clock: every deadline and idleness check reads it.
    pub fn monotonic(&self) -> Duration {
        self.clock.monotonic()
    }

    /// Completes at `deadline` on the service's monotonic clock (at once if it passed).
    pub async fn sleep_until(&self, deadline: Duration) {
        tokio::time::sleep_until(self.timer_deadline(deadline)).await;
    }

    /// `deadline` on the service's monotonic clock as a timer's deadline, to reset a
    /// timer that is kept rather than to start a new one (resetting it later is cheap).
    /// A deadline too far to represent is a year away.
    pub fn timer_deadline(&self, deadline: Duration) -> tokio::time::Instant {
        instant_after(tokio::time::Instant::now(), deadline.saturating_sub(self.clock.monotonic()))
    }
}

/// What stands for a deadline too far to represent.
const FAR_AWAY: Duration = Duration::from_secs(365 * 86_400);

/// `now + wait`, or [`FAR_AWAY`] from now when that cannot be represented.
fn instant_after(now: tokio::time::Instant, wait: Duration) -> tokio::time::Instant {
    now.checked_add(wait).unwrap_or_else(|| now + FAR_AWAY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deadline_is_its_wait_from_now_and_an_unrepresentable_one_a_year_away() {
        let now = tokio::time::Instant::now();
        assert_eq!(instant_after(now, Duration::from_secs(5)) - now, Duration::from_secs(5));
        assert_eq!(instant_after(now, Duration::MAX) - now, Duration::from_secs(365 * 86_400));
    }
}
