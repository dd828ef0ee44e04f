//! A `redis+cluster://` URL against a real Redis Cluster (Debian's `redis-server`, three
//! primaries with a replica each): the limits, socket counts, leases and frame streams
//! work through it, every key of a deployment lands in one slot (so the multi-key scripts
//! and the one read of many streams are allowed), and when the primary serving that slot
//! is killed, its promoted replica serves them all, the follower's blocking read
//! included, without the service being told. Failing over is the input under test, so
//! the test waits real times, always with a deadline.

mod support;

#[path = "../../../tests/support/redis_cluster.rs"]
mod redis_cluster;

use std::time::Duration;

use chatbox_application::ports::{LimitVerdict, SharedState};
use chatbox_domain::rate_limit::Quota;
use chatbox_domain::{SessionId, UserId};
use chatbox_redis::{
    FROM_START, Leases, RedisSharedState, SessionStreams, StreamFollower, connect, connect_lazily,
};
use redis_cluster::RedisCluster;
use support::fresh_prefix;
use tokio::time::Instant;

/// Repeats `attempt` until it is true; the cluster may refuse while it fails over.
async fn eventually<F: std::future::Future<Output = bool>>(what: &str, mut attempt: impl FnMut() -> F) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !attempt().await {
        assert!(Instant::now() < deadline, "{what} never worked again");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn the_shared_state_and_frame_streams_work_on_a_cluster_and_follow_its_failover() {
    let Some(binary) = support::redis_server("redis cluster") else { return };
    let mut cluster = RedisCluster::start(&binary, 3, 1).await;
    let url = cluster.url();
    let prefix = fresh_prefix();

    let shared = RedisSharedState::new(connect(&url).await.expect("the cluster answers"), &prefix, "a");
    let quota = Quota::new(2, Duration::from_secs(60)).expect("quota");
    assert_eq!(shared.check_rate("user:amy", quota, 1).await, Ok(LimitVerdict::Allowed));
    assert_eq!(shared.check_rate("user:amy", quota, 1).await, Ok(LimitVerdict::Allowed));
    assert!(
        matches!(shared.check_rate("user:amy", quota, 1).await, Ok(LimitVerdict::Limited { .. })),
        "one budget, kept in the cluster"
    );
    let amy = UserId::parse("amy").expect("id");
    let _slot = shared.claim_socket(&amy, 5).await.expect("answer").expect("a slot");
    assert_eq!(shared.sockets().held_by(&amy).await.expect("answer"), 1);

    let leases = Leases::new(connect(&url).await.expect("the cluster answers"), prefix.clone());
    let ttl = Duration::from_secs(30);
    let grant = leases.try_acquire("s1", "a:1", ttl).await.expect("answer").expect("free");
    assert_eq!(leases.try_acquire("s1", "b:1", ttl).await.expect("answer"), None, "held");

    let streams = SessionStreams::new(connect(&url).await.expect("the cluster answers"), prefix.clone(), 100);
    let mut follower =
        StreamFollower::connect(&connect(&url).await.expect("answers"), prefix.clone(), "replica-b")
            .await
            .expect("the cluster answers");
    let (s1, s2) = (SessionId::parse("s1").expect("id"), SessionId::parse("s2").expect("id"));
    follower.follow(&s1, FROM_START);
    follower.follow(&s2, FROM_START);
    streams.append(&s1, "replica-a", "one").await.expect("appended");
    streams.append(&s2, "replica-a", "two").await.expect("appended");
    let read = follower.next(Duration::from_secs(1), 10).await.expect("one read of both streams");
    let mut frames: Vec<&str> = read.iter().map(|(_, entry)| entry.frame.as_str()).collect();
    frames.sort_unstable();
    assert_eq!(frames, ["one", "two"]);

    // Every key of the deployment in one slot, hence on one primary.
    let pattern = format!("{{{prefix}}}:*");
    let holders = cluster.holders(&pattern).await;
    assert_eq!(holders.len(), 1, "one primary holds every key: {holders:?}");
    assert!(holders[0].1 >= 5, "limits, sockets, lease, fence and streams: {holders:?}");
    assert!(cluster.holders(&format!("{prefix}:*")).await.is_empty(), "no key outside the tag");

    // The primary holding them dies; its replica takes over, and every part follows.
    let promoted = cluster.kill_primary(holders[0].0).await;
    let reader = tokio::spawn(async move {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match follower.next(Duration::from_secs(1), 10).await {
                Ok(read) if !read.is_empty() => break read,
                Ok(_) => {}
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    let _ =
                        follower.reconnect(&connect_lazily(&url, Duration::from_secs(2)).expect("url")).await;
                }
            }
            assert!(Instant::now() < deadline, "the follower never read from the promoted replica");
        }
    });
    eventually("claiming a socket", || async { matches!(shared.claim_socket(&amy, 5).await, Ok(Some(_))) })
        .await;
    eventually("renewing the lease", || async { leases.renew(&grant, ttl).await == Ok(true) }).await;
    eventually("appending a frame", || async { streams.append(&s1, "replica-a", "after").await.is_ok() })
        .await;
    let read =
        tokio::time::timeout(Duration::from_secs(40), reader).await.expect("read in time").expect("reader");
    let frames: Vec<&str> = read.iter().map(|(_, entry)| entry.frame.as_str()).collect();
    assert_eq!(frames, ["after"], "read on from where it was, on the promoted replica");
    assert_eq!(cluster.holders(&pattern).await.first().map(|(port, _)| *port), Some(promoted));
    assert!(shared.ping().await.is_ok());
}
