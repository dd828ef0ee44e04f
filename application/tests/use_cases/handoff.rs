//! Help requests (`chat/handoff`): an alert goes to every configured channel, limited
//! per session.

use std::sync::Arc;
use std::time::Duration;

use chatbox_application::commands::ClientCommand;
use chatbox_application::ports::{HelpAlert, Notifier, NotifyError};

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
