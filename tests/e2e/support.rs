//! Test helpers: start the real server in-process on port 0 (`spawn_app`), mint tokens,
//! and speak to it over real WebSockets and plain HTTP.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chatbox::Application;
use chatbox::config;
use futures::SinkExt;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_util::sync::CancellationToken;

use crate::ws;

pub const SECRET: &str = "e2e-K8f3Lq9ZxW2mN7vB4tR6yU1pJ5hGcDaQ";
pub use crate::ws::WAIT;

/// A running server.
pub struct TestApp {
    pub address: SocketAddr,
    pub shutdown: CancellationToken,
    pub handle: JoinHandle<anyhow::Result<()>>,
}

/// Starts the server with test defaults plus `overrides`.
pub async fn spawn_app(overrides: &[(&str, &str)]) -> TestApp {
    let mut vars: Vec<(&str, &str)> = vec![
        ("SERVER_HOST", "127.0.0.1"),
        ("SERVER_PORT", "0"),
        ("JWT_SECRET", SECRET),
        ("LLM_PROVIDER_1_ID", "demo"),
        ("LLM_PROVIDER_1_NAME", "Demo"),
        ("LLM_PROVIDER_1_TYPE", "demo"),
        ("LLM_PROVIDER_1_DELAY", "2ms"),
        ("LLM_PROVIDER_2_ID", "second"),
        ("LLM_PROVIDER_2_NAME", "Second"),
        ("LLM_PROVIDER_2_TYPE", "demo"),
        ("LLM_PROVIDER_2_DELAY", "2ms"),
        ("SHUTDOWN_TIMEOUT", "5s"),
    ];
    for (key, value) in overrides {
        vars.retain(|(k, _)| k != key);
        vars.push((key, value));
    }
    let settings = config::load_from(&vars, false).settings.expect("valid test configuration");
    let app = Application::build(settings).await.expect("build");
    let address = app.address();
    let shutdown = CancellationToken::new();
    let signal = shutdown.clone();
    let handle = tokio::spawn(async move { app.run_until(signal.cancelled_owned()).await });
    TestApp { address, shutdown, handle }
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("time").as_secs()
}

/// A token with arbitrary claims, signed with `secret` and `algorithm`.
pub fn token_with(claims: &Value, secret: &str, algorithm: jsonwebtoken::Algorithm) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(algorithm),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("sign")
}

/// A valid user token for an hour.
pub fn token(user: &str) -> String {
    token_with(
        &json!({"user_id": user, "name": user, "roles": ["user"], "exp": now_secs() + 3600}),
        SECRET,
        jsonwebtoken::Algorithm::HS256,
    )
}

/// A valid admin token for an hour (role `admin`, display name "Ada <user>").
pub fn admin_token(user: &str) -> String {
    token_with(
        &json!({"user_id": user, "name": format!("Ada {user}"), "roles": ["admin"], "exp": now_secs() + 3600}),
        SECRET,
        jsonwebtoken::Algorithm::HS256,
    )
}

/// A token that expires `seconds` from now.
pub fn token_expiring(user: &str, seconds: u64) -> String {
    token_with(&json!({"user_id": user, "exp": now_secs() + seconds}), SECRET, jsonwebtoken::Algorithm::HS256)
}

pub use crate::ws::Socket;

/// Opens a WebSocket (a URL, or a request with headers); the upgrade's answer must come
/// within [`WAIT`].
pub async fn try_open(request: impl IntoClientRequest + Unpin) -> Result<Socket, tungstenite::Error> {
    let opening = tokio_tungstenite::connect_async(request);
    tokio::time::timeout(WAIT, opening).await.expect("the upgrade was answered in time").map(|(s, _)| s)
}

/// Opens a WebSocket that must be accepted.
pub async fn open(request: impl IntoClientRequest + Unpin) -> Socket {
    try_open(request).await.expect("the upgrade is accepted")
}

/// The upgrade request for `url` with `headers` added, each its own header line (so a
/// name may repeat).
pub fn upgrade_request(url: &str, headers: &[(&str, &str)]) -> tungstenite::handshake::client::Request {
    let mut request = url.into_client_request().expect("request");
    for (name, value) in headers {
        request.headers_mut().append(
            http::HeaderName::from_bytes(name.as_bytes()).expect("name"),
            http::HeaderValue::from_str(value).expect("value"),
        );
    }
    request
}

/// A connected client that has read its `connection_status`.
pub struct Client {
    pub socket: Socket,
    pub status: Value,
}

impl TestApp {
    pub fn ws_url(&self, query: &str) -> String {
        format!("ws://{}/chat/ws{query}", self.address)
    }

    /// Opens a socket for `user`, with extra query parameters (`&session_id=…`).
    pub async fn connect(&self, user: &str, extra_query: &str) -> Client {
        self.connect_with(&token(user), extra_query).await
    }

    /// Two devices of `user` on one session: the first asks `question` (a first message
    /// creates the session), the second joins it with `?session_id=`.
    pub async fn two_devices(&self, user: &str, question: &str) -> (Client, Client) {
        let mut first = self.connect(user, "").await;
        first.ask(question).await;
        let second = self.connect(user, &format!("&session_id={}", first.session_id())).await;
        (first, second)
    }

    /// Opens a socket with `token`, and reads its `connection_status`.
    async fn connect_with(&self, token: &str, extra_query: &str) -> Client {
        let url = self.ws_url(&format!("?token={token}{extra_query}"));
        let socket = open(url).await;
        let mut client = Client { socket, status: Value::Null };
        let status = client.next_json().await;
        assert_eq!(status["type"], "connection_status", "first frame: {status}");
        client.status = status;
        client
    }

