//! One socket's life after the upgrade: a reader that parses frames and calls the
//! use-cases (errors go back to this socket only; the connection's command budget pays
//! for every frame), and a writer that drains the socket's byte-bounded queue, sends
//! protocol pings, and closes with the right code: 1001 on shutdown, 1008 for a slow
//! consumer, an expired token or a flood, 1009 for an oversized frame.

use std::pin::pin;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use chatbox_application::ChatError;
use chatbox_application::chat::Connection;
use chatbox_application::commands::ClientCommand;
use chatbox_application::events::ServerEvent;
use chatbox_application::limits::ConnectionPermit;
use chatbox_application::ports::SocketSlot;
use chatbox_application::socket::{CloseReason, OutboundQueue, SocketBudget, SocketHandle};
use chatbox_domain::command_budget::CommandKind;
use chatbox_domain::{ErrorCode, Seq, SessionId};
use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use hyper_util::rt::TokioIo;
use tokio::time::{Instant, sleep_until, timeout};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{self, Message, Utf8Bytes};
use tracing::{debug, info, warn};

use crate::auth::AuthenticatedUser;
use crate::frame_type::{FrameType, received_type, sent_type};
use crate::state::HttpState;
use crate::wire::{self, Inbound, WireError};

use super::last_heard::LastHeard;
use super::signal::Signal;

/// An upgraded connection.
pub(super) type Socket = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

/// How long closing a socket may take before it is dropped.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// Why the reader stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReadEnd {
    /// The client sent a close frame or the stream ended.
    ClientClosed,
    /// A frame over `MAX_MESSAGE_SIZE`: close 1009.
    FrameTooBig,
    /// A frame that breaks the WebSocket protocol (reserved bits or opcodes, an unmasked
    /// client frame, a bad control frame): close 1002.
    ProtocolViolation,
    /// A text frame that is not UTF-8: close 1007.
    InvalidText,
    /// Nothing (not even a pong) arrived in time.
    PingTimeout,
    /// The connection broke.
    Broken,
    /// The connection could not be set up: close 1011 after the queued error.
    Internal,
    /// The client kept sending far past its command budget: close 1008.
    Flooding,
    /// The writer closed the socket first.
    Stopped,
}

impl ReadEnd {
    /// The close frame the server sends for it, if any. After a client's close frame the
    /// protocol layer answers by itself.
    fn close_frame(self) -> Option<CloseFrame> {
        let (code, reason) = match self {
            Self::FrameTooBig => (CloseCode::Size, "Message too big"),
            Self::ProtocolViolation => (CloseCode::Protocol, "Protocol error"),
            Self::InvalidText => (CloseCode::Invalid, "Invalid UTF-8"),
            Self::PingTimeout => (CloseCode::Policy, "Ping timeout"),
            Self::Internal => (CloseCode::Error, "Internal error"),
            Self::Flooding => (CloseCode::Policy, "Too many requests"),
            Self::ClientClosed | Self::Broken | Self::Stopped => return None,
        };
        Some(CloseFrame { code, reason: Utf8Bytes::from_static(reason) })
    }
}

/// How long a socket closed for shutdown waits for the client's close frame.
const SHUTDOWN_CLOSE_WAIT: Duration = Duration::from_millis(250);

/// What the two halves of one socket's task share: each half's end, why the socket
/// stopped being read, and when the client was last heard from.
struct Halves {
    reader_done: Signal,
    writer_done: Signal,
    read_end: OnceLock<ReadEnd>,
    last_heard: LastHeard,
}

