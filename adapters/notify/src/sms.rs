//! SMS alerts through a Twilio-style REST API: for each admin phone, one
//! `POST {base}/2010-04-01/Accounts/{sid}/Messages.json`, form-encoded `To`, `From` and
//! `Body`, with HTTP basic auth `sid:auth_token`.
//!
//! The phones are sent to concurrently, so the alert takes one request's time whatever
//! the number of admins, and every phone is tried even when another fails. The outcome:
//! a 2xx from every request is delivery; a 4xx is [`NotifyError::Rejected`] (bad
//! credentials, bad number: sending again will not help), except 408 and 429, which say
//! "later" and so count as [`NotifyError::Unavailable`] like a 5xx, a refused connection
//! or a timeout. Redirects are not followed: the API does not use them, and following
//! one would resend the credentials somewhere else.
//!
//! The auth token goes only into the `Authorization` header, never into the URL; error
//! texts name the status and, when the provider's JSON error body has one, its numeric
//! error code, and nothing else of the body (it can echo the message or the number).

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use chatbox_application::ports::{HelpAlert, Notifier, NotifyError};
use futures::future::join_all;
use reqwest::redirect::Policy;
use reqwest::{StatusCode, Url};

use crate::error::SetupError;
use crate::failure::{human, io_kind};
use crate::text::{one_line, prefix_chars, tail_chars, truncate_chars};
use chatbox_domain::Secret;

/// The longest SMS text sent (two or three segments).
pub const SMS_MAX_CHARS: usize = 320;
/// How much of an error body is read to find the provider's error code.
const ERROR_BODY_MAX_BYTES: usize = 4 * 1024;

/// Everything the SMS channel needs, in plain values (the wiring copies them from the
/// validated settings: `SMS_ENDPOINT`, `SMS_ACCOUNT_SID`, `SMS_AUTH_TOKEN`, `SMS_FROM`,
/// `ADMIN_PHONES`).
#[derive(Debug, Clone)]
pub struct SmsConfig {
    /// The API's base URL, e.g. `https://api.twilio.com` (a path prefix is kept).
    pub endpoint: String,
    /// The account SID: letters and digits; the basic-auth user and part of the path.
    pub account_sid: String,
    /// The auth token: the basic-auth password (prints as `***`).
    pub auth_token: Secret,
    /// The sender: an E.164 number or an alphanumeric sender id.
    pub from: String,
    /// The admins' phones (`ADMIN_PHONES`, E.164); at least one.
    pub recipients: Vec<String>,
    /// The most a connection may take to open ([`SmsConfig::DEFAULT_CONNECT_TIMEOUT`]).
    pub connect_timeout: Duration,
    /// The most one request may take, connect to last byte ([`SmsConfig::DEFAULT_TIMEOUT`]).
    pub timeout: Duration,
}

impl SmsConfig {
    /// The connect timeout to use unless there is a reason for another.
    pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
    /// The request timeout to use unless there is a reason for another.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
}

/// The SMS [`Notifier`].
pub struct SmsNotifier {
    client: reqwest::Client,
    messages_url: Url,
    account_sid: String,
    auth_token: Secret,
    from: String,
    recipients: Vec<String>,
    timeout: Duration,
}

