//! The conversation history for the HTTP API (`chat/history`): a user's sessions page by
//! page, one session's messages page by page for whoever may read them, share links,
//! the admin listing and analytics, and the cap on a user's active sessions.

use std::time::Duration;

use chatbox_application::ChatError;
use chatbox_application::chat::Reader;
use chatbox_application::ports::{SessionQuery, SessionRepository};
use chatbox_domain::{Seq, SessionId};

use crate::support::{Client, Harness, harness, harness_with, settings, user};

/// A new session of `user_id` with one exchange (question, answer), a second later.
async fn conversation(h: &Harness, user_id: &str, text: &str) -> Client {
    // Virtual time: each session gets its own creation second, so listings sort by it.
    tokio::time::sleep(Duration::from_secs(1)).await;
    h.answered(user_id, text).await
}

#[tokio::test(start_paused = true)]
async fn a_users_sessions_come_most_recently_active_first_a_page_at_a_time() {
    let h = harness();
    let mut ids = Vec::new();
    for n in 0..3 {
        ids.push(conversation(&h, "u1", &format!("topic {n}")).await.session_id());
    }
    conversation(&h, "u2", "someone else").await;
    let newest_first: Vec<SessionId> = ids.iter().rev().cloned().collect();

    let (page, truncated) = h.service.own_sessions(&user("u1"), 2, 0).await.expect("page");
    let listed: Vec<SessionId> = page.sessions.iter().map(|s| s.id.clone()).collect();
    assert_eq!(listed, newest_first[..2]);
    assert!(truncated, "a third follows");

    let (page, truncated) = h.service.own_sessions(&user("u1"), 3, 0).await.expect("page");
    assert_eq!(page.sessions.len(), 3);
    assert!(!truncated, "exactly the limit: nothing follows");

    let (page, truncated) = h.service.own_sessions(&user("u1"), 2, 2).await.expect("page");
    let listed: Vec<SessionId> = page.sessions.iter().map(|s| s.id.clone()).collect();
    assert_eq!(listed, newest_first[2..]);
    assert!(!truncated);
}

#[tokio::test(start_paused = true)]
async fn a_sessions_messages_come_a_page_at_a_time_after_the_given_seq() {
    let h = harness();
    let mut client = conversation(&h, "u1", "one").await;
    h.say(&mut client, "two").await.expect("two");
    client.until_done().await;
    let session = client.session_id();
    let owner = Reader::User { id: &user("u1"), admin: false };

    let page = h.service.read_session(owner, &session, Seq(0), 3).await.expect("page");
    assert_eq!(page.session.id, session);
    assert_eq!(page.messages.iter().map(|m| m.seq.0).collect::<Vec<_>>(), [1, 2, 3]);
    assert!(page.more, "a fourth follows");

    let page = h.service.read_session(owner, &session, Seq(0), 4).await.expect("page");
    assert_eq!(page.messages.len(), 4);
    assert!(!page.more, "exactly the limit: nothing follows");

    let page = h.service.read_session(owner, &session, Seq(3), 3).await.expect("page");
    assert_eq!(page.messages.iter().map(|m| m.seq.0).collect::<Vec<_>>(), [4]);
    assert!(!page.more);
}

/// The owner reads a session; so does an admin on the admin routes, and an admin (with
/// the role) who assists it; anyone else is answered exactly like a missing session.
#[tokio::test(start_paused = true)]
async fn only_the_owner_and_admins_allowed_to_read_a_session_read_it() {
    let h = harness();
    let session = conversation(&h, "u1", "private").await.session_id();
    let (u1, u2, boss) = (user("u1"), user("u2"), user("boss"));
    let read = |reader| h.service.read_session(reader, &session, Seq(0), 10);

    assert_eq!(read(Reader::User { id: &u1, admin: false }).await.expect("owner").messages.len(), 2);
    assert!(matches!(read(Reader::User { id: &u2, admin: false }).await, Err(ChatError::NotFound)));
    assert!(matches!(read(Reader::User { id: &boss, admin: true }).await, Err(ChatError::NotFound)));
    assert_eq!(read(Reader::Admin).await.expect("admin route").messages.len(), 2);

    h.service.take_over(&user("boss"), "Ada", &session).await.expect("take over");
    assert_eq!(read(Reader::User { id: &boss, admin: true }).await.expect("assisting").messages.len(), 2);
    assert!(
        matches!(read(Reader::User { id: &boss, admin: false }).await, Err(ChatError::NotFound)),
        "the assisting admin's id without the role reads nothing"
    );
    let missing = SessionId::parse("no-such-session").expect("id");
    assert!(matches!(
        h.service.read_session(Reader::Admin, &missing, Seq(0), 10).await,
        Err(ChatError::NotFound)
    ));
}

