//! Capacity benchmarks that print numbers, with one ratio check that CI can afford: the
//! memory an idle WebSocket costs the server. The server runs as its own process (the
//! compiled binary) so its resident memory can be read from `/proc`.
//!
//! Run the release numbers with:
//! `cargo test --release -p chatbox --test capacity -- --nocapture`
//!
//! The test raises its own open-file limit (soft up to hard), so it passes where the
//! default soft limit is 1,024 (`ulimit -n 1024`): it holds some 2,100 sockets, and so
//! does the server it starts (which inherits the raised limit).

#[path = "support/jwt.rs"]
mod jwt;
#[path = "support/ws.rs"]
mod ws;

use std::process::Stdio;
use std::time::{Duration, Instant};

use futures::SinkExt;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio_tungstenite::tungstenite::Message;

const SECRET: &str = "capacity-K8f3Lq9ZxW2mN7vB4tR6yU1pJ5hG";
/// Idle sockets opened for the memory measurement.
const IDLE_SOCKETS: usize = 2000;
/// tungstenite's default read buffer alone is 128 KiB per socket; the gateway sizes its
/// buffers by hand and must stay far below that.
const MAX_KIB_PER_IDLE_SOCKET: f64 = 32.0;
/// File descriptors each side needs: the sockets, plus room for the runtime, the
/// listener, pipes and the test harness.
const FILES_NEEDED: u64 = IDLE_SOCKETS as u64 + 100 + 400;

/// Raises this process's soft `RLIMIT_NOFILE` up to its hard limit (the server
/// started afterwards inherits it), and fails clearly if even that is too low.
fn raise_open_file_limit() {
    let limit = rlimit::increase_nofile_limit(u64::MAX).expect("read and raise RLIMIT_NOFILE");
    assert!(
        limit >= FILES_NEEDED,
        "this test needs {FILES_NEEDED} open files but the hard limit is {limit} (raise it with `ulimit -Hn`)"
    );
}

/// Opens one socket and reads its `connection_status`.
async fn open_idle(url: &str) -> ws::Socket {
    let mut socket = ws::connect(url).await;
    let status = ws::next_json(&mut socket, ws::deadline_in(ws::WAIT)).await;
    assert_eq!(status["type"], "connection_status", "{status}");
    socket
}

/// A round trip on `socket`: the server has handled everything sent on it before.
async fn ping_pong(socket: &mut ws::Socket) {
    socket.send(Message::Text(json!({"type": "ping"}).to_string().into())).await.expect("send");
    let pong = ws::next_json(socket, ws::deadline_in(ws::WAIT)).await;
    assert_eq!(pong["type"], "pong");
}

fn token(user: &str) -> String {
    jwt::user_token(user, SECRET)
}

async fn start_server() -> (Child, u16) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_chatbox"))
        .env_clear()
        .env("JWT_SECRET", SECRET)
        .env("SERVER_HOST", "127.0.0.1")
        .env("SERVER_PORT", "0")
        .env("LLM_PROVIDER_1_ID", "demo")
        .env("LLM_PROVIDER_1_TYPE", "demo")
        .env("LLM_PROVIDER_1_DELAY", "0ms")
        .env("MAX_CONNECTIONS_PER_USER", "10000")
        .env("RATE_LIMIT", "100000")
        .env("WS_COMMAND_BUDGET", "100000")
        .env("LOG_LEVEL", "warn,chatbox=info")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let port = loop {
        let line = tokio::time::timeout_at(deadline, lines.next_line())
            .await
            .expect("starts in time")
            .expect("read")
            .expect("a listening line");
        if let Some(after) = line.split("Server listening on ").nth(1) {
            let address: String =
                after.chars().take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ':').collect();
            break address.rsplit(':').next().and_then(|p| p.parse().ok()).expect("port");
        }
    };
    // Keep draining the log so the server never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, port)
}

fn rss_kib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("VmRSS");
    line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).expect("kib")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_socket_costs_the_server_a_few_kib() {
    raise_open_file_limit();
    let (child, port) = start_server().await;
    let pid = child.id().expect("pid");
    let url = format!("ws://127.0.0.1:{port}/chat/ws?token={}", token("idle"));
    // Warm up allocator arenas and the runtime with a first batch, then measure. Each
    // socket is counted once the server has sent its `connection_status` (its state
    // is then allocated), and a round trip on the newest socket before each reading
    // shows the server has handled everything sent so far; nothing is left to wait for.
    let mut sockets = Vec::with_capacity(IDLE_SOCKETS + 100);
    for _ in 0..100 {
        sockets.push(open_idle(&url).await);
    }
    ping_pong(sockets.last_mut().expect("a socket")).await;
    let before = rss_kib(pid);
    for _ in 0..IDLE_SOCKETS {
        sockets.push(open_idle(&url).await);
    }
    ping_pong(sockets.last_mut().expect("a socket")).await;
    let after = rss_kib(pid);
    let per_socket = (after - before) / IDLE_SOCKETS as f64;
    println!(
        "idle sockets: {IDLE_SOCKETS}, server RSS {before:.0} KiB -> {after:.0} KiB, {per_socket:.1} KiB per idle socket"
    );
    assert!(
        per_socket < MAX_KIB_PER_IDLE_SOCKET,
        "an idle socket costs {per_socket:.1} KiB (limit {MAX_KIB_PER_IDLE_SOCKET} KiB)"
    );
    drop(sockets);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_to_first_chunk_through_the_gateway() {
    let (_child, port) = start_server().await;
    let url = format!("ws://127.0.0.1:{port}/chat/ws?token={}", token("latency"));
    let mut socket = open_idle(&url).await;
    let mut samples = Vec::new();
    for n in 0..200 {
        let started = Instant::now();
        let frame = json!({"type": "user_message", "content": format!("question {n}")}).to_string();
        socket.send(Message::Text(frame.into())).await.expect("send");
        let mut first = None;
        let mut answer = String::new();
        let deadline = ws::deadline_in(ws::WAIT);
        loop {
            let frame = ws::next_json(&mut socket, deadline).await;
            if frame["metadata"]["done"] == "false" {
                first.get_or_insert_with(|| started.elapsed());
                answer.push_str(frame["content"].as_str().unwrap_or_default());
            }
            if frame["metadata"]["done"] == "true" {
                break;
            }
        }
        assert!(
            answer.contains(&format!("\"question {n}\"")),
            "answer {n} belongs to question {n}: {answer}"
        );
        samples.push(first.expect("a first chunk"));
    }
    samples.sort();
    let pick = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize];
    println!(
        "time to first chunk (store the question, read the history, start the model, fan out), 200 answers: p50 {:?}, p99 {:?}, max {:?}",
        pick(0.5),
        pick(0.99),
        samples[samples.len() - 1]
    );
}
