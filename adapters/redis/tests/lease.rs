//! Leases against a real `redis-server` (`REDIS_URL`): one holder at a time, a lease that
//! is not renewed passes to another holder once it expires and the old holder can then
//! neither renew nor release it, renewal keeps a lease, and fencing numbers only grow.
//! Time passing is the input under test here (Redis expires keys on its own clock), so
//! these tests wait real, short times, always with a deadline.

mod support;

use std::time::Duration;

use chatbox_redis::{Leases, connect};
use support::{fresh_prefix, redis_url};
use tokio::time::Instant;

async fn leases(url: &str) -> (Leases, Leases) {
    let prefix = fresh_prefix();
    let one = Leases::new(connect(url).await.expect("Redis answers"), prefix.clone());
    let other = Leases::new(connect(url).await.expect("Redis answers"), prefix);
    (one, other)
}

#[tokio::test]
async fn one_holder_at_a_time_and_a_release_lets_the_next_in_with_a_greater_fence() {
    let Some(url) = redis_url("lease exclusive") else { return };
    let (replica_a, replica_b) = leases(&url).await;
    let ttl = Duration::from_secs(30);
    let first = replica_a.try_acquire("session-1", "a:1", ttl).await.expect("answer").expect("free");
    assert_eq!(replica_b.try_acquire("session-1", "b:1", ttl).await.expect("answer"), None, "held by a");
    assert!(
        replica_b.try_acquire("session-2", "b:2", ttl).await.expect("answer").is_some(),
        "names are apart"
    );
    assert!(replica_a.release(first.clone()).await.expect("answer"), "a gives it back");
    let second = replica_b.try_acquire("session-1", "b:3", ttl).await.expect("answer").expect("free again");
    assert!(second.fence() > first.fence(), "{} > {}", second.fence(), first.fence());
    assert!(!replica_a.release(first).await.expect("answer"), "a released already: b's lease stays");
    assert!(replica_b.renew(&second, ttl).await.expect("answer"), "b still holds it");
}

#[tokio::test]
async fn an_expired_lease_passes_on_and_its_old_holder_cannot_touch_the_new_one() {
    let Some(url) = redis_url("lease expiry") else { return };
    let (replica_a, replica_b) = leases(&url).await;
    let stale = replica_a
        .try_acquire("session-1", "a:1", Duration::from_millis(200))
        .await
        .expect("answer")
        .expect("free");
    // Replica a stops renewing (killed, paused): b gets the lease once it expires.
    let deadline = Instant::now() + Duration::from_secs(5);
    let taken = loop {
        if let Some(grant) =
            replica_b.try_acquire("session-1", "b:1", Duration::from_secs(30)).await.expect("answer")
        {
            break grant;
        }
        assert!(Instant::now() < deadline, "the lease never expired");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(taken.fence() > stale.fence());
    assert!(!replica_a.renew(&stale, Duration::from_secs(30)).await.expect("answer"), "a must stop");
    assert!(!replica_a.release(stale).await.expect("answer"), "a cannot delete b's lease");
    assert!(replica_b.renew(&taken, Duration::from_secs(30)).await.expect("answer"), "b holds it");
}

#[tokio::test]
async fn a_renewed_lease_outlives_its_first_expiry() {
    let Some(url) = redis_url("lease renewal") else { return };
    let (replica_a, replica_b) = leases(&url).await;
    let ttl = Duration::from_millis(300);
    let grant = replica_a.try_acquire("session-1", "a:1", ttl).await.expect("answer").expect("free");
    // Renewed every 100 ms for a full second: more than three times its time to live.
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(replica_a.renew(&grant, ttl).await.expect("answer"), "still ours");
        assert_eq!(replica_b.try_acquire("session-1", "b:1", ttl).await.expect("answer"), None);
    }
}

#[tokio::test]
async fn a_fencing_number_expires_long_after_its_last_use_and_a_bump_moves_it_on() {
    let Some(url) = redis_url("lease fence life") else { return };
    let prefix = fresh_prefix();
    let leases = Leases::new(connect(&url).await.expect("Redis answers"), prefix.clone());
    let grant = leases.try_acquire("s", "a:1", Duration::from_secs(30)).await.expect("answer").expect("free");
    let mut probe = connect(&url).await.expect("Redis answers");
    let life: i64 = redis::cmd("PTTL")
        .arg(format!("{}:fence:s", probe.key_prefix(&prefix)))
        .query_async(&mut probe)
        .await
        .expect("answer");
    assert!(life > 24 * 60 * 60 * 1000, "kept for days, not for ever: {life} ms");
    assert!(leases.release(grant.clone()).await.expect("answer"));
    leases.bump("s").await.expect("answer");
    let next = leases.try_acquire("s", "a:2", Duration::from_secs(30)).await.expect("answer").expect("free");
    assert_eq!(next.fence(), grant.fence() + 2, "the bump counted between the grants");
}
