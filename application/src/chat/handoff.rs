//! Human handoff: a user asks for help (admins are alerted by every configured channel),
//! an admin takes the conversation over (the model falls silent, an answer in progress
//! is stopped and stored, the session's sockets get `admin_join`), speaks in it through
//! a socket bound to the session, and releases it (`admin_leave`; the model answers
//! again). The states and their transitions are the domain's [`HandoffState`]; each
//! transition is stored before it is applied and announced.
//!
//! Alerts never delay the user: they are sent by a tracked task, each channel on its
//! own with a timeout, so one channel's failure or stall never skips another. They are
//! limited per session (`help_alert_quota`) and per user over all their sessions
//! (`help_alert_user_quota`); a skipped alert is logged.

use std::sync::Arc;
use std::time::Duration;

use chatbox_domain::handoff::HandoffError;
use chatbox_domain::{HandoffState, SessionId, UserId};
use tracing::{info, instrument, warn};

use super::ChatService;
use crate::error::ChatError;
use crate::events::ServerEvent;
use crate::live::LiveSession;
use crate::ports::HelpAlert;

/// The longest one alert channel may take.
const ALERT_TIMEOUT: Duration = Duration::from_secs(30);

impl ChatService {
    /// `admin` takes session `id` over. Repeating it as the same admin changes nothing.
    ///
    /// # Errors
    /// [`ChatError::NotFound`]; [`ChatError::SessionEnded`]; [`ChatError::AssistedByAnother`]
    /// when another admin assists it; storage failures.
    #[instrument(name = "take_over", skip_all, fields(session_id = %id, admin_id = %admin))]
    pub async fn take_over(&self, admin: &UserId, admin_name: &str, id: &SessionId) -> Result<(), ChatError> {
        let live = self.live_if(id, |_| true).await?.ok_or(ChatError::NotFound)?;
        let _turn = live.control().await;
        let (current, active) = live.read(|session| (session.handoff.clone(), session.is_active()));
        if !active {
            return Err(ChatError::SessionEnded);
        }
        if current.assisted_by(admin) {
            return Ok(());
        }
        let next = current.take_over(admin.clone(), admin_name.to_owned()).map_err(handoff_error)?;
        self.deps.storage(self.deps.repo.set_handoff(id, &next, self.deps.clock.now())).await?;
        self.deps.hub.field_changed(id).await;
        // The model falls silent at once: the answer in progress is cut (and stored with
        // what it has) rather than finished.
        live.set_handoff(next);
        self.deps.metrics.takeover();
        info!("session taken over by an admin");
        self.announce_handoff(&live, true, admin, admin_name);
        Ok(())
    }

    /// `admin` hands session `id` back to the model.
    ///
    /// # Errors
    /// [`ChatError::NotFound`]; [`ChatError::NotAssisting`] unless `admin` assists it;
    /// storage failures.
    #[instrument(name = "release", skip_all, fields(session_id = %id, admin_id = %admin))]
    pub async fn release(&self, admin: &UserId, id: &SessionId) -> Result<(), ChatError> {
        let live = self.live_if(id, |_| true).await?.ok_or(ChatError::NotFound)?;
        let _turn = live.control().await;
        let current = live.read(|session| session.handoff.clone());
        let HandoffState::AdminAssisting { admin_name, .. } = &current else {
            return Err(ChatError::NotAssisting);
        };
        let admin_name = admin_name.clone();
        let next = current.release(admin).map_err(handoff_error)?;
        self.deps.storage(self.deps.repo.set_handoff(id, &next, self.deps.clock.now())).await?;
        self.deps.hub.field_changed(id).await;
        live.set_handoff(next);
        info!("session released by its admin");
        self.announce_handoff(&live, false, admin, &admin_name);
        Ok(())
    }

    fn announce_handoff(&self, live: &LiveSession, joined: bool, admin: &UserId, admin_name: &str) {
        let frame = self.frame(ServerEvent::Handoff {
            session_id: live.id().clone(),
            joined,
            admin_id: admin.clone(),
            admin_name: admin_name.to_owned(),
        });
        live.publish(&frame, None);
    }

    /// Alerts the admins that session `live` asks for help, unless this session already
    /// alerted them as often as its quota allows.
    pub(super) fn alert_admins(&self, live: &LiveSession) {
        if self.deps.notifiers.is_empty() {
            return;
        }
        let now = self.deps.clock.monotonic();
        if let Err(retry_after) = self.deps.help_alerts.check(live.id(), now) {
            info!(session_id = %live.id(), retry_after_ms = retry_after.as_millis(), "help alert skipped: rate limited for this session");
            return;
        }
        let owner = live.read(|session| session.owner.clone());
        if let Err(retry_after) = self.deps.help_alerts_per_user.check(&owner, now) {
            info!(session_id = %live.id(), user_id = %owner, retry_after_ms = retry_after.as_millis(), "help alert skipped: rate limited for this user");
            return;
        }
        let alert = live.read(|session| HelpAlert {
            session_id: session.id.clone(),
            user_id: session.owner.clone(),
            session_name: session.name.clone(),
            requested_at: self.deps.clock.now(),
            link: self.deps.settings.admin_panel_url.as_deref().map(|base| session_link(base, live.id())),
        });
        let alert = Arc::new(alert);
        for notifier in &self.deps.notifiers {
            let notifier = Arc::clone(notifier);
            let alert = Arc::clone(&alert);
            let metrics = Arc::clone(&self.deps.metrics);
            self.deps.tasks.spawn(async move {
                let channel = notifier.channel();
                let delivered = match tokio::time::timeout(ALERT_TIMEOUT, notifier.notify(&alert)).await {
                    Ok(Ok(())) => {
                        info!(session_id = %alert.session_id, channel, "help alert sent");
                        true
                    }
                    Ok(Err(error)) => {
                        warn!(session_id = %alert.session_id, channel, %error, "help alert failed");
                        false
                    }
                    Err(_) => {
                        warn!(session_id = %alert.session_id, channel, "help alert failed: timeout");
                        false
                    }
                };
                metrics.alert(channel, delivered);
            });
        }
    }

    /// Forgets recovered help-alert keys (sessions and users); returns (before, after).
    #[must_use]
    pub fn cleanup_alert_limiter(&self) -> (usize, usize) {
        let now = self.deps.clock.monotonic();
        let (sessions_before, sessions_after) = self.deps.help_alerts.cleanup(now);
        let (users_before, users_after) = self.deps.help_alerts_per_user.cleanup(now);
        (sessions_before + users_before, sessions_after + users_after)
    }
}

/// The admin panel's link to a session: `ADMIN_PANEL_URL` with the session id as the
/// `session_id` query parameter.
fn session_link(base: &str, id: &SessionId) -> String {
    let separator = if base.contains('?') { '&' } else { '?' };
    format!("{base}{separator}session_id={id}")
}

fn handoff_error(error: HandoffError) -> ChatError {
    match error {
        HandoffError::AssistedByAnother => ChatError::AssistedByAnother,
        HandoffError::NotAssisting => ChatError::NotAssisting,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_link_adds_the_session_to_the_panel_url() {
        let id = SessionId::parse("s-1").expect("id");
        assert_eq!(
            session_link("https://panel.example/admin", &id),
            "https://panel.example/admin?session_id=s-1"
        );
        assert_eq!(
            session_link("https://panel.example/?tab=live", &id),
            "https://panel.example/?tab=live&session_id=s-1"
        );
    }
}
