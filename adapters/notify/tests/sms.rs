//! The SMS channel against a local HTTP server standing in for a Twilio-style API: the
//! request each admin phone gets (path with the SID, basic auth, form fields), how each
//! answer is classified, and that the auth token shows up in no error or Debug output.

#[path = "support/alert.rs"]
mod alert;
#[path = "support/sms_api.rs"]
mod sms_api;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use alert::alert;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chatbox_application::ports::{Notifier, NotifyError};
use chatbox_notify::{Secret, SetupError, SmsConfig, SmsNotifier};
use sms_api::{Reply, SmsApi};

const SID: &str = "AC0123456789abcdef";
const TOKEN: &str = "sms-AUTH-TOKEN-s3cr3t";
const FROM: &str = "+15550001111";
const PHONES: [&str; 2] = ["+15551234567", "+447700900123"];
const LINK: &str = "https://admin.example.com/chat/3f2a9c1e-5b7d-4e8f-9a0b-1c2d3e4f5a6b";

fn config(endpoint: String) -> SmsConfig {
    SmsConfig {
        endpoint,
        account_sid: SID.into(),
        auth_token: Secret::new(TOKEN),
        from: FROM.into(),
        recipients: PHONES.iter().map(|p| (*p).to_owned()).collect(),
        connect_timeout: Duration::from_secs(2),
        timeout: Duration::from_secs(5),
    }
}

fn notifier(config: SmsConfig) -> SmsNotifier {
    SmsNotifier::new(config).expect("valid config")
}

