//! The alert channels the configuration enables: email when SMTP is configured and
//! `ADMIN_EMAILS` lists someone, SMS when the SMS API is configured and `ADMIN_PHONES`
//! lists someone. A channel configured without recipients is skipped with a warning.

use std::sync::Arc;

use anyhow::Context;
use chatbox_application::ports::Notifier;
use chatbox_notify::{EmailNotifier, SmsNotifier};
use tracing::{info, warn};

use crate::config::AlertsSection;

/// The notifiers for `alerts`.
///
/// # Errors
/// When a configured channel cannot be set up (an address its library refuses).
pub fn notifiers(alerts: &AlertsSection) -> anyhow::Result<Vec<Arc<dyn Notifier>>> {
    let mut notifiers: Vec<Arc<dyn Notifier>> = Vec::new();
    match (alerts.email_config(), alerts.admin_emails.is_empty()) {
        (Some(config), false) => {
            let notifier = EmailNotifier::new(config).context("cannot set up email alerts")?;
            info!(recipients = alerts.admin_emails.len(), "email alerts on");
            notifiers.push(Arc::new(notifier));
        }
        (Some(_), true) => warn!("SMTP is configured but ADMIN_EMAILS is empty: no email alerts"),
        (None, _) => {}
    }
    match (alerts.sms_config(), alerts.admin_phones.is_empty()) {
        (Some(config), false) => {
            let notifier = SmsNotifier::new(config).context("cannot set up SMS alerts")?;
            info!(recipients = alerts.admin_phones.len(), "SMS alerts on");
            notifiers.push(Arc::new(notifier));
        }
        (Some(_), true) => warn!("the SMS API is configured but ADMIN_PHONES is empty: no SMS alerts"),
        (None, _) => {}
    }
    Ok(notifiers)
}