/// A share link opens the conversation read-only for `SHARE_TTL`; a new one replaces the
/// old; revoking stops it at once; only the owner shares.
#[tokio::test(start_paused = true)]
async fn a_share_link_opens_the_conversation_until_revoked() {
    let h = harness();
    let session = conversation(&h, "u1", "worth sharing").await.session_id();
    assert!(matches!(h.service.share(&user("u2"), &session).await, Err(ChatError::NotFound)));

    // The test's counting ids are too short for a token: these are as long as real ones.
    let long =
        ["0123456789abcdef0123", "fedcba98765432100123", "00112233445566778899", "99887766554433221100"];
    h.ids.queue(&long);
    let before = h.service.clock().now();
    let (token, expires_at) = h.service.share(&user("u1"), &session).await.expect("share");
    assert!(token.len() >= 32 && token.chars().all(|c| c.is_ascii_alphanumeric()), "{token}");
    assert_eq!(expires_at, before + chrono::Duration::seconds(3600), "valid for SHARE_TTL");
    let shared = h.service.shared(&token, Seq(0), 10).await.expect("opens");
    assert_eq!(shared.session.id, session);
    assert_eq!(shared.messages.len(), 2);
    assert!(matches!(h.service.shared("not-a-token", Seq(0), 10).await, Err(ChatError::NotFound)));

    let (newer, _) = h.service.share(&user("u1"), &session).await.expect("share again");
    assert_ne!(newer, token);
    assert!(matches!(h.service.shared(&token, Seq(0), 10).await, Err(ChatError::NotFound)), "replaced");

    assert!(matches!(h.service.revoke_share(&user("u2"), &session).await, Err(ChatError::NotFound)));
    assert!(h.service.shared(&newer, Seq(0), 10).await.is_ok(), "someone else cannot revoke it");
    h.service.revoke_share(&user("u1"), &session).await.expect("revoke");
    assert!(matches!(h.service.shared(&newer, Seq(0), 10).await, Err(ChatError::NotFound)));
}

/// A share token is made of two ids; under 32 characters it would be guessable, so the
/// service refuses to issue it.
#[tokio::test(start_paused = true)]
async fn a_share_token_has_at_least_32_characters() {
    let h = harness();
    let session = conversation(&h, "u1", "worth sharing").await.session_id();
    let sixteen = "a".repeat(16);
    let fifteen = "b".repeat(15);
    h.ids.queue(&[&sixteen, &fifteen]);
    assert!(
        matches!(h.service.share(&user("u1"), &session).await, Err(ChatError::Internal)),
        "31 characters"
    );
    h.ids.queue(&[&sixteen, &sixteen]);
    let (token, _) = h.service.share(&user("u1"), &session).await.expect("32 characters");
    assert_eq!(token.len(), 32);
    assert_eq!(h.service.shared(&token, Seq(0), 10).await.expect("opens").session.id, session);
}

#[tokio::test(start_paused = true)]
async fn the_admin_listing_and_analytics_read_the_catalog() {
    let h = harness();
    let first = conversation(&h, "u1", "one").await.session_id();
    conversation(&h, "u1", "two").await;
    conversation(&h, "u2", "three").await;
    h.service.end_session(&user("u1"), &first).await.expect("end");

    let mut query = SessionQuery::recent(10);
    query.user_id = Some(user("u1"));
    query.with_total = true;
    let page = h.service.list_sessions(&query).await.expect("list");
    assert_eq!(page.sessions.len(), 2);
    assert_eq!(page.total, Some(2));

    let stats = h.service.session_stats(None, None).await.expect("stats");
    assert_eq!(stats.total_sessions, 3);
    assert_eq!(stats.active_sessions, 2);
    assert_eq!(stats.total_messages, 6);
}

/// `MAX_ACTIVE_SESSIONS_PER_USER`: when a user starts one more session, their least
/// recently active ones are ended so that this many stay active, and their sockets are
/// told.
#[tokio::test(start_paused = true)]
async fn starting_a_session_past_the_cap_ends_the_least_recently_active_one() {
    let mut s = settings();
    s.max_active_sessions_per_user = 2;
    let h = harness_with(s);
    let mut oldest = conversation(&h, "u1", "one").await;
    let middle = conversation(&h, "u1", "two").await.session_id();
    assert!(oldest.is_quiet().await, "two sessions: within the cap");
    let newest = conversation(&h, "u1", "three").await.session_id();

    assert!(matches!(
        oldest.next().await,
        chatbox_application::events::ServerEvent::ConnectionStatus { state: "ended", .. }
    ));
    let active = |id: SessionId| {
        let repo = std::sync::Arc::clone(&h.repo);
        async move { repo.load(&id).await.expect("load").expect("session").is_active() }
    };
    assert!(!active(oldest.session_id()).await);
    assert!(active(middle).await);
    assert!(active(newest).await);
}
