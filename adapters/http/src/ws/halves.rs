//! What the two halves of one socket's task (its reader and its writer) share, and the
//! verbs by which they tell each other how they ended: why reading stopped, whether the
//! other half is done, and when the client was last heard from (the writer's one timer
//! closes a silent client; see `LastHeard`).

use std::sync::OnceLock;
use std::time::Duration;

use chatbox_application::wait::Signal;
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Utf8Bytes;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use super::control::ReadSide;
use super::last_heard::LastHeard;

/// An upgraded connection's reading side (the writer owns the write half: `Outgoing`).
pub(super) type Socket = WebSocketStream<ReadSide>;

/// How long closing a socket may take before it is dropped.
pub(super) const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// Why the reader stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ReadEnd {
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
    pub(super) fn close_frame(self) -> Option<CloseFrame> {
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

/// What the reader and the writer of one socket share.
#[derive(Debug)]
pub(super) struct Halves {
    reader_done: Signal,
    writer_done: Signal,
    read_end: OnceLock<ReadEnd>,
    last_heard: LastHeard,
}

impl Halves {
    /// Both halves running; the client heard from at `now` (the socket just opened).
    pub(super) fn new(now: Instant) -> Self {
        Self {
            reader_done: Signal::default(),
            writer_done: Signal::default(),
            read_end: OnceLock::new(),
            last_heard: LastHeard::new(now),
        }
    }

    /// The reader stopped, for `end`, unless the writer named the end first (a silent
    /// client).
    pub(super) fn reader_stopped(&self, end: ReadEnd) {
        let _ = self.read_end.set(end);
        self.reader_done.raise();
    }

    /// The writer found the client silent past its patience: reading ends for that.
    pub(super) fn client_went_silent(&self) {
        let _ = self.read_end.set(ReadEnd::PingTimeout);
    }

    /// The writer stopped.
    pub(super) fn writer_stopped(&self) {
        self.writer_done.raise();
    }

    /// Completes once the reader has stopped. (The signal's own future, not an `async`
    /// wrapper around it: the writer holds this future for the socket's whole life.)
    pub(super) fn reader_done(&self) -> impl Future<Output = ()> + Send + '_ {
        self.reader_done.raised()
    }

    /// Completes once the writer has stopped.
    pub(super) fn writer_done(&self) -> impl Future<Output = ()> + Send + '_ {
        self.writer_done.raised()
    }

    /// Why reading ended (`Broken` while it has not).
    pub(super) fn read_end(&self) -> ReadEnd {
        self.read_end.get().copied().unwrap_or(ReadEnd::Broken)
    }

    /// The client was heard from now.
    pub(super) fn heard(&self) {
        self.last_heard.heard();
    }

    /// When the client counts as silent: `patience` after it was last heard from.
    pub(super) fn silent_at(&self, patience: Duration) -> Option<Instant> {
        self.last_heard.silent_at(patience)
    }
}
