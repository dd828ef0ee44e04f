//! Alerts to the humans behind the service: one port per channel (email, SMS), so one
//! channel's failure never keeps the other from being tried.

use async_trait::async_trait;
use chatbox_domain::{SessionId, Timestamp, UserId};
use thiserror::Error;

/// What admins are told when a user asks for a human.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelpAlert {
    /// The session.
    pub session_id: SessionId,
    /// Its user.
    pub user_id: UserId,
    /// The session's name, if it has one (user text: adapters escape it for their format).
    pub session_name: Option<String>,
    /// When help was asked for.
    pub requested_at: Timestamp,
    /// A link to the session in the admin panel, when `ADMIN_PANEL_URL` is set.
    pub link: Option<String>,
}

/// A delivery failure. The text is for logs and never holds a credential.
#[derive(Debug, Error)]
pub enum NotifyError {
    /// The channel's server could not be reached, or timed out.
    #[error("alert channel unreachable: {0}")]
    Unavailable(String),
    /// The channel's server refused the alert (bad credentials, bad recipient, …).
    #[error("alert refused: {0}")]
    Rejected(String),
}

/// One alert channel.
#[async_trait]
pub trait Notifier: Send + Sync + 'static {
    /// A short fixed name for logs and metrics: `email`, `sms`.
    fn channel(&self) -> &'static str;

    /// Delivers the alert to every recipient the channel is configured with. Returns
    /// once the channel's server accepted it for all of them.
    ///
    /// # Errors
    /// A [`NotifyError`] when any recipient could not be reached.
    async fn notify(&self, alert: &HelpAlert) -> Result<(), NotifyError>;
}
