//! Capacity benchmarks that print numbers, with one ratio check that CI can afford: the
//! memory an idle WebSocket costs the server. The server runs as its own process (the
//! compiled binary) so its resident memory and CPU time can be read from `/proc`.
//!
//! Run the release numbers with:
//! `cargo test --release -p chatbox --test capacity -- --nocapture --test-threads 1`
//! (one test at a time, so no benchmark shares the cores with another).
//!
//! The CPU benchmark measures the server's CPU time (from `/proc/<pid>/stat`) per
//! streamed token delivered to a socket, with three sockets bound to each session so
//! every chunk is fanned out three times. Its only assertion is that every socket
//! received every chunk of every answer. Its size follows the build (a few seconds in
//! debug for CI, seconds of server CPU in release); `CHATBOX_BENCH_ANSWERS` sets the
//! answers per session.
//!
//! The test raises its own open-file limit (soft up to hard), so it passes where the
//! default soft limit is 1,024 (`ulimit -n 1024`): it holds some 2,100 sockets, and so
//! does the server it starts (which inherits the raised limit).
//!
//! What the servers run on, for comparing setups in one sitting (all default to one
//! process with the in-memory store):
//! - `CHATBOX_BENCH_STORE=mongodb`: MongoDB storage (`MONGO_URI`, a fresh database);
//! - `CHATBOX_BENCH_HUB=redis`: the Redis hub (`REDIS_URL`; MongoDB storage, which it
//!   needs), and `CHATBOX_BENCH_REPLICAS=N` replicas: the CPU benchmark then spreads each
//!   session's sockets over the replicas (so every chunk crosses Redis) and sums their
//!   CPU time; the other two use the first replica.

#[path = "support/bench_servers.rs"]
mod bench_servers;
#[path = "support/jwt.rs"]
mod jwt;
#[path = "support/process.rs"]
mod process;
#[path = "support/ws.rs"]
mod ws;

use std::time::{Duration, Instant};

use bench_servers::{SECRET, setup, start_server, start_servers};
use futures::SinkExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

/// Idle sockets opened for the memory measurement.
const IDLE_SOCKETS: usize = 2000;
/// tungstenite's default read buffer alone is 128 KiB per socket; the gateway sizes its
/// buffers by hand and must stay far below that.
const MAX_KIB_PER_IDLE_SOCKET: f64 = 32.0;
/// File descriptors each side needs: the sockets, plus room for the runtime, the
/// listener, pipes and the test harness.
const FILES_NEEDED: u64 = IDLE_SOCKETS as u64 + 100 + 400;
/// Sessions streaming at once in the CPU benchmark, each a user of its own (so the
/// per-user message limit is not shared).
const BENCH_SESSIONS: usize = 8;
/// Sockets bound to each session: the first asks, every one receives the answer.
const SOCKETS_PER_SESSION: usize = 3;
/// Answers per session unless `CHATBOX_BENCH_ANSWERS` says otherwise: a short run in a
/// debug build (CI), seconds of server CPU in a release build, where ticks of 10 ms are
/// a rounding error.
const DEFAULT_ANSWERS_PER_SESSION: usize = if cfg!(debug_assertions) { 50 } else { 2000 };

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

fn rss_kib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("VmRSS");
    line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).expect("kib")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_socket_costs_the_server_a_few_kib() {
    raise_open_file_limit();
    let server = start_server().await;
    let (pid, port) = (server.pid, server.port);
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
    println!("setup: {}", setup().label);
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
    let server = start_server().await;
    let port = server.port;
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
    println!("setup: {}", setup().label);
    let pick = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize];
    println!(
        "time to first chunk (store the question, read the history, start the model, fan out), 200 answers: p50 {:?}, p99 {:?}, max {:?}",
        pick(0.5),
        pick(0.99),
        samples[samples.len() - 1]
    );
}

/// Answers each session streams in the CPU benchmark.
fn answers_per_session() -> usize {
    std::env::var("CHATBOX_BENCH_ANSWERS").map_or(DEFAULT_ANSWERS_PER_SESSION, |answers| {
        answers
            .parse()
            .ok()
            .filter(|&answers| answers > 0)
            .expect("CHATBOX_BENCH_ANSWERS is a positive number of answers per session")
    })
}

/// Clock ticks per second of the times in `/proc/<pid>/stat`. Linux fixes this unit
/// (`USER_HZ`) at 100 for user space on every common architecture; `getconf` is asked
/// first so an odd system is measured right rather than assumed.
fn clock_ticks_per_second() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|ticks| ticks.trim().parse().ok())
        .unwrap_or(100)
}

/// CPU time a process has used, all its threads together.
#[derive(Clone, Copy)]
struct CpuTime {
    user: Duration,
    system: Duration,
}

