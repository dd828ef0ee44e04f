//! Help requests and takeovers (`chat/handoff`): an alert goes to every configured
//! channel, limited per session and per user; a help request needs an existing session
//! of the user; an admin takes a session over, speaks in it, and releases it.

use std::sync::Arc;
use std::time::Duration;

use chatbox_application::ChatError;
use chatbox_application::commands::ClientCommand;
use chatbox_application::events::ServerEvent;
use chatbox_application::ports::{HelpAlert, Notifier, NotifyError, SessionRepository};
use chatbox_domain::{FinishReason, HandoffState, Sender, SessionId};

use crate::support::{harness_alerting, settings, user};

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
    let mut client = h.answered("u1", "hello").await;
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
    let other = h.answered("u2", "mine").await;
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

fn admin_joined(event: &ServerEvent) -> Option<(bool, String, String)> {
    match event {
        ServerEvent::Handoff { joined, admin_id, admin_name, .. } => {
            Some((*joined, admin_id.as_str().to_owned(), admin_name.clone()))
        }
        _ => None,
    }
}

/// Takeover and release (docs/protocol.md, "Human handoff"): the model falls silent, the
/// session's sockets get `admin_join` then `admin_leave`, the admin speaks in the session
/// through a socket bound to it while assisting only, then the model answers again.
#[tokio::test(start_paused = true)]
async fn an_admin_takes_a_session_over_speaks_in_it_and_hands_it_back() {
    let h = crate::support::harness();
    let mut owner = h.answered("u1", "hello").await;
    let session = owner.session_id();
    let admin = user("boss");

    assert!(matches!(h.service.release(&admin, &session).await, Err(ChatError::NotAssisting)));
    h.service.take_over(&admin, "Ada", &session).await.expect("take over");
    assert_eq!(admin_joined(&owner.next().await), Some((true, "boss".into(), "Ada".into())));
    let stored = h.repo.load(&session).await.expect("load").expect("session");
    assert_eq!(
        stored.handoff,
        HandoffState::AdminAssisting { admin_id: admin.clone(), admin_name: "Ada".into() }
    );
    h.service.take_over(&admin, "Ada", &session).await.expect("repeating it is harmless");
    assert!(owner.is_quiet().await, "a repeated takeover changes nothing");
    assert!(matches!(
        h.service.take_over(&user("other-admin"), "Bob", &session).await,
        Err(ChatError::AssistedByAnother)
    ));

    // The admin's socket enters the session it assists, with the whole history.
    let mut desk = h.connect_admin("boss", Some(session.clone()), None).await;
    assert_eq!(desk.session_id(), session);
    for expected in ["hello", "ok"] {
        match desk.next().await {
            ServerEvent::Stored { message, .. } => assert_eq!(message.content, expected),
            other => panic!("the history first, got {other:?}"),
        }
    }
    // The user's messages reach the admin, and the model does not answer them.
    h.say(&mut owner, "anyone there?").await.expect("stored");
    assert!(
        matches!(desk.next().await, ServerEvent::Stored { ref message, .. } if message.content == "anyone there?")
    );
    assert!(owner.is_quiet().await, "no answer while an admin assists");
    assert_eq!(h.provider.requests().len(), 1);
    h.say(&mut desk, "yes, how can I help?").await.expect("the admin speaks");
    match owner.next().await {
        ServerEvent::Stored { message, .. } => {
            assert_eq!(message.sender, Sender::Admin);
            assert_eq!(message.content, "yes, how can I help?");
        }
        other => panic!("the admin's message reaches the user, got {other:?}"),
    }

    assert!(matches!(h.service.release(&user("other-admin"), &session).await, Err(ChatError::NotAssisting)));
    h.service.release(&admin, &session).await.expect("release");
    assert_eq!(admin_joined(&owner.next().await), Some((false, "boss".into(), "Ada".into())));
    assert_eq!(admin_joined(&desk.next().await), Some((false, "boss".into(), "Ada".into())));
    let stored = h.repo.load(&session).await.expect("load").expect("session");
    assert!(!matches!(stored.handoff, HandoffState::AdminAssisting { .. }), "{:?}", stored.handoff);
    // The admin's messages are refused from then on, even on the socket still bound.
    assert!(matches!(h.say(&mut desk, "one more thing").await, Err(ChatError::NotAssisting)));
    assert_eq!(h.stored(&session).await.len(), 4, "nothing stored for it");
    // And the model answers the user again.
    h.say(&mut owner, "thanks").await.expect("thanks");
    let events = owner.until_done().await;
    assert_eq!(crate::support::done_of(&events).1, FinishReason::Stop);
}

