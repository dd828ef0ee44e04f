//! A local HTTP server that speaks model providers' streaming wire formats byte for byte,
//! for the provider contract suite and the end-to-end tests.
//!
//! Each request takes the next [`Script`] from a queue: a status, headers, and body parts
//! written as separate HTTP chunks (so one SSE event can be split at any byte), with
//! pauses, a stall (nothing more is sent; the server waits to see the client hang up),
//! or an abrupt disconnect. Every request is recorded; every connection the client
//! closes while the server was still streaming is counted.

#![allow(dead_code)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

/// One piece of a scripted response body.
#[derive(Debug, Clone)]
pub enum Part {
    /// Bytes sent as one HTTP chunk and flushed.
    Bytes(Vec<u8>),
    /// A pause before the next part.
    Pause(Duration),
    /// Send nothing more and wait for the client to hang up.
    Stall,
    /// Drop the connection without ending the response.
    Disconnect,
}

/// A scripted response.
#[derive(Debug, Clone)]
pub struct Script {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub parts: Vec<Part>,
}

impl Script {
    /// A 200 event stream made of `parts`.
    pub fn events(parts: Vec<Part>) -> Self {
        Self { status: 200, headers: vec![("content-type".into(), "text/event-stream".into())], parts }
    }

    /// An error status with a plain body.
    pub fn error(status: u16, body: &str) -> Self {
        Self {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            parts: vec![Part::Bytes(body.as_bytes().to_vec())],
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// A request as the server received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Value,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

#[derive(Default)]
struct State {
    scripts: VecDeque<Script>,
    requests: Vec<Recorded>,
    hang_ups: usize,
}

/// The running server.
#[derive(Clone)]
pub struct FakeProvider {
    pub address: SocketAddr,
    state: Arc<Mutex<State>>,
    hung_up: Arc<Notify>,
}

impl FakeProvider {
    /// Starts a server on a free loopback port.
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let server = Self { address, state: Arc::default(), hung_up: Arc::new(Notify::new()) };
        let accepting = server.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let connection = accepting.clone();
                tokio::spawn(async move { connection.serve(stream).await });
            }
        });
        server
    }

    /// The base URL, e.g. `http://127.0.0.1:1234/v1`.
    pub fn url(&self, base_path: &str) -> String {
        format!("http://{}{base_path}", self.address)
    }

    /// Queues the response to the next request.
    pub fn push(&self, script: Script) {
        self.state.lock().expect("lock").scripts.push_back(script);
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.state.lock().expect("lock").requests.clone()
    }

    /// Connections the client closed while the server was still streaming.
    pub fn hang_ups(&self) -> usize {
        self.state.lock().expect("lock").hang_ups
    }

    /// Waits until at least `count` hang-ups were seen; false on timeout.
    pub async fn wait_for_hang_ups(&self, count: usize, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let notified = self.hung_up.notified();
            if self.hang_ups() >= count {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.hang_ups() >= count;
            }
        }
    }

    fn hang_up(&self) {
        self.state.lock().expect("lock").hang_ups += 1;
        self.hung_up.notify_waiters();
    }

    async fn serve(&self, mut stream: TcpStream) {
        let mut buffer = Vec::new();
        loop {
            let Some(request) = read_request(&mut stream, &mut buffer).await else { return };
            let script = {
                let mut state = self.state.lock().expect("lock");
                state.requests.push(request);
                state.scripts.pop_front()
            };
            let script = script.unwrap_or_else(|| Script::error(500, r#"{"error":"no script queued"}"#));
            if !self.respond(&mut stream, script).await {
                return;
            }
        }
    }

    /// Writes one response; false when the connection is finished.
    async fn respond(&self, stream: &mut TcpStream, script: Script) -> bool {
        let reason = match script.status {
            200 => "OK",
            429 => "Too Many Requests",
            500 => "Internal Server Error",
            _ => "Status",
        };
        let mut head = format!("HTTP/1.1 {} {reason}\r\n", script.status);
        for (name, value) in &script.headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("transfer-encoding: chunked\r\n\r\n");
        if stream.write_all(head.as_bytes()).await.is_err() {
            return false;
        }
        for part in script.parts {
            match part {
                Part::Bytes(bytes) => {
                    let chunk =
                        [format!("{:x}\r\n", bytes.len()).into_bytes(), bytes, b"\r\n".to_vec()].concat();
                    if stream.write_all(&chunk).await.is_err() || stream.flush().await.is_err() {
                        self.hang_up();
                        return false;
                    }
                }
                Part::Pause(pause) => {
                    // A client that hangs up during a pause is noticed right away.
                    let mut probe = [0u8; 1];
                    if let Ok(Ok(0) | Err(_)) = tokio::time::timeout(pause, stream.read(&mut probe)).await {
                        self.hang_up();
                        return false;
                    }
                }
                Part::Stall => {
                    let mut sink = [0u8; 256];
                    while let Ok(read) = stream.read(&mut sink).await {
                        if read == 0 {
                            break;
                        }
                    }
                    self.hang_up();
                    return false;
                }
                Part::Disconnect => return false,
            }
        }
        stream.write_all(b"0\r\n\r\n").await.is_ok()
    }
}

/// Reads one HTTP/1.1 request (headers and a Content-Length body).
async fn read_request(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> Option<Recorded> {
    let header_end = loop {
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break end;
        }
        let mut chunk = [0u8; 4096];
        let read = stream.read(&mut chunk).await.ok()?;
        if read == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..read]);
    };
    let head = String::from_utf8_lossy(&buffer[..header_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next()?.split(' ');
    let method = request_line.next()?.to_owned();
    let path = request_line.next()?.to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let length: usize =
        headers.iter().find(|(n, _)| n == "content-length").and_then(|(_, v)| v.parse().ok()).unwrap_or(0);
    let body_start = header_end + 4;
    while buffer.len() < body_start + length {
        let mut chunk = [0u8; 4096];
        let read = stream.read(&mut chunk).await.ok()?;
        if read == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..read]);
    }
    let body = serde_json::from_slice(&buffer[body_start..body_start + length]).unwrap_or(Value::Null);
    buffer.drain(..body_start + length);
    Some(Recorded { method, path, headers, body })
}

