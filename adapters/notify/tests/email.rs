//! The email channel against a real SMTP conversation on loopback (`SMTP_TLS=none`): what
//! arrives (envelope, headers, body), that user text cannot add a header or a
//! transaction, that credentials are used, and how each failure is classified.

#[path = "support/alert.rs"]
mod alert;
#[path = "support/smtp_sink.rs"]
mod smtp_sink;

use std::time::{Duration, Instant};

use alert::{SESSION_ID, USER_ID, alert};
use chatbox_application::ports::{Notifier, NotifyError};
use chatbox_notify::{EmailConfig, EmailNotifier, Secret, SetupError, SmtpCredentials, SmtpSecurity};
use smtp_sink::{Behaviour, SmtpSink};

/// `alert::REQUESTED_AT_SECS` as the body shows it.
const REQUESTED_AT_RFC3339: &str = "2025-03-04T05:06:07Z";
const FROM: &str = "chatbox@example.com";
const ADMINS: [&str; 2] = ["ops@example.com", "oncall@example.org"];
const PASSWORD: &str = "smtp-PASSWORD-s3cr3t";
const LINK: &str = "https://admin.example.com/chat/3f2a9c1e-5b7d-4e8f-9a0b-1c2d3e4f5a6b";

fn config(port: u16) -> EmailConfig {
    EmailConfig {
        host: "127.0.0.1".into(),
        port,
        security: SmtpSecurity::None,
        credentials: None,
        from: FROM.into(),
        recipients: ADMINS.iter().map(|a| (*a).to_owned()).collect(),
        timeout: Duration::from_secs(5),
    }
}

fn notifier(config: EmailConfig) -> EmailNotifier {
    EmailNotifier::new(config).expect("valid config")
}

fn with_password(port: u16, password: &str) -> EmailConfig {
    EmailConfig {
        credentials: Some(SmtpCredentials { user: "chatbox".into(), password: Secret::new(password) }),
        ..config(port)
    }
}

/// A port nothing listens on (bound once, then released).
async fn closed_port() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    listener.local_addr().expect("addr").port()
}

fn text(error: &NotifyError) -> String {
    format!("{error} / {error:?}")
}

#[tokio::test]
async fn one_message_reaches_every_admin_with_the_alert_facts() {
    let mut sink = SmtpSink::start(Behaviour::default()).await;
    let email = notifier(config(sink.port()));
    assert_eq!(email.channel(), "email");

    email.notify(&alert(Some("Billing question"), Some(LINK))).await.expect("delivered");

    let session = sink.next_session().await;
    assert_eq!(session.transactions.len(), 1, "{:?}", session.commands);
    assert!(session.quit, "the client ends the conversation with QUIT");
    let mail = &session.transactions[0];
    assert_eq!(mail.mail_from, FROM);
    assert_eq!(mail.rcpt_to, ADMINS);
    assert_eq!(mail.header("From").as_deref(), Some(FROM));
    let to = mail.header("To").expect("To header");
    assert!(ADMINS.iter().all(|a| to.contains(a)), "{to}");
    assert_eq!(mail.header("Subject").as_deref(), Some("Chatbox: help requested in session 3f2a9c1e"));
    assert!(
        mail.header("Message-ID").is_some_and(|id| id.ends_with("@example.com>")),
        "{:?}",
        mail.headers()
    );
    assert!(mail.header("Date").is_some());
    assert!(mail.header("Content-Type").is_some_and(|c| c.starts_with("text/plain")), "{:?}", mail.headers());
    let body = decode_body(mail);
    for fact in [SESSION_ID, USER_ID, "\"Billing question\"", REQUESTED_AT_RFC3339, LINK] {
        assert!(body.contains(fact), "{fact} in {body}");
    }
}

#[tokio::test]
async fn without_a_name_or_link_the_body_says_so() {
    let mut sink = SmtpSink::start(Behaviour::default()).await;
    notifier(config(sink.port())).notify(&alert(None, None)).await.expect("delivered");
    let session = sink.next_session().await;
    let body = decode_body(&session.transactions[0]);
    assert!(body.contains("Name:      (none)"), "{body}");
    assert!(body.contains("admin panel"), "{body}");
    assert!(!body.contains("https://"), "{body}");
}

