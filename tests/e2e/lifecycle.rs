//! Probes, start-up and shutdown, in-process and as the real binary.

use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::support::{SECRET, open, spawn_app, token};
use crate::ws;

#[tokio::test]
async fn healthz_and_readyz_answer_json() {
    let app = spawn_app(&[]).await;
    let (status, body) = app.http("GET", "/chat/healthz", None).await;
    assert_eq!((status, body.as_str()), (200, r#"{"status":"ok"}"#));
    let (status, body) = app.http("GET", "/chat/readyz", None).await;
    assert_eq!(status, 200);
    let ready: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(ready["status"], "ready");
    assert_eq!(ready["checks"]["llm"]["providers_count"], 2);
    let (status, body) = app.http("GET", "/chat/nowhere", None).await;
    assert_eq!(status, 404);
    assert!(body.contains(r#""code":"NOT_FOUND""#));
    app.stop().await;
}

#[tokio::test]
async fn cors_answers_listed_origins_refuses_others_and_leaves_websockets_alone() {
    let app = spawn_app(&[("CORS_ALLOWED_ORIGINS", "https://app.example.com")]).await;
    let preflight = [
        ("Origin", "https://app.example.com"),
        ("Access-Control-Request-Method", "POST"),
        ("Access-Control-Request-Headers", "authorization"),
    ];
    let (status, head, _) = app.http_raw("OPTIONS", "/chat/sessions/abc/end", &preflight).await;
    assert_eq!(status, 200, "{head}");
    assert!(head.contains("access-control-allow-origin: https://app.example.com"), "{head}");
    assert!(head.contains("access-control-allow-credentials: true"), "{head}");
    let (status, head, _) =
        app.http_raw("GET", "/chat/healthz", &[("Origin", "https://app.example.com")]).await;
    assert_eq!(status, 200);
    assert!(head.contains("access-control-allow-origin: https://app.example.com"), "{head}");
    let (status, _, body) =
        app.http_raw("GET", "/chat/healthz", &[("Origin", "https://evil.example.com")]).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("FORBIDDEN"));
    let (status, head, _) = app.http_raw("GET", "/chat/healthz", &[]).await;
    assert_eq!(status, 200, "requests without Origin (probes, servers) are unaffected");
    assert!(!head.contains("access-control-allow-origin"));
    let url = app.ws_url(&format!("?token={}", token("alice")));
    let mut request =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(url).expect("request");
    request.headers_mut().insert("origin", "https://elsewhere.example.com".parse().expect("origin"));
    assert!(crate::support::try_open(request).await.is_ok(), "WebSockets follow ALLOWED_ORIGINS, not CORS");
    // The scrapes too: another origin gets 403, a scraper (no Origin) its metrics.
    for scrape in ["/chat/metrics/prometheus", "/metrics"] {
        let (status, _, body) = app.http_raw("GET", scrape, &[("Origin", "https://evil.example.com")]).await;
        assert_eq!(status, 403, "{scrape}: {body}");
        let (status, _, body) = app.http_raw("GET", scrape, &[]).await;
        assert_eq!(status, 200, "{scrape}");
        assert!(body.contains("# TYPE"), "{scrape}: {body}");
    }
    app.stop().await;
}

#[tokio::test]
async fn ending_a_session_over_http_notifies_its_sockets_and_refuses_new_messages() {
    let app = spawn_app(&[]).await;
    let mut client = app.connect("alice", "").await;
    client.ask("hello").await;
    let session = client.session_id();
    let (status, _) =
        app.http("POST", &format!("/chat/sessions/{session}/end"), Some(&token("mallory"))).await;
    assert_eq!(status, 404, "not the owner");
    let (status, _) = app.http("POST", &format!("/chat/sessions/{session}/end"), None).await;
    assert_eq!(status, 401);
    let (status, body) =
        app.http("POST", &format!("/chat/sessions/{session}/end"), Some(&token("alice"))).await;
    let body: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!((status, &body), (200, &json!({"status": "ended", "session_id": session})));
    let ended = client.next_json().await;
    assert_eq!(ended["metadata"]["state"], "ended");
    client.send(json!({"type": "user_message", "content": "more?"})).await;
    assert_eq!(client.next_json().await["error"]["code"], "SESSION_ENDED");
    app.stop().await;
}

#[tokio::test]
async fn shutdown_closes_sockets_with_1001_drains_and_stops_within_the_deadline() {
    let app = spawn_app(&[("LLM_PROVIDER_1_DELAY", "100ms"), ("SHUTDOWN_TIMEOUT", "2s")]).await;
    let mut talking = app.connect("alice", "").await;
    let mut idle = app.connect("bob", "").await;
    talking.send(json!({"type": "user_message", "content": "a long answer"})).await;
    assert_eq!(talking.next_json().await["type"], "loading");

    let started = Instant::now();
    app.shutdown.cancel();
    for client in [&mut talking, &mut idle] {
        let (close, _) = client.until_closed().await;
        let close = close.expect("close frame");
        assert_eq!((close.code, close.reason.as_str()), (CloseCode::Away, "Server shutting down"));
    }
    let (status, body) = app.http("GET", "/chat/readyz", None).await;
    assert_eq!(status, 503, "not ready while draining: {body}");
    let (status, scrape) = app.http("GET", "/metrics", None).await;
    assert_eq!(status, 200, "{scrape}");
    let readiness = crate::prometheus::Scrape::parse(&scrape).get("chatbox_ready", &[]);
    assert_eq!(readiness, 0.0, "the readiness gauge holds the 503 verdict");
    let (status, _) = app.http("GET", &format!("/chat/ws?token={}", token("carol")), None).await;
    assert_eq!(status, 503, "no new sockets while draining");
    tokio::time::timeout(Duration::from_secs(5), app.handle)
        .await
        .expect("stops")
        .expect("join")
        .expect("clean");
    assert!(
        started.elapsed() < Duration::from_millis(3000),
        "within SHUTDOWN_TIMEOUT: {:?}",
        started.elapsed()
    );
}

fn binary() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_chatbox"));
    command.env_clear().env("PATH", std::env::var("PATH").unwrap_or_default());
    command.stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
    command
}

/// The binary configured as a test server: the test secret, loopback, a free port, one
/// demo provider; `overrides` replace or add variables.
fn server_binary(overrides: &[(&str, &str)]) -> Command {
    let mut command = binary();
    command
        .env("JWT_SECRET", SECRET)
        .env("SERVER_HOST", "127.0.0.1")
        .env("SERVER_PORT", "0")
        .env("LLM_PROVIDER_1_ID", "demo")
        .env("LLM_PROVIDER_1_TYPE", "demo");
    for (name, value) in overrides {
        command.env(name, value);
    }
    command
}

/// A running binary and one reader over its standard output (so no line is lost
/// between reads).
struct Running {
    child: Child,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    stderr: Option<tokio::process::ChildStderr>,
}

impl Running {
    fn spawn(command: &mut Command) -> Self {
        let mut child = command.spawn().expect("spawn");
        let lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let stderr = child.stderr.take();
        Self { child, lines, stderr }
    }

    /// Reads lines until one contains `needle`; returns the lines read by this call.
    async fn until(&mut self, needle: &str) -> Vec<String> {
        let mut lines = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while let Ok(Ok(Some(line))) = tokio::time::timeout_at(deadline, self.lines.next_line()).await {
            let found = line.contains(needle);
            lines.push(line);
            if found {
                return lines;
            }
        }
        panic!("{needle:?} never appeared in {lines:#?}");
    }

    fn sigterm(&self) {
        let pid = self.child.id().expect("pid").to_string();
        let status = std::process::Command::new("kill").args(["-TERM", &pid]).status().expect("kill");
        assert!(status.success());
    }

    /// Waits for the exit (within `within`); returns the status and everything printed
    /// since the last read.
    async fn exit(mut self, within: Duration) -> (std::process::ExitStatus, String) {
        let mut rest = String::new();
        let collect = async {
            while let Ok(Some(line)) = self.lines.next_line().await {
                rest.push_str(&line);
                rest.push('\n');
            }
            if let Some(mut stderr) = self.stderr.take() {
                let _ = tokio::io::AsyncReadExt::read_to_string(&mut stderr, &mut rest).await;
            }
            self.child.wait().await.expect("status")
        };
        let status = tokio::time::timeout(within, collect).await.expect("exits in time");
        (status, rest)
    }
}

fn listening_port(lines: &[String]) -> u16 {
    let line = lines.iter().find(|l| l.contains("Server listening on")).expect("listening line");
    let after = line.split("Server listening on ").nth(1).expect("address");
    let address: String =
        after.chars().take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ':').collect();
    address.rsplit(':').next().and_then(|p| p.parse().ok()).expect("port")
}

#[tokio::test]
async fn a_weak_jwt_secret_fails_validation_with_a_non_zero_exit_and_no_secret_in_the_output() {
    let weak = "this-is-my-password-for-the-gateway-x";
    let output = binary()
        .env("JWT_SECRET", weak)
        .env("LLM_PROVIDER_1_ID", "demo")
        .env("LLM_PROVIDER_1_TYPE", "demo")
        .output()
        .await
        .expect("run");
    assert!(!output.status.success());
    let text =
        String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
    assert!(text.contains("JWT_SECRET"), "{text}");
    assert!(text.contains("validation failed"), "{text}");
    assert!(!text.contains(weak), "the secret is never printed");
}

/// Sends one message over a fresh socket and waits for `chunks` answer frames.
async fn ask_over(port: u16, token: &str, chunks: usize) -> crate::support::Socket {
    let mut socket = open(format!("ws://127.0.0.1:{port}/chat/ws?token={token}")).await;
    let hi = json!({"type": "user_message", "content": "hi"}).to_string();
    futures::SinkExt::send(&mut socket, Message::Text(hi.into())).await.expect("send");
    let mut seen = 0;
    ws::frames_until(&mut socket, ws::deadline_in(ws::WAIT), |frame| {
        if frame["metadata"]["done"] == "false" || frame["metadata"]["done"] == "true" {
            seen += 1;
        }
        seen >= chunks
    })
    .await;
    socket
}

#[tokio::test]
async fn the_binary_logs_its_start_up_lines_in_order_and_exits_cleanly_on_sigterm_mid_answer() {
    let mut run = Running::spawn(&mut server_binary(&[
        ("LLM_PROVIDER_1_DELAY", "100ms"),
        ("SHUTDOWN_TIMEOUT", "3s"),
        ("LOG_LEVEL", "debug"),
    ]));
    let lines = run.until("Server listening on").await;
    let order = [
        "Configuration validated successfully",
        "Starting session cleanup task interval=5m ttl=15m",
        "Starting rate limiter cleanup task interval=5m",
        "Server listening on",
    ];
    let positions: Vec<usize> = order
        .iter()
        .map(|needle| {
            lines
                .iter()
                .position(|l| l.contains(needle))
                .unwrap_or_else(|| panic!("{needle} missing from {lines:#?}"))
        })
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{lines:#?}");
    assert!(
        lines.iter().all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()),
        "JSON logs by default"
    );

    let token = token("alice");
    let mut socket = ask_over(listening_port(&lines), &token, 2).await;
    let started = Instant::now();
    run.sigterm();
    let (close, _) = ws::until_closed(&mut socket, ws::deadline_in(Duration::from_secs(5))).await;
    let close = close.expect("close frame");
    assert_eq!((close.code, close.reason.as_str()), (CloseCode::Away, "Server shutting down"));
    let (status, rest) = run.exit(Duration::from_secs(6)).await;
    assert!(status.success(), "exit 0, got {status}");
    assert!(started.elapsed() < Duration::from_secs(4), "within SHUTDOWN_TIMEOUT");
    assert!(rest.contains("Shutdown complete"), "{rest}");
    for line in lines.iter().map(String::as_str).chain(rest.lines()) {
        assert!(!line.contains(&token), "a token reached the log even at debug level: {line}");
        assert!(!line.contains(SECRET), "the JWT secret reached the log: {line}");
    }
}

#[tokio::test]
async fn dev_mode_starts_with_nothing_configured_and_prints_a_working_token() {
    // No SERVER_HOST: `--dev` prints live tokens, so it listens on loopback by default.
    let mut run = Running::spawn(binary().env("SERVER_PORT", "0").arg("--dev"));
    let lines = run.until("Chatbox dev mode").await;
    let line = lines.last().expect("dev line").clone();
    let listening = run.until("Server listening on").await;
    let listening = listening.last().expect("listening line");
    assert!(listening.contains("Server listening on 127.0.0.1:"), "{listening}");
    let page = line
        .split_whitespace()
        .find(|w| w.starts_with("http://127.0.0.1:") && w.contains("/chat/ui/?token="))
        .expect("the chat page's URL, with a user token");
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("ws://") && w.contains("/chat/ws?token="))
        .expect("user url");
    assert_eq!(
        page.split_once("?token=").map(|(_, token)| token),
        url.split_once("?token=").map(|(_, token)| token),
        "the page opens as the user"
    );
    let dashboard = line
        .split_whitespace()
        .find(|w| w.starts_with("http://127.0.0.1:") && w.contains("/chat/ui/admin?token="))
        .expect("the admin dashboard's URL, with an admin token");
    let admin_socket = line
        .split_whitespace()
        .filter(|w| w.starts_with("ws://") && w.contains("/chat/ws?token="))
        .nth(1)
        .expect("admin socket url");
    assert_eq!(
        dashboard.split_once("?token=").map(|(_, token)| token),
        admin_socket.split_once("?token=").map(|(_, token)| token),
        "the dashboard opens as the admin"
    );
    let mut socket = open(url).await;
    let status = ws::next_json(&mut socket, ws::deadline_in(ws::WAIT)).await;
    assert_eq!(status["user_id"], "dev-user");
    assert_eq!(status["model_id"], "demo");
    run.sigterm();
    let (status, rest) = run.exit(Duration::from_secs(10)).await;
    assert!(status.success(), "{status}; the log after the signal:\n{rest}");
}

