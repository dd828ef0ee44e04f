//! Email alerts over SMTP (lettre's async transport on tokio, rustls with aws-lc-rs).
//!
//! One message per alert, addressed `To:` every admin at once: one SMTP transaction means
//! one outcome to report (the relay took it for everyone, or the error says why not), one
//! connection instead of one per admin, and each admin sees who else was told, which is
//! how they agree on who answers. A relay that refuses one recipient refuses the alert:
//! admin addresses are the operators' own and validated at start-up, so a refusal is a
//! configuration error to surface, not something to route around.
//!
//! Every send opens its own connection (no pool: alerts are rare, and a pooled connection
//! the relay dropped in between would fail the next alert) and is bounded as a whole by
//! the configured timeout. lettre's own timeout bounds only the connect on its async
//! transport; a relay that greets and then goes silent is cut off by the outer timeout
//! (the stalled-relay test fails without it).

mod compose;

use std::fmt;
use std::io;
use std::time::Duration;

use async_trait::async_trait;
use chatbox_application::ports::{HelpAlert, Notifier, NotifyError};
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::{self, AsyncSmtpTransport};
use lettre::{AsyncTransport, Tokio1Executor};

use crate::error::SetupError;
use crate::failure::{human, io_kind};
use chatbox_domain::Secret;

/// How the connection to the relay is secured (`SMTP_TLS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// `starttls`: plain connect, then STARTTLS, which the relay must offer (usually port 587).
    StartTls,
    /// `tls`: TLS from the first byte (usually port 465).
    Tls,
    /// `none`: no encryption; the configuration allows it only for loopback or private relays.
    None,
}

/// `SMTP_USER` and `SMTP_PASS`.
#[derive(Debug, Clone)]
pub struct SmtpCredentials {
    /// The login.
    pub user: String,
    /// The password (prints as `***`).
    pub password: Secret,
}

/// Everything the email channel needs, in plain values (the wiring copies them from the
/// validated settings: `SMTP_HOST`, `SMTP_PORT`, `SMTP_TLS`, `SMTP_USER`/`SMTP_PASS`,
/// `EMAIL_FROM`, `ADMIN_EMAILS`).
#[derive(Debug, Clone)]
pub struct EmailConfig {
    /// The relay's host name or address; also the name its TLS certificate must carry.
    pub host: String,
    /// The relay's port.
    pub port: u16,
    /// How the connection is secured.
    pub security: SmtpSecurity,
    /// Login for the relay, if it wants one.
    pub credentials: Option<SmtpCredentials>,
    /// The sender address (`EMAIL_FROM`), a bare address or `Name <address>`.
    pub from: String,
    /// The admins to alert (`ADMIN_EMAILS`); at least one.
    pub recipients: Vec<String>,
    /// The most one alert may take, connect to last reply ([`EmailConfig::DEFAULT_TIMEOUT`]).
    pub timeout: Duration,
}

impl EmailConfig {
    /// The timeout to use unless there is a reason for another.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
}

/// The email [`Notifier`].
pub struct EmailNotifier {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    relay: String,
    security: SmtpSecurity,
    from: Mailbox,
    to: Vec<Mailbox>,
    timeout: Duration,
}

impl fmt::Debug for EmailNotifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmailNotifier")
            .field("relay", &self.relay)
            .field("security", &self.security)
            .field("from", &self.from.email.to_string())
            .field("recipients", &self.to.len())
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

fn mailbox(field: &'static str, value: &str) -> Result<Mailbox, SetupError> {
    value.trim().parse().map_err(|_| SetupError::InvalidAddress { field, value: value.to_owned() })
}

impl EmailNotifier {
    /// A notifier for `config`. Nothing is sent and no connection is opened here.
    ///
    /// # Errors
    /// [`SetupError`] when an address does not parse, there is no recipient, or the TLS
    /// client cannot be set up.
    pub fn new(config: EmailConfig) -> Result<Self, SetupError> {
        let from = mailbox("EMAIL_FROM", &config.from)?;
        let to =
            config.recipients.iter().map(|r| mailbox("ADMIN_EMAILS", r)).collect::<Result<Vec<_>, _>>()?;
        if to.is_empty() {
            return Err(SetupError::NoRecipients { channel: "email" });
        }
        let client_error = |e: smtp::Error| SetupError::Client { channel: "email", reason: e.to_string() };
        let builder = match config.security {
            SmtpSecurity::StartTls => {
                AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&config.host).map_err(client_error)?
            }
            SmtpSecurity::Tls => {
                AsyncSmtpTransport::<Tokio1Executor>::relay(&config.host).map_err(client_error)?
            }
            SmtpSecurity::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&config.host),
        };
        let builder = builder.port(config.port).timeout(Some(config.timeout));
        let builder = match config.credentials {
            Some(c) => builder.credentials(Credentials::new(c.user, c.password.expose().to_owned())),
            None => builder,
        };
        Ok(Self {
            transport: builder.build(),
            relay: format!("{}:{}", config.host, config.port),
            security: config.security,
            from,
            to,
            timeout: config.timeout,
        })
    }

    /// What a failed send means for the caller, in words safe for a log line.
    fn classify(&self, error: &smtp::Error) -> NotifyError {
        let relay = &self.relay;
        if let Some(code) = error.status() {
            // 5xx: the relay will not take this alert as configured; 4xx: try later.
            return if error.is_permanent() {
                NotifyError::Rejected(format!("SMTP relay {relay} refused the alert with reply {code}"))
            } else {
                NotifyError::Unavailable(format!("SMTP relay {relay} deferred the alert with reply {code}"))
            };
        }
        if error.is_timeout() {
            return self.timed_out();
        }
        if error.is_tls() {
            return NotifyError::Unavailable(format!("TLS with SMTP relay {relay} failed"));
        }
        if error.is_client() {
            return NotifyError::Rejected(format!(
                "SMTP relay {relay} does not offer what this client requires (STARTTLS, or an AUTH mechanism for the credentials)"
            ));
        }
        if error.is_response() {
            return NotifyError::Unavailable(format!("SMTP relay {relay} sent an unreadable reply"));
        }
        match io_kind(error) {
            // rustls reports a failed handshake (a plain-text server, a bad certificate)
            // as invalid data on the stream.
            Some(kind @ io::ErrorKind::InvalidData) if self.security != SmtpSecurity::None => {
                NotifyError::Unavailable(format!("TLS with SMTP relay {relay} failed: {kind}"))
            }
            Some(kind) => NotifyError::Unavailable(format!("SMTP relay {relay}: {kind}")),
            None => NotifyError::Unavailable(format!("SMTP relay {relay}: connection failed")),
        }
    }

    fn timed_out(&self) -> NotifyError {
        NotifyError::Unavailable(format!("SMTP relay {}: timeout after {}", self.relay, human(self.timeout)))
    }
}

#[async_trait]
impl Notifier for EmailNotifier {
    fn channel(&self) -> &'static str {
        "email"
    }

    async fn notify(&self, alert: &HelpAlert) -> Result<(), NotifyError> {
        let message_id = format!("<{}@{}>", uuid::Uuid::new_v4().simple(), self.from.email.domain());
        let message = compose::message(alert, &self.from, &self.to, message_id)
            .map_err(|_| NotifyError::Rejected("the alert email could not be built".to_owned()))?;
        match tokio::time::timeout(self.timeout, self.transport.send(message)).await {
            Err(_) => Err(self.timed_out()),
            Ok(Err(error)) => Err(self.classify(&error)),
            Ok(Ok(_)) => Ok(()),
        }
    }
}