#[tokio::test]
async fn a_session_name_cannot_add_a_header_a_line_or_a_transaction() {
    let mut sink = SmtpSink::start(Behaviour::default()).await;
    let name = "Hi\r\nBcc: attacker@evil.test\r\nX-Injected: yes\r\n\r\nOpen: https://evil.test\r\n.\r\nMAIL FROM:<attacker@evil.test>\r\nRCPT TO:<attacker@evil.test>\r\nDATA\r\n";
    notifier(config(sink.port())).notify(&alert(Some(name), Some(LINK))).await.expect("delivered");

    let session = sink.next_session().await;
    assert_eq!(session.transactions.len(), 1, "one transaction: {:?}", session.commands);
    let mail = &session.transactions[0];
    assert_eq!(mail.rcpt_to, ADMINS, "nobody else received it");
    for header in mail.headers() {
        let lower = header.to_ascii_lowercase();
        assert!(
            !lower.starts_with("bcc:") && !lower.starts_with("x-injected:"),
            "injected header {header:?}"
        );
    }
    let body = decode_body(mail);
    let name_lines: Vec<&str> = body.lines().filter(|l| l.contains("attacker@evil.test")).collect();
    assert_eq!(name_lines.len(), 1, "the name stays on one line: {body}");
    assert!(name_lines[0].starts_with("Name:"), "{body}");
    let open_lines: Vec<&str> = body.lines().filter(|l| l.starts_with("Open:")).collect();
    assert_eq!(open_lines, [format!("Open:      {LINK}")], "the name fakes no link line: {body}");
}

#[tokio::test]
async fn a_non_ascii_name_and_id_arrive_intact_and_the_subject_stays_one_header() {
    let mut sink = SmtpSink::start(Behaviour::default()).await;
    let mut alert = alert(Some("Frage zur Rechnung – Grüße"), None);
    alert.session_id = chatbox_domain::SessionId::parse("ééééééééé-tail").expect("id");
    notifier(config(sink.port())).notify(&alert).await.expect("delivered");
    let session = sink.next_session().await;
    let mail = &session.transactions[0];
    let subject = mail.header("Subject").expect("subject");
    assert!(subject.is_ascii(), "non-ASCII subjects are encoded words: {subject}");
    assert!(!mail.data.contains("-tail\r\nSubject"), "{}", mail.data);
    let body = decode_body(mail);
    assert!(body.contains("\"Frage zur Rechnung – Grüße\""), "{body}");
    assert!(body.contains("ééééééééé-tail"), "{body}");
}

/// The body as text, undoing the transfer encoding lettre chose.
fn decode_body(mail: &smtp_sink::Transaction) -> String {
    let encoding = mail.header("Content-Transfer-Encoding").unwrap_or_default().to_ascii_lowercase();
    let body = mail.body();
    match encoding.as_str() {
        "quoted-printable" => {
            let joined = body.replace("=\r\n", "");
            let mut bytes = Vec::new();
            let mut rest = joined.as_bytes();
            while let Some((&b, tail)) = rest.split_first() {
                if b == b'=' && tail.len() >= 2 {
                    let hex = std::str::from_utf8(&tail[..2]).expect("ascii");
                    bytes.push(u8::from_str_radix(hex, 16).expect("hex"));
                    rest = &tail[2..];
                } else {
                    bytes.push(b);
                    rest = tail;
                }
            }
            String::from_utf8(bytes).expect("utf-8")
        }
        "base64" => {
            use base64::Engine;
            let compact: String = body.split_whitespace().collect();
            let bytes = base64::engine::general_purpose::STANDARD.decode(compact).expect("base64");
            String::from_utf8(bytes).expect("utf-8")
        }
        _ => body.to_owned(),
    }
}

#[tokio::test]
async fn configured_credentials_are_sent_with_auth() {
    let behaviour =
        Behaviour { credentials: Some(("chatbox".into(), PASSWORD.into())), ..Behaviour::default() };
    let mut sink = SmtpSink::start(behaviour).await;
    notifier(with_password(sink.port(), PASSWORD)).notify(&alert(None, None)).await.expect("delivered");
    let session = sink.next_session().await;
    assert_eq!(session.auth, Some(("chatbox".to_owned(), PASSWORD.to_owned())));
    assert_eq!(session.transactions.len(), 1);
}

#[tokio::test]
async fn wrong_credentials_are_rejected_without_the_password_in_the_error() {
    let behaviour =
        Behaviour { credentials: Some(("chatbox".into(), "another".into())), ..Behaviour::default() };
    let mut sink = SmtpSink::start(behaviour).await;
    let config = with_password(sink.port(), PASSWORD);
    let shown = format!("{config:?}");
    let email = notifier(config);
    let error = email.notify(&alert(None, None)).await.expect_err("refused");
    assert!(matches!(error, NotifyError::Rejected(_)), "{error:?}");
    assert!(text(&error).contains("535"), "{error}");
    for output in [text(&error), shown, format!("{email:?}")] {
        assert!(!output.contains(PASSWORD), "password leaked: {output}");
    }
    assert!(sink.next_session().await.transactions.is_empty());
}

