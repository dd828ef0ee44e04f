//! Disruptions under a conversation load: a rolling update (every replica replaced, one
//! by one: a new one joins the rotation, the old one leaves it and drains on SIGTERM), a
//! blue-green switch (a second set of replicas beside the first, the load balancer
//! switched at once, the first set stopped), and Redis stopped and started again, while
//! users keep chatting. Clients behave as the
//! protocol asks: a message is sent with a `client_message_id` until it is acknowledged,
//! a refused one is sent again a moment later, a closed socket reconnects through the
//! load balancer and resumes with `last_seq`. Afterwards MongoDB holds every
//! acknowledged message exactly once, each answered once.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::SinkExt;
use serde_json::{Value, json};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use crate::ws::{Read, Socket, WAIT, deadline_in, next_json, read};
use crate::{Redis, SECRET, cluster, jwt, mongo, redis_binary};

const USERS: usize = 6;
/// Each client sends at least this many messages, and goes on until the update is over,
/// so every socket lives through the replacement of its replica.
const MESSAGES: usize = 10;

/// What one user's client did.
struct Conversation {
    user: String,
    session: String,
    acknowledged: Vec<String>,
    reconnects: usize,
}

/// The `seq` of a stored answer a frame shows: its `done`, or a replayed answer.
fn answer_seq(frame: &Value) -> Option<u64> {
    let answer = frame["type"] == "ai_response" || frame["type"] == "assistant";
    answer.then(|| frame["seq"].as_u64()).flatten()
}

/// One user chatting through the proxy on `port` until at least `MESSAGES` are
/// acknowledged and answered and `updated` is set, reconnecting and resending as a client
/// must.
async fn converse(port: u16, user: String, updated: Arc<AtomicBool>) -> Conversation {
    let deadline = Instant::now() + Duration::from_secs(180);
    let token = jwt::user_token(&user, SECRET);
    let (mut session, mut last_seq, mut answered_up_to) = (None::<String>, 0_u64, 0_u64);
    let (mut acknowledged, mut reconnects) = (Vec::new(), 0);
    let mut socket: Option<Socket> = None;
    let mut next = 0;
    while next < MESSAGES || !updated.load(Ordering::SeqCst) {
        assert!(Instant::now() < deadline, "{user} did not finish: {next} acknowledged");
        let Some(ws) = socket.as_mut() else {
            let mut url = format!("ws://127.0.0.1:{port}/chat/ws?token={token}");
            if let Some(session) = &session {
                url.push_str(&format!("&session_id={session}&last_seq={last_seq}"));
            }
            match tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(url)).await {
                Ok(Ok((mut ws, _))) => {
                    let status = next_json(&mut ws, deadline_in(WAIT)).await;
                    session.get_or_insert_with(|| status["session_id"].as_str().expect("session").to_owned());
                    reconnects += 1;
                    socket = Some(ws);
                }
                // Refused while a replica drains, or no answer in time: try again.
                _ => tokio::time::sleep(Duration::from_millis(50)).await,
            }
            continue;
        };
        let key = format!("{user}-{next}");
        let frame = json!({
            "type": "user_message", "content": format!("message {next} of {user}"),
            "client_message_id": key, "session_id": session,
        });
        if ws.send(Message::text(frame.to_string())).await.is_err() {
            socket = None;
            continue;
        }
        let mut stored_at = None;
        loop {
            match read(ws, deadline_in(Duration::from_secs(30))).await {
                Read::Frame(frame) => {
                    last_seq = last_seq.max(frame["seq"].as_u64().unwrap_or(0));
                    if let Some(seq) = answer_seq(&frame) {
                        answered_up_to = answered_up_to.max(seq);
                    }
                    if frame["type"] == "message_ack" && frame["client_message_id"] == key.as_str() {
                        stored_at = frame["seq"].as_u64();
                        if !acknowledged.contains(&key) {
                            acknowledged.push(key.clone());
                        }
                    }
                    if frame["type"] == "error" {
                        // Draining, or busy: send it again (same key) a moment later.
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        break;
                    }
                    if stored_at.is_some_and(|stored| answered_up_to > stored) {
                        next += 1;
                        break;
                    }
                }
                Read::Closed(_) => {
                    socket = None;
                    break;
                }
                Read::TimedOut => panic!("{user}: nothing for 30 s while {key} waited"),
            }
        }
    }
    Conversation { user, session: session.expect("a session"), acknowledged, reconnects }
}

#[tokio::test]
async fn a_rolling_update_under_load_loses_and_doubles_nothing() {
    let Some(binary) = redis_binary("cluster rolling update") else { return };
    let Some(mongo) = mongo::reachable("cluster rolling update").await else { return };
    let redis = Redis::start(&binary).await;
    let mut c = cluster("rolling", &redis.url(), &mongo, 3, UNDER_LOAD).await;
    let (updated, clients) = chatting(&c, "roller");

    // Replace each of the three replicas while the users chat.
    let mut serving: Vec<usize> = (0..3).collect();
    for old in 0..3 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let new = c.start_replica().await;
        serving.retain(|index| *index != old);
        serving.push(new);
        c.proxy.set_backends(serving.iter().map(|index| c.replicas[*index].port).collect());
        drain(&mut c, old).await;
    }
    updated.store(true, Ordering::SeqCst);

    check_every_conversation(&c, serving[0], clients, 2).await;
}

