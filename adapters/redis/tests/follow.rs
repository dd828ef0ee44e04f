//! Following session streams against a real `redis-server` (`REDIS_URL`): a replica reads
//! what another publishes for the sessions it follows, in order, each once, never its own
//! entries, nothing of sessions it does not follow; a blocking read with nothing new ends
//! when its time is up; a read that starts before the publication wakes on it.

mod support;

use std::time::Duration;

use chatbox_domain::SessionId;
use chatbox_redis::{FROM_START, SessionStreams, StreamFollower, connect};
use support::{fresh_prefix, redis_url};
use tokio::time::Instant;

/// Session streams to publish to, and replica b's follower of them, under a fresh prefix.
async fn publisher_and_follower(url: &str) -> (SessionStreams, StreamFollower) {
    let prefix = fresh_prefix();
    let streams = SessionStreams::new(connect(url).await.expect("Redis answers"), prefix.clone(), 1_000);
    let follower = StreamFollower::connect(&connect(url).await.expect("Redis answers"), prefix, "replica-b")
        .await
        .expect("Redis answers");
    (streams, follower)
}

fn session(id: &str) -> SessionId {
    SessionId::parse(id).expect("a session id")
}

#[tokio::test]
async fn a_replica_reads_what_others_publish_for_its_sessions_once_and_in_order() {
    let Some(url) = redis_url("follow") else { return };
    let (streams, mut replica_b) = publisher_and_follower(&url).await;
    let (s1, s2, s3) = (session("s1"), session("s2"), session("s3"));
    replica_b.follow(&s1, FROM_START);
    replica_b.follow(&s2, FROM_START);
    assert_eq!(replica_b.len(), 2);

    streams.append(&s1, "replica-a", "s1 first").await.expect("appended");
    streams.append(&s2, "replica-a", "s2 first").await.expect("appended");
    streams.append(&s1, "replica-b", "b's own").await.expect("appended");
    streams.append(&s3, "replica-a", "not followed").await.expect("appended");
    streams.append(&s1, "replica-a", "s1 second").await.expect("appended");

    let read = replica_b.next(Duration::from_secs(1), 100).await.expect("read");
    let mut got: Vec<(String, String)> =
        read.iter().map(|(s, entry)| (s.as_str().to_owned(), entry.frame.clone())).collect();
    got.sort();
    assert_eq!(
        got,
        [("s1", "s1 first"), ("s1", "s1 second"), ("s2", "s2 first")]
            .map(|(s, f)| (s.to_owned(), f.to_owned()))
    );
    let s1_frames: Vec<&str> =
        read.iter().filter(|(s, _)| *s == s1).map(|(_, entry)| entry.frame.as_str()).collect();
    assert_eq!(s1_frames, ["s1 first", "s1 second"], "in order within a session");

    // Read once: nothing new, so the read ends when its block does (a long block must not
    // trip a client-side response timeout).
    let started = Instant::now();
    assert!(replica_b.next(Duration::from_millis(1_500), 100).await.expect("read").is_empty());
    assert!(started.elapsed() >= Duration::from_millis(1_400), "it waited for new entries");

    replica_b.unfollow(&s2);
    streams.append(&s2, "replica-a", "after unfollow").await.expect("appended");
    assert!(replica_b.next(Duration::from_millis(100), 100).await.expect("read").is_empty());
}

#[tokio::test]
async fn a_blocked_read_wakes_when_another_replica_publishes() {
    let Some(url) = redis_url("follow wake") else { return };
    let (streams, mut replica_b) = publisher_and_follower(&url).await;
    let s1 = session("s1");
    let last = streams.append(&s1, "replica-a", "before").await.expect("appended");
    replica_b.follow(&s1, &last);
    let reader = tokio::spawn(async move {
        let started = Instant::now();
        let read = replica_b.next(Duration::from_secs(10), 10).await.expect("read");
        (read, started.elapsed())
    });
    // The reader's XREAD may or may not be in Redis yet: either way it gets the entry,
    // since it reads after `last`.
    streams.append(&s1, "replica-a", "live token").await.expect("appended");
    let (read, waited) = tokio::time::timeout(Duration::from_secs(10), reader)
        .await
        .expect("the read ended")
        .expect("the reader task");
    let frames: Vec<&str> = read.iter().map(|(_, entry)| entry.frame.as_str()).collect();
    assert_eq!(frames, ["live token"], "only what came after its place");
    assert!(waited < Duration::from_secs(5), "woken by the entry, not by the end of its block: {waited:?}");
}