/// Splits `bytes` into parts of `size` bytes (the last may be shorter).
pub fn split(bytes: &[u8], size: usize) -> Vec<Part> {
    bytes.chunks(size.max(1)).map(|c| Part::Bytes(c.to_vec())).collect()
}

/// The provider types the fixtures below speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    OpenAi,
    Anthropic,
    Dify,
}

impl Wire {
    pub const ALL: [Wire; 3] = [Wire::OpenAi, Wire::Anthropic, Wire::Dify];

    /// The configuration `_TYPE`.
    pub const fn kind(self) -> &'static str {
        match self {
            Self::OpenAi => "openai",
            Self::Anthropic => "anthropic",
            Self::Dify => "dify",
        }
    }

    /// The path the adapter posts to, under the endpoint `/v1`.
    pub const fn path(self) -> &'static str {
        match self {
            Self::OpenAi => "/v1/chat/completions",
            Self::Anthropic => "/v1/messages",
            Self::Dify => "/v1/chat-messages",
        }
    }

    /// The opening events of a stream (before any text), exactly as the provider sends them.
    pub fn opening(self) -> String {
        match self {
            Self::OpenAi => String::new(),
            Self::Anthropic => concat!(
                "event: message_start\r\n",
                "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_01\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"claude-test\",\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":11,\"output_tokens\":1}}}\r\n\r\n",
                "event: content_block_start\r\n",
                "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\r\n\r\n",
                "event: ping\r\ndata: {\"type\": \"ping\"}\r\n\r\n",
            )
            .to_owned(),
            Self::Dify => "data: {\"event\": \"workflow_started\", \"conversation_id\": \"conv-1\", \"task_id\": \"t1\"}\n\n".to_owned(),
        }
    }

    /// One event carrying `text`.
    pub fn text(self, text: &str) -> String {
        let text = serde_json::to_string(text).expect("json string");
        match self {
            Self::OpenAi => format!(
                "data: {{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"gpt-test\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":{text}}},\"finish_reason\":null}}]}}\n\n"
            ),
            Self::Anthropic => format!(
                "event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"text_delta\",\"text\":{text}}}}}\n\n"
            ),
            Self::Dify => format!(
                "data: {{\"event\": \"message\", \"task_id\": \"t1\", \"message_id\": \"m1\", \"conversation_id\": \"conv-1\", \"answer\": {text}, \"created_at\": 1700000000}}\n\n"
            ),
        }
    }

    /// Events the adapter must skip: a comment, an unknown event, a malformed JSON line.
    pub fn noise(self) -> String {
        let unknown = match self {
            Self::OpenAi => {
                "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"choices\":[]}\n\n"
            }
            Self::Anthropic => {
                "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\nevent: brand_new_event\ndata: {\"type\":\"brand_new_event\"}\n\n"
            }
            Self::Dify => "data: {\"event\": \"node_finished\", \"task_id\": \"t1\"}\n\nevent: ping\n\n",
        };
        format!(": keep-alive comment\r\n\r\n{unknown}data: {{this is not json\n\n")
    }

    /// The closing events: finish reason, usage (prompt 11, completion 7), and the end.
    pub fn closing(self) -> String {
        match self {
            Self::OpenAi => concat!(
                "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"gpt-test\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n",
                "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"gpt-test\",\"choices\":[],\"usage\":{\"prompt_tokens\":11,\"completion_tokens\":7,\"total_tokens\":18}}\n\n",
                "data: [DONE]\n\n",
            )
            .to_owned(),
            Self::Anthropic => concat!(
                "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
                "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":7}}\n\n",
                "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
            )
            .to_owned(),
            Self::Dify => "data: {\"event\": \"message_end\", \"task_id\": \"t1\", \"message_id\": \"m1\", \"conversation_id\": \"conv-1\", \"metadata\": {\"usage\": {\"prompt_tokens\": 11, \"completion_tokens\": 7, \"total_tokens\": 18}}}\n\n".to_owned(),
        }
    }

    /// An in-stream error event meaning "overloaded / server error".
    pub fn error_event(self) -> String {
        match self {
            Self::OpenAi => "data: {\"error\":{\"message\":\"SECRET-BODY upstream exploded\",\"type\":\"server_error\"}}\n\n".to_owned(),
            Self::Anthropic => "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"SECRET-BODY Overloaded\"}}\n\n".to_owned(),
            Self::Dify => "data: {\"event\": \"error\", \"task_id\": \"t1\", \"status\": 500, \"code\": \"internal_error\", \"message\": \"SECRET-BODY boom\"}\n\n".to_owned(),
        }
    }

    /// A whole answer of `words`, with noise in the middle, each event split in parts of
    /// `piece` bytes.
    pub fn answer(self, words: &[&str], piece: usize) -> Script {
        let mut body = self.opening();
        for (n, word) in words.iter().enumerate() {
            body.push_str(&self.text(word));
            if n == 0 {
                body.push_str(&self.noise());
            }
        }
        body.push_str(&self.closing());
        Script::events(split(body.as_bytes(), piece))
    }

    /// Some words, then `tail` (a stall, a disconnect, …).
    pub fn then(self, words: &[&str], tail: Vec<Part>) -> Script {
        let mut body = self.opening();
        for word in words {
            body.push_str(&self.text(word));
        }
        let mut parts = vec![Part::Bytes(body.into_bytes())];
        parts.extend(tail);
        Script::events(parts)
    }
}