/// A stop naming the session the socket is bound to is the same as a stop naming none,
/// also on an admin's socket that stayed bound after the release.
#[tokio::test(start_paused = true)]
async fn a_stop_naming_the_bound_session_stops_its_answer() {
    let h = crate::support::harness();
    let mut owner = h.answered("u1", "hello").await;
    let session = owner.session_id();
    let admin = user("boss");
    h.service.take_over(&admin, "Ada", &session).await.expect("take over");
    let mut desk = h.connect_admin("boss", Some(session.clone()), None).await;
    h.service.release(&admin, &session).await.expect("release");

    h.provider.push(vec![crate::support::Step::Say("partial "), crate::support::Step::Stall]);
    h.say(&mut owner, "tell me").await.expect("asked");
    loop {
        if matches!(desk.next().await, ServerEvent::AnswerChunk { .. }) {
            break;
        }
    }
    h.service
        .handle(&mut desk.connection, ClientCommand::Stop { session_id: Some(session.clone()) })
        .await
        .expect("stop");
    let events = owner.until_done().await;
    assert_eq!(crate::support::done_of(&events).1, FinishReason::Cancelled);
}

#[tokio::test(start_paused = true)]
async fn an_admin_socket_enters_only_a_session_its_admin_assists() {
    let h = crate::support::harness();
    let owner = h.answered("u1", "hello").await;
    let session = owner.session_id();
    let stranger = h.connect_admin("boss", Some(session.clone()), None).await;
    assert_ne!(stranger.session_id(), session, "an admin role alone does not open someone's session");
    h.service.take_over(&user("boss"), "Ada", &session).await.expect("take over");
    // The assisting admin's id on a socket without the admin role is not enough either.
    let plain = h.connect("boss", Some(session.clone()), None).await;
    assert_ne!(plain.session_id(), session);
    let desk = h.connect_admin("boss", Some(session.clone()), None).await;
    assert_eq!(desk.session_id(), session);
}

#[tokio::test(start_paused = true)]
async fn an_ended_or_unknown_session_cannot_be_taken_over() {
    let h = crate::support::harness();
    let owner = h.answered("u1", "hello").await;
    let session = owner.session_id();
    h.service.end_session(&user("u1"), &session).await.expect("end");
    assert!(matches!(
        h.service.take_over(&user("boss"), "Ada", &session).await,
        Err(ChatError::SessionEnded)
    ));
    let unknown = SessionId::parse("no-such-session").expect("id");
    assert!(matches!(h.service.take_over(&user("boss"), "Ada", &unknown).await, Err(ChatError::NotFound)));
    assert!(matches!(h.service.release(&user("boss"), &unknown).await, Err(ChatError::NotFound)));
}

/// Alert limiter keys (one per session, one per user) are forgotten once they recovered:
/// a session's after 300 s / 5 = 60 s per alert, a user's after 3600 s / 10 = 360 s per
/// alert.
#[tokio::test(start_paused = true)]
async fn recovered_alert_limiter_keys_are_forgotten() {
    let (h, mut texts) = recorded_harness();
    let mut clients = Vec::new();
    for n in 0..2 {
        let mut client = h.connect("u1", None, None).await;
        h.say(&mut client, &format!("conversation {n}")).await.expect("say");
        client.until_done().await;
        h.service
            .handle(&mut client.connection, ClientCommand::HelpRequest { session_id: None })
            .await
            .expect("help");
        clients.push(client);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(drained(&mut texts).len(), 2);
    assert_eq!(h.service.cleanup_alert_limiter(), (3, 3), "two sessions and one user, none recovered");
    // Past the sessions' 60 s, before the user's 720 s.
    tokio::time::sleep(Duration::from_secs(100)).await;
    assert_eq!(h.service.cleanup_alert_limiter(), (3, 1));
    tokio::time::sleep(Duration::from_secs(700)).await;
    assert_eq!(h.service.cleanup_alert_limiter(), (1, 0));
}
