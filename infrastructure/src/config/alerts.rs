//! The alerts section: the alerts sent to admins when a user asks for a human: who
//! receives them (`ADMIN_EMAILS`, `ADMIN_PHONES`), how email goes out (`SMTP_*`,
//! `EMAIL_FROM`), how SMS goes out (`SMS_*`), and the link they carry
//! (`ADMIN_PANEL_URL`); and its conversion into the notify adapter's configurations, the
//! SMTP password and SMS token still wrapped.
//!
//! Each channel is off unless configured completely; a half-configured channel fails
//! validation.

use chatbox_domain::validation::host_is_internal;
use chatbox_notify::{EmailConfig, SmsConfig, SmtpCredentials, SmtpSecurity};

use super::reader::Reader;
use super::secret::Secret;
use super::syntax::{endpoint_problem, is_e164_phone, is_email, link_problem};

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS (port 587).
    StartTls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No encryption: only for loopback or private relays.
    None,
}

/// Email alerts.
#[derive(Debug, Clone)]
pub struct EmailSettings {
    /// `SMTP_HOST`.
    pub host: String,
    /// `SMTP_PORT`.
    pub port: u16,
    /// `SMTP_USER`.
    pub user: Option<String>,
    /// `SMTP_PASS`.
    pub password: Option<Secret>,
    /// `SMTP_TLS`.
    pub tls: SmtpTls,
    /// `EMAIL_FROM`.
    pub from: String,
}

/// SMS alerts through a Twilio-style REST API.
#[derive(Debug, Clone)]
pub struct SmsSettings {
    /// `SMS_ACCOUNT_SID`.
    pub account_sid: String,
    /// `SMS_AUTH_TOKEN` (alias `SMS_API_KEY`).
    pub auth_token: Secret,
    /// `SMS_FROM`: an E.164 number or an alphanumeric sender id.
    pub from: String,
    /// `SMS_ENDPOINT`: the API base URL.
    pub endpoint: String,
}

/// `ADMIN_*`, `SMTP_*`, `EMAIL_FROM`, `SMS_*`.
#[derive(Debug, Clone, Default)]
pub struct AlertsSection {
    /// `ADMIN_EMAILS`.
    pub admin_emails: Vec<String>,
    /// `ADMIN_PHONES`, E.164.
    pub admin_phones: Vec<String>,
    /// Email, when configured.
    pub email: Option<EmailSettings>,
    /// SMS, when configured.
    pub sms: Option<SmsSettings>,
    /// `ADMIN_PANEL_URL`: the alerts link to the session there.
    pub admin_panel_url: Option<String>,
}

const TWILIO_API: &str = "https://api.twilio.com";

/// An alphanumeric sender id: 1–11 letters, digits or spaces, at least one letter.
fn is_sender_id(value: &str) -> bool {
    (1..=11).contains(&value.len())
        && value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b' ')
        && value.bytes().any(|b| b.is_ascii_alphabetic())
}

fn email(r: &mut Reader<'_>) -> Option<EmailSettings> {
    let host = r.text("SMTP_HOST");
    let from = r.text("EMAIL_FROM");
    let port = r.number::<u16>("SMTP_PORT", 587);
    if port == 0 {
        r.fail("SMTP_PORT", "must be between 1 and 65535");
    }
    let tls = match r.text("SMTP_TLS").map(|t| t.to_ascii_lowercase()).as_deref() {
        None | Some("starttls") => SmtpTls::StartTls,
        Some("tls") => SmtpTls::Tls,
        Some("none") => SmtpTls::None,
        Some(_) => {
            r.fail("SMTP_TLS", "must be starttls, tls or none");
            SmtpTls::StartTls
        }
    };
    let user = r.text("SMTP_USER");
    let password = r.text("SMTP_PASS").map(Secret::new);
    if let Some(from) = &from
        && !is_email(from)
    {
        r.fail("EMAIL_FROM", format!("{from:?} is not an email address"));
    }
    let (host, from) = match (host, from) {
        (Some(host), Some(from)) => (host, from),
        (None, None) => {
            if user.is_some() || password.is_some() {
                r.fail("SMTP_HOST", "SMTP_USER and SMTP_PASS need SMTP_HOST and EMAIL_FROM");
            }
            return None;
        }
        _ => {
            r.fail("SMTP_HOST", "SMTP_HOST and EMAIL_FROM must be set together");
            return None;
        }
    };
    if tls == SmtpTls::None && !host_is_internal(&host) {
        r.fail("SMTP_TLS", "none is only allowed for a loopback or private relay");
    }
    if user.is_some() != password.is_some() {
        r.fail("SMTP_USER", "SMTP_USER and SMTP_PASS must be set together");
    }
    Some(EmailSettings { host, port, user, password, tls, from })
}

