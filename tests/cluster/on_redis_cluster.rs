//! Replicas sharing a Redis Cluster (`redis+cluster://`, three primaries with a replica
//! each) instead of one Redis: a session's sockets on two replicas see one conversation,
//! and when the primary holding the deployment's keys dies, its promoted replica carries
//! the conversation on: a message refused meanwhile is refused clearly
//! (`SHARED_STATE_UNAVAILABLE`), and the next is stored once and streamed to both sockets.

use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;

use crate::redis_cluster::RedisCluster;
use crate::ws::answer_text;
use crate::{cluster, mongo, outcome, readyz, redis_binary, send, until_done};

#[tokio::test]
async fn a_conversation_spans_replicas_on_a_redis_cluster_and_survives_its_failover() {
    let Some(binary) = redis_binary("cluster on a Redis Cluster") else { return };
    let Some(mongo) = mongo::reachable("cluster on a Redis Cluster").await else { return };
    let mut redis = RedisCluster::start(&binary, 3, 1).await;
    let c = cluster("onrediscluster", &redis.url(), &mongo, 2, &[("LLM_PROVIDER_1_DELAY", "5ms")]).await;
    let (first, mut phone, status) = c.open("ivy", "").await;
    let session = status["session_id"].as_str().expect("session").to_owned();
    send(&mut phone, "create the session").await;
    until_done(&mut phone).await;
    let (second, mut laptop, _) = c.open_elsewhere(first, "ivy", &format!("&session_id={session}")).await;
    send(&mut phone, "before the failover").await;
    let laptop_frames = until_done(&mut laptop).await;
    assert_eq!(laptop_frames[0]["content"], "before the failover", "{laptop_frames:#?}");
    assert_eq!(answer_text(&until_done(&mut phone).await), answer_text(&laptop_frames));

    let holders = redis.holders(&format!("{{{}}}:*", c.key_prefix())).await;
    assert_eq!(holders.len(), 1, "the deployment's keys live on one primary: {holders:?}");
    redis.kill_primary(holders[0].0).await;

    // Until the replicas' clients have found the promoted replica, a message may be
    // refused, clearly; none is stored twice, since a refused one is not stored.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut attempt = 0;
    let accepted = loop {
        attempt += 1;
        let text = format!("after the failover, attempt {attempt}");
        send(&mut phone, &text).await;
        match outcome(&mut phone).await {
            None => break text,
            Some(refused) => assert_eq!(refused["error"]["code"], "SHARED_STATE_UNAVAILABLE", "{refused}"),
        }
        assert!(Instant::now() < deadline, "never served after the failover");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let laptop_frames = until_done(&mut laptop).await;
    assert_eq!(
        laptop_frames[0]["content"],
        accepted.as_str(),
        "the echo crosses replicas: {laptop_frames:#?}"
    );
    assert!(!answer_text(&laptop_frames).is_empty(), "and the answer");

    for replica in &c.replicas {
        assert_eq!(readyz(replica).await.0, 200);
    }
    let history = c.history(second, "ivy", &session).await;
    let texts: Vec<&str> =
        history.iter().filter(|m| m["sender"] == "user").filter_map(|m| m["content"].as_str()).collect();
    assert_eq!(texts, ["create the session", "before the failover", accepted.as_str()], "{history:#?}");
    let seqs: Vec<u64> = history.iter().filter_map(|m: &Value| m["seq"].as_u64()).collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>(), "one order");
}
