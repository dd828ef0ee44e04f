//! The WebSocket endpoint: every check that can refuse a socket happens before the
//! upgrade (draining, token — from `Authorization`, the `bearer.` subprotocol entry or
//! `?token=`, every one presented naming the same user —, Origin, handshake headers,
//! socket caps), then the upgrade is answered by hand so each socket gets small buffers
//! (a few KiB instead of tungstenite's 128 KiB default), and one task per socket serves it
//! (`connection.rs`): its reader (`reader.rs`) and writer (`writer.rs`), which share
//! `Halves` (`halves.rs`). The reader reads through tungstenite; the writer owns the write
//! half and writes frames by hand (`outgoing.rs`), with the control frames tungstenite
//! makes while reading relayed to it (`control.rs`).

mod connection;
mod control;
mod halves;
mod last_heard;
mod outgoing;
mod reader;
mod writer;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chatbox_application::ChatError;
use chatbox_application::limits::GateError;
use chatbox_application::ports::Limiter;
use chatbox_application::shared_state::ConnectionRefused;
use chatbox_domain::{ErrorCode, Seq, SessionId};
use futures::FutureExt;
use futures::future::OptionFuture;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tracing::{Instrument, debug, error, info_span};

use crate::auth::{AuthError, AuthenticatedUser};
use crate::reply::{HttpResponse, auth_error_response, authenticate_tokens, bearer_tokens, error_response};
use crate::routes::route::SocketRequest;
use crate::state::HttpState;

use connection::serve;
use control::{CONTROL_MAX_BYTES, Control, ReadSide};
use outgoing::Outgoing;

