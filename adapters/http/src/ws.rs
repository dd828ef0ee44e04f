//! The WebSocket endpoint: every check that can refuse a socket happens before the
//! upgrade (draining, token, Origin, handshake headers, socket caps), then the upgrade
//! is answered by hand so each socket gets small buffers (a few KiB instead of
//! tungstenite's 128 KiB default), and one task per socket runs a reader and a writer.
//!
//! The reader parses frames and calls the use-cases; errors go back to this socket only.
//! The writer drains the socket's bounded queue, sends protocol pings, and closes the
//! socket with the right code: 1001 on shutdown, 1008 for a slow consumer or an expired
//! token, 1009 for an oversized frame.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use chatbox_application::ChatError;
use chatbox_application::chat::Connection;
use chatbox_application::events::ServerEvent;
use chatbox_application::limits::{ConnectionPermit, GateError};
use chatbox_application::socket::{CloseReason, OutboundQueue, SocketBudget, SocketHandle};
use chatbox_domain::command_budget::CommandKind;
use chatbox_domain::{ErrorCode, Seq, SessionId};
use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::time::{Instant, sleep_until, timeout};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{self, Message, Utf8Bytes};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::HttpState;
use crate::auth::{AuthError, AuthenticatedUser};
use crate::routes::{HttpResponse, auth_error_response, error_response};
use crate::wire::{self, Inbound, WireError};

type Socket = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

/// The socket's read buffer: small, because idle sockets are the common case (chat
/// frames are small; a large frame just takes a few more reads). With 1 KiB an idle
/// socket costs the server about 8 KiB in all; see `docs/benchmarks.md`.
const READ_BUFFER_BYTES: usize = 1024;
/// How long closing a socket may take before it is dropped.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// Answers `GET P/ws`.
pub(crate) fn upgrade(
    state: &Arc<HttpState>,
    headers: &HeaderMap,
    query: &HashMap<String, String>,
    on_upgrade: Option<OnUpgrade>,
) -> HttpResponse {
    if state.gate.is_draining() {
        return error_response(ErrorCode::ServiceUnavailable, "Server is shutting down", None);
    }
    let offered = match OfferedProtocols::read(headers) {
        Ok(offered) => offered,
        Err(problem) => return error_response(ErrorCode::BadRequest, problem, None),
    };
    let user = match authenticate(state, headers, offered.token.as_deref(), query) {
        Ok(user) => user,
        Err(error) => return auth_error_response(error),
    };
    if !origin_allowed(&state.config.allowed_origins, headers) {
        return error_response(ErrorCode::Forbidden, "Origin not allowed", None);
    }
    let Some(accept_key) = handshake_accept_key(headers) else {
        return error_response(ErrorCode::BadRequest, "WebSocket upgrade required", None);
    };
    let Some(on_upgrade) = on_upgrade else {
        return error_response(ErrorCode::BadRequest, "WebSocket upgrade required", None);
    };
    let requested = query.get("session_id").and_then(|id| SessionId::parse(id.trim()).ok());
    let last_seq = match query.get("last_seq").map(|s| s.trim().parse::<u64>()) {
        None => None,
        Some(Ok(seq)) => Some(Seq(seq)),
        Some(Err(_)) => {
            return error_response(ErrorCode::BadRequest, "last_seq must be a non-negative integer", None);
        }
    };
    let permit = match state.gate.try_acquire(&user.id) {
        Ok(permit) => permit,
        Err(GateError::Draining) => {
            return error_response(ErrorCode::ServiceUnavailable, "Server is shutting down", None);
        }
        Err(limit) => {
            debug!(user_id = %user.id, ?limit, "socket refused: connection limit");
            if limit == GateError::PerUser {
                state.chat.notify_connection_refused(&user.id);
            }
            return error_response(
                ErrorCode::ConnectionLimitExceeded,
                "Connection limit exceeded, please try again later",
                Some(Duration::from_secs(5)),
            );
        }
    };

    let task_state = Arc::clone(state);
    state.tasks.spawn(async move {
        // The permit lives as long as this task: a failed upgrade drops it at once.
        match on_upgrade.await {
            Ok(upgraded) => {
                let config = WebSocketConfig::default()
                    .read_buffer_size(READ_BUFFER_BYTES)
                    .write_buffer_size(0)
                    .max_write_buffer_size(
                        task_state.config.max_message_size.saturating_mul(2).max(64 * 1024),
                    )
                    .max_message_size(Some(task_state.config.max_message_size))
                    .max_frame_size(Some(task_state.config.max_message_size));
                let socket =
                    WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config))
                        .await;
                serve(task_state, socket, user, requested, last_seq, permit).await;
            }
            Err(error) => debug!(%error, "websocket upgrade failed"),
        }
    });

    let mut response = HttpResponse::default();
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(accept) = HeaderValue::from_str(&accept_key) {
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    }
    if offered.speaks_ours {
        headers.insert(header::SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static(SUBPROTOCOL));
    }
    response
}

