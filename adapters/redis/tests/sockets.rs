//! Socket counts against a real `redis-server` (`REDIS_URL`): the cap holds across
//! replicas claiming at once, a dropped slot is given back, a dead replica's slots lapse
//! while a live one's are renewed, and an unreachable Redis fails the claim without the
//! URL in the error. Lapsing is Redis expiring on its own clock, so these tests wait real,
//! short times, always with a deadline.

mod support;

use std::time::Duration;

use chatbox_application::ports::SharedState;
use chatbox_domain::UserId;
use chatbox_redis::{RedisSharedState, SocketCounts, connect, connect_lazily};
use support::{fresh_prefix, redis_url};
use tokio::time::Instant;

fn alice() -> UserId {
    UserId::parse("alice").expect("id")
}

#[tokio::test]
async fn the_cap_holds_across_replicas_claiming_at_once_and_a_dropped_slot_comes_back() {
    let Some(url) = redis_url("socket cap") else { return };
    let prefix = fresh_prefix();
    let mut replicas = Vec::new();
    for name in ["a", "b", "c"] {
        replicas.push(RedisSharedState::new(connect(&url).await.expect("Redis answers"), &prefix, name));
    }
    // Thirty claims at once from three replicas for a cap of five.
    let claims = (0..30).map(|index| {
        let replica = replicas[index % 3].clone();
        async move { replica.claim_socket(&alice(), 5).await.expect("answer") }
    });
    let mut slots: Vec<_> = futures::future::join_all(claims).await.into_iter().flatten().collect();
    assert_eq!(slots.len(), 5, "five slots in all, whichever replica claimed");
    assert_eq!(replicas[0].sockets().held_by(&alice()).await.expect("answer"), 5);
    assert!(replicas[1].claim_socket(&UserId::parse("bob").expect("id"), 5).await.expect("answer").is_some());

    drop(slots.pop());
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(slot) = replicas[2].claim_socket(&alice(), 5).await.expect("answer") {
            slots.push(slot);
            break;
        }
        assert!(Instant::now() < deadline, "the dropped slot was never given back");
        tokio::task::yield_now().await;
    }
    assert!(replicas[0].claim_socket(&alice(), 5).await.expect("answer").is_none(), "full again");
}

#[tokio::test]
async fn a_dead_replicas_slots_lapse_while_a_live_ones_are_renewed() {
    let Some(url) = redis_url("socket lapse") else { return };
    let prefix = fresh_prefix();
    let ttl = Duration::from_millis(600);
    let live = SocketCounts::new(connect(&url).await.expect("Redis answers"), prefix.clone(), "live", ttl);
    let kept = live.claim(&alice(), 10).await.expect("answer").expect("slot");
    // The dead replica runs on a runtime of its own, which then stops with the slot still
    // claimed: as a killed process, it neither renews nor gives back.
    let (dead_url, dead_prefix) = (url.clone(), prefix.clone());
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        runtime.block_on(async {
            let dead =
                SocketCounts::new(connect(&dead_url).await.expect("Redis answers"), dead_prefix, "dead", ttl);
            std::mem::forget(dead.claim(&alice(), 10).await.expect("answer").expect("slot"));
        });
    })
    .join()
    .expect("the dead replica ran");
    assert_eq!(live.held_by(&alice()).await.expect("answer"), 2);
    let deadline = Instant::now() + Duration::from_secs(10);
    while live.held_by(&alice()).await.expect("answer") != 1 {
        assert!(Instant::now() < deadline, "the dead replica's slot never lapsed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Three lifetimes later the live slot is still counted: it is renewed.
    tokio::time::sleep(ttl * 3).await;
    assert_eq!(live.held_by(&alice()).await.expect("answer"), 1, "the live replica's slot is renewed");
    drop(kept);
}

#[tokio::test]
async fn an_unreachable_redis_fails_the_claim_quickly_without_the_url() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    drop(listener);
    let url = format!("redis://user:hunter2-secret@127.0.0.1:{port}/0");
    let connection = connect_lazily(&url, Duration::from_millis(500)).expect("a valid URL");
    let shared = RedisSharedState::new(connection, &fresh_prefix(), "a");
    let started = Instant::now();
    let error = shared.claim_socket(&alice(), 5).await.expect_err("nobody answers");
    assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
    assert!(!error.to_string().contains("hunter2"), "{error}");
    assert!(shared.ping().await.is_err());
}