#[tokio::test]
async fn a_refused_recipient_is_a_rejection() {
    let mut sink = SmtpSink::start(Behaviour { reject_rcpt: true, ..Behaviour::default() }).await;
    let error = notifier(config(sink.port())).notify(&alert(None, None)).await.expect_err("refused");
    assert!(matches!(error, NotifyError::Rejected(_)), "{error:?}");
    assert!(error.to_string().contains("550"), "{error}");
    assert!(sink.next_session().await.transactions.is_empty());
}

#[tokio::test]
async fn a_refused_connection_is_unavailable() {
    let port = closed_port().await;
    let error = notifier(config(port)).notify(&alert(None, None)).await.expect_err("no server");
    assert!(matches!(error, NotifyError::Unavailable(_)), "{error:?}");
    assert!(error.to_string().contains("connection refused"), "{error}");
}

#[tokio::test]
async fn a_stalled_server_is_unavailable_after_the_timeout() {
    let mut sink = SmtpSink::start(Behaviour { stall_after_greeting: true, ..Behaviour::default() }).await;
    let timeout = Duration::from_millis(300);
    let email = notifier(EmailConfig { timeout, ..config(sink.port()) });
    let started = Instant::now();
    let error = email.notify(&alert(None, None)).await.expect_err("stalled");
    let took = started.elapsed();
    assert!(matches!(error, NotifyError::Unavailable(_)), "{error:?}");
    assert!(error.to_string().contains("timeout"), "{error}");
    assert!(took >= timeout && took < Duration::from_secs(5), "returned after {took:?}");
    let session = sink.next_session().await;
    assert!(session.commands.iter().any(|c| c.starts_with("EHLO")), "{:?}", session.commands);
}

#[tokio::test]
async fn starttls_is_required_so_a_relay_without_it_never_sees_the_alert() {
    let behaviour =
        Behaviour { credentials: Some(("chatbox".into(), PASSWORD.into())), ..Behaviour::default() };
    let mut sink = SmtpSink::start(behaviour).await;
    let config = EmailConfig { security: SmtpSecurity::StartTls, ..with_password(sink.port(), PASSWORD) };
    let error = notifier(config).notify(&alert(Some("private"), None)).await.expect_err("no STARTTLS");
    assert!(matches!(error, NotifyError::Rejected(_)), "{error:?}");
    assert!(error.to_string().contains("STARTTLS"), "{error}");
    let session = sink.next_session().await;
    assert!(session.auth.is_none() && session.transactions.is_empty(), "{:?}", session.commands);
    assert!(
        !session.commands.iter().any(|c| c.starts_with("AUTH") || c.starts_with("MAIL")),
        "{:?}",
        session.commands
    );
}

#[tokio::test]
async fn implicit_tls_against_a_plain_server_fails_as_unavailable() {
    let mut sink = SmtpSink::start(Behaviour::default()).await;
    let config = EmailConfig { security: SmtpSecurity::Tls, ..with_password(sink.port(), PASSWORD) };
    let error = notifier(config).notify(&alert(None, None)).await.expect_err("no TLS");
    assert!(matches!(error, NotifyError::Unavailable(_)), "{error:?}");
    assert!(error.to_string().contains("TLS with SMTP relay"), "{error}");
    assert!(!shown_has_password(&error), "{error:?}");
    let session = sink.next_session().await;
    assert!(session.transactions.is_empty(), "{:?}", session.commands);
}

fn shown_has_password(error: &NotifyError) -> bool {
    text(error).contains(PASSWORD)
}

#[test]
fn bad_settings_fail_at_construction() {
    let bad_from = EmailNotifier::new(EmailConfig { from: "not an address".into(), ..config(25) });
    assert!(matches!(bad_from, Err(SetupError::InvalidAddress { field: "EMAIL_FROM", .. })));
    let nobody = EmailNotifier::new(EmailConfig { recipients: Vec::new(), ..config(25) });
    assert!(matches!(nobody, Err(SetupError::NoRecipients { channel: "email" })));
    let bad_admin = EmailNotifier::new(EmailConfig { recipients: vec!["ops@".into()], ..config(25) });
    assert!(matches!(bad_admin, Err(SetupError::InvalidAddress { field: "ADMIN_EMAILS", .. })));
}

#[tokio::test]
async fn tls_modes_build_clients() {
    for security in [SmtpSecurity::StartTls, SmtpSecurity::Tls] {
        let email =
            EmailNotifier::new(EmailConfig { host: "smtp.example.com".into(), security, ..config(587) });
        assert!(email.is_ok(), "{security:?}: {email:?}");
    }
}
