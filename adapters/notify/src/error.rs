//! Why a notifier could not be built. Raised once at start-up by the constructors, so a
//! bad address or endpoint stops the service instead of failing every alert later. No
//! variant carries a credential.

use thiserror::Error;

/// A configuration a notifier cannot work with.
#[derive(Debug, Error)]
pub enum SetupError {
    /// An address that does not parse as an email mailbox.
    #[error("{field}: {value:?} is not a usable email address")]
    InvalidAddress {
        /// Which setting (`EMAIL_FROM`, `ADMIN_EMAILS`).
        field: &'static str,
        /// The address as given (not a secret).
        value: String,
    },
    /// The channel has nobody to alert.
    #[error("{channel} alerts need at least one recipient")]
    NoRecipients {
        /// `email` or `sms`.
        channel: &'static str,
    },
    /// The SMS API base URL or account SID cannot form a request URL.
    #[error("SMS endpoint: {0}")]
    InvalidEndpoint(&'static str),
    /// The HTTP or SMTP client (its TLS set-up) could not be created.
    #[error("{channel} client set-up failed: {reason}")]
    Client {
        /// `email` or `sms`.
        channel: &'static str,
        /// The library's explanation.
        reason: String,
    },
}