/// The subprotocol this server speaks. A browser cannot set `Authorization` on a
/// WebSocket, and a `?token=` lands in proxy access logs; so a client may offer its token
/// as a `bearer.<token>` entry of `Sec-WebSocket-Protocol` next to this name, and only
/// this name is echoed back (the way Kubernetes takes bearer tokens from browsers).
pub const SUBPROTOCOL: &str = "chatbox.v1";
const BEARER_PROTOCOL_PREFIX: &str = "bearer.";

/// What the client offered in `Sec-WebSocket-Protocol`.
#[derive(Default)]
struct OfferedProtocols {
    /// The token of a `bearer.<token>` entry.
    token: Option<String>,
    /// Whether [`SUBPROTOCOL`] was offered.
    speaks_ours: bool,
}

impl OfferedProtocols {
    fn read(headers: &HeaderMap) -> Result<Self, &'static str> {
        let mut offered = Self::default();
        let entries = headers
            .get_all(header::SEC_WEBSOCKET_PROTOCOL)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .map(str::trim);
        for entry in entries {
            if entry == SUBPROTOCOL {
                offered.speaks_ours = true;
            } else if let Some(token) = entry.strip_prefix(BEARER_PROTOCOL_PREFIX) {
                offered.token = Some(token.to_owned());
            }
        }
        // A browser fails the handshake unless one offered name comes back, and the
        // bearer entry must never be echoed: it needs the real name beside it.
        if offered.token.is_some() && !offered.speaks_ours {
            return Err("Offer the chatbox.v1 subprotocol next to the bearer entry");
        }
        Ok(offered)
    }
}

/// The token from `Authorization: Bearer`, else from the `bearer.` subprotocol entry,
/// else from `?token=` (kept for the earlier clients).
fn authenticate(
    state: &HttpState,
    headers: &HeaderMap,
    protocol_token: Option<&str>,
    query: &HashMap<String, String>,
) -> Result<AuthenticatedUser, AuthError> {
    let token = crate::routes::bearer_token(headers)
        .or(protocol_token.map(str::trim).filter(|t| !t.is_empty()))
        .or_else(|| query.get("token").map(String::as_str).map(str::trim).filter(|t| !t.is_empty()))
        .ok_or(AuthError::Missing)?;
    state.jwt.verify(token)
}

/// An empty allow-list allows every origin; otherwise the Origin header must match one
/// entry exactly, and a request without Origin (not a browser) is allowed.
fn origin_allowed(allowed: &[String], headers: &HeaderMap) -> bool {
    if allowed.is_empty() {
        return true;
    }
    match headers.get(header::ORIGIN).map(HeaderValue::to_str) {
        None => true,
        Some(Ok(origin)) => allowed.iter().any(|a| a.eq_ignore_ascii_case(origin)),
        Some(Err(_)) => false,
    }
}