fn sms(r: &mut Reader<'_>) -> Option<SmsSettings> {
    if let Some(provider) = r.text("SMS_PROVIDER")
        && !provider.eq_ignore_ascii_case("twilio")
    {
        r.fail("SMS_PROVIDER", "must be twilio");
    }
    let endpoint = r.text("SMS_ENDPOINT").unwrap_or_else(|| TWILIO_API.to_owned());
    if let Some(problem) = endpoint_problem(&endpoint) {
        r.fail("SMS_ENDPOINT", problem);
    }
    let token_name = if r.source.is_set("SMS_AUTH_TOKEN") { "SMS_AUTH_TOKEN" } else { "SMS_API_KEY" };
    let parts = (r.text("SMS_ACCOUNT_SID"), r.text(token_name).map(Secret::new), r.text("SMS_FROM"));
    if let Some(from) = &parts.2
        && !is_e164_phone(from)
        && !is_sender_id(from)
    {
        r.fail("SMS_FROM", format!("{from:?} is not an E.164 number (+15551234567) or a sender id"));
    }
    match parts {
        (Some(account_sid), Some(auth_token), Some(from)) => {
            if !account_sid.bytes().all(|b| b.is_ascii_alphanumeric()) {
                r.fail("SMS_ACCOUNT_SID", "must be letters and digits only");
            }
            Some(SmsSettings { account_sid, auth_token, from, endpoint })
        }
        (None, None, None) => None,
        _ => {
            r.fail("SMS_ACCOUNT_SID", "SMS_ACCOUNT_SID, SMS_AUTH_TOKEN and SMS_FROM must be set together");
            None
        }
    }
}

impl AlertsSection {
    /// Reads the section.
    pub(super) fn read(r: &mut Reader<'_>) -> Self {
        alerts(r)
    }

    /// The email channel's configuration, when SMTP is configured (even with no
    /// recipient: the caller decides what that means).
    #[must_use]
    pub fn email_config(&self) -> Option<EmailConfig> {
        let email = self.email.as_ref()?;
        let credentials = match (&email.user, &email.password) {
            (Some(user), Some(password)) => {
                Some(SmtpCredentials { user: user.clone(), password: password.clone() })
            }
            _ => None,
        };
        Some(EmailConfig {
            host: email.host.clone(),
            port: email.port,
            security: match email.tls {
                SmtpTls::StartTls => SmtpSecurity::StartTls,
                SmtpTls::Tls => SmtpSecurity::Tls,
                SmtpTls::None => SmtpSecurity::None,
            },
            credentials,
            from: email.from.clone(),
            recipients: self.admin_emails.clone(),
            timeout: EmailConfig::DEFAULT_TIMEOUT,
        })
    }

    /// The SMS channel's configuration, when the SMS API is configured (even with no
    /// recipient).
    #[must_use]
    pub fn sms_config(&self) -> Option<SmsConfig> {
        let sms = self.sms.as_ref()?;
        Some(SmsConfig {
            endpoint: sms.endpoint.clone(),
            account_sid: sms.account_sid.clone(),
            auth_token: sms.auth_token.clone(),
            from: sms.from.clone(),
            recipients: self.admin_phones.clone(),
            connect_timeout: SmsConfig::DEFAULT_CONNECT_TIMEOUT,
            timeout: SmsConfig::DEFAULT_TIMEOUT,
        })
    }
}

fn alerts(r: &mut Reader<'_>) -> AlertsSection {
    let admin_emails = r.list("ADMIN_EMAILS");
    for address in &admin_emails {
        if !is_email(address) {
            r.fail("ADMIN_EMAILS", format!("{address:?} is not an email address"));
        }
    }
    let admin_phones = r.list("ADMIN_PHONES");
    for phone in &admin_phones {
        if !is_e164_phone(phone) {
            r.fail("ADMIN_PHONES", format!("{phone:?} is not a phone number in E.164 form (+15551234567)"));
        }
    }
    let admin_panel_url = r.text("ADMIN_PANEL_URL");
    if let Some(problem) = admin_panel_url.as_deref().and_then(link_problem) {
        r.fail("ADMIN_PANEL_URL", problem);
    }
    let email = email(r);
    let sms = sms(r);
    // Recipients with no way to reach them would start a service that never alerts. (A
    // channel set up halfway is reported under its own variables already.)
    let any_set = |r: &Reader<'_>, names: &[&str]| names.iter().any(|name| r.source.is_set(name));
    if !admin_emails.is_empty() && email.is_none() && !any_set(r, &["SMTP_HOST", "EMAIL_FROM"]) {
        r.fail("ADMIN_EMAILS", "needs SMTP_HOST and EMAIL_FROM: no email alert could be sent");
    }
    let sms_names = ["SMS_ACCOUNT_SID", "SMS_AUTH_TOKEN", "SMS_API_KEY", "SMS_FROM"];
    if !admin_phones.is_empty() && sms.is_none() && !any_set(r, &sms_names) {
        r.fail(
            "ADMIN_PHONES",
            "needs SMS_ACCOUNT_SID, SMS_AUTH_TOKEN and SMS_FROM: no SMS alert could be sent",
        );
    }
    AlertsSection { admin_emails, admin_phones, email, sms, admin_panel_url }
}