/// Serves one upgraded socket until it closes.
///
/// The setup runs before the future is made, and the future keeps only what serving
/// needs: an `async fn` would also keep a copy of every argument (the socket, the user)
/// for the socket's whole life, in every idle socket's task.
pub(super) fn serve(
    state: Arc<HttpState>,
    socket: Socket,
    user: AuthenticatedUser,
    requested: Option<SessionId>,
    last_seq: Option<Seq>,
    // The socket's places, given back when it closes: this process's permit and, when
    // the replicas share a store, its slot across them.
    places: (ConnectionPermit, Option<SocketSlot>),
) -> impl Future<Output = ()> + Send {
    let budget = SocketBudget { max_bytes: state.config.send_buffer_bytes, encode: wire::encode };
    let (handle, queue) = SocketHandle::new(user.id.clone(), budget);
    let started = std::time::Instant::now();
    state.metrics.recorder.socket_opened();
    tracing::Span::current().record("socket_id", tracing::field::display(handle.id()));
    info!("socket connected");
    let (sink, mut stream) = socket.split();
    let is_admin = user.is_admin();
    let deadline = state.config.enforce_token_expiry.then(|| state.jwt.socket_deadline(&user)).flatten();
    // The deadline comes from a token: convert it without arithmetic that could
    // overflow (a deadline beyond the clock's range is no deadline at all).
    let expiry = deadline.and_then(|at| {
        let left = at.duration_since(SystemTime::now()).unwrap_or_default();
        Instant::now().checked_add(left)
    });

    async move {
        let halves = Halves {
            reader_done: Signal::default(),
            writer_done: Signal::default(),
            read_end: OnceLock::new(),
            last_heard: LastHeard::new(Instant::now()),
        };
        // Connecting (which replays history on a resume) runs alongside the writer, so a
        // long replay is drained as it is queued rather than overflowing the socket's queue.
        let reader =
            async {
                let finish = |end: ReadEnd| {
                    // The writer may have set it first (a silent client).
                    let _ = halves.read_end.set(end);
                    halves.reader_done.raise();
                };
                // Boxed, like every call into the use-cases below: their futures are large and
                // short-lived, and inline they would make every idle socket's task as large as
                // the largest of them.
                let mut connection =
                    match Box::pin(state.chat.connect(Arc::clone(&handle), is_admin, requested, last_seq))
                        .await
                    {
                        Ok(connection) => connection,
                        Err(error) => {
                            warn!(%error, "connecting the socket failed");
                            handle.send(state.chat.error_frame(&error, None));
                            return finish(ReadEnd::Internal);
                        }
                    };
                let end = read_loop(&state, &mut stream, &mut connection, &halves).await;
                state.chat.disconnect(connection);
                finish(end);
            };
        let writer = write_loop(&state, sink, queue, &handle, expiry, &halves);
        let ((), close) = tokio::join!(reader, writer);
        let read_end = halves.read_end.get().copied().unwrap_or(ReadEnd::Broken);
        if close.is_some()
            && matches!(
                read_end,
                ReadEnd::Stopped
                    | ReadEnd::PingTimeout
                    | ReadEnd::FrameTooBig
                    | ReadEnd::ProtocolViolation
                    | ReadEnd::InvalidText
                    | ReadEnd::Internal
                    | ReadEnd::Flooding
            )
        {
            // Complete the closing handshake: wait briefly for the client's close frame,
            // so the TCP connection is not reset under frames the client has yet to read.
            // At shutdown the answers have had their time already: a client slow to
            // answer the close must not hold the process past its deadline.
            let wait = if state.shutdown.is_cancelled() { SHUTDOWN_CLOSE_WAIT } else { CLOSE_TIMEOUT };
            let _ = timeout(wait, async {
                while let Some(Ok(message)) = stream.next().await {
                    if message.is_close() {
                        break;
                    }
                }
            })
            .await;
        }
        drop(places);
        state.metrics.recorder.socket_closed(started.elapsed());
        info!(
            seconds = started.elapsed().as_secs(),
            ?read_end,
            close_code = close.map(|c| u16::from(c.code)),
            "socket closed"
        );
    }
}

