//! Help alerts end to end: a user's `help_request` reaches a local SMTP server and a
//! local stand-in for the SMS API, both linking to the session in the admin panel; when
//! one channel fails, the other still delivers.

use serde_json::json;

use crate::prometheus::Scrape;
use crate::support::{TestApp, spawn_app};

#[path = "../../adapters/notify/tests/support/sms_api.rs"]
#[allow(dead_code)]
mod sms_api;
#[path = "../../adapters/notify/tests/support/smtp_sink.rs"]
#[allow(dead_code)]
mod smtp_sink;

use sms_api::{Reply, SmsApi};
use smtp_sink::{Behaviour, SmtpSink};

const PANEL: &str = "https://panel.example/admin";

async fn app_with(smtp_port: u16, sms_base: &str) -> TestApp {
    let port = smtp_port.to_string();
    spawn_app(&[
        ("ADMIN_EMAILS", "ops@example.com,lead@example.com"),
        ("EMAIL_FROM", "chatbox@example.com"),
        ("SMTP_HOST", "127.0.0.1"),
        ("SMTP_PORT", &port),
        ("SMTP_TLS", "none"),
        ("ADMIN_PHONES", "+15551230001"),
        ("SMS_ACCOUNT_SID", "AC0123456789"),
        ("SMS_AUTH_TOKEN", "sms-token-Zx81Qw"),
        ("SMS_FROM", "+15550000000"),
        ("SMS_ENDPOINT", sms_base),
        ("ADMIN_PANEL_URL", PANEL),
    ])
    .await
}

async fn ask_for_help(client: &mut crate::support::Client) {
    client.send(json!({"type": "help_request"})).await;
    let ack = client.next_json().await;
    assert_eq!(ack["metadata"]["state"], "help_requested", "{ack}");
}

#[tokio::test]
async fn a_help_request_alerts_the_admins_by_email_and_sms_with_a_link_to_the_session() {
    let mut smtp = SmtpSink::start(Behaviour::default()).await;
    let mut sms = SmsApi::start(|_| Reply::Status(201, r#"{"sid":"SM1"}"#.into())).await;
    let app = app_with(smtp.port(), &sms.base()).await;
    let mut user = app.connect("alice", "").await;
    user.ask("My order never arrived").await;
    let session = user.session_id();
    ask_for_help(&mut user).await;

    let link = format!("{PANEL}?session_id={session}");
    let mail = smtp.next_session().await;
    let sent = mail.transactions.first().expect("one message");
    assert_eq!(sent.rcpt_to, ["ops@example.com", "lead@example.com"]);
    assert!(sent.mail_from.contains("chatbox@example.com"), "{}", sent.mail_from);
    // Quoted-printable: soft line breaks, and `=` written as `=3D`.
    let body = sent.body().replace("=\r\n", "").replace("=3D", "=");
    assert!(body.contains(&session), "the session id: {body}");
    assert!(body.contains(&link), "the link: {body}");
    assert!(body.contains("alice"), "the user: {body}");

    let text = sms.next_request().await;
    assert_eq!(text.path, "/2010-04-01/Accounts/AC0123456789/Messages.json");
    assert_eq!(text.field("To"), Some("+15551230001"));
    assert_eq!(text.field("From"), Some("+15550000000"));
    assert!(text.field("Body").is_some_and(|b| b.contains(&link)), "{:?}", text.field("Body"));
    // Each channel's outcome is counted (recorded once the send returns: poll the scrape).
    for channel in ["email", "sms"] {
        alert_counted(&app, channel, "sent").await;
    }
    app.stop().await;
}

/// Waits until `/metrics` shows one alert of `channel` with `outcome`; fails at the deadline.
async fn alert_counted(app: &TestApp, channel: &str, outcome: &str) {
    let deadline = tokio::time::Instant::now() + crate::support::WAIT;
    loop {
        let (_, _, body) = app.http_raw("GET", "/metrics", &[]).await;
        let scrape = Scrape::parse(&body);
        if scrape.get("chatbox_alerts_total", &[("channel", channel), ("outcome", outcome)]) == 1.0 {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "no {channel} {outcome} alert counted:\n{body}");
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn one_failing_channel_never_keeps_the_other_from_delivering() {
    // Email refused: the SMS still goes out.
    let mut smtp = SmtpSink::start(Behaviour { reject_rcpt: true, ..Behaviour::default() }).await;
    let mut sms = SmsApi::start(|_| Reply::Status(201, "{}".into())).await;
    let app = app_with(smtp.port(), &sms.base()).await;
    let mut user = app.connect("alice", "").await;
    user.ask("hello").await;
    ask_for_help(&mut user).await;
    let refused = smtp.next_session().await;
    assert!(refused.transactions.iter().all(|t| t.data.is_empty()), "no message was accepted");
    assert!(sms.next_request().await.field("Body").is_some(), "the SMS went out anyway");
    alert_counted(&app, "email", "failed").await;
    alert_counted(&app, "sms", "sent").await;
    app.stop().await;

    // SMS failing: the email still goes out.
    let mut smtp = SmtpSink::start(Behaviour::default()).await;
    let mut sms = SmsApi::start(|_| Reply::Status(500, "{}".into())).await;
    let app = app_with(smtp.port(), &sms.base()).await;
    let mut user = app.connect("bob", "").await;
    user.ask("hello").await;
    ask_for_help(&mut user).await;
    assert_eq!(sms.next_request().await.field("To"), Some("+15551230001"), "the SMS was tried");
    let mail = smtp.next_session().await;
    assert_eq!(mail.transactions.len(), 1, "the email went out anyway");
    app.stop().await;
}
