//! Graceful shutdown of the compiled binary under SIGTERM, observed from outside as an
//! operator (and Kubernetes) would: probes, upgrades, sockets, exit code, time, log, and
//! — when a MongoDB-compatible server is reachable — what was stored.
//!
//! The demo provider is slowed down so answers are in flight when the signal arrives:
//! `quick` (first, the default) finishes within `SHUTDOWN_TIMEOUT`, `slow` does not and
//! is cut at the deadline. Every read of a socket, of the log or of the process has a
//! deadline, so a shutdown that hangs fails the test instead of hanging it.

#[path = "support/jwt.rs"]
mod jwt;
#[path = "support/mongo.rs"]
mod mongo;
#[path = "support/process.rs"]
mod process;
#[path = "support/ws.rs"]
mod ws;

use std::time::Duration;

use chatbox_application::ports::{ChatRequest, ChatTurn, Role};
use chatbox_domain::{ModelId, SessionId, UserId};
use chatbox_llm::DemoProvider;
use chatbox_mongodb_store::mongodb::bson::{Bson, Document, doc};
use futures::{SinkExt, TryStreamExt};
use serde_json::{Value, json};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{self, Message};

use process::{Server, message};

/// ≥32 bytes, no weak pattern, many distinct characters.
const SECRET: &str = "shutdown-K8f3Lq9ZxW2mN7vB4tR6yU1pJ5hGcDaQ";
/// What the test allows beyond `SHUTDOWN_TIMEOUT` for the process to exit: the signal's
/// delivery, the listener's last second, the runtime's teardown, a busy machine.
const EXIT_MARGIN: Duration = Duration::from_millis(1500);

fn token(user: &str) -> String {
    jwt::user_token(user, SECRET)
}

/// The test server's environment: loopback, port 0, JSON logs, the two demo models.
fn vars<'a>(quick_delay: &'a str, slow_delay: &'a str, shutdown_timeout: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("JWT_SECRET", SECRET),
        ("SERVER_HOST", "127.0.0.1"),
        ("SERVER_PORT", "0"),
        ("LOG_FORMAT", "json"),
        ("LLM_PROVIDER_1_ID", "quick"),
        ("LLM_PROVIDER_1_TYPE", "demo"),
        ("LLM_PROVIDER_1_DELAY", quick_delay),
        ("LLM_PROVIDER_2_ID", "slow"),
        ("LLM_PROVIDER_2_TYPE", "demo"),
        ("LLM_PROVIDER_2_DELAY", slow_delay),
        ("SHUTDOWN_TIMEOUT", shutdown_timeout),
    ]
}

/// The whole answer the demo model gives to `question` as the first message of a session.
fn full_answer(question: &str) -> String {
    DemoProvider::answer_text(&ChatRequest {
        model_id: ModelId::parse("quick").expect("id"),
        system_prompt: None,
        history: vec![ChatTurn::text(Role::User, question)],
        user_id: UserId::parse("u").expect("id"),
        session_id: SessionId::parse("s").expect("id"),
        conversation_id: None,
    })
}

/// A client socket and what it read.
struct Client {
    socket: ws::Socket,
    session_id: String,
    frames: Vec<Value>,
}

impl Client {
    async fn connect(server: &Server, user: &str) -> Self {
        let url = format!("ws://127.0.0.1:{}/chat/ws?token={}", server.port, token(user));
        let mut socket = ws::connect(&url).await;
        let status = ws::next_json(&mut socket, ws::deadline_in(ws::WAIT)).await;
        assert_eq!(status["type"], "connection_status", "{status}");
        let session_id = status["session_id"].as_str().expect("a session id").to_owned();
        Self { socket, session_id, frames: Vec::new() }
    }

    async fn send(&mut self, frame: &Value) {
        self.socket.send(Message::Text(frame.to_string().into())).await.expect("send");
    }

    /// Sends `question` to `model` and waits for the first chunk of its answer.
    async fn ask_until_first_chunk(&mut self, question: &str, model: &str) {
        self.send(&json!({"type": "user_message", "content": question, "model_id": model})).await;
        let frames = ws::frames_until(&mut self.socket, ws::deadline_in(ws::WAIT), |f| {
            f["metadata"]["done"] == "false"
        })
        .await;
        self.frames.extend(frames);
    }

    /// Sends `question` and reads its whole answer.
    async fn ask(&mut self, question: &str, model: &str) {
        self.send(&json!({"type": "user_message", "content": question, "model_id": model})).await;
        let frames = ws::frames_until(&mut self.socket, ws::deadline_in(ws::WAIT), ws::is_done).await;
        self.frames.extend(frames);
    }

