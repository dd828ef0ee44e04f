//! Admission of what a client sends to be stored: chat messages and attachments. Each
//! is rate limited per user, then queued with the session's actor, refused at once if
//! the session ended, the key was seen, or too many answers wait.

use std::sync::Arc;

use chatbox_domain::{ClientMessageId, MessageId, MessageKind, Sender, Seq, UserId};
use tracing::{debug, info};

use super::{ChatService, Connection};
use crate::answer::Turn;
use crate::commands::{Attachment, SendMessage};
use crate::error::ChatError;
use crate::events::{Frame, ServerEvent};
use crate::live::{ClientKeySeen, LiveSession};
use crate::ports::Limiter;

impl ChatService {
    pub(super) async fn send_message(
        &self,
        connection: &mut Connection,
        message: SendMessage,
    ) -> Result<(), ChatError> {
        self.check_rate(connection.socket.user())?;
        if let Some(model_id) = &message.model_id
            && !self.deps.settings.knows_model(model_id)
        {
            return Err(ChatError::UnknownModel);
        }
        let live =
            self.target_session(connection, message.session_id.as_ref(), message.model_id.clone()).await?;
        if let Some(model_id) = message.model_id.filter(|m| live.with_state(|s| &s.session.model_id != m)) {
            self.change_model(&live, model_id).await?;
        }
        let sender = Self::sender_in(connection, &live);
        let turn = Turn {
            origin: Arc::clone(&connection.socket),
            sender,
            kind: MessageKind::Text,
            content: message.content.into_inner(),
            file_id: None,
            file_url: None,
            metadata: message.metadata,
            client_message_id: message.client_message_id,
            // The model answers users, never an admin speaking in a session.
            answer: (sender == Sender::User).then_some(message.style),
        };
        self.submit(&live, turn)
    }

    pub(super) async fn attach_file(
        &self,
        connection: &mut Connection,
        attachment: Attachment,
    ) -> Result<(), ChatError> {
        self.check_rate(connection.socket.user())?;
        let live = self.target_session(connection, attachment.session_id.as_ref(), None).await?;
        let turn = Turn {
            origin: Arc::clone(&connection.socket),
            sender: Self::sender_in(connection, &live),
            kind: match attachment.kind {
                MessageKind::Voice => MessageKind::Voice,
                _ => MessageKind::File,
            },
            content: attachment.content,
            file_id: Some(attachment.file_id),
            file_url: Some(attachment.file_url),
            metadata: attachment.metadata,
            client_message_id: attachment.client_message_id,
            answer: None,
        };
        self.submit(&live, turn)
    }

    /// Who speaks when this connection writes in `live`: its owner is the user; anyone
    /// else got there as the assisting admin (see `reachable_live`), whatever the frame's
    /// `sender` claims.
    fn sender_in(connection: &Connection, live: &LiveSession) -> Sender {
        if live.with_state(|state| state.session.is_owned_by(connection.socket.user())) {
            Sender::User
        } else {
            Sender::Admin
        }
    }

    pub(super) fn check_rate(&self, user: &UserId) -> Result<(), ChatError> {
        self.deps.limiter.check(user, self.deps.clock.monotonic()).map_err(|retry_after| {
            info!(user_id = %user, retry_after_ms = retry_after.as_millis(), "rate limit exceeded: messages");
            self.deps.metrics.rate_limited(Limiter::Messages);
            ChatError::RateLimited { retry_after }
        })
    }

    /// Queues a turn with the session's actor: refused if the session ended or too many
    /// answers wait. A repeated `client_message_id` is not queued again: if its message
    /// is already stored the sender is told so again (its first acknowledgement may have
    /// been lost with a socket), else the acknowledgement is still to come.
    pub(super) fn submit(&self, live: &Arc<LiveSession>, turn: Turn) -> Result<(), ChatError> {
        if self.deps.live.is_shutting_down() {
            return Err(ChatError::ShuttingDown);
        }
        let limit = self.deps.settings.answer_queue_limit;
        let admitted = live.with_state(|state| {
            if !state.session.is_active() {
                return Err(ChatError::SessionEnded);
            }
            // An admin speaks only while assisting: a release ends it, even on a socket
            // that is still bound.
            if turn.sender == Sender::Admin && !state.session.handoff.assisted_by(turn.origin.user()) {
                return Err(ChatError::NotAssisting);
            }
            if state.queued_turns >= limit {
                return Err(ChatError::Busy);
            }
            if let Some(id) = &turn.client_message_id {
                match state.remember_client_id(id) {
                    ClientKeySeen::New => {}
                    ClientKeySeen::Pending => {
                        debug!(session_id = %live.id(), "duplicate client_message_id ignored: not stored yet");
                        return Ok(Admission::Duplicate(None));
                    }
                    ClientKeySeen::Stored(message_id, seq) => {
                        debug!(session_id = %live.id(), "duplicate client_message_id acknowledged again");
                        return Ok(Admission::Duplicate(Some((id.clone(), message_id, seq))));
                    }
                }
            }
            state.queued_turns += 1;
            state.touch();
            Ok(Admission::Queued)
        })?;
        match admitted {
            Admission::Queued => live.submit(turn).map_err(|turn| {
                live.with_state(|state| {
                    state.queued_turns = state.queued_turns.saturating_sub(1);
                    if let Some(id) = &turn.client_message_id {
                        state.forget_client_id(id);
                    }
                });
                ChatError::Busy
            }),
            Admission::Duplicate(stored) => {
                if let Some((client_message_id, message_id, seq)) = stored {
                    let ack = ServerEvent::MessageAck {
                        session_id: live.id().clone(),
                        message_id,
                        seq,
                        client_message_id,
                    };
                    turn.origin.send(Frame::new(ack, self.deps.clock.now()));
                }
                Ok(())
            }
        }
    }
}

/// What became of a submitted turn.
enum Admission {
    /// Queued with the session's actor.
    Queued,
    /// Its key was seen before; carries where it is stored, if it is.
    Duplicate(Option<(ClientMessageId, MessageId, Seq)>),
}
