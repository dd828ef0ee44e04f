//! Help requests (`chat/handoff`): an alert goes to every configured channel, limited
//! per session and per user; a help request needs an existing session of the user.

use std::sync::Arc;
use std::time::Duration;

use chatbox_application::ChatError;
use chatbox_application::commands::ClientCommand;
use chatbox_application::ports::{HelpAlert, Notifier, NotifyError, SessionRepository};
use chatbox_domain::SessionId;

use crate::support::{harness_alerting, settings};

/// An alert channel that records what it was asked to send, or fails every time.
struct RecordingChannel {
    name: &'static str,
    fails: bool,
    sent: tokio::sync::mpsc::UnboundedSender<HelpAlert>,
}

#[async_trait::async_trait]
impl Notifier for RecordingChannel {
    fn channel(&self) -> &'static str {
        self.name
    }

    async fn notify(&self, alert: &HelpAlert) -> Result<(), NotifyError> {
        let _ = self.sent.send(alert.clone());
        if self.fails { Err(NotifyError::Unavailable("down".into())) } else { Ok(()) }
    }
}

#[tokio::test(start_paused = true)]
async fn help_alerts_go_to_every_channel_and_are_limited_per_session() {
    let (email_tx, mut emails) = tokio::sync::mpsc::unbounded_channel();
    let (sms_tx, mut texts) = tokio::sync::mpsc::unbounded_channel();
    let channels: Vec<Arc<dyn Notifier>> = vec![
        Arc::new(RecordingChannel { name: "email", fails: true, sent: email_tx }),
        Arc::new(RecordingChannel { name: "sms", fails: false, sent: sms_tx }),
    ];
    let mut s = settings();
    s.admin_panel_url = Some("https://panel.example/admin".into());
    let h = harness_alerting(s, channels);
    let mut client = h.connect("u1", None, None).await;
    h.say(&mut client, "hello").await.expect("hello");
    client.until_done().await;
    let session = client.session_id();
    let ask = || ClientCommand::HelpRequest { session_id: None };
    for _ in 0..6 {
        h.service.handle(&mut client.connection, ask()).await.expect("help");
    }
    // Let the alert tasks run (paused time: this only advances the clock).
    tokio::time::sleep(Duration::from_secs(1)).await;
    let drain = |rx: &mut tokio::sync::mpsc::UnboundedReceiver<HelpAlert>| {
        std::iter::from_fn(|| rx.try_recv().ok()).collect::<Vec<_>>()
    };
    let (tried, sent) = (drain(&mut emails), drain(&mut texts));
    assert_eq!(tried.len(), 5, "5 alerts per session per 5 minutes; the 6th is skipped");
    assert_eq!(sent.len(), 5, "the failing email channel never keeps the SMS from going out");
    assert_eq!(sent[0].session_id, session);
    assert_eq!(sent[0].user_id.as_str(), "u1");
    assert_eq!(
        sent[0].link.as_deref(),
        Some(format!("https://panel.example/admin?session_id={session}").as_str())
    );

    tokio::time::sleep(Duration::from_secs(300)).await;
    h.service.handle(&mut client.connection, ask()).await.expect("help");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(drain(&mut texts).len(), 1, "the quota refills");
}

/// The alert channels of a harness, and what they were asked to send.
fn recorded_harness() -> (crate::support::Harness, tokio::sync::mpsc::UnboundedReceiver<HelpAlert>) {
    let (sms_tx, texts) = tokio::sync::mpsc::unbounded_channel();
    let channels: Vec<Arc<dyn Notifier>> =
        vec![Arc::new(RecordingChannel { name: "sms", fails: false, sent: sms_tx })];
    (harness_alerting(settings(), channels), texts)
}

fn drained(rx: &mut tokio::sync::mpsc::UnboundedReceiver<HelpAlert>) -> Vec<HelpAlert> {
    std::iter::from_fn(|| rx.try_recv().ok()).collect()
}

/// A help request names an existing session of the user (or the bound one): a fresh id,
/// or none on a socket bound to nothing, creates no session and alerts nobody.
#[tokio::test(start_paused = true)]
async fn a_help_request_for_no_session_of_the_user_is_not_found_and_alerts_nobody() {
    let (h, mut texts) = recorded_harness();
    let mut client = h.connect("u1", None, None).await;
    let unbound =
        h.service.handle(&mut client.connection, ClientCommand::HelpRequest { session_id: None }).await;
    assert!(matches!(unbound, Err(ChatError::NotFound)), "{unbound:?}");
    for n in 0..5 {
        let fresh = SessionId::parse(&format!("fresh-{n}")).expect("id");
        let asked = h
            .service
            .handle(&mut client.connection, ClientCommand::HelpRequest { session_id: Some(fresh.clone()) })
            .await;
        assert!(matches!(asked, Err(ChatError::NotFound)), "{asked:?}");
        assert!(h.repo.load(&fresh).await.expect("load").is_none(), "no session is created for it");
    }
    // Someone else's session answers the same.
    let mut other = h.connect("u2", None, None).await;
    h.say(&mut other, "mine").await.expect("mine");
    other.until_done().await;
    let foreign = h
        .service
        .handle(&mut client.connection, ClientCommand::HelpRequest { session_id: Some(other.session_id()) })
        .await;
    assert!(matches!(foreign, Err(ChatError::NotFound)), "{foreign:?}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(drained(&mut texts).is_empty(), "no alert went out");
}

/// Alerts are limited per user as well as per session: asking for help in one session
/// after another cannot multiply them.
#[tokio::test(start_paused = true)]
async fn help_alerts_are_limited_per_user_over_all_their_sessions() {
    let (h, mut texts) = recorded_harness();
    let mut sessions = Vec::new();
    for n in 0..3 {
        h.provider.push(vec![crate::support::Step::Say("ok")]);
        let mut client = h.connect("u1", None, None).await;
        h.say(&mut client, &format!("conversation {n}")).await.expect("say");
        client.until_done().await;
        sessions.push(client);
    }
    for client in &mut sessions {
        for _ in 0..5 {
            h.service
                .handle(&mut client.connection, ClientCommand::HelpRequest { session_id: None })
                .await
                .expect("help");
        }
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let sent = drained(&mut texts);
    assert_eq!(sent.len(), 10, "10 alerts per user per hour, though each session alone allows 5");
}