#[tokio::test]
async fn provider_failures_are_logged_without_keys_or_bodies_at_info_level() {
    use crate::fake_provider::{FakeProvider, Script, Wire};
    let provider = FakeProvider::start().await;
    provider.push(Script::error(500, "SECRET-BODY upstream stack trace"));
    provider.push(Script::error(
        401,
        r#"{"error":{"message":"SECRET-BODY Incorrect API key provided: sk-live-KEY"}}"#,
    ));
    let key = "sk-live-SECRET-KEY-fedcba9876543210";
    let endpoint = provider.url("/v1");
    let mut run = Running::spawn(&mut server_binary(&[
        ("LLM_PROVIDER_1_ID", "primary"),
        ("LLM_PROVIDER_1_TYPE", Wire::OpenAi.kind()),
        ("LLM_PROVIDER_1_ENDPOINT", &endpoint),
        ("LLM_PROVIDER_1_API_KEY", key),
        ("LLM_PROVIDER_1_MODEL", "gpt-test"),
        ("LLM_MAX_RETRIES", "1"),
    ]));
    let lines = run.until("Server listening on").await;
    let url = format!("ws://127.0.0.1:{}/chat/ws?token={}", listening_port(&lines), token("alice"));
    let mut socket = open(url).await;
    let hi = json!({"type": "user_message", "content": "hi"}).to_string();
    futures::SinkExt::send(&mut socket, Message::Text(hi.into())).await.expect("send");
    let frames: Vec<String> = ws::frames_until(&mut socket, ws::deadline_in(ws::WAIT), ws::is_done)
        .await
        .iter()
        .map(ToString::to_string)
        .collect();
    assert!(frames.iter().any(|f| f.contains("LLM_UNAVAILABLE")));
    assert_eq!(provider.requests().len(), 2, "tried and retried once");
    run.sigterm();
    let (_, rest) = run.exit(Duration::from_secs(10)).await;
    let log = lines.join("\n") + "\n" + &rest;
    assert!(log.contains("provider request failed"), "the failure is logged: {log}");
    for text in frames.iter().map(String::as_str).chain([log.as_str()]) {
        assert!(!text.contains("SECRET"), "a key or provider body leaked: {text}");
        assert!(!text.contains(key));
    }
}

