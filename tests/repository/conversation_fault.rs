//! The database stops in the middle of a conversation load and starts again, with the
//! real server in front (in-process, port 0, real WebSockets): every message
//! acknowledged to a client is stored afterwards exactly once (and the answers with
//! them), readiness went 503 and came back, and no socket was dropped because of it.
//!
//! A user message counts as acknowledged when its `message_ack` arrives, which the
//! server sends only after storing the message (and before the answer's `loading`).

use std::collections::HashMap;
use std::time::Duration;

use chatbox::{Application, config};
use futures::SinkExt;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use crate::server::PrivateServer;
use prometheus::Scrape;

#[path = "../support/jwt.rs"]
mod jwt;
#[path = "../support/prometheus.rs"]
mod prometheus;
#[path = "../support/ws.rs"]
mod ws;

const SECRET: &str = "fault-K8f3Lq9ZxW2mN7vB4tR6yU1pJ5hGcDaQ";
const USERS: usize = 3;

fn token(user: &str) -> String {
    jwt::user_token(user, SECRET)
}

/// `GET path` on the server: the whole response as text.
async fn get(port: u16, path: &str) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut response = Vec::new();
    tokio::time::timeout(ws::WAIT, stream.read_to_end(&mut response)).await.expect("in time").expect("read");
    String::from_utf8_lossy(&response).into_owned()
}

/// The readiness status code.
async fn readyz(port: u16) -> u16 {
    get(port, "/chat/readyz").await.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("status")
}

/// The sum of the samples of `name` in the metrics.
async fn metric_sum(port: u16, name: &str) -> f64 {
    let response = get(port, "/metrics").await;
    let body = response.split_once("\r\n\r\n").map_or("", |(_, body)| body);
    Scrape::parse(body).sum(name)
}