/// What the reader does after one read.
enum Step {
    /// Run this command.
    Run(ClientCommand),
    /// Nothing more to do for this read (a control frame, a ping, a refused frame).
    Next,
    /// Stop reading.
    End(ReadEnd),
}

/// Reads frames until the client closes, the writer stops or a frame ends the socket.
/// A silent client is the writer's to close (see `LastHeard`).
///
/// Each read is turned into its command by a plain function, so while a command runs
/// (and while the socket waits for the next frame) the reader's state holds no message,
/// parsed frame or command: only the boxed command in flight.
async fn read_loop(
    state: &HttpState,
    stream: &mut SplitStream<Socket>,
    connection: &mut Connection,
    halves: &Halves,
) -> ReadEnd {
    let chat = &state.chat;
    loop {
        let running = match tokio::select! {
            biased;
            () = halves.writer_done.raised() => return ReadEnd::Stopped,
            next = stream.next() => {
                halves.last_heard.heard();
                step(state, connection, next)
            }
        } {
            Step::Run(command) => Box::pin(chat.handle(connection, command)),
            Step::Next => continue,
            Step::End(end) => return end,
        };
        if let Err(error) = running.await {
            debug!(code = %error.code(), "command refused");
            let session = Some(connection.session_id().clone());
            connection.socket().send(chat.error_frame(&error, session));
            if matches!(error, ChatError::Flooding) {
                return ReadEnd::Flooding;
            }
        }
    }
}

/// Turns one read into the reader's next step: a command to run, a frame answered or
/// refused here, or the end of reading.
fn step(
    state: &HttpState,
    connection: &mut Connection,
    next: Option<Result<Message, tungstenite::Error>>,
) -> Step {
    let chat = &state.chat;
    let message = match next {
        None => return Step::End(ReadEnd::ClientClosed),
        Some(Err(tungstenite::Error::Capacity(_))) => return Step::End(ReadEnd::FrameTooBig),
        Some(Err(tungstenite::Error::Protocol(error))) => {
            debug!(%error, "protocol violation");
            return Step::End(ReadEnd::ProtocolViolation);
        }
        Some(Err(tungstenite::Error::Utf8(_))) => return Step::End(ReadEnd::InvalidText),
        Some(Err(error)) => {
            debug!(%error, "socket read failed");
            return Step::End(ReadEnd::Broken);
        }
        Some(Ok(message)) => message,
    };
    let refused = |connection: &mut Connection, error: &WireError| {
        refuse_frame(state, connection, error).map_or(Step::Next, Step::End)
    };
    let text = match message {
        Message::Text(text) => text,
        Message::Close(_) => return Step::End(ReadEnd::ClientClosed),
        Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => return Step::Next,
        Message::Binary(_) => {
            state.metrics.frames().received(FrameType::Other);
            return refused(connection, &WireError::Binary);
        }
    };
    let parsed = wire::parse_frame(&text, chat.settings().max_content_chars, chat.clock().now());
    state.metrics.frames().received(received_type(&parsed));
    match parsed {
        Ok(Inbound::Ping) => {
            connection.socket().send(chat.frame(ServerEvent::Pong));
            Step::Next
        }
        Ok(Inbound::Command(command)) => Step::Run(command),
        Err(error) => refused(connection, &error),
    }
}

/// Answers a frame that could not be parsed with its error, after charging the
/// connection's budget for it (a flood of garbage is a flood); `Some` when the
/// connection must close.
fn refuse_frame(state: &HttpState, connection: &mut Connection, error: &WireError) -> Option<ReadEnd> {
    debug!(%error, "frame refused");
    let (frame, end) = match state.chat.charge(connection, CommandKind::Malformed) {
        Ok(()) => {
            let frame = state.chat.frame(ServerEvent::Error {
                session_id: None,
                code: error.code(),
                message: error.to_string(),
                retry_after: None,
            });
            (frame, None)
        }
        Err(refusal) => {
            let end = matches!(refusal, ChatError::Flooding).then_some(ReadEnd::Flooding);
            (state.chat.error_frame(&refusal, None), end)
        }
    };
    connection.socket().send(frame);
    end
}