#[tokio::test]
async fn refused_messages_are_logged_as_rate_limit_exceeded() {
    let mut run = Running::spawn(&mut server_binary(&[("RATE_LIMIT", "1"), ("LLM_PROVIDER_1_DELAY", "1ms")]));
    let lines = run.until("Server listening on").await;
    let url = format!("ws://127.0.0.1:{}/chat/ws?token={}", listening_port(&lines), token("alice"));
    let mut socket = open(url).await;
    for text in ["one", "two"] {
        let frame = json!({"type": "user_message", "content": text}).to_string();
        futures::SinkExt::send(&mut socket, Message::Text(frame.into())).await.expect("send");
    }
    let refused = ws::frames_until(&mut socket, ws::deadline_in(ws::WAIT), |frame| {
        frame["error"]["code"] == "TOO_MANY_REQUESTS"
    })
    .await;
    assert!(refused.last().is_some_and(|f| f["error"]["retry_after"].as_u64().is_some()), "{refused:?}");
    run.sigterm();
    let (_, rest) = run.exit(Duration::from_secs(10)).await;
    let log = lines.join("\n") + "\n" + &rest;
    let line =
        log.lines().find(|l| l.contains("rate limit exceeded")).unwrap_or_else(|| panic!("no line in {log}"));
    assert!(line.contains("alice"), "the line names the user: {line}");
}