impl CpuTime {
    /// What the process `pid` has used so far.
    fn of(pid: u32, ticks_per_second: u64) -> Self {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("proc stat");
        // The command name (field 2) is in parentheses and may hold spaces: count the
        // fields after it. Field 3 comes first there, so `utime` (field 14) is the 12th
        // and `stime` (15) the 13th.
        let after_name = &stat[stat.rfind(')').expect("a command name") + 1..];
        let fields: Vec<&str> = after_name.split_whitespace().collect();
        let time = |field: &str| {
            let ticks: u64 = field.parse().expect("clock ticks");
            Duration::from_secs_f64(ticks as f64 / ticks_per_second as f64)
        };
        Self { user: time(fields[11]), system: time(fields[12]) }
    }

    /// Both together (several replicas).
    fn plus(self, other: Self) -> Self {
        Self { user: self.user + other.user, system: self.system + other.system }
    }

    /// What was used since `earlier`.
    fn since(self, earlier: Self) -> Self {
        Self {
            user: self.user.saturating_sub(earlier.user),
            system: self.system.saturating_sub(earlier.system),
        }
    }

    fn total(self) -> Duration {
        self.user + self.system
    }
}

/// Opens the sockets of a new session of `user`: the first creates the session with a
/// first answer, the others are bound to it; socket `i` goes to `ports[(first + i) %
/// ports.len()]`, so with several replicas each session spans them.
async fn open_session(ports: &[u16], first: usize, user: &str) -> Vec<ws::Socket> {
    let url =
        |index: usize| format!("ws://127.0.0.1:{}/chat/ws?token={}", ports[index % ports.len()], token(user));
    let mut asker = ws::connect(&url(first)).await;
    let status = ws::next_json(&mut asker, ws::deadline_in(ws::WAIT)).await;
    let session_id = status["session_id"].as_str().expect("a session id").to_owned();
    let frame = json!({"type": "user_message", "content": "open the session"}).to_string();
    asker.send(Message::Text(frame.into())).await.expect("send");
    ws::frames_until(&mut asker, ws::deadline_in(ws::WAIT), ws::is_done).await;
    let mut sockets = vec![asker];
    for index in 1..SOCKETS_PER_SESSION {
        let mut socket = ws::connect(&format!("{}&session_id={session_id}", url(first + index))).await;
        let status = ws::next_json(&mut socket, ws::deadline_in(ws::WAIT)).await;
        assert_eq!(status["session_id"], session_id.as_str(), "bound to the session: {status}");
        sockets.push(socket);
    }
    sockets
}

/// Asks `question` on the session's first socket and reads the whole answer on every
/// socket of the session; returns the chunk frames delivered, all sockets together.
/// Panics unless every socket received every chunk of the answer, in order.
async fn ask_and_read_everywhere(sockets: &mut [ws::Socket], question: &str) -> usize {
    let frame = json!({"type": "user_message", "content": question}).to_string();
    sockets[0].send(Message::Text(frame.into())).await.expect("send");
    let mut first_text: Option<String> = None;
    let mut delivered = 0;
    // One socket after the other: the others' frames wait in their TCP buffers (an
    // answer is some 12 KB), and no socket can fall answers behind the asker.
    for (index, socket) in sockets.iter_mut().enumerate() {
        let frames = ws::frames_until(socket, ws::deadline_in(ws::WAIT), ws::is_done).await;
        let chunks: Vec<&str> = frames
            .iter()
            .filter(|frame| frame["type"] == "ai_response" && frame["metadata"]["done"] == "false")
            .map(|frame| frame["content"].as_str().expect("a chunk's text"))
            .collect();
        let done = &frames[frames.len() - 1];
        assert_eq!(done["metadata"]["finish_reason"], "stop", "{done}");
        // The demo model reports one completion token per streamed word (one chunk).
        let streamed: usize = metadata_number(done, "completion_tokens");
        assert_eq!(
            chunks.len(),
            streamed,
            "socket {index} received every chunk of the answer to {question:?}; it got {chunks:?}"
        );
        let text = chunks.concat();
        assert!(text.contains(&format!("\"{question}\"")), "the answer to {question:?}: {text}");
        match &first_text {
            None => first_text = Some(text),
            Some(first) => assert_eq!(&text, first, "socket {index} received what the asker did"),
        }
        delivered += chunks.len();
    }
    delivered
}

