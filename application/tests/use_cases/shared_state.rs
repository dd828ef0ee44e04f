//! Limits shared by replicas (`shared_state`, `chat/submit`): two services on one store
//! draw on one message budget; a store that fails or stalls refuses messages with a
//! clear, retryable error within the timeout and loses nothing; its outages are reported
//! once per change.

use std::sync::Arc;
use std::time::Duration;

use chatbox_domain::ErrorCode;
use chatbox_domain::rate_limit::Quota;

use crate::support::{SHARED_TIMEOUT, SharedMode, SharedStore, harness_sharing, settings};

fn limited_to(limit: u32) -> chatbox_application::ChatSettings {
    let mut s = settings();
    s.message_quota = Quota::new(limit, Duration::from_secs(60)).expect("quota");
    s.answer_queue_limit = 10;
    s
}

#[tokio::test(start_paused = true)]
async fn two_replicas_on_one_store_share_one_message_budget() {
    let store = SharedStore::default();
    let first = harness_sharing(limited_to(3), Arc::new(store.clone()));
    let second = harness_sharing(limited_to(3), Arc::new(store.clone()));
    let mut phone = first.connect("u1", None, None).await;
    let mut laptop = second.connect("u1", None, None).await;
    first.say(&mut phone, "one").await.expect("one");
    second.say(&mut laptop, "two").await.expect("two");
    first.say(&mut phone, "three").await.expect("three");
    let refused =
        second.say(&mut laptop, "four").await.expect_err("the budget is spent on the other replica");
    assert_eq!(refused.code(), ErrorCode::TooManyRequests);
    assert!(refused.retry_after().is_some_and(|wait| wait > Duration::from_secs(10)), "{refused:?}");
    let mut other = second.connect("u2", None, None).await;
    second.say(&mut other, "mine").await.expect("another user has a budget of their own");
}

#[tokio::test(start_paused = true)]
async fn an_unreachable_or_stalled_store_refuses_messages_within_the_timeout_then_recovers() {
    let store = SharedStore::default();
    let h = harness_sharing(limited_to(100), Arc::new(store.clone()));
    let mut client = h.connect("u1", None, None).await;
    h.say(&mut client, "before").await.expect("stored");
    client.until_done().await;

    store.set(SharedMode::Down);
    let down = h.say(&mut client, "during").await.expect_err("refused while the store is down");
    assert_eq!(down.code(), ErrorCode::SharedStateUnavailable);
    assert!(down.code().recoverable() && down.retry_after().is_some(), "{down:?}");
    assert_eq!(h.service.shared_state_ready().await, Some(false), "readiness sees the outage");

    store.set(SharedMode::Stalled);
    let started = tokio::time::Instant::now();
    let stalled = h.say(&mut client, "stalled").await.expect_err("refused, not left waiting");
    assert_eq!(stalled.code(), ErrorCode::SharedStateUnavailable);
    assert_eq!(started.elapsed(), SHARED_TIMEOUT, "ended by the timeout, on the paused clock");

    store.set(SharedMode::Up);
    assert_eq!(h.service.shared_state_ready().await, Some(true));
    h.say(&mut client, "after").await.expect("stored again once the store answers");
    client.until_done().await;
    let stored: Vec<String> = h.stored(&client.session_id()).await.into_iter().map(|m| m.content).collect();
    assert!(stored.contains(&"before".to_owned()) && stored.contains(&"after".to_owned()), "{stored:?}");
    assert!(
        !stored.iter().any(|text| text == "during" || text == "stalled"),
        "refused means not stored: {stored:?}"
    );

    let changes = h.metrics.shared_state.lock().expect("lock").clone();
    assert_eq!(changes, [true, false, true], "reported at start, then once per change, not per call");
}

#[tokio::test(start_paused = true)]
async fn a_socket_slot_is_held_across_replicas_until_dropped() {
    let store = SharedStore::default();
    let h = harness_sharing(settings(), Arc::new(store.clone()));
    let user = chatbox_domain::UserId::parse("u1").expect("id");
    let first = h.service.claim_shared_socket(&user, 2).await.expect("claimed").expect("a slot");
    let second = h.service.claim_shared_socket(&user, 2).await.expect("claimed").expect("a slot");
    assert_eq!(
        h.service.claim_shared_socket(&user, 2).await.err(),
        Some(chatbox_application::shared_state::ConnectionRefused::Cap)
    );
    drop(first);
    assert_eq!(store.sockets_of("u1"), 1, "a dropped slot is given back");
    let third = h.service.claim_shared_socket(&user, 2).await.expect("claimed");
    assert!(third.is_some());
    store.set(SharedMode::Down);
    assert_eq!(
        h.service.claim_shared_socket(&user, 3).await.err(),
        Some(chatbox_application::shared_state::ConnectionRefused::Unavailable)
    );
    drop((second, third));
}