#[tokio::test]
async fn the_cleanup_tasks_log_each_run() {
    let mut run = Running::spawn(&mut server_binary(&[
        ("LLM_PROVIDER_1_DELAY", "1ms"),
        ("SESSION_TTL", "1s"),
        ("SESSION_CLEANUP_INTERVAL", "300ms"),
        ("RATE_LIMIT_CLEANUP_INTERVAL", "300ms"),
    ]));
    let lines = run.until("Server listening on").await;
    assert!(
        lines.iter().any(|l| l.contains("Starting session cleanup task interval=300ms ttl=1s")),
        "{lines:#?}"
    );
    assert!(lines.iter().any(|l| l.contains("Starting rate limiter cleanup task interval=300ms")));
    let socket = ask_over(listening_port(&lines), &token("alice"), 1).await;
    drop(socket);
    let evicted = run.until("Cleaned up expired sessions count=1").await;
    assert!(
        evicted.iter().any(|l| l.contains("Cleaned up expired sessions count=0")),
        "runs before the TTL passed"
    );
    let limiter = run.until("Rate limiter cleanup completed before=").await;
    assert!(limiter.last().is_some_and(|l| l.contains("after=") && l.contains("removed=")));
    run.sigterm();
    let (status, _) = run.exit(Duration::from_secs(10)).await;
    assert!(status.success());
}