/// The `Sec-WebSocket-Accept` value if the request is a valid WebSocket handshake.
fn handshake_accept_key(headers: &HeaderMap) -> Option<String> {
    let has_token = |name: header::HeaderName, token: &str| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.split(',').any(|part| part.trim().eq_ignore_ascii_case(token)))
    };
    let version_ok = headers.get(header::SEC_WEBSOCKET_VERSION).is_some_and(|v| v == "13");
    if !has_token(header::CONNECTION, "upgrade") || !has_token(header::UPGRADE, "websocket") || !version_ok {
        return None;
    }
    let key = headers.get(header::SEC_WEBSOCKET_KEY)?;
    Some(tungstenite::handshake::derive_accept_key(key.as_bytes()))
}

/// Why the reader stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReadEnd {
    /// The client sent a close frame or the stream ended.
    ClientClosed,
    /// A frame over `MAX_MESSAGE_SIZE`: close 1009.
    FrameTooBig,
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
            Self::PingTimeout => (CloseCode::Policy, "Ping timeout"),
            Self::Internal => (CloseCode::Error, "Internal error"),
            Self::Flooding => (CloseCode::Policy, "Too many requests"),
            Self::ClientClosed | Self::Broken | Self::Stopped => return None,
        };
        Some(CloseFrame { code, reason: Utf8Bytes::from_static(reason) })
    }
}

async fn serve(
    state: Arc<HttpState>,
    socket: Socket,
    user: AuthenticatedUser,
    requested: Option<SessionId>,
    last_seq: Option<Seq>,
    permit: ConnectionPermit,
) {
    let budget = SocketBudget { max_bytes: state.config.send_buffer_bytes, encode: wire::encode };
    let (handle, queue) = SocketHandle::new(user.id.clone(), budget);
    let started = std::time::Instant::now();
    info!(user_id = %user.id, socket_id = %handle.id(), "socket connected");
    let (sink, mut stream) = socket.split();
    let reader_done = CancellationToken::new();
    let writer_done = CancellationToken::new();
    let read_end = OnceLock::new();

    let deadline = state.config.enforce_token_expiry.then(|| state.jwt.socket_deadline(&user)).flatten();

    // Connecting (which replays history on a resume) runs alongside the writer, so a long
    // replay is drained as it is queued rather than overflowing the socket's queue.
    let reader = async {
        let end = match state.chat.connect(Arc::clone(&handle), requested, last_seq).await {
            Ok(mut connection) => {
                let end = read_loop(&state, &mut stream, &mut connection, &writer_done).await;
                state.chat.disconnect(connection);
                end
            }
            Err(error) => {
                warn!(user_id = %user.id, %error, "connecting the socket failed");
                handle.send(state.chat.error_frame(&error, None));
                ReadEnd::Internal
            }
        };
        let _ = read_end.set(end);
        reader_done.cancel();
        end
    };
    let writer = async {
        let closing = write_loop(&state, sink, queue, &handle, deadline, &reader_done, &read_end).await;
        writer_done.cancel();
        closing
    };
    let (read_end, close) = tokio::join!(reader, writer);
    if close.is_some()
        && matches!(
            read_end,
            ReadEnd::Stopped
                | ReadEnd::PingTimeout
                | ReadEnd::FrameTooBig
                | ReadEnd::Internal
                | ReadEnd::Flooding
        )
    {
        // Complete the closing handshake: wait briefly for the client's close frame, so
        // the TCP connection is not reset under frames the client has yet to read.
        let _ = timeout(CLOSE_TIMEOUT, async {
            while let Some(Ok(message)) = stream.next().await {
                if message.is_close() {
                    break;
                }
            }
        })
        .await;
    }
    drop(permit);
    info!(
        user_id = %user.id,
        socket_id = %handle.id(),
        seconds = started.elapsed().as_secs(),
        ?read_end,
        close_code = close.map(|c| u16::from(c.code)),
        "socket closed"
    );
}

