//! The reader of one socket: parses each frame and runs its command through the
//! use-cases (errors go back to this socket only; the connection's command budget pays
//! for every frame, a malformed one too), until the client closes, a frame ends the
//! socket or the writer stops.

use chatbox_application::ChatError;
use chatbox_application::chat::Connection;
use chatbox_application::commands::ClientCommand;
use chatbox_application::events::ServerEvent;
use chatbox_domain::command_budget::CommandKind;
use futures::StreamExt;
use tokio_tungstenite::tungstenite::{self, Message};
use tracing::debug;

use crate::frame_type::{FrameType, received_type};
use crate::state::HttpState;
use crate::wire::{self, Inbound, WireError};

use super::halves::{Halves, ReadEnd, Socket};

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
pub(super) async fn read_loop(
    state: &HttpState,
    stream: &mut Socket,
    connection: &mut Connection,
    halves: &Halves,
) -> ReadEnd {
    let chat = &state.chat;
    loop {
        // One expression from the read to the boxed command: a `Step` kept in a local
        // would stay in the reader's state, command and all, while the command runs.
        let running = match tokio::select! {
            biased;
            () = halves.writer_done() => return ReadEnd::Stopped,
            next = stream.next() => {
                halves.heard();
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