/// The JSON line (parsed) of the first line in `lines` containing `needle`.
fn line_with(lines: &[String], needle: &str) -> serde_json::Value {
    let line = lines.iter().find(|l| l.contains(needle)).unwrap_or_else(|| panic!("{needle}: {lines:#?}"));
    serde_json::from_str(line).expect("a JSON line")
}

#[tokio::test]
async fn the_log_lines_operators_search_for_exist_with_counts_and_span_ids() {
    let mut run = Running::spawn(&mut server_binary(&[
        ("RATE_LIMIT", "1"),
        ("RATE_WINDOW", "1h"),
        ("SESSION_TTL", "300ms"),
        ("SESSION_CLEANUP_INTERVAL", "100ms"),
        ("RATE_LIMIT_CLEANUP_INTERVAL", "100ms"),
        ("RECONNECT_TIMEOUT", "300ms"),
        ("ADMIN_RATE_LIMIT", "1"),
    ]));
    let lines = run.until("Server listening on").await;
    let port = listening_port(&lines);
    let mut socket = ask_over(port, &token("alice"), 1).await;
    ws::frames_until(&mut socket, ws::deadline_in(ws::WAIT), ws::is_done).await;
    let again = json!({"type": "user_message", "content": "again"}).to_string();
    futures::SinkExt::send(&mut socket, Message::Text(again.into())).await.expect("send");
    let refused = ws::next_json(&mut socket, ws::deadline_in(ws::WAIT)).await;
    assert_eq!(refused["error"]["code"], "TOO_MANY_REQUESTS");

    let mut lines = run.until("rate limit exceeded: messages").await;
    // The admin limiter's refusal is logged the same way (the seed's guide greps for it).
    let admin = crate::support::admin_token("root");
    for expected in ["200", "429"] {
        let response = raw_get(port, "/chat/admin/metrics", &admin).await;
        assert!(response.starts_with(&format!("HTTP/1.1 {expected}")), "{response}");
    }
    lines.extend(run.until("rate limit exceeded: admin requests").await);
    drop(socket);
    // Once the socket is gone and the session idle past its TTL, a cleanup run counts it.
    lines.extend(run.until("Cleaned up expired sessions count=1").await);
    lines.extend(run.until("Rate limiter cleanup completed before=").await);

    let limited = line_with(&lines, "rate limit exceeded: messages");
    assert_eq!(limited["level"], "INFO");
    let created = line_with(&lines, "session created");
    let spans = created["spans"].as_array().expect("the line lists its spans");
    let socket_span = spans.iter().find(|s| s["name"] == "socket").expect("inside the socket's span");
    assert_eq!(socket_span["user_id"], "alice");
    assert!(socket_span["socket_id"].as_str().is_some_and(|id| !id.is_empty()), "{created}");
    let answered = line_with(&lines, "socket connected");
    assert_eq!(answered["spans"][0]["user_id"], "alice", "{answered}");
    let cleanup = line_with(&lines, "Rate limiter cleanup completed");
    let message = cleanup["message"].as_str().expect("message");
    assert!(
        message.contains("before=") && message.contains(" after=") && message.contains(" removed="),
        "{message}"
    );
    let admin_limited = line_with(&lines, "rate limit exceeded: admin requests");
    assert_eq!(
        (admin_limited["level"].as_str(), admin_limited["user_id"].as_str()),
        (Some("INFO"), Some("root"))
    );
    run.sigterm();
    let (status, _) = run.exit(Duration::from_secs(10)).await;
    assert!(status.success());
}