    /// Reads until the server closes before `deadline`; the close frame must be 1001
    /// "Server shutting down".
    async fn expect_going_away(&mut self, deadline: Instant) {
        let (close, frames) = ws::until_closed(&mut self.socket, deadline).await;
        self.frames.extend(frames);
        let close = close.expect("a close frame, not a dropped connection");
        assert_eq!((close.code, close.reason.as_str()), (CloseCode::Away, "Server shutting down"));
    }

    /// The answer text this client received (the chunks, in order).
    fn streamed_text(&self) -> String {
        self.frames
            .iter()
            .filter(|f| f["metadata"]["done"] == "false")
            .map(|f| f["content"].as_str().unwrap_or_default())
            .collect()
    }

    /// The `done` frame this client received, if any.
    fn done(&self) -> Option<&Value> {
        self.frames.iter().find(|f| ws::is_done(f))
    }
}

/// Polls `readyz` until it answers 503 (a deadline: the process is observed, not
/// notified); returns the body and how long after `since` it came.
async fn wait_not_ready(server: &Server, since: Instant, deadline: Instant) -> (Value, Duration) {
    loop {
        let (status, body) = server.http("GET", "/chat/readyz", &[], deadline).await;
        if status == 503 {
            return (serde_json::from_str(&body).expect("a JSON body"), since.elapsed());
        }
        assert_eq!(status, 200, "{body}");
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(Instant::now() < deadline, "readyz still answered 200 at the deadline: not draining");
    }
}

/// A new upgrade with a valid token; returns the HTTP status of its refusal.
async fn refused_upgrade_status(server: &Server, user: &str) -> u16 {
    let url = format!("ws://127.0.0.1:{}/chat/ws?token={}", server.port, token(user));
    match tokio::time::timeout(ws::WAIT, tokio_tungstenite::connect_async(url))
        .await
        .expect("answered in time")
    {
        Ok(_) => panic!("a new socket was accepted while draining"),
        Err(tungstenite::Error::Http(response)) => response.status().as_u16(),
        Err(other) => panic!("the upgrade failed without an HTTP answer: {other}"),
    }
}

/// The messages of the log, in order, parsed; fails on a line that is not JSON.
fn parsed(log: &[String]) -> Vec<Value> {
    log.iter()
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"))
        })
        .collect()
}

fn position(log: &[Value], needle: &str) -> usize {
    log.iter()
        .position(|l| l["message"].as_str().is_some_and(|m| m.contains(needle)))
        .unwrap_or_else(|| panic!("{needle:?} is not in the log: {log:#?}"))
}

/// The checks every shutdown ends with: exit code 0, no error line, and a last line
/// `Shutdown complete` that left no tracked task behind. Returns the parsed log.
fn assert_clean_end(status: std::process::ExitStatus, log: &[String]) -> Vec<Value> {
    assert_eq!(status.code(), Some(0), "exit code; log:\n{}", log.join("\n"));
    let log = parsed(log);
    let last = log.last().expect("a log");
    assert_eq!(last["message"], "Shutdown complete", "the last line: {last}");
    assert_eq!(last["tasks_running"], 0, "no tracked task left behind: {log:#?}");
    assert!(log.iter().all(|l| l["level"] != "ERROR"), "no error during shutdown: {log:#?}");
    assert!(
        log.iter().all(|l| l["message"] != "Shutdown deadline passed with tasks still running"),
        "{log:#?}"
    );
    assert!(position(&log, "SIGTERM received") < position(&log, "Shutdown started: draining"));
    log
}