fn metadata_number(frame: &Value, key: &str) -> usize {
    frame["metadata"][key].as_str().and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("{key}: {frame}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cpu_per_streamed_token_with_three_sockets_per_session() {
    let setup = setup();
    let servers = start_servers(&setup).await;
    let pids: Vec<u32> = servers.iter().map(|server| server.pid).collect();
    let ports: Vec<u16> = servers.iter().map(|server| server.port).collect();
    let answers = answers_per_session();
    let mut sessions = Vec::with_capacity(BENCH_SESSIONS);
    for n in 0..BENCH_SESSIONS {
        sessions.push(open_session(&ports, n, &format!("bench-{n}")).await);
    }
    let ticks_per_second = clock_ticks_per_second();
    let cpu_of_all = || {
        pids.iter().map(|pid| CpuTime::of(*pid, ticks_per_second)).reduce(CpuTime::plus).expect("a server")
    };
    let cpu_before = cpu_of_all();
    let started = Instant::now();
    let runs: Vec<_> = sessions
        .into_iter()
        .enumerate()
        .map(|(n, mut sockets)| {
            tokio::spawn(async move {
                let mut delivered = 0;
                for answer in 0..answers {
                    let question = format!("session {n} question {answer}");
                    delivered += ask_and_read_everywhere(&mut sockets, &question).await;
                }
                // The sockets are dropped after the reading: closing them is not streaming.
                (delivered, sockets)
            })
        })
        .collect();
    let mut delivered = 0;
    let mut open = Vec::with_capacity(BENCH_SESSIONS);
    for run in runs {
        let (session_delivered, sockets) = run.await.expect("the session streamed every answer");
        delivered += session_delivered;
        open.push(sockets);
    }
    let wall = started.elapsed();
    let cpu = cpu_of_all().since(cpu_before);
    drop(open);
    let sockets = BENCH_SESSIONS * SOCKETS_PER_SESSION;
    let per_token = cpu.total().as_secs_f64() * 1e6 / delivered as f64;
    println!("setup: {}", setup.label);
    println!(
        "cpu per streamed token: {per_token:.2} µs (server CPU {:.2} s for {delivered} tokens delivered to {sockets} sockets)",
        cpu.total().as_secs_f64()
    );
    println!(
        "streamed tokens: {:.0} tokens/s delivered ({BENCH_SESSIONS} sessions of {SOCKETS_PER_SESSION} sockets, {answers} answers each of {} chunks, {:.2} s; server CPU user {:.2} s, system {:.2} s)",
        delivered as f64 / wall.as_secs_f64(),
        delivered / (sockets * answers),
        wall.as_secs_f64(),
        cpu.user.as_secs_f64(),
        cpu.system.as_secs_f64()
    );
}

/// Answers measured for the fan-out lag across replicas.
const LAG_ANSWERS: usize = 40;

/// The frames' arrival times on one socket, by chunk, until `done`.
async fn chunk_arrivals(socket: &mut ws::Socket) -> Vec<Instant> {
    let mut arrivals = Vec::new();
    loop {
        let frame = ws::next_json(socket, ws::deadline_in(ws::WAIT)).await;
        if frame["type"] == "ai_response" && frame["metadata"]["done"] == "false" {
            arrivals.push(Instant::now());
        }
        if ws::is_done(&frame) {
            return arrivals;
        }
    }
}

/// With `CHATBOX_BENCH_REPLICAS` of 2 or more: how much later a chunk reaches a socket on
/// another replica than one on the replica that streams it (the price of crossing Redis:
/// encode, append, the follower's read, decode, deliver), chunk by chunk, both sockets
/// read at once. Prints the percentiles; asserts only that both got every chunk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fan_out_lag_across_replicas() {
    let mut setup = setup();
    // Tokens 10 ms apart, as a model streams them: each chunk's lag is its own.
    setup.vars.push(("LLM_PROVIDER_1_DELAY".into(), "10ms".into()));
    if setup.replicas < 2 {
        println!("fan-out lag: needs CHATBOX_BENCH_HUB=redis and CHATBOX_BENCH_REPLICAS >= 2; skipped");
        return;
    }
    let servers = start_servers(&setup).await;
    let ports: Vec<u16> = servers.iter().map(|server| server.port).collect();
    let mut sockets = open_session(&ports, 0, "lag").await;
    let (mut asker, mut watcher) = (sockets.remove(0), sockets.remove(0));
    let mut lags = Vec::new();
    let mut worst = (Duration::ZERO, 0, 0);
    for answer in 0..LAG_ANSWERS {
        let frame = json!({"type": "user_message", "content": format!("lag question {answer}")}).to_string();
        asker.send(Message::Text(frame.into())).await.expect("send");
        let (near, far) = tokio::join!(chunk_arrivals(&mut asker), chunk_arrivals(&mut watcher));
        assert_eq!(near.len(), far.len(), "both sockets got every chunk of answer {answer}");
        for (chunk, (near, far)) in near.iter().zip(&far).enumerate() {
            let lag = far.saturating_duration_since(*near);
            if lag > worst.0 {
                worst = (lag, answer, chunk);
            }
            lags.push(lag);
        }
    }
    lags.sort();
    let pick = |q: f64| lags[((lags.len() - 1) as f64 * q) as usize];
    println!("setup: {}", setup.label);
    println!(
        "fan-out lag across replicas ({} chunks): p50 {:?}, p99 {:?}, p999 {:?}, max {:?} (answer {}, chunk {})",
        lags.len(),
        pick(0.5),
        pick(0.99),
        pick(0.999),
        worst.0,
        worst.1,
        worst.2
    );
}