async fn readyz_becomes(port: u16, wanted: u16) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while readyz(port).await != wanted {
        assert!(tokio::time::Instant::now() < deadline, "readyz never answered {wanted}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One user's socket and what it was told.
struct Talker {
    socket: ws::Socket,
    session_id: String,
    /// Client ids of messages the server acknowledged (so it says they were stored).
    acknowledged: Vec<String>,
}

impl Talker {
    /// Sends one message and reads until its answer ends or it is refused; true when
    /// it was acknowledged.
    async fn say(&mut self, id: &str) -> bool {
        let frame =
            json!({"type": "user_message", "content": format!("question {id}"), "client_message_id": id});
        self.socket.send(Message::Text(frame.to_string().into())).await.expect("send");
        let mut acknowledged = false;
        loop {
            let frame = ws::next_json(&mut self.socket, ws::deadline_in(Duration::from_secs(60))).await;
            if frame["type"] == "message_ack" {
                assert_eq!(frame["client_message_id"], id, "the acknowledgement names the message: {frame}");
                assert!(frame["seq"].as_u64().is_some(), "and its sequence number: {frame}");
                acknowledged = true;
            }
            if frame["type"] == "loading" {
                assert!(acknowledged, "an answer never starts before its question is acknowledged");
            }
            if ws::is_done(&frame) {
                break;
            }
            if frame["error"]["code"] == "DATABASE_ERROR" && !acknowledged {
                break;
            }
        }
        if acknowledged {
            self.acknowledged.push(id.to_owned());
        }
        acknowledged
    }
}

/// Every user sends one message; returns how many were acknowledged.
async fn round(talkers: &mut [Talker], counter: &mut usize) -> usize {
    *counter += 1;
    let mut acknowledged = 0;
    for (n, talker) in talkers.iter_mut().enumerate() {
        acknowledged += usize::from(talker.say(&format!("u{n}-m{counter}")).await);
    }
    acknowledged
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_restart_mid_conversation_loses_nothing_acknowledged_and_drops_no_socket() {
    let Some(server) = PrivateServer::start("conversation").await else { return };
    let uri = server.uri();
    let vars = [
        ("SERVER_HOST", "127.0.0.1"),
        ("SERVER_PORT", "0"),
        ("JWT_SECRET", SECRET),
        ("LLM_PROVIDER_1_ID", "demo"),
        ("LLM_PROVIDER_1_TYPE", "demo"),
        ("LLM_PROVIDER_1_DELAY", "1ms"),
        ("STORAGE_BACKEND", "mongodb"),
        ("MONGO_URI", uri.as_str()),
        ("MONGO_DATABASE", "conversation_fault"),
        ("MONGO_CONNECT_TIMEOUT", "1s"),
        ("MONGO_RETRY_ATTEMPTS", "2"),
        ("MONGO_RETRY_DELAY", "50ms"),
        ("WS_PONG_TIMEOUT", "120s"),
    ];
    let settings = config::load_from(&vars, false).settings.expect("valid configuration");
    let app = Application::build(settings).await.expect("build");
    let port = app.address().port();
    let shutdown = CancellationToken::new();
    let serving = tokio::spawn(app.run_until(shutdown.clone().cancelled_owned()));

    let mut talkers = Vec::new();
    for n in 0..USERS {
        let url = format!("ws://127.0.0.1:{port}/chat/ws?token={}", token(&format!("user{n}")));
        let mut socket = ws::connect(&url).await;
        let status = ws::next_json(&mut socket, ws::deadline_in(ws::WAIT)).await;
        let session_id = status["session_id"].as_str().expect("session id").to_owned();
        talkers.push(Talker { socket, session_id, acknowledged: Vec::new() });
    }
    let mut counter = 0;
    for _ in 0..3 {
        assert_eq!(round(&mut talkers, &mut counter).await, USERS, "all stored while the database is up");
    }
    assert_eq!(readyz(port).await, 200);

    server.stop().await;
    readyz_becomes(port, 503).await;
    let during = round(&mut talkers, &mut counter).await;
    assert_eq!(during, 0, "nothing is acknowledged while the database is down");

    server.restart().await;
    readyz_becomes(port, 200).await;
    assert!(
        metric_sum(port, "chatbox_storage_retries_total").await > 0.0,
        "the failed operations were retried, and the retries counted"
    );
    for _ in 0..3 {
        assert_eq!(round(&mut talkers, &mut counter).await, USERS, "stored again once the database is back");
    }

    // No socket was dropped: each still answers a ping.
    for talker in &mut talkers {
        talker.socket.send(Message::Text(json!({"type": "ping"}).to_string().into())).await.expect("send");
        let pong =
            ws::frames_until(&mut talker.socket, ws::deadline_in(ws::WAIT), |f| f["type"] == "pong").await;
        assert_eq!(pong.last().map(|f| f["type"].clone()), Some(Value::from("pong")));
    }

    // What was acknowledged is stored exactly once, with its answer, and seq is gapless.
    for (n, talker) in talkers.iter().enumerate() {
        let url = format!(
            "ws://127.0.0.1:{port}/chat/ws?token={}&session_id={}&last_seq=0",
            token(&format!("user{n}")),
            talker.session_id
        );
        let mut reader = ws::connect(&url).await;
        let _status = ws::next_json(&mut reader, ws::deadline_in(ws::WAIT)).await;
        let mut stored = Vec::new();
        while stored.len() < talker.acknowledged.len() * 2 {
            stored.push(ws::next_json(&mut reader, ws::deadline_in(ws::WAIT)).await);
        }
        let seqs: Vec<u64> = stored.iter().filter_map(|f| f["seq"].as_u64()).collect();
        assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>(), "gapless: {seqs:?}");
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for frame in &stored {
            if let Some(id) = frame["client_message_id"].as_str() {
                *counts.entry(id).or_default() += 1;
            }
        }
        for id in &talker.acknowledged {
            assert_eq!(counts.get(id.as_str()), Some(&1), "{id} stored exactly once: {counts:?}");
        }
        assert_eq!(counts.len(), talker.acknowledged.len(), "nothing unacknowledged was stored");
    }
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(30), serving)
        .await
        .expect("stops")
        .expect("join")
        .expect("clean");
}
