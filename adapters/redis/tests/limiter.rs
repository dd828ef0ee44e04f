//! The Redis rate limiter against a real `redis-server` (`REDIS_URL`, set by
//! `scripts/redis.sh start`): the same decisions as the domain's GCRA at the same times,
//! the burst and its refusal on the server's clock, keys that expire once recovered, one
//! budget for several connections, and a clear error when Redis is not there.
//!
//! Without `REDIS_URL` the tests say they were skipped; with `CHATBOX_REQUIRE_REDIS=1`
//! (CI) a missing server fails them.

mod support;

use std::time::Duration;

use chatbox_application::ports::{LimitVerdict as Verdict, SharedState};
use chatbox_domain::rate_limit::{self, Decision, LimiterState, Quota};
use chatbox_redis::{RedisLimiter, RedisSharedState, RedisStateError, connect};
use proptest::prelude::*;
use support::{fresh_prefix, redis_url};

/// A limiter on its own key prefix, and that prefix.
async fn limiter(url: &str) -> (RedisLimiter, String) {
    let prefix = fresh_prefix();
    (RedisLimiter::new(connect(url).await.expect("Redis answers"), prefix.clone()), prefix)
}

fn quota(limit: u32, window: Duration) -> Quota {
    Quota::new(limit, window).expect("a valid quota")
}

#[tokio::test]
async fn a_burst_of_the_limit_then_a_refusal_until_one_interval_has_passed() {
    let Some(url) = redis_url("burst") else { return };
    let (limiter, _) = limiter(&url).await;
    let three_a_minute = quota(3, Duration::from_secs(60));
    for _ in 0..3 {
        assert_eq!(limiter.check("alice", three_a_minute, 1).await, Ok(Verdict::Allowed));
    }
    let Ok(Verdict::Limited { retry_after }) = limiter.check("alice", three_a_minute, 1).await else {
        panic!("the fourth request in a minute is refused")
    };
    // One interval (20 s) from the first request, less the little time the calls took.
    assert!(retry_after <= Duration::from_secs(20), "{retry_after:?}");
    assert!(retry_after > Duration::from_secs(19), "{retry_after:?}");
    assert_eq!(limiter.check("bob", three_a_minute, 1).await, Ok(Verdict::Allowed), "keys are apart");
}

#[tokio::test]
async fn connections_of_different_replicas_share_one_budget() {
    let Some(url) = redis_url("shared") else { return };
    let prefix = support::fresh_prefix();
    let one = RedisSharedState::new(connect(&url).await.expect("Redis answers"), &prefix, "one");
    let other = RedisSharedState::new(connect(&url).await.expect("Redis answers"), &prefix, "other");
    let ten_a_minute = quota(10, Duration::from_secs(60));
    // Through the application's port, as the use-cases call it.
    let replicas: [&dyn SharedState; 2] = [&one, &other];
    let mut decisions = Vec::new();
    for index in 0..12 {
        decisions.push(replicas[index % 2].check_rate("alice", ten_a_minute, 1).await.expect("answer"));
    }
    let allowed = decisions.iter().filter(|verdict| **verdict == Verdict::Allowed).count();
    assert_eq!(allowed, 10, "ten in all, whichever replica asked: {decisions:?}");
}

#[tokio::test]
async fn a_cost_spends_that_many_requests_and_a_key_expires_when_recovered() {
    let Some(url) = redis_url("cost") else { return };
    let (limiter, prefix) = limiter(&url).await;
    let ten_a_second = quota(10, Duration::from_secs(1));
    let start = Duration::from_secs(1_800_000_000);
    assert_eq!(limiter.check_at("k", ten_a_second, 7, start).await, Ok(Verdict::Allowed));
    assert_eq!(
        limiter.check_at("k", ten_a_second, 4, start).await,
        Ok(Verdict::Limited { retry_after: Duration::from_millis(100) }),
        "7 + 4 > 10: one more interval of 100 ms"
    );
    assert_eq!(limiter.check_at("k", ten_a_second, 3, start).await, Ok(Verdict::Allowed), "7 + 3 = 10");
    assert_eq!(
        limiter.check_at("k", ten_a_second, 50, start + Duration::from_secs(1)).await,
        Ok(Verdict::Allowed),
        "a cost above the limit counts as the limit, and a recovered key has it all"
    );
    // On the server's clock: the key lives until its TAT (one second of budget spent
    // now), then Redis forgets it.
    let mut connection = connect(&url).await.expect("Redis answers");
    assert_eq!(limiter.check("fresh", ten_a_second, 10).await, Ok(Verdict::Allowed));
    let ttl: i64 = redis::cmd("PTTL")
        .arg(format!("{}:fresh", connection.key_prefix(&prefix)))
        .query_async(&mut connection)
        .await
        .expect("PTTL");
    assert!((900..=1000).contains(&ttl), "expires at its TAT, 1 s from now: {ttl} ms");
}

#[tokio::test]
async fn an_unreachable_redis_is_a_clear_error_not_a_hang() {
    // A port nothing listens on: bound, read, released.
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let url = format!("redis://:secret-password@127.0.0.1:{port}/");
    let error = tokio::time::timeout(Duration::from_secs(10), connect(&url))
        .await
        .expect("an answer within 10 s")
        .expect_err("nothing listens there");
    assert!(matches!(error, RedisStateError::Unavailable(_)), "{error:?}");
    assert!(!error.to_string().contains("secret-password"), "{error}");
    assert_eq!(connect("http://example.com/").await.expect_err("not redis"), RedisStateError::InvalidUrl);
}

/// The domain's decision for `cost` at `now`, with its state advanced when allowed.
fn domain_decides(quota: Quota, state: &mut Option<LimiterState>, now: Duration, cost: u32) -> Verdict {
    match rate_limit::check_cost(quota, *state, now, cost) {
        Decision::Allowed(next) => {
            *state = Some(next);
            Verdict::Allowed
        }
        Decision::Limited { retry_after } => Verdict::Limited { retry_after },
    }
}

proptest! {
    // No regression file beside the sources: a failure prints its shrunk input.
    #![proptest_config(ProptestConfig { cases: 48, failure_persistence: None, ..ProptestConfig::default() })]

    /// For any quota (whole microseconds per request), costs and gaps, Redis decides what
    /// the domain decides, refusal times included.
    #[test]
    fn redis_decides_as_the_domain_does(
        limit in 1u32..20,
        interval_micros in 1u64..50_000,
        steps in proptest::collection::vec((1u32..25, 0u64..100_000), 1..40),
    ) {
        let Some(url) = redis_url("agreement") else { return Ok(()) };
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let quota = quota(limit, Duration::from_micros(interval_micros * u64::from(limit)));
        let outcome: Result<(), TestCaseError> = runtime.block_on(async {
            let (limiter, _) = limiter(&url).await;
            let mut state = None;
            let mut now = Duration::from_secs(1_800_000_000);
            for (cost, gap_micros) in steps {
                now += Duration::from_micros(gap_micros);
                let expected = domain_decides(quota, &mut state, now, cost);
                let decided = limiter.check_at("key", quota, cost, now).await.expect("answer");
                prop_assert_eq!(decided, expected, "cost {} at {:?}", cost, now);
            }
            Ok(())
        });
        outcome?;
    }
}