/// Writes what the socket's queue holds, pings the client, closes a silent socket or
/// one whose token expired, and ends the socket; returns the close frame it sent for a
/// server-side reason.
///
/// A plain `fn` returning the future, for the reason given at `serve`: the writer's
/// state is part of every idle socket's task.
fn write_loop<'a>(
    state: &'a HttpState,
    mut sink: SplitSink<Socket, Message>,
    mut queue: OutboundQueue,
    handle: &'a SocketHandle,
    expiry: Option<Instant>,
    halves: &'a Halves,
) -> impl Future<Output = Option<CloseFrame>> + Send + 'a {
    let mut next_ping = Instant::now() + state.config.ping_interval;
    // Everything the writer keeps lives as long as the socket: the settings are read
    // from `state` where needed rather than copied in.
    async move {
        // One timer for the next ping, the client's silence and the token's expiry,
        // whichever comes first: every idle socket holds its timers for its whole life.
        let mut timer = pin!(sleep_until(writer_due(state, halves, next_ping, expiry)));
        // The rare ends are waited for by futures made once, not once per frame: each
        // would register with its signal, or with the timer wheel, and leave it again.
        let mut reader_stopped = pin!(halves.reader_done.raised());
        let mut shutting_down = pin!(state.shutdown.cancelled());
        let close = loop {
            // Queued frames come before the rare ends, which are looked at only when the
            // queue is empty: a frame in flight is written, then the socket closes. A
            // client that cannot keep up fills its budget and is closed by `closed()`.
            tokio::select! {
                biased;
                () = handle.closed() => break Some(handle.close_reason()),
                item = queue.recv() => {
                    // Everything queued goes in one write; its bytes count against the
                    // socket's budget until written.
                    let written = tokio::select! {
                        biased;
                        () = handle.closed() => break Some(handle.close_reason()),
                        written = write_frames(state, &mut sink, item.frames()) => written,
                    };
                    if !written {
                        break None;
                    }
                }
                () = &mut reader_stopped => break None,
                () = &mut shutting_down => break Some(Some(CloseReason::ShuttingDown)),
                () = &mut timer => {
                    let now = Instant::now();
                    if expiry.is_some_and(|at| at <= now) {
                        let expired = state.chat.frame(ServerEvent::Error {
                            session_id: None,
                            code: ErrorCode::TokenExpired,
                            message: "Authentication token expired".into(),
                            retry_after: None,
                        });
                        let _ = write_frames(state, &mut sink, &[expired]).await;
                        break Some(Some(CloseReason::TokenExpired));
                    }
                    if halves.last_heard.silent_at(state.config.pong_timeout).is_some_and(|at| at <= now) {
                        // The reader finds the writer done and stops; the close frame is
                        // the read end's.
                        let _ = halves.read_end.set(ReadEnd::PingTimeout);
                        break None;
                    }
                    if next_ping <= now {
                        if timeout(state.config.write_timeout, sink.send(Message::Ping(Default::default()))).await.map_or(true, |r| r.is_err()) {
                            break None;
                        }
                        next_ping = Instant::now() + state.config.ping_interval;
                    }
                    timer.as_mut().reset(writer_due(state, halves, next_ping, expiry));
                }
            }
        };
        if close == Some(Some(CloseReason::SlowConsumer)) {
            state.metrics.recorder.slow_consumer_disconnected();
        }
        let read_end = halves.read_end.get().copied().unwrap_or(ReadEnd::Broken);
        // What is still queued is delivered before the close when it explains or completes
        // it: at shutdown, the answers' last frames (shutdown waited for them); for an
        // internal error or a flood, the error frame saying why.
        let deliver_queue = match close {
            Some(reason) => reason == Some(CloseReason::ShuttingDown),
            None => matches!(read_end, ReadEnd::Internal | ReadEnd::Flooding),
        };
        if deliver_queue && let Some(pending) = queue.try_recv_all() {
            let _ = write_frames(state, &mut sink, pending.frames()).await;
        }
        let frame = match close {
            Some(reason) => Some(close_frame(reason)),
            None => read_end.close_frame(),
        };
        // From here on the use-cases see the socket as gone.
        handle.close(CloseReason::Disconnected);
        let _ = timeout(CLOSE_TIMEOUT, async {
            if let Some(frame) = &frame {
                sink.send(Message::Close(Some(frame.clone()))).await?;
            }
            sink.close().await
        })
        .await;
        halves.writer_done.raise();
        frame
    }
}