async fn read_loop(
    state: &HttpState,
    stream: &mut SplitStream<Socket>,
    connection: &mut Connection,
    writer_done: &CancellationToken,
) -> ReadEnd {
    let chat = &state.chat;
    let max_chars = chat.settings().max_content_chars;
    loop {
        let next = tokio::select! {
            biased;
            () = writer_done.cancelled() => return ReadEnd::Stopped,
            next = timeout(state.config.pong_timeout, stream.next()) => next,
        };
        let message = match next {
            Err(_) => return ReadEnd::PingTimeout,
            Ok(None) => return ReadEnd::ClientClosed,
            Ok(Some(Err(tungstenite::Error::Capacity(_)))) => return ReadEnd::FrameTooBig,
            Ok(Some(Err(error))) => {
                debug!(%error, "socket read failed");
                return ReadEnd::Broken;
            }
            Ok(Some(Ok(message))) => message,
        };
        let text = match message {
            Message::Text(text) => text,
            Message::Close(_) => return ReadEnd::ClientClosed,
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => continue,
            Message::Binary(_) => {
                if let Some(end) = refuse_frame(state, connection, &WireError::Binary) {
                    return end;
                }
                continue;
            }
        };
        match wire::parse_frame(&text, max_chars, chat.clock().now()) {
            Ok(Inbound::Ping) => {
                connection.socket().send(chat.frame(ServerEvent::Pong));
            }
            Ok(Inbound::Command(command)) => {
                if let Err(error) = chat.handle(connection, command).await {
                    debug!(code = %error.code(), "command refused");
                    let session = Some(connection.session_id().clone());
                    connection.socket().send(chat.error_frame(&error, session));
                    if matches!(error, ChatError::Flooding) {
                        return ReadEnd::Flooding;
                    }
                }
            }
            Err(error) => {
                if let Some(end) = refuse_frame(state, connection, &error) {
                    return end;
                }
            }
        }
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

async fn write_loop(
    state: &HttpState,
    mut sink: SplitSink<Socket, Message>,
    mut queue: OutboundQueue,
    handle: &SocketHandle,
    token_deadline: Option<SystemTime>,
    reader_done: &CancellationToken,
    read_end: &OnceLock<ReadEnd>,
) -> Option<CloseFrame> {
    // The deadline comes from a token: convert it without arithmetic that could
    // overflow (a deadline beyond the clock's range is no deadline at all).
    let expiry = token_deadline.and_then(|at| {
        let left = at.duration_since(SystemTime::now()).unwrap_or_default();
        Instant::now().checked_add(left)
    });
    let mut ping =
        tokio::time::interval_at(Instant::now() + state.config.ping_interval, state.config.ping_interval);
    let close = loop {
        tokio::select! {
            biased;
            () = reader_done.cancelled() => break None,
            () = handle.closed() => break Some(handle.close_reason()),
            () = state.shutdown.cancelled() => break Some(Some(CloseReason::ShuttingDown)),
            () = sleep_until(expiry.unwrap_or_else(far_future)), if expiry.is_some() => {
                let expired = state.chat.frame(ServerEvent::Error {
                    session_id: None,
                    code: ErrorCode::TokenExpired,
                    message: "Authentication token expired".into(),
                    retry_after: None,
                });
                let _ = write_frames(state, &mut sink, &[expired]).await;
                break Some(Some(CloseReason::TokenExpired));
            }
            item = queue.recv() => {
                // The item's bytes count against the socket's budget until it is written.
                let Some(item) = item else { break None };
                let written = tokio::select! {
                    biased;
                    () = handle.closed() => break Some(handle.close_reason()),
                    written = write_frames(state, &mut sink, item.frames()) => written,
                };
                if !written {
                    break None;
                }
            }
            _ = ping.tick() => {
                if timeout(state.config.write_timeout, sink.send(Message::Ping(Default::default()))).await.map_or(true, |r| r.is_err()) {
                    break None;
                }
            }
        }
    };
    let frame = match close {
        Some(reason) => Some(close_frame(reason)),
        None => {
            let end = read_end.get().copied().unwrap_or(ReadEnd::Broken);
            if matches!(end, ReadEnd::Internal | ReadEnd::Flooding) {
                // The error frame explaining why is already queued: deliver it first.
                let pending: Vec<_> =
                    std::iter::from_fn(|| queue.try_recv()).flat_map(|item| item.frames().to_vec()).collect();
                let _ = write_frames(state, &mut sink, &pending).await;
            }
            end.close_frame()
        }
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
    frame
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86_400 * 365)
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
    matches!(result, Ok(Ok(())))
}