/// The socket's read buffer, held for the socket's whole life (tungstenite allocates it
/// up front and keeps it): small, because idle sockets are the common case and a
/// client's frames are small (a question, a ping). It also caps each read, so a large
/// frame takes more reads: 20 for a 10 KB question, 2,048 for a frame at the 1 MiB
/// default limit. With 512 bytes an idle socket costs the server about 3.7 KiB in all;
/// see `docs/benchmarks.md`.
const READ_BUFFER_BYTES: usize = 512;
/// The most a socket's task may hold, checked in debug builds. tokio allocates a task as
/// its future plus about 100 bytes of its own, rounded up to 128, and jemalloc then
/// rounds up to its size class: up to this size that is 1,536 bytes, a few bytes more
/// and every idle socket's task costs 1,792.
const SOCKET_TASK_MAX_BYTES: usize = 1424;
/// Answers `GET P/ws`.
pub(crate) async fn upgrade(request: SocketRequest) -> HttpResponse {
    let SocketRequest { state, headers, query, upgrade: on_upgrade } = request;
    if state.gate.is_draining() {
        return error_response(ErrorCode::ServiceUnavailable, "Server is shutting down", None);
    }
    let offered = match OfferedProtocols::read(&headers) {
        Ok(offered) => offered,
        Err(problem) => return error_response(ErrorCode::BadRequest, problem, None),
    };
    let user = match authenticate(&state, &headers, &offered.tokens, &query) {
        Ok(user) => user,
        Err(error) => return auth_error_response(error),
    };
    if !origin_allowed(&state.config.allowed_origins, &headers) {
        return error_response(ErrorCode::Forbidden, "Origin not allowed", None);
    }
    let Some(accept_key) = handshake_accept_key(&headers) else {
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
        Err(limit) => return connection_limit_reached(&state, &user, limit),
    };
    // Across the replicas too, when they share a store; the local permit is given back
    // if this refuses.
    let shared_slot = match state.chat.claim_shared_socket(&user.id, state.gate.max_per_user()).await {
        Ok(slot) => slot,
        Err(ConnectionRefused::Cap) => return connection_limit_reached(&state, &user, GateError::PerUser),
        Err(ConnectionRefused::Unavailable) => {
            let error = ChatError::SharedStateUnavailable;
            return error_response(error.code(), &error.to_string(), error.retry_after());
        }
    };

    let task_state = Arc::clone(&state);
    // Every line this socket's task logs carries its user and socket ids (the socket id
    // is recorded once the socket exists).
    let span = info_span!("socket", user_id = %user.id, socket_id = tracing::field::Empty);
    // The upgrade's own state (the pending upgrade, the handshake, the user) is large and
    // short-lived: it lives in a box of its own, freed once the socket is served. The
    // task itself holds only the serving future, so an idle socket costs one allocation
    // the size of what serving needs. (Combinators, not an `async` block: one would hold
    // the serving future twice, as the upgrade's result and as the future awaited.)
    let upgrading = Box::pin(async move {
        let upgraded = match on_upgrade.await {
            Ok(upgraded) => upgraded,
            Err(error) => {
                debug!(%error, "websocket upgrade failed");
                return None;
            }
        };
        // The TCP stream itself, not hyper's boxed handle on it: one allocation less per
        // socket, and no dynamic call on every read and write. The server serves TCP
        // connections only, so this holds by construction.
        let Ok(parts) = upgraded.downcast::<TokioIo<TcpStream>>() else {
            error!("the upgraded connection is not a TCP stream: the socket is dropped");
            return None;
        };
        // tungstenite only reads: what it writes itself (pongs, the reply to a close) is
        // handed to the writer at once, which owns the write half.
        let config = WebSocketConfig::default()
            .read_buffer_size(READ_BUFFER_BYTES)
            .write_buffer_size(0)
            .max_write_buffer_size(CONTROL_MAX_BYTES)
            .max_message_size(Some(task_state.config.max_message_size))
            .max_frame_size(Some(task_state.config.max_message_size));
        let (read, write) = parts.io.into_inner().into_split();
        let control = Arc::new(Control::default());
        let read_side = ReadSide::new(read, Arc::clone(&control));
        // What the client sent right behind its handshake (nothing, for a browser) is
        // the start of its first frame.
        let socket = if parts.read_buf.is_empty() {
            WebSocketStream::from_raw_socket(read_side, Role::Server, Some(config)).await
        } else {
            WebSocketStream::from_partially_read(
                read_side,
                parts.read_buf.to_vec(),
                Role::Server,
                Some(config),
            )
            .await
        };
        let outgoing = Outgoing::new(write, control);
        Some(serve(task_state, Box::new(socket), outgoing, user, requested, last_seq, (permit, shared_slot)))
    });
    let task = upgrading.map(OptionFuture::from).flatten().instrument(span);
    debug_assert!(
        size_of_val(&task) <= SOCKET_TASK_MAX_BYTES,
        "a socket's task grew to {} bytes, past {SOCKET_TASK_MAX_BYTES}: every idle socket would cost 256 more",
        size_of_val(&task)
    );
    state.tasks.spawn(task);

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

/// The refusal of a socket over a cap: counted, logged, and, for the per-user cap, told
/// to the user's other sockets.
fn connection_limit_reached(state: &HttpState, user: &AuthenticatedUser, limit: GateError) -> HttpResponse {
    state.metrics.recorder.rate_limited(Limiter::Connections);
    debug!(user_id = %user.id, ?limit, "socket refused: connection limit");
    if limit == GateError::PerUser {
        state.chat.notify_connection_refused(&user.id);
    }
    error_response(
        ErrorCode::ConnectionLimitExceeded,
        "Connection limit exceeded, please try again later",
        Some(Duration::from_secs(5)),
    )
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
    /// The token of each `bearer.<token>` entry, in the order offered.
    tokens: Vec<String>,
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
                offered.tokens.push(token.to_owned());
            }
        }
        // A browser fails the handshake unless one offered name comes back, and the
        // bearer entry must never be echoed: it needs the real name beside it.
        if !offered.tokens.is_empty() && !offered.speaks_ours {
            return Err("Offer the chatbox.v1 subprotocol next to the bearer entry");
        }
        Ok(offered)
    }
}

/// The caller named by every token presented: those of `Authorization: Bearer`, then of
/// the `bearer.` subprotocol entries, then of `?token=` (kept for the earlier clients).
/// Tokens that name different users are refused as conflicting, wherever each came from.
fn authenticate(
    state: &HttpState,
    headers: &HeaderMap,
    protocol_tokens: &[String],
    query: &HashMap<String, String>,
) -> Result<AuthenticatedUser, AuthError> {
    let from_protocol = protocol_tokens.iter().map(String::as_str);
    let from_query = query.get("token").map(String::as_str);
    let tokens = bearer_tokens(headers)
        .chain(from_protocol.chain(from_query).map(str::trim).filter(|t| !t.is_empty()));
    authenticate_tokens(&state.jwt, tokens)
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