/// When the writer's timer must fire, given the socket's settings and its halves.
fn writer_due(state: &HttpState, halves: &Halves, next_ping: Instant, expiry: Option<Instant>) -> Instant {
    timer_due(next_ping, halves.last_heard.silent_at(state.config.pong_timeout), expiry)
}

/// When the writer's one timer must fire: at the next ping, or when the client counts
/// as silent or the token expires, if that comes first.
fn timer_due(next_ping: Instant, silent_at: Option<Instant>, expiry: Option<Instant>) -> Instant {
    [silent_at, expiry].into_iter().flatten().fold(next_ping, Instant::min)
}

/// The close frame for a server-side reason.
fn close_frame(reason: Option<CloseReason>) -> CloseFrame {
    match reason {
        Some(CloseReason::ShuttingDown | CloseReason::Disconnected) | None => {
            CloseFrame { code: CloseCode::Away, reason: Utf8Bytes::from_static("Server shutting down") }
        }
        Some(CloseReason::SlowConsumer) => {
            CloseFrame { code: CloseCode::Policy, reason: Utf8Bytes::from_static("Slow consumer") }
        }
        Some(CloseReason::TokenExpired) => {
            CloseFrame { code: CloseCode::Policy, reason: Utf8Bytes::from_static("Token expired") }
        }
    }
}

async fn write_frames(
    state: &HttpState,
    sink: &mut SplitSink<Socket, Message>,
    frames: &[Arc<chatbox_application::events::Frame>],
) -> bool {
    let result = timeout(state.config.write_timeout, async {
        for frame in frames {
            let bytes = frame.encoded(wire::encode);
            let text = Utf8Bytes::try_from(bytes).map_err(|_| tungstenite::Error::Utf8(String::new()))?;
            sink.feed(Message::Text(text)).await?;
        }
        sink.flush().await
    })
    .await;
    let written = matches!(result, Ok(Ok(())));
    if written {
        record_written(state, frames);
    }
    written
}

/// Counts frames written to the client, and for an answer's first chunk the gateway's
/// own latency: from its token's arrival from the provider to now, written.
fn record_written(state: &HttpState, frames: &[Arc<chatbox_application::events::Frame>]) {
    for frame in frames {
        state.metrics.frames().sent(sent_type(&frame.event));
        if let Some(arrived) = frame.first_token_at() {
            state.metrics.recorder.gateway_latency(state.chat.clock().monotonic().saturating_sub(arrived));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_timer_fires_at_the_next_ping_or_earlier_at_the_silence_or_the_expiry() {
        let now = Instant::now();
        let (soon, later) = (now + Duration::from_secs(1), now + Duration::from_secs(30));
        assert_eq!(timer_due(later, None, None), later, "no silence or expiry: the ping");
        assert_eq!(timer_due(later, None, Some(soon)), soon, "the expiry first");
        assert_eq!(timer_due(later, Some(soon), None), soon, "the silence first");
        assert_eq!(timer_due(later, Some(later), Some(soon)), soon, "the earliest of all");
        assert_eq!(timer_due(soon, Some(later), Some(later)), soon, "the ping first");
    }
}