fn created(_: &sms_api::Request) -> Reply {
    Reply::Status(201, r#"{"sid":"SM1","status":"queued"}"#.into())
}

/// Everything an operator could see of a failure.
fn shown(error: &NotifyError) -> String {
    format!("{error} / {error:?}")
}

#[tokio::test]
async fn every_phone_gets_one_authenticated_form_post() {
    let mut api = SmsApi::start(created).await;
    let sms = notifier(config(api.base()));
    assert_eq!(sms.channel(), "sms");

    sms.notify(&alert(Some("Billing"), Some(LINK))).await.expect("delivered");

    let expected_auth = format!("Basic {}", STANDARD.encode(format!("{SID}:{TOKEN}")));
    let mut phones = BTreeSet::new();
    for _ in PHONES {
        let request = api.next_request().await;
        assert_eq!(request.method, "POST");
        assert_eq!(request.path, format!("/2010-04-01/Accounts/{SID}/Messages.json"));
        assert_eq!(request.header("authorization"), Some(expected_auth.as_str()));
        assert_eq!(request.header("content-type"), Some("application/x-www-form-urlencoded"));
        assert_eq!(request.field("From"), Some(FROM));
        assert_eq!(
            request.field("Body"),
            Some(format!("Chatbox: help requested, session 3f2a9c1e... {LINK}").as_str())
        );
        phones.insert(request.field("To").expect("To").to_owned());
    }
    assert_eq!(phones, PHONES.iter().map(|p| (*p).to_owned()).collect());
    assert!(api.no_more_requests(), "one request per phone");
}

#[tokio::test]
async fn a_path_prefix_is_kept_and_a_long_text_is_cut_to_320_characters() {
    let mut api = SmsApi::start(created).await;
    let sms = notifier(SmsConfig {
        recipients: vec![PHONES[0].into()],
        ..config(format!("{}/relay/", api.base()))
    });
    let long_link = format!("https://admin.example.com/{}", "é".repeat(400));
    sms.notify(&alert(None, Some(&long_link))).await.expect("delivered");
    let request = api.next_request().await;
    assert_eq!(request.path, format!("/relay/2010-04-01/Accounts/{SID}/Messages.json"));
    let body = request.field("Body").expect("Body");
    assert_eq!(body.chars().count(), 320, "{body}");
    assert!(
        body.starts_with("Chatbox: help requested, session 3f2a9c1e... https://admin.example.com/é"),
        "{body}"
    );
}

#[tokio::test]
async fn client_errors_are_rejections_that_name_the_status_but_not_the_body() {
    for status in [400, 401, 403] {
        let api = SmsApi::start(move |_| {
            Reply::Status(status, format!(r#"{{"code":20003,"message":"Authenticate with {TOKEN} failed"}}"#))
        })
        .await;
        let error = notifier(config(api.base())).notify(&alert(None, None)).await.expect_err("refused");
        assert!(matches!(error, NotifyError::Rejected(_)), "{status}: {error:?}");
        let text = shown(&error);
        assert!(text.contains(&status.to_string()) && text.contains("provider error 20003"), "{text}");
        assert!(text.contains("2 of 2"), "{text}");
        assert!(!text.contains(TOKEN) && !text.contains("Authenticate"), "body leaked: {text}");
    }
}

#[tokio::test]
async fn server_errors_and_throttling_are_unavailable() {
    for status in [500, 503, 429] {
        let api = SmsApi::start(move |_| Reply::Status(status, "oops".into())).await;
        let error = notifier(config(api.base())).notify(&alert(None, None)).await.expect_err("failed");
        assert!(matches!(error, NotifyError::Unavailable(_)), "{status}: {error:?}");
        assert!(error.to_string().contains(&status.to_string()), "{error}");
    }
}

#[tokio::test]
async fn one_refused_phone_does_not_keep_the_other_from_being_sent() {
    let mut api = SmsApi::start(|request| {
        if request.field("To") == Some(PHONES[0]) {
            Reply::Status(400, r#"{"code":21211}"#.into())
        } else {
            created(request)
        }
    })
    .await;
    let error = notifier(config(api.base())).notify(&alert(None, None)).await.expect_err("one refused");
    assert!(matches!(error, NotifyError::Rejected(_)), "{error:?}");
    assert!(error.to_string().contains("1 of 2 SMS not sent; to ...4567"), "{error}");
    let sent: BTreeSet<String> = [api.next_request().await, api.next_request().await]
        .iter()
        .filter_map(|r| r.field("To").map(str::to_owned))
        .collect();
    assert_eq!(sent.len(), 2, "both phones were tried");
}

#[tokio::test]
async fn a_refused_connection_is_unavailable() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    let error = notifier(config(format!("http://127.0.0.1:{port}")))
        .notify(&alert(None, None))
        .await
        .expect_err("no server");
    assert!(matches!(error, NotifyError::Unavailable(_)), "{error:?}");
    let text = shown(&error);
    assert!(text.contains("connection refused"), "{text}");
    assert!(!text.contains(TOKEN) && !text.contains(SID), "no URL or credential: {text}");
}

#[tokio::test]
async fn a_stalled_api_is_unavailable_after_the_timeout() {
    let mut api = SmsApi::start(|_| Reply::Stall).await;
    let timeout = Duration::from_millis(300);
    let sms = notifier(SmsConfig { timeout, ..config(api.base()) });
    let started = Instant::now();
    let error = sms.notify(&alert(None, None)).await.expect_err("stalled");
    let took = started.elapsed();
    assert!(matches!(error, NotifyError::Unavailable(_)), "{error:?}");
    assert!(error.to_string().contains("timeout"), "{error}");
    assert!(took >= timeout && took < Duration::from_secs(5), "returned after {took:?}");
    api.next_request().await;
}

#[tokio::test]
async fn debug_output_hides_the_token() {
    let api = SmsApi::start(created).await;
    let config = config(api.base());
    let sms = notifier(config.clone());
    for output in [format!("{config:?}"), format!("{sms:?}")] {
        assert!(!output.contains(TOKEN), "token leaked: {output}");
        assert!(output.contains("***"), "{output}");
    }
}

#[test]
fn bad_settings_fail_at_construction() {
    let base = "https://api.example.com".to_owned();
    let with_credentials = SmsNotifier::new(config(format!("https://{SID}:{TOKEN}@api.example.com")));
    assert!(matches!(with_credentials, Err(SetupError::InvalidEndpoint(_))));
    let bad_sid = SmsNotifier::new(SmsConfig { account_sid: "AC/../x".into(), ..config(base.clone()) });
    assert!(matches!(bad_sid, Err(SetupError::InvalidEndpoint(_))));
    let nobody = SmsNotifier::new(SmsConfig { recipients: Vec::new(), ..config(base) });
    assert!(matches!(nobody, Err(SetupError::NoRecipients { channel: "sms" })));
    let shown = format!("{with_credentials:?}");
    assert!(!shown.contains(TOKEN), "{shown}");
}
