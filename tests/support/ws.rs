//! Reading a WebSocket in a test without ever hanging: every read takes a deadline, and
//! a socket that closes while a frame is still expected fails the test at once.
//!
//! A loop of `socket.next().await` that skips what it does not want spins forever once
//! the socket has closed (`next()` keeps returning `None`), and a read without a deadline
//! waits forever for a server that stays silent. Every test that reads a socket goes
//! through these functions, so neither mistake can be made again.
//!
//! Shared by the test binaries that speak to a server; each uses a subset.
#![allow(dead_code)]

use std::time::Duration;

use futures::{Stream, StreamExt};
use serde_json::Value;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{self, Message};

/// A client WebSocket over plain TCP.
pub type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// How long a test waits for a frame it expects.
pub const WAIT: Duration = Duration::from_secs(10);

/// A deadline `wait` from now.
pub fn deadline_in(wait: Duration) -> Instant {
    Instant::now() + wait
}

/// Opens a WebSocket that must be accepted, its upgrade answered within [`WAIT`].
pub async fn connect(url: &str) -> Socket {
    let (socket, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(url))
        .await
        .expect("the upgrade was answered in time")
        .expect("the upgrade is accepted");
    socket
}

/// What one read before a deadline found.
#[derive(Debug)]
pub enum Read {
    /// A text frame, parsed as JSON.
    Frame(Value),
    /// The server closed the socket: its close frame, or `None` when the connection
    /// just ended (reset, end of stream).
    Closed(Option<CloseFrame>),
    /// Nothing arrived before the deadline.
    TimedOut,
}

/// The next message of any kind before `deadline`, or `None` at the deadline. Panics
/// when the socket has ended (an error or the end of the stream); a close frame is
/// returned like any other message, so the caller decides what it means.
pub async fn next_message<S>(socket: &mut S, deadline: Instant) -> Option<Message>
where
    S: Stream<Item = Result<Message, tungstenite::Error>> + Unpin,
{
    match tokio::time::timeout_at(deadline, socket.next()).await {
        Err(_) => None,
        Ok(Some(Ok(message))) => Some(message),
        Ok(Some(Err(error))) => panic!("the socket failed while a message was expected: {error}"),
        Ok(None) => panic!("the socket had ended while a message was expected"),
    }
}

/// The next text frame (protocol pings and pongs skipped) before `deadline`, or why
/// there is none.
pub async fn read<S>(socket: &mut S, deadline: Instant) -> Read
where
    S: Stream<Item = Result<Message, tungstenite::Error>> + Unpin,
{
    loop {
        match tokio::time::timeout_at(deadline, socket.next()).await {
            Err(_) => return Read::TimedOut,
            Ok(Some(Ok(Message::Text(text)))) => {
                let value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
                return Read::Frame(value);
            }
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)))) => {}
            Ok(Some(Ok(Message::Binary(bytes)))) => panic!("the protocol has no binary frames: {bytes:?}"),
            Ok(Some(Ok(Message::Close(frame)))) => return Read::Closed(frame),
            Ok(Some(Err(_)) | None) => return Read::Closed(None),
        }
    }
}

/// The next JSON frame before `deadline`. Panics when the socket closes or the
/// deadline passes first.
pub async fn next_json<S>(socket: &mut S, deadline: Instant) -> Value
where
    S: Stream<Item = Result<Message, tungstenite::Error>> + Unpin,
{
    match read(socket, deadline).await {
        Read::Frame(value) => value,
        Read::Closed(frame) => panic!("the socket closed while a frame was expected: {frame:?}"),
        Read::TimedOut => panic!("no frame arrived before the deadline"),
    }
}

/// JSON frames up to and including the first for which `last` is true, all before
/// `deadline`. Panics when the socket closes or the deadline passes first.
pub async fn frames_until<S>(
    socket: &mut S,
    deadline: Instant,
    mut last: impl FnMut(&Value) -> bool,
) -> Vec<Value>
where
    S: Stream<Item = Result<Message, tungstenite::Error>> + Unpin,
{
    let mut frames = Vec::new();
    loop {
        match read(socket, deadline).await {
            Read::Frame(frame) => {
                let found = last(&frame);
                frames.push(frame);
                if found {
                    return frames;
                }
            }
            Read::Closed(close) => panic!("the socket closed ({close:?}) after {frames:#?}"),
            Read::TimedOut => panic!("the expected frame never came; got {frames:#?}"),
        }
    }
}

/// The concatenated `content` of answer chunks.
pub fn answer_text(frames: &[Value]) -> String {
    frames
        .iter()
        .filter(|f| {
            (f["type"] == "ai_response" || f["type"] == "assistant") && f["metadata"]["done"] == "false"
        })
        .map(|f| f["content"].as_str().unwrap_or_default())
        .collect()
}

/// True for the `done` frame that ends a streamed answer.
pub fn is_done(frame: &Value) -> bool {
    frame["metadata"]["done"] == "true" && frame["metadata"]["streaming"] == "true"
}

/// Reads until the server closes; returns its close frame (`None` if the connection
/// just ended) and the JSON frames read before it. Panics if the socket is still open
/// at `deadline`.
pub async fn until_closed<S>(socket: &mut S, deadline: Instant) -> (Option<CloseFrame>, Vec<Value>)
where
    S: Stream<Item = Result<Message, tungstenite::Error>> + Unpin,
{
    let mut frames = Vec::new();
    loop {
        match read(socket, deadline).await {
            Read::Frame(frame) => frames.push(frame),
            Read::Closed(close) => return (close, frames),
            Read::TimedOut => panic!("the socket was still open at the deadline; read {frames:#?}"),
        }
    }
}