impl fmt::Debug for SmsNotifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmsNotifier")
            .field("api", &self.messages_url.origin().ascii_serialization())
            .field("account_sid", &self.account_sid)
            .field("auth_token", &self.auth_token)
            .field("from", &self.from)
            .field("recipients", &self.recipients.len())
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// `{base}/2010-04-01/Accounts/{sid}/Messages.json`, from a base without credentials,
/// query or fragment and a SID of letters and digits (so it cannot change the path).
fn messages_url(endpoint: &str, account_sid: &str) -> Result<Url, SetupError> {
    let mut url = Url::parse(endpoint.trim()).map_err(|_| SetupError::InvalidEndpoint("not a URL"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(SetupError::InvalidEndpoint("must be an http(s) URL with a host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(SetupError::InvalidEndpoint("must not carry credentials"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(SetupError::InvalidEndpoint("must not carry a query or fragment"));
    }
    if account_sid.is_empty() || !account_sid.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(SetupError::InvalidEndpoint("the account SID must be letters and digits"));
    }
    let path =
        format!("{}/2010-04-01/Accounts/{account_sid}/Messages.json", url.path().trim_end_matches('/'));
    url.set_path(&path);
    Ok(url)
}

/// `Chatbox: help requested, session <first 8 characters of the id>... <link>`, at most
/// [`SMS_MAX_CHARS`] characters. ASCII `...` rather than `…`, which would push the whole
/// text out of the GSM 7-bit alphabet and cut each segment from 160 to 70 characters.
#[must_use]
pub fn sms_text(alert: &HelpAlert) -> String {
    let id = one_line(alert.session_id.as_str());
    let short = prefix_chars(&id, 8);
    let cut = if short.len() < id.len() { "..." } else { "" };
    let mut text = format!("Chatbox: help requested, session {short}{cut}");
    if let Some(link) = &alert.link {
        text.push(' ');
        text.push_str(&one_line(link));
    }
    truncate_chars(&text, SMS_MAX_CHARS)
}

impl SmsNotifier {
    /// A notifier for `config`. Nothing is sent and no connection is opened here.
    ///
    /// # Errors
    /// [`SetupError`] when the endpoint or SID cannot form the request URL, there is no
    /// recipient, or the HTTP client (its TLS set-up) cannot be created.
    pub fn new(config: SmsConfig) -> Result<Self, SetupError> {
        let messages_url = messages_url(&config.endpoint, &config.account_sid)?;
        let recipients: Vec<String> = config.recipients.iter().map(|r| r.trim().to_owned()).collect();
        if recipients.is_empty() {
            return Err(SetupError::NoRecipients { channel: "sms" });
        }
        let client = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .timeout(config.timeout)
            .redirect(Policy::none())
            .build()
            .map_err(|e| SetupError::Client { channel: "sms", reason: e.without_url().to_string() })?;
        Ok(Self {
            client,
            messages_url,
            account_sid: config.account_sid,
            auth_token: config.auth_token,
            from: config.from,
            recipients,
            timeout: config.timeout,
        })
    }

    async fn send_one(&self, phone: &str, text: &str) -> Result<(), NotifyError> {
        let sent = self
            .client
            .post(self.messages_url.clone())
            .basic_auth(&self.account_sid, Some(self.auth_token.expose()))
            .form(&[("To", phone), ("From", self.from.as_str()), ("Body", text)])
            .send()
            .await;
        let response = match sent {
            Ok(response) => response,
            Err(error) => return Err(self.request_failure(&error)),
        };
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let code = provider_code(response).await;
        let detail = match code {
            Some(code) => format!("SMS API answered {status} (provider error {code})"),
            None => format!("SMS API answered {status}"),
        };
        if refused(status) {
            Err(NotifyError::Rejected(detail))
        } else {
            Err(NotifyError::Unavailable(detail))
        }
    }

    /// A request that got no status: the words say which step failed, never the URL.
    fn request_failure(&self, error: &reqwest::Error) -> NotifyError {
        if error.is_timeout() {
            return NotifyError::Unavailable(format!("SMS API: timeout after {}", human(self.timeout)));
        }
        let step = if error.is_connect() { "connecting failed" } else { "the request failed" };
        match io_kind(error) {
            Some(kind) => NotifyError::Unavailable(format!("SMS API: {step}: {kind}")),
            None => NotifyError::Unavailable(format!("SMS API: {step}")),
        }
    }
}

/// True for a status that says sending again will not help: a 4xx other than 408 and
/// 429 (which say "later"), or a redirect (never followed).
fn refused(status: StatusCode) -> bool {
    let later = status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::REQUEST_TIMEOUT;
    (status.is_client_error() && !later) || status.is_redirection()
}

/// The provider's numeric error code from a JSON error body (`{"code": 21211, …}`), read
/// up to a bound; nothing else of the body is kept.
async fn provider_code(mut response: reqwest::Response) -> Option<u64> {
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        let room = ERROR_BODY_MAX_BYTES.saturating_sub(body.len());
        if room == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
    }
    let value: serde_json::Value = serde_json::from_slice(&body).ok()?;
    value.get("code")?.as_u64()
}

#[async_trait]
impl Notifier for SmsNotifier {
    fn channel(&self) -> &'static str {
        "sms"
    }

    async fn notify(&self, alert: &HelpAlert) -> Result<(), NotifyError> {
        let text = sms_text(alert);
        let results = join_all(self.recipients.iter().map(|phone| self.send_one(phone, &text))).await;
        let failures: Vec<(&String, NotifyError)> = self
            .recipients
            .iter()
            .zip(results)
            .filter_map(|(phone, r)| r.err().map(|e| (phone, e)))
            .collect();
        let Some((phone, first)) = failures.first() else {
            return Ok(());
        };
        let reason = match first {
            NotifyError::Unavailable(reason) | NotifyError::Rejected(reason) => reason,
        };
        let text = format!(
            "{} of {} SMS not sent; to ...{}: {reason}",
            failures.len(),
            self.recipients.len(),
            tail_chars(phone, 4)
        );
        // Unavailable as soon as one failure may pass on a later try: the caller decides.
        if failures.iter().any(|(_, e)| matches!(e, NotifyError::Unavailable(_))) {
            Err(NotifyError::Unavailable(text))
        } else {
            Err(NotifyError::Rejected(text))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_keeps_a_prefix_and_refuses_what_could_leak_or_redirect() {
        let url = messages_url("https://api.example.com/", "AC12").map(|u| u.to_string());
        assert_eq!(
            url.ok().as_deref(),
            Some("https://api.example.com/2010-04-01/Accounts/AC12/Messages.json")
        );
        let url = messages_url("http://10.0.0.5:8080/sms", "AC12").map(|u| u.to_string());
        assert_eq!(
            url.ok().as_deref(),
            Some("http://10.0.0.5:8080/sms/2010-04-01/Accounts/AC12/Messages.json")
        );
        assert!(messages_url("https://user:pw@api.example.com", "AC12").is_err());
        assert!(messages_url("https://api.example.com?x=1", "AC12").is_err());
        assert!(messages_url("ftp://api.example.com", "AC12").is_err());
        assert!(messages_url("https://api.example.com", "AC/../x").is_err());
        assert!(messages_url("https://api.example.com", "").is_err());
    }
}
