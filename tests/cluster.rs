//! Several replicas of the compiled binary sharing one Redis (`HUB_BACKEND=redis`) and
//! one MongoDB, behind a round-robin TCP proxy, as behind a plain load balancer: the
//! per-user socket cap, the per-user message limit and the HTTP limits hold across the
//! replicas, and a Redis that stops and comes back turns into clear refusals (`readyz`
//! 503, `SHARED_STATE_UNAVAILABLE`, refused upgrades), one log line and one count per
//! outage, then full service again, with nothing stored that was refused.
//!
//! Needs `redis-server` on `PATH` and a MongoDB-compatible server (`MONGO_URI`); without
//! them the tests say what they skip, and in CI (`CHATBOX_REQUIRE_REDIS=1`,
//! `CHATBOX_REQUIRE_MONGO=1`) they are required.

#[path = "support/cluster.rs"]
mod cluster;
#[path = "support/jwt.rs"]
mod jwt;
#[path = "support/mongo.rs"]
mod mongo;
#[path = "support/process.rs"]
mod process;
#[path = "support/ws.rs"]
mod ws;

use std::time::Duration;

use futures::SinkExt;
use serde_json::{Value, json};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::{self, Message};

use cluster::{Redis, RoundRobin, redis_binary};
use process::Server;
use ws::{Socket, WAIT, deadline_in, frames_until, next_json};

const SECRET: &str = "k3J9x7QpLm2VbN8wZr4TyU6sHd1FgCeA-cluster";

/// Three replicas (or `count`) on one Redis and one database, behind a proxy.
struct Cluster {
    replicas: Vec<Server>,
    proxy: RoundRobin,
}

async fn cluster(
    test: &str,
    redis: &Redis,
    mongo: &mongo::Mongo,
    count: usize,
    extra: &[(&str, &str)],
) -> Cluster {
    let database = mongo::fresh_database(test);
    let prefix = format!("cluster-{database}");
    let url = redis.url();
    let mut vars: Vec<(&str, &str)> = vec![
        ("JWT_SECRET", SECRET),
        ("SERVER_HOST", "127.0.0.1"),
        ("SERVER_PORT", "0"),
        ("LOG_FORMAT", "json"),
        ("LLM_PROVIDER_1_ID", "demo"),
        ("LLM_PROVIDER_1_TYPE", "demo"),
        ("MONGO_URI", mongo.uri.as_str()),
        ("MONGO_DATABASE", database.as_str()),
        ("HUB_BACKEND", "redis"),
        ("REDIS_URL", url.as_str()),
        ("REDIS_KEY_PREFIX", prefix.as_str()),
        ("REDIS_TIMEOUT", "500ms"),
    ];
    vars.extend_from_slice(extra);
    let mut replicas = Vec::new();
    for _ in 0..count {
        replicas.push(Server::start(&vars).await);
    }
    let proxy = RoundRobin::start(replicas.iter().map(|replica| replica.port).collect()).await;
    Cluster { replicas, proxy }
}

impl Cluster {
    fn ws_url(&self, user: &str) -> String {
        format!("ws://127.0.0.1:{}/chat/ws?token={}", self.proxy.port, jwt::user_token(user, SECRET))
    }

    /// A socket of `user` through the proxy, on the replica it reaches next; its
    /// `connection_status` read.
    async fn connect(&self, user: &str) -> (usize, Socket) {
        let replica = self.proxy.next_index(self.replicas.len());
        let (mut socket, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(self.ws_url(user)))
            .await
            .expect("the upgrade was answered in time")
            .expect("the upgrade is accepted");
        let status = next_json(&mut socket, deadline_in(WAIT)).await;
        assert_eq!(status["type"], "connection_status", "{status}");
        (replica, socket)
    }

    /// An upgrade through the proxy that must be refused: its status and JSON body.
    async fn refused(&self, user: &str) -> (u16, Value) {
        match tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(self.ws_url(user)))
            .await
            .expect("answered in time")
        {
            Ok(_) => panic!("expected the upgrade to be refused"),
            Err(tungstenite::Error::Http(response)) => {
                let body = response
                    .body()
                    .as_deref()
                    .map_or(Value::Null, |b| serde_json::from_slice(b).expect("json"));
                (response.status().as_u16(), body)
            }
            Err(other) => panic!("unexpected error {other}"),
        }
    }

    /// `GET /chat/<path>` through the proxy: its status.
    async fn get_through_proxy(&self, path: &str) -> u16 {
        let port = self.proxy.port;
        let exchange = async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.expect("connect");
            let request = format!("GET /chat/{path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
            stream.write_all(request.as_bytes()).await.expect("write");
            let mut response = Vec::new();
            stream.read_to_end(&mut response).await.expect("read");
            String::from_utf8_lossy(&response).split(' ').nth(1).and_then(|s| s.parse().ok()).expect("status")
        };
        tokio::time::timeout(WAIT, exchange).await.expect("answered in time")
    }
}

async fn send(socket: &mut Socket, text: &str) {
    let frame = json!({"type": "user_message", "content": text});
    socket.send(Message::text(frame.to_string())).await.expect("send");
}

/// Reads until the answer's `done` (accepted) or an `error` (refused); the error frame,
/// if refused.
async fn outcome(socket: &mut Socket) -> Option<Value> {
    let frames = frames_until(socket, deadline_in(Duration::from_secs(30)), |frame| {
        frame["type"] == "error" || ws::is_done(frame)
    })
    .await;
    frames.last().filter(|frame| frame["type"] == "error").cloned()
}

/// The value of the unlabelled series `name` on `replica`'s metrics page.
async fn metric(replica: &Server, name: &str) -> Option<f64> {
    let (status, body) = replica.http("GET", "/metrics", &[], deadline_in(WAIT)).await;
    assert_eq!(status, 200, "{body}");
    body.lines()
        .find_map(|line| line.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')).map(str::trim))
        .and_then(|value| value.parse().ok())
}

async fn readyz(replica: &Server) -> (u16, Value) {
    let (status, body) = replica.http("GET", "/chat/readyz", &[], deadline_in(WAIT)).await;
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

macro_rules! needs_redis_and_mongo {
    ($test:literal) => {{
        let Some(binary) = redis_binary($test) else { return };
        let Some(mongo) = mongo::reachable($test).await else { return };
        (Redis::start(&binary).await, mongo)
    }};
}

#[tokio::test]
async fn the_socket_cap_and_the_limits_hold_across_replicas() {
    let (redis, mongo) = needs_redis_and_mongo!("cluster limits");
    let c = cluster(
        "clusterlimits",
        &redis,
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
        &redis,
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
    let c = cluster("clusteroutage", &redis, &mongo, 2, &[]).await;
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
