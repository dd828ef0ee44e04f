//! The alert channels the configuration enables: email when SMTP is configured and
//! `ADMIN_EMAILS` lists someone, SMS when the SMS API is configured and `ADMIN_PHONES`
//! lists someone. A channel configured without recipients is skipped with a warning.

use std::sync::Arc;

use anyhow::Context;
use chatbox_application::ports::Notifier;
use chatbox_notify::{EmailConfig, EmailNotifier, SmsConfig, SmsNotifier, SmtpCredentials, SmtpSecurity};
use tracing::{info, warn};

use crate::config::{AlertSettings, SmtpTls};

/// The notifiers for `alerts`.
///
/// # Errors
/// When a configured channel cannot be set up (an address its library refuses).
pub fn notifiers(alerts: &AlertSettings) -> anyhow::Result<Vec<Arc<dyn Notifier>>> {
    let mut notifiers: Vec<Arc<dyn Notifier>> = Vec::new();
    match (&alerts.email, alerts.admin_emails.is_empty()) {
        (Some(email), false) => {
            let credentials = match (&email.user, &email.password) {
                (Some(user), Some(password)) => {
                    Some(SmtpCredentials { user: user.clone(), password: password.clone() })
                }
                _ => None,
            };
            let notifier = EmailNotifier::new(EmailConfig {
                host: email.host.clone(),
                port: email.port,
                security: match email.tls {
                    SmtpTls::StartTls => SmtpSecurity::StartTls,
                    SmtpTls::Tls => SmtpSecurity::Tls,
                    SmtpTls::None => SmtpSecurity::None,
                },
                credentials,
                from: email.from.clone(),
                recipients: alerts.admin_emails.clone(),
                timeout: EmailConfig::DEFAULT_TIMEOUT,
            })
            .context("cannot set up email alerts")?;
            info!(recipients = alerts.admin_emails.len(), "email alerts on");
            notifiers.push(Arc::new(notifier));
        }
        (Some(_), true) => warn!("SMTP is configured but ADMIN_EMAILS is empty: no email alerts"),
        (None, _) => {}
    }
    match (&alerts.sms, alerts.admin_phones.is_empty()) {
        (Some(sms), false) => {
            let notifier = SmsNotifier::new(SmsConfig {
                endpoint: sms.endpoint.clone(),
                account_sid: sms.account_sid.clone(),
                auth_token: sms.auth_token.clone(),
                from: sms.from.clone(),
                recipients: alerts.admin_phones.clone(),
                connect_timeout: SmsConfig::DEFAULT_CONNECT_TIMEOUT,
                timeout: SmsConfig::DEFAULT_TIMEOUT,
            })
            .context("cannot set up SMS alerts")?;
            info!(recipients = alerts.admin_phones.len(), "SMS alerts on");
            notifiers.push(Arc::new(notifier));
        }
        (Some(_), true) => warn!("the SMS API is configured but ADMIN_PHONES is empty: no SMS alerts"),
        (None, _) => {}
    }
    Ok(notifiers)
}