/// Sends SIGTERM to replica `index` and waits until it has drained and exited.
async fn drain(c: &mut crate::Cluster, index: usize) {
    c.replicas[index].sigterm();
    exited(c, index).await;
}

/// Waits until replica `index`, told to stop, has drained and exited.
async fn exited(c: &mut crate::Cluster, index: usize) {
    c.replicas[index].exited(Instant::now() + Duration::from_secs(30)).await;
}

/// What every load test runs with: quick answers, a short drain.
const UNDER_LOAD: &[(&str, &str)] = &[("LLM_PROVIDER_1_DELAY", "5ms"), ("SHUTDOWN_TIMEOUT", "10s")];

/// `USERS` clients named `<who>-<n>` chatting through the proxy until `over` is set.
fn chatting(c: &crate::Cluster, who: &str) -> (Arc<AtomicBool>, Vec<tokio::task::JoinHandle<Conversation>>) {
    let over = Arc::new(AtomicBool::new(false));
    let clients = (0..USERS)
        .map(|n| tokio::spawn(converse(c.proxy.port, format!("{who}-{n}"), Arc::clone(&over))))
        .collect();
    (over, clients)
}

#[tokio::test]
async fn a_blue_green_switch_under_load_loses_and_doubles_nothing() {
    let Some(binary) = redis_binary("cluster blue-green") else { return };
    let Some(mongo) = mongo::reachable("cluster blue-green").await else { return };
    let redis = Redis::start(&binary).await;
    let mut c = cluster("bluegreen", &redis.url(), &mongo, 2, UNDER_LOAD).await;
    let (switched, clients) = chatting(&c, "switcher");
    // Green starts beside blue, on the same Redis prefix and database; the load balancer
    // switches to it at once; then blue is stopped, both replicas together.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let green = [c.start_replica().await, c.start_replica().await];
    c.proxy.set_backends(green.iter().map(|index| c.replicas[*index].port).collect());
    c.replicas[0].sigterm();
    c.replicas[1].sigterm();
    exited(&mut c, 0).await;
    exited(&mut c, 1).await;
    switched.store(true, Ordering::SeqCst);

    check_every_conversation(&c, green[0], clients, 2).await;
}

/// Waits for the clients and checks, in the store (read through replica `reader`), that
/// each one's acknowledged messages are stored once, in one order, each answered once;
/// every client reconnected at least `min_connects - 1` times.
async fn check_every_conversation(
    c: &crate::Cluster,
    reader: usize,
    clients: Vec<tokio::task::JoinHandle<Conversation>>,
    min_connects: usize,
) {
    for client in clients {
        let conversation = client.await.expect("the client ran");
        assert!(
            conversation.reconnects >= min_connects,
            "{} connected {} times",
            conversation.user,
            conversation.reconnects
        );
        let history = c.history(reader, &conversation.user, &conversation.session).await;
        let seqs: Vec<u64> = history.iter().filter_map(|m| m["seq"].as_u64()).collect();
        assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>(), "one order: {history:#?}");
        for key in &conversation.acknowledged {
            let copies = history.iter().filter(|m| m["client_message_id"] == key.as_str()).count();
            assert_eq!(copies, 1, "{key} stored once: {history:#?}");
        }
        let sent = conversation.acknowledged.len();
        assert!(sent >= MESSAGES, "{sent}");
        let questions = history.iter().filter(|m| m["sender"] == "user").count();
        let answers = history.iter().filter(|m| m["sender"] == "ai").count();
        assert_eq!((questions, answers), (sent, sent), "each message stored and answered once: {history:#?}");
    }
}

#[tokio::test]
async fn redis_stopped_and_started_under_load_loses_and_doubles_nothing() {
    let Some(binary) = redis_binary("cluster redis under load") else { return };
    let Some(mongo) = mongo::reachable("cluster redis under load").await else { return };
    let mut redis = Redis::start(&binary).await;
    let c = cluster("redisload", &redis.url(), &mongo, 3, UNDER_LOAD).await;
    let (over, clients) = chatting(&c, "steady");
    tokio::time::sleep(Duration::from_millis(500)).await;
    redis.stop().await;
    // Every replica notices (its readiness check asks Redis), whatever its share of the
    // load happened to ask meanwhile; then the outage lasts a while longer.
    let deadline = Instant::now() + Duration::from_secs(10);
    for replica in &c.replicas {
        while crate::readyz(replica).await.0 != 503 {
            assert!(Instant::now() < deadline, "a replica never noticed Redis was gone");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    redis.resume().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    over.store(true, Ordering::SeqCst);
    check_every_conversation(&c, 0, clients, 1).await;
    for replica in &c.replicas {
        let outages = crate::metric(replica, "chatbox_redis_outages_total").await;
        assert!(outages.is_some_and(|count| count >= 1.0), "each replica saw the outage: {outages:?}");
    }
}