/// The stored messages of `session`, in order.
async fn stored_messages(
    database: &chatbox_mongodb_store::mongodb::Database,
    session: &str,
) -> Vec<Document> {
    let messages = database.collection::<Document>("sessions_messages");
    let cursor = messages.find(doc! {"session_id": session}).sort(doc! {"seq": 1}).await.expect("find");
    cursor.try_collect().await.expect("read the messages")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_live_answers_drains_in_order_stores_them_and_exits_zero_within_the_deadline() {
    const TIMEOUT: Duration = Duration::from_secs(4);
    // The answers get until the deadline less a tenth of it (the grace left for storing).
    const CUTOFF: Duration = Duration::from_millis(3600);
    let mongo = mongo::reachable("shutdown test").await;
    let database = mongo::fresh_database("sigterm");
    // `quick`: ~45 words at 40 ms, about 2 s, well within the cutoff; `slow`: about 11 s.
    let mut env = vars("40ms", "250ms", "4s");
    if let Some(mongo) = &mongo {
        env.extend([("MONGO_URI", mongo.uri.as_str()), ("MONGO_DATABASE", database.as_str())]);
    }
    let server = Server::start(&env).await;

    let mut quick = Client::connect(&server, "alice").await;
    let mut slow = Client::connect(&server, "bob").await;
    let mut idle = Client::connect(&server, "carol").await;
    slow.ask_until_first_chunk("tell me a long story", "slow").await;
    quick.ask_until_first_chunk("a short one", "quick").await;

    let signalled = Instant::now();
    server.sigterm();

    // 1. Not ready at once, while the answers still stream.
    let (ready, after) = wait_not_ready(&server, signalled, signalled + Duration::from_secs(2)).await;
    assert!(after < Duration::from_secs(1), "readyz turned 503 only after {after:?}");
    assert_eq!(ready["status"], "not ready");
    assert_eq!(ready["checks"]["shutdown"]["status"], "draining");
    let log_then: Vec<String> = server.log().iter().map(|l| message(l)).collect();
    assert!(
        !log_then.iter().any(|m| m.contains("Shutdown deadline reached")),
        "the answers were still running when readyz turned 503: {log_then:#?}"
    );

    // 2. No new socket, and no new message on an open one.
    assert_eq!(refused_upgrade_status(&server, "dave").await, 503);
    idle.send(&json!({"type": "user_message", "content": "anyone there?"})).await;
    let refused = ws::next_json(&mut idle.socket, ws::deadline_in(ws::WAIT)).await;
    assert_eq!(refused["error"]["code"], "SERVICE_UNAVAILABLE", "{refused}");

    // 3. Every client is told the server is going away.
    let close_deadline = signalled + TIMEOUT + EXIT_MARGIN;
    for client in [&mut quick, &mut slow, &mut idle] {
        client.expect_going_away(close_deadline).await;
    }

    // 4. Exit 0 within the deadline, after the answers had their time.
    let (status, log) = server.exit(signalled + TIMEOUT + EXIT_MARGIN + Duration::from_secs(5)).await;
    let took = signalled.elapsed();
    let log = assert_clean_end(status, &log);
    assert!(took <= TIMEOUT + EXIT_MARGIN, "exited after {took:?}, SHUTDOWN_TIMEOUT is {TIMEOUT:?}");
    assert!(
        took >= CUTOFF - Duration::from_millis(300),
        "exited after {took:?}: the slow answer should have held the drain until it was cut"
    );
    assert!(
        position(&log, "Shutdown started: draining")
            < position(&log, "Shutdown deadline reached: cancelling the answers still running")
    );

    // The sockets stayed open for their answers: the quick one whole, then `done`; the
    // slow one up to its cut, then `done` naming it; then 1001.
    let quick_answer = full_answer("a short one");
    let slow_answer = full_answer("tell me a long story");
    assert_eq!(quick.streamed_text(), quick_answer, "the quick answer reached its client whole");
    assert!(slow_answer.starts_with(&slow.streamed_text()), "{}", slow.streamed_text());
    let done = quick.done().expect("the quick answer's done frame arrived before the close");
    assert_eq!(done["metadata"]["finish_reason"], "stop", "{done}");
    let done = slow.done().expect("the slow answer's done frame arrived before the close");
    assert_eq!(done["metadata"]["finish_reason"], "cancelled", "{done}");

    // 5. Stored: the quick answer whole, the slow one cut with its partial text.
    let Some(mongo) = mongo else { return };
    let database = mongo.database(&database);
    let stored = stored_messages(&database, &quick.session_id).await;
    assert_eq!(stored.len(), 2, "the question and its answer: {stored:#?}");
    assert_eq!(stored[1].get_str("sender"), Ok("ai"));
    assert_eq!(stored[1].get_str("finish_reason"), Ok("stop"), "{:#?}", stored[1]);
    assert_eq!(stored[1].get_str("content"), Ok(quick_answer.as_str()));

    let stored = stored_messages(&database, &slow.session_id).await;
    assert_eq!(stored.len(), 2, "the question and its cut answer: {stored:#?}");
    assert_eq!(stored[1].get_str("finish_reason"), Ok("cancelled"), "{:#?}", stored[1]);
    let partial = stored[1].get_str("content").expect("stored in clear (no ENCRYPTION_KEY)");
    assert!(!partial.is_empty() && partial.len() < slow_answer.len(), "a partial answer: {partial:?}");
    assert!(slow_answer.starts_with(partial), "{partial:?}");
    assert!(partial.starts_with(&slow.streamed_text()), "it holds at least what the client saw");
    let session = database
        .collection::<Document>("sessions")
        .find_one(doc! {"_id": slow.session_id.as_str()})
        .await
        .expect("find")
        .expect("the session is stored");
    assert_eq!(session.get("last_seq"), Some(&Bson::Int64(2)), "{session:#?}");
    database.drop().await.expect("drop the test database");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_nothing_running_sigterm_exits_well_before_the_deadline() {
    let server = Server::start(&vars("1ms", "1ms", "30s")).await;
    // A live session whose actor waits for work, and a socket with no session.
    let mut talked = Client::connect(&server, "alice").await;
    talked.ask("hello", "quick").await;
    let mut idle = Client::connect(&server, "bob").await;

    let signalled = Instant::now();
    server.sigterm();
    for client in [&mut talked, &mut idle] {
        client.expect_going_away(signalled + ws::WAIT).await;
    }
    let (status, log) = server.exit(signalled + Duration::from_secs(30)).await;
    let took = signalled.elapsed();
    let log = assert_clean_end(status, &log);
    assert!(took < Duration::from_secs(3), "nothing to wait for, yet the exit took {took:?}");
    assert!(!log.iter().any(|l| l["message"].as_str().is_some_and(|m| m.contains("deadline"))), "{log:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_made_live_after_shutdown_began_does_not_hold_shutdown() {
    let mut env = vars("1ms", "60ms", "30s");
    env.extend([("SESSION_TTL", "500ms"), ("SESSION_CLEANUP_INTERVAL", "100ms")]);
    let server = Server::start(&env).await;

    // A stored session that is no longer live: answered, left, evicted.
    let mut earlier = Client::connect(&server, "alice").await;
    earlier.ask("hello", "quick").await;
    let evicted_session = earlier.session_id.clone();
    drop(earlier);
    server.wait_for_log("Cleaned up expired sessions count=1", Instant::now() + ws::WAIT).await;

    // An answer of a few seconds keeps the server draining (and serving HTTP) meanwhile.
    let mut streaming = Client::connect(&server, "bob").await;
    streaming.ask_until_first_chunk("a story", "slow").await;
    // A socket that writes to a new session right as the signal arrives: whether its
    // message lands before or after shutdown began, it must not hold the exit either.
    let mut newcomer = Client::connect(&server, "carol").await;
    newcomer.send(&json!({"type": "user_message", "content": "just in time", "model_id": "quick"})).await;

    let signalled = Instant::now();
    server.sigterm();
    wait_not_ready(&server, signalled, signalled + Duration::from_secs(2)).await;
    // Shutdown has begun: ending the evicted session loads it and makes it live again.
    let bearer = format!("Bearer {}", token("alice"));
    let (status, body) = server
        .http(
            "POST",
            &format!("/chat/sessions/{evicted_session}/end"),
            &[("Authorization", bearer.as_str())],
            signalled + ws::WAIT,
        )
        .await;
    let expected = format!(r#"{{"status":"ended","session_id":"{evicted_session}"}}"#);
    assert_eq!((status, body.as_str()), (200, expected.as_str()), "made live after shutdown began");

    for client in [&mut streaming, &mut newcomer] {
        client.expect_going_away(signalled + ws::WAIT).await;
    }
    // The slow answer needs about 3 s; the 30 s timeout must not be waited for.
    let (status, log) = server.exit(signalled + Duration::from_secs(40)).await;
    let took = signalled.elapsed();
    let log = assert_clean_end(status, &log);
    assert!(
        took < Duration::from_secs(10),
        "the session made live during the drain held shutdown for {took:?}"
    );
    assert!(!log.iter().any(|l| l["message"].as_str().is_some_and(|m| m.contains("deadline"))), "{log:#?}");
}

/// A client whose answer is streaming gets the rest of it, its `done` frame and every
/// frame queued for it (pending writes flushed) before close 1001: shutdown waits for the
/// answers before it closes the sockets, and a closing socket writes its queue first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_in_flight_reaches_its_client_with_done_before_close_1001() {
    let server = Server::start(&vars("40ms", "250ms", "5s")).await;
    let mut client = Client::connect(&server, "alice").await;
    client.ask_until_first_chunk("a short one", "quick").await;
    let signalled = Instant::now();
    server.sigterm();
    client.expect_going_away(signalled + Duration::from_secs(5) + EXIT_MARGIN).await;
    let done = client.done().expect("the done frame arrived before the close");
    assert_eq!(done["metadata"]["finish_reason"], "stop", "{done}");
    assert_eq!(client.streamed_text(), full_answer("a short one"), "every chunk, then done, then 1001");
    let (status, log) = server.exit(signalled + Duration::from_secs(10)).await;
    assert_clean_end(status, &log);
}
