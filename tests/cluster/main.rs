//! Several replicas of the compiled binary sharing one Redis (`HUB_BACKEND=redis`) and
//! one MongoDB, behind a round-robin TCP proxy, as behind a plain load balancer:
//! - `limits`: the per-user socket cap, the per-user message limit and the HTTP limits
//!   hold across the replicas, and a Redis that stops and comes back turns into clear
//!   refusals (`readyz` 503, `SHARED_STATE_UNAVAILABLE`, refused upgrades), one log line
//!   and one count per outage, then full service again;
//! - `fanout`: a session's sockets on different replicas see one conversation, one
//!   writer stores it whichever replica a message reaches, a socket resumes on another
//!   replica exactly, a takeover silences the model everywhere, and the answer of a
//!   replica killed mid-stream is ended by another;
//! - `load`: a rolling update and a Redis outage under a conversation load lose and
//!   double nothing;
//! - `on_redis_cluster`: the same on a Redis Cluster (`redis+cluster://`), through the
//!   failover of the primary holding the deployment's keys.
//!
//! Needs `redis-server` on `PATH` and a MongoDB-compatible server (`MONGO_URI`); without
//! them the tests say what they skip, and in CI (`CHATBOX_REQUIRE_REDIS=1`,
//! `CHATBOX_REQUIRE_MONGO=1`) they are required.

#[path = "../support/cluster.rs"]
mod cluster;
#[path = "../support/jwt.rs"]
mod jwt;
#[path = "../support/mongo.rs"]
mod mongo;
#[path = "../support/process.rs"]
mod process;
#[path = "../support/redis_cluster.rs"]
mod redis_cluster;
#[path = "../support/ws.rs"]
mod ws;

use std::time::Duration;

use futures::SinkExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::{self, Message};

use cluster::{Redis, RoundRobin, redis_binary};
use process::Server;
use ws::{Socket, WAIT, deadline_in, frames_until, next_json};

const SECRET: &str = "k3J9x7QpLm2VbN8wZr4TyU6sHd1FgCeA-cluster";

/// Three replicas (or `count`) on one Redis and one database, behind a proxy.
struct Cluster {
    replicas: Vec<Server>,
    proxy: RoundRobin,
    /// The environment every replica starts with.
    vars: Vec<(String, String)>,
}

async fn cluster(
    test: &str,
    redis_url: &str,
    mongo: &mongo::Mongo,
    count: usize,
    extra: &[(&str, &str)],
) -> Cluster {
    let database = mongo::fresh_database(test);
    let prefix = format!("cluster-{database}");
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
        ("REDIS_URL", redis_url),
        ("REDIS_KEY_PREFIX", prefix.as_str()),
        ("REDIS_TIMEOUT", "500ms"),
    ];
    vars.extend_from_slice(extra);
    let mut replicas = Vec::new();
    for _ in 0..count {
        replicas.push(Server::start(&vars).await);
    }
    let proxy = RoundRobin::start(replicas.iter().map(|replica| replica.port).collect()).await;
    let vars = vars.into_iter().map(|(name, value)| (name.to_owned(), value.to_owned())).collect();
    Cluster { replicas, proxy, vars }
}

impl Cluster {
    /// The key prefix the replicas share.
    fn key_prefix(&self) -> &str {
        self.vars.iter().find(|(name, _)| name == "REDIS_KEY_PREFIX").map_or("", |(_, value)| value.as_str())
    }

    /// Starts one more replica with the same environment; returns its index. The proxy
    /// does not send it anything until told ([`RoundRobin::set_backends`]).
    async fn start_replica(&mut self) -> usize {
        let vars: Vec<(&str, &str)> =
            self.vars.iter().map(|(name, value)| (name.as_str(), value.as_str())).collect();
        self.replicas.push(Server::start(&vars).await);
        self.replicas.len() - 1
    }

    fn ws_url(&self, user: &str) -> String {
        format!("ws://127.0.0.1:{}/chat/ws?token={}", self.proxy.port, jwt::user_token(user, SECRET))
    }

    /// A socket of `user` through the proxy, on the replica it reaches next; its
    /// `connection_status` read.
    async fn connect(&self, user: &str) -> (usize, Socket) {
        let (replica, socket, _) = self.open(user, "").await;
        (replica, socket)
    }

    /// As [`Self::connect`], with more query parameters (`&session_id=…`); also returns
    /// the `connection_status`.
    async fn open(&self, user: &str, query: &str) -> (usize, Socket, Value) {
        let replica = self.proxy.next_index(self.replicas.len());
        let url = format!("{}{query}", self.ws_url(user));
        let (mut socket, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(url))
            .await
            .expect("the upgrade was answered in time")
            .expect("the upgrade is accepted");
        let status = next_json(&mut socket, deadline_in(WAIT)).await;
        assert_eq!(status["type"], "connection_status", "{status}");
        (replica, socket, status)
    }

    /// As [`Self::open`], on a replica other than `not`.
    async fn open_elsewhere(&self, not: usize, user: &str, query: &str) -> (usize, Socket, Value) {
        while self.proxy.next_index(self.replicas.len()) == not {
            assert_eq!(self.get_through_proxy("healthz").await, 200);
        }
        self.open(user, query).await
    }

    /// A request to replica `replica` directly: its status and JSON body.
    async fn replica_json(&self, replica: usize, method: &str, path: &str, bearer: &str) -> (u16, Value) {
        let auth = format!("Bearer {bearer}");
        let (status, body) = self.replicas[replica]
            .http(method, path, &[("Authorization", auth.as_str())], deadline_in(WAIT))
            .await;
        (status, serde_json::from_str(&body).unwrap_or(Value::Null))
    }

    /// The stored messages of `user`'s `session`, read from `replica`.
    async fn history(&self, replica: usize, user: &str, session: &str) -> Vec<Value> {
        let token = jwt::user_token(user, SECRET);
        let (status, body) =
            self.replica_json(replica, "GET", &format!("/chat/sessions/{session}"), &token).await;
        assert_eq!(status, 200, "{body}");
        body["messages"].as_array().cloned().unwrap_or_default()
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

/// Frames up to and including the `done` of an answer.
async fn until_done(socket: &mut Socket) -> Vec<Value> {
    frames_until(socket, deadline_in(Duration::from_secs(30)), ws::is_done).await
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

mod fanout;
mod limits;
mod load;
mod on_redis_cluster;
