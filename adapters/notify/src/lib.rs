//! # Alert channel adapters
//!
//! Implementations of the application's [`Notifier`] port: [`EmailNotifier`] (SMTP via
//! lettre) and [`SmsNotifier`] (a Twilio-style REST API via reqwest). Each is built once
//! at start-up from a plain config struct ([`EmailConfig`], [`SmsConfig`]) that the
//! wiring fills from the validated settings; a bad address or endpoint is a
//! [`SetupError`] then, not a failure of every alert later.
//!
//! No retries here: one `notify` is one attempt, bounded by the channel's timeout, and
//! its [`NotifyError`] says whether trying again may help (`Unavailable`) or not
//! (`Rejected`). The caller owns the policy (the per-session alert limit, whether a
//! second try is worth a duplicate alert to the admins who already got the first), and a
//! retry loop hidden in an adapter would stretch one alert past the timeout the caller
//! planned for.
//!
//! Credentials ([`Secret`]) print as `***`; error texts are built here from status and
//! reply codes and I/O error kinds, never from a library's or server's text, so no URL,
//! token, password or echoed user data reaches a log.
//!
//! Wiring: each config field's doc names the setting it comes from (`SMTP_TLS`
//! `starttls`/`tls`/`none` is [`SmtpSecurity`]; `SMTP_USER` and `SMTP_PASS` together are
//! [`SmtpCredentials`]). Build a channel only when its settings are present; with no
//! recipients (`ADMIN_EMAILS` or `ADMIN_PHONES` empty) the constructor answers
//! [`SetupError::NoRecipients`], for the wiring to skip that channel or refuse to start.
//! Construction opens no connection. For the email channel (the SMS one is alike):
//!
//! ```no_run
//! use std::sync::Arc;
//! use chatbox_application::ports::Notifier;
//! use chatbox_notify::{EmailConfig, EmailNotifier, Secret, SmtpCredentials, SmtpSecurity};
//!
//! # fn main() -> Result<(), chatbox_notify::SetupError> {
//! let email: Arc<dyn Notifier> = Arc::new(EmailNotifier::new(EmailConfig {
//!     host: "smtp.example.com".into(),
//!     port: 587,
//!     security: SmtpSecurity::StartTls,
//!     credentials: Some(SmtpCredentials { user: "chatbox".into(), password: Secret::new("…") }),
//!     from: "chatbox@example.com".into(),
//!     recipients: vec!["ops@example.com".into()],
//!     timeout: EmailConfig::DEFAULT_TIMEOUT,
//! })?);
//! # let _ = email; Ok(()) }
//! ```
//!
//! [`Notifier`]: chatbox_application::ports::Notifier
//! [`NotifyError`]: chatbox_application::ports::NotifyError

#![forbid(unsafe_code)]

pub mod email;
pub mod error;
mod failure;
pub mod sms;
mod text;

pub use chatbox_domain::Secret;
pub use email::{EmailConfig, EmailNotifier, SmtpCredentials, SmtpSecurity};
pub use error::SetupError;
pub use sms::{SmsConfig, SmsNotifier, sms_text};
