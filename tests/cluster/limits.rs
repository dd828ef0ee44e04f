//! Limits and caps across replicas, and a Redis outage.

use std::time::Duration;

use serde_json::json;
use tokio::time::Instant;

use crate::ws::WAIT;
use crate::{Redis, cluster, metric, mongo, outcome, process, readyz, redis_binary, send};

#[tokio::test]
async fn the_socket_cap_and_the_limits_hold_across_replicas() {
    let (redis, mongo) = needs_redis_and_mongo!("cluster limits");
    let c = cluster(
        "clusterlimits",
        &redis.url(),
        &mongo,
        3,
        &[("MAX_CONNECTIONS_PER_USER", "2"), ("RATE_LIMIT", "2"), ("RATE_WINDOW", "1h")],
    )
    .await;

    // Two sockets of one user on replicas 0 and 1; a third, on replica 2, is over the cap.
    let (first, mut phone) = c.connect("carol").await;
    let (second, mut laptop) = c.connect("carol").await;
    assert_ne!(first, second, "the sockets are on different replicas");
    let (status, body) = c.refused("carol").await;
    assert_eq!((status, body["code"].as_str()), (429, Some("CONNECTION_LIMIT_EXCEEDED")), "{body}");

    // Two messages in all: one on each replica; the next one, on either, is over.
    send(&mut phone, "one").await;
    assert_eq!(outcome(&mut phone).await, None, "the first message is answered");
    send(&mut laptop, "two").await;
    assert_eq!(outcome(&mut laptop).await, None, "the second, on another replica, too");
    send(&mut phone, "three").await;
    let refused = outcome(&mut phone).await.expect("refused");
    assert_eq!(
        refused["error"]["code"], "TOO_MANY_REQUESTS",
        "the budget was spent across replicas: {refused}"
    );

    // A closed socket gives its slot back, whichever replica held it.
    drop(laptop);
    let deadline = Instant::now() + WAIT;
    loop {
        let attempt = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(c.ws_url("carol")))
            .await
            .expect("in time");
        if attempt.is_ok() {
            break;
        }
        assert!(Instant::now() < deadline, "the slot of the closed socket never came back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(phone);
}

#[tokio::test]
async fn the_public_http_limit_holds_across_replicas() {
    // Loopback is exempt by default (probes); here it is not, so the proxy is limited.
    let (redis, mongo) = needs_redis_and_mongo!("cluster http limit");
    let c = cluster(
        "clusterhttp",
        &redis.url(),
        &mongo,
        3,
        &[("PUBLIC_RATE_LIMIT", "4"), ("METRICS_ALLOWED_NETWORKS", "10.255.255.0/24")],
    )
    .await;
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(c.get_through_proxy("healthz").await);
    }
    assert_eq!(statuses, [200, 200, 200, 200, 429, 429], "four in all across three replicas");
}

#[tokio::test]
async fn a_redis_outage_is_refused_clearly_counted_once_and_recovered_from() {
    let (mut redis, mongo) = needs_redis_and_mongo!("cluster redis outage");
    let c = cluster("clusteroutage", &redis.url(), &mongo, 2, &[]).await;
    let (_, mut socket) = c.connect("dave").await;
    send(&mut socket, "before").await;
    assert_eq!(outcome(&mut socket).await, None);
    for replica in &c.replicas {
        let (status, body) = readyz(replica).await;
        assert_eq!((status, &body["checks"]["shared_state"]["status"]), (200, &json!("ready")), "{body}");
        assert_eq!(metric(replica, "chatbox_redis_up").await, Some(1.0));
    }

    redis.stop().await;
    for attempt in 0..3 {
        send(&mut socket, &format!("during {attempt}")).await;
        let refused = outcome(&mut socket).await.expect("refused while Redis is away");
        assert_eq!(refused["error"]["code"], "SHARED_STATE_UNAVAILABLE", "{refused}");
    }
    let (status, body) = c.refused("erin").await;
    assert_eq!((status, body["code"].as_str()), (503, Some("SHARED_STATE_UNAVAILABLE")), "{body}");
    for replica in &c.replicas {
        let (status, body) = readyz(replica).await;
        assert_eq!((status, &body["checks"]["shared_state"]["status"]), (503, &json!("not ready")), "{body}");
        assert_eq!(metric(replica, "chatbox_redis_up").await, Some(0.0));
    }

    redis.resume().await;
    let deadline = Instant::now() + Duration::from_secs(20);
    for replica in &c.replicas {
        while readyz(replica).await.0 != 200 {
            assert!(
                Instant::now() < deadline,
                "a replica never became ready again:\n{}",
                replica.log().join("\n")
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(metric(replica, "chatbox_redis_up").await, Some(1.0));
        assert_eq!(
            metric(replica, "chatbox_redis_outages_total").await,
            Some(1.0),
            "one outage, counted once"
        );
        let log = replica.log();
        let lines = |needle: &str| log.iter().filter(|line| process::message(line).contains(needle)).count();
        assert_eq!(lines("shared state unreachable"), 1, "logged once per outage:\n{}", log.join("\n"));
        assert_eq!(lines("shared state reachable again"), 1, "{}", log.join("\n"));
        assert!(log.iter().all(|line| !line.contains(redis.url().as_str())), "the URL is never logged");
    }
    send(&mut socket, "after").await;
    assert_eq!(outcome(&mut socket).await, None, "served again once Redis answers");
    let (_, mut newcomer) = c.connect("erin").await;
    send(&mut newcomer, "hello").await;
    assert_eq!(outcome(&mut newcomer).await, None);
}