/// `GET path` with a bearer token over a fresh connection; the whole response as text.
async fn raw_get(port: u16, path: &str, bearer: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.expect("connect");
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {bearer}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut response = Vec::new();
    tokio::time::timeout(ws::WAIT, stream.read_to_end(&mut response)).await.expect("in time").expect("read");
    String::from_utf8_lossy(&response).into_owned()
}

#[tokio::test]
async fn provider_stalls_are_logged_as_timeouts_before_and_after_the_first_token() {
    use crate::fake_provider::{FakeProvider, Part, Script, Wire};
    let provider = FakeProvider::start().await;
    // First answer: nothing at all (no first token); second: two words, then silence.
    provider.push(Script::events(vec![Part::Stall]));
    provider.push(Wire::OpenAi.then(&["Hello", " there"], vec![Part::Stall]));
    let endpoint = provider.url("/v1");
    let mut run = Running::spawn(&mut server_binary(&[
        ("LLM_PROVIDER_1_ID", "primary"),
        ("LLM_PROVIDER_1_TYPE", Wire::OpenAi.kind()),
        ("LLM_PROVIDER_1_ENDPOINT", &endpoint),
        ("LLM_PROVIDER_1_API_KEY", "sk-test-key-0123456789"),
        ("LLM_PROVIDER_1_MODEL", "gpt-test"),
        ("LLM_MAX_RETRIES", "0"),
        ("LLM_IDLE_TIMEOUT", "300ms"),
    ]));
    let lines = run.until("Server listening on").await;
    let url = format!("ws://127.0.0.1:{}/chat/ws?token={}", listening_port(&lines), token("alice"));
    let mut socket = open(url).await;
    for question in ["first", "second"] {
        let frame = json!({"type": "user_message", "content": question}).to_string();
        futures::SinkExt::send(&mut socket, Message::Text(frame.into())).await.expect("send");
        let frames = ws::frames_until(&mut socket, ws::deadline_in(ws::WAIT), ws::is_done).await;
        let done = frames.last().expect("done");
        assert_eq!(done["metadata"]["finish_reason"], "timeout", "{done}");
    }
    let before = run.until("provider timeout: no first token within LLM_IDLE_TIMEOUT").await;
    let during = line_with(&before, "provider timeout");
    assert_eq!(during["level"], "WARN");
    let after = run.until("answer timeout: silent for LLM_IDLE_TIMEOUT").await;
    assert_eq!(line_with(&after, "answer timeout")["level"], "WARN");
    run.sigterm();
    let (status, _) = run.exit(Duration::from_secs(10)).await;
    assert!(status.success());
}