#[cfg(test)]
mod tests {
    use crate::config::load_from;

    const GOOD_SECRET: &str = "k3J9x7QpLm2VbN8wZr4TyU6sHd1FgCeA";

    fn problems(extra: &[(&str, &str)]) -> Vec<String> {
        let mut vars: Vec<(&str, &str)> =
            vec![("JWT_SECRET", GOOD_SECRET), ("LLM_PROVIDER_1_ID", "demo"), ("LLM_PROVIDER_1_TYPE", "demo")];
        vars.extend_from_slice(extra);
        load_from(&vars, false).settings.err().unwrap_or_default()
    }

    #[test]
    fn every_shape_is_checked_under_its_own_name() {
        let found = problems(&[
            ("ADMIN_PANEL_URL", "admin.example.com"),
            ("EMAIL_FROM", "not-an-address"),
            ("SMTP_HOST", "smtp.example.com"),
            ("SMTP_TLS", "none"),
            ("SMS_FROM", "12"),
            ("SMS_ACCOUNT_SID", "AC123"),
            ("ADMIN_EMAILS", "ops@example.com, nobody"),
            ("ADMIN_PHONES", "+15551234567, 555"),
        ]);
        for variable in [
            "ADMIN_PANEL_URL",
            "EMAIL_FROM",
            "SMTP_TLS",
            "SMS_FROM",
            "SMS_ACCOUNT_SID",
            "ADMIN_EMAILS",
            "ADMIN_PHONES",
        ] {
            assert!(found.iter().any(|p| p.starts_with(&format!("{variable}: "))), "{variable} in {found:?}");
        }
    }

    #[test]
    fn recipients_without_their_channel_fail_validation() {
        let found = problems(&[("ADMIN_EMAILS", "ops@example.com"), ("ADMIN_PHONES", "+15551234567")]);
        assert!(found.iter().any(|p| p.starts_with("ADMIN_EMAILS: needs SMTP_HOST")), "{found:?}");
        assert!(found.iter().any(|p| p.starts_with("ADMIN_PHONES: needs SMS_ACCOUNT_SID")), "{found:?}");
        // A half-configured channel is reported once, under its own variables.
        let half = problems(&[("ADMIN_EMAILS", "ops@example.com"), ("SMTP_HOST", "smtp.example.com")]);
        assert_eq!(half.iter().filter(|p| p.starts_with("ADMIN_EMAILS")).count(), 0, "{half:?}");
        assert!(half.iter().any(|p| p.starts_with("SMTP_HOST: ")), "{half:?}");
    }

    #[test]
    fn complete_channels_load() {
        let mut vars: Vec<(&str, &str)> =
            vec![("JWT_SECRET", GOOD_SECRET), ("LLM_PROVIDER_1_ID", "demo"), ("LLM_PROVIDER_1_TYPE", "demo")];
        vars.extend_from_slice(&[
            ("SMTP_HOST", "127.0.0.1"),
            ("SMTP_TLS", "none"),
            ("SMTP_PORT", "2525"),
            ("EMAIL_FROM", "chatbox@example.com"),
            ("SMS_ACCOUNT_SID", "AC123"),
            ("SMS_API_KEY", "token-value"),
            ("SMS_FROM", "Chatbox"),
            ("SMS_ENDPOINT", "http://127.0.0.1:9000"),
            ("ADMIN_PANEL_URL", "https://admin.example.com/chat"),
        ]);
        let alerts = load_from(&vars, false).settings.expect("valid").alerts;
        let email = alerts.email_config().expect("email channel");
        assert_eq!((email.port, email.recipients.len()), (2525, 0), "no recipient configured");
        let sms_config = alerts.sms_config().expect("SMS channel");
        assert!(!format!("{sms_config:?}").contains("token-value"), "{sms_config:?}");
        assert!(load_from(&vars[..3], false).settings.expect("valid").alerts.sms_config().is_none());
        let sms = alerts.sms.expect("sms");
        assert_eq!((sms.from.as_str(), sms.endpoint.as_str()), ("Chatbox", "http://127.0.0.1:9000"));
        assert_eq!(format!("{:?}", sms.auth_token), "***");
    }
}