    /// Tries to open a socket; returns the HTTP status and JSON body of a refusal.
    pub async fn refused(&self, url: &str, headers: &[(&str, &str)]) -> (u16, Value, Option<String>) {
        let request = upgrade_request(url, headers);
        match tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(request))
            .await
            .expect("answered in time")
        {
            Ok(_) => panic!("expected the upgrade to be refused"),
            Err(tungstenite::Error::Http(response)) => {
                let status = response.status().as_u16();
                let retry_after =
                    response.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_owned);
                let body = response
                    .body()
                    .as_deref()
                    .map(|b| serde_json::from_slice(b).expect("json body"))
                    .unwrap_or(Value::Null);
                (status, body, retry_after)
            }
            Err(other) => panic!("unexpected error {other}"),
        }
    }

    /// A plain HTTP request; returns status and body.
    pub async fn http(&self, method: &str, path: &str, bearer: Option<&str>) -> (u16, String) {
        let auth = bearer.map(|t| format!("Bearer {t}"));
        let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("Authorization", a.as_str())).collect();
        let (status, _, body) = self.http_raw(method, path, &headers).await;
        (status, body)
    }

    /// A plain HTTP request with headers; returns status, the response head (lower
    /// case) and the body.
    pub async fn http_raw(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> (u16, String, String) {
        let extra: String = headers.iter().map(|(n, v)| format!("{n}: {v}\r\n")).collect();
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: test\r\n{extra}Content-Length: 0\r\nConnection: close\r\n\r\n"
        );
        let exchange = async {
            let mut stream = TcpStream::connect(self.address).await.expect("connect");
            stream.write_all(request.as_bytes()).await.expect("write");
            let mut response = Vec::new();
            stream.read_to_end(&mut response).await.expect("read");
            response
        };
        let response = tokio::time::timeout(WAIT, exchange).await.expect("answered in time");
        let text = String::from_utf8_lossy(&response).into_owned();
        let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("status line");
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        (status, head.to_ascii_lowercase(), body.to_owned())
    }

    /// A request whose answer is JSON (or empty); returns status, head and the parsed
    /// body (`Value::Null` when empty).
    pub async fn json(&self, method: &str, path: &str, bearer: Option<&str>) -> (u16, String, Value) {
        let auth = bearer.map(|t| format!("Bearer {t}"));
        let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("Authorization", a.as_str())).collect();
        let (status, head, body) = self.http_raw(method, path, &headers).await;
        let body = if body.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&body).unwrap_or_else(|e| panic!("{method} {path}: not JSON ({e}): {body}"))
        };
        (status, head, body)
    }

    /// Opens a socket with an admin token.
    pub async fn connect_admin(&self, admin: &str, extra_query: &str) -> Client {
        self.connect_with(&admin_token(admin), extra_query).await
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(15), self.handle)
            .await
            .expect("stops in time")
            .expect("join")
            .expect("clean");
    }
}

impl Client {
    pub async fn send(&mut self, frame: Value) {
        self.socket.send(Message::Text(frame.to_string().into())).await.expect("send");
    }

    pub async fn send_text(&mut self, text: &str) {
        self.socket.send(Message::Text(text.to_owned().into())).await.expect("send");
    }

    /// The next JSON frame (protocol pings are answered and skipped). Fails the test
    /// when the socket closes or nothing arrives within [`WAIT`].
    pub async fn next_json(&mut self) -> Value {
        ws::next_json(&mut self.socket, ws::deadline_in(WAIT)).await
    }

    /// Frames up to and including the end of the next answer, all within [`WAIT`].
    pub async fn until_done(&mut self) -> Vec<Value> {
        ws::frames_until(&mut self.socket, ws::deadline_in(WAIT), ws::is_done).await
    }

    /// A barrier on this socket: sends `ping` and returns the frames that arrived before
    /// its `pong`. The server handles a socket's frames in order, so everything this
    /// socket's earlier frames caused *for this socket* is queued before the pong. It
    /// proves nothing about other sockets.
    pub async fn frames_before_pong(&mut self) -> Vec<Value> {
        self.send(json!({"type": "ping"})).await;
        let mut frames =
            ws::frames_until(&mut self.socket, ws::deadline_in(WAIT), |f| f["type"] == "pong").await;
        frames.pop();
        frames
    }

    /// Reads until the server closes; returns the close frame (None if the connection
    /// just ended) and the text frames read before it. Fails the test if the socket is
    /// still open after [`WAIT`].
    pub async fn until_closed(&mut self) -> (Option<CloseFrame>, Vec<Value>) {
        ws::until_closed(&mut self.socket, ws::deadline_in(WAIT)).await
    }

    pub fn session_id(&self) -> String {
        self.status["session_id"].as_str().expect("session id").to_owned()
    }

    /// Sends `count` attachment notices with 90 KB captions to this socket's session (each
    /// reaches its other devices): more than a device that reads nothing can take, once
    /// the loopback TCP buffers are full. Set `MAX_CONTENT_CHARS` to 100000, and raise
    /// `RATE_LIMIT` and `WS_COMMAND_BUDGET` past `count`.
    pub async fn send_captions(&mut self, count: usize) {
        let caption = "c".repeat(90_000);
        for n in 0..count {
            let frame = json!({"type": "file_upload", "file_id": format!("f{n}"), "file_url": "https://cdn.example.com/f.png", "content": caption});
            self.send(frame).await;
            if n % 10 == 0 {
                tokio::task::yield_now().await;
            }
        }
    }

    /// Sends a message and reads its answer.
    pub async fn ask(&mut self, text: &str) -> Vec<Value> {
        self.send(json!({"type": "user_message", "content": text})).await;
        self.until_done().await
    }
}

pub use crate::ws::answer_text;

/// The `done` frame of an answer.
pub fn done(frames: &[Value]) -> &Value {
    frames.last().expect("frames")
}