/// The start-up lines come in the order the operations guide shows them (the guide's
/// block is read here, so the two cannot drift apart): every documented line the binary
/// logs, in that order, and the four lines every configuration logs.
#[tokio::test]
async fn the_start_up_lines_come_in_the_documented_order() {
    let guide = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/operations.md"))
        .expect("docs/operations.md");
    let block = guide
        .split("### Check the pods and the start-up lines")
        .nth(1)
        .and_then(|section| section.split("In this order").nth(1))
        .and_then(|after| after.split("```").nth(1))
        .expect("the start-up block of the operations guide");
    // A line is known by the words of its message before any value.
    let key = |message: &str| -> String {
        message
            .split_whitespace()
            .take_while(|w| !w.contains('=') && !w.contains(':'))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let documented: Vec<String> = block
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let line: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
            key(line["message"].as_str().expect("message"))
        })
        .collect();
    assert!(documented.len() >= 4, "{documented:?}");

    let mut run = Running::spawn(&mut server_binary(&[("ALLOWED_ORIGINS", "")]));
    let lines = run.until("Server listening on").await;
    let logged: Vec<String> = lines
        .iter()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter_map(|line| line["message"].as_str().map(key))
        .collect();
    let positions: Vec<usize> = documented
        .iter()
        .filter_map(|expected| logged.iter().position(|message| message == expected))
        .collect();
    assert!(
        positions.windows(2).all(|pair| pair[0] < pair[1]),
        "documented {documented:?}, logged {logged:?}"
    );
    for always in [
        "Configuration validated successfully",
        "Starting session cleanup task",
        "Starting rate limiter cleanup task",
        "Server listening on",
    ] {
        assert!(logged.iter().any(|message| message == always), "{always} in {logged:?}");
    }
    assert!(positions.len() >= 5, "the warning for an empty ALLOWED_ORIGINS too: {logged:?}");
}
