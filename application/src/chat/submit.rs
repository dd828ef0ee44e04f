//! Admission of what a client sends to be stored: chat messages and attachments. Each
//! is rate limited per user, then queued with the session's actor, refused at once if
//! the session ended, the key was seen, or too many answers wait.

use std::sync::Arc;

use chatbox_domain::validation::check_metadata;
use chatbox_domain::{MessageKind, Sender, UserId};
use tracing::info;

use super::{ChatService, Connection};
use crate::commands::{AttachedFile, Attachment, SendMessage};
use crate::error::ChatError;
use crate::live::LiveSession;
use crate::ports::{LimitVerdict, Limiter};
use crate::turn::Turn;

impl ChatService {
    pub(super) async fn send_message(
        &self,
        connection: &mut Connection,
        message: SendMessage,
    ) -> Result<(), ChatError> {
        self.check_rate(connection.socket.user()).await?;
        if let Some(model_id) = &message.model_id
            && !self.deps.settings.knows_model(model_id)
        {
            return Err(ChatError::UnknownModel);
        }
        let live =
            self.target_session(connection, message.session_id.as_ref(), message.model_id.clone()).await?;
        if let Some(model_id) = message.model_id.filter(|m| live.read(|session| &session.model_id != m)) {
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
        self.check_rate(connection.socket.user()).await?;
        let live = self.target_session(connection, attachment.session_id.as_ref(), None).await?;
        let (file_id, file_url, metadata) = match attachment.file {
            AttachedFile::Upload(id) => {
                let files = self.deps.files.as_ref().ok_or(ChatError::FileNotFound)?;
                let file = files.attach(&id, connection.socket.user(), live.id()).await?;
                // What the file is comes from the server's record, not the client.
                let mut metadata = attachment.metadata;
                metadata.insert("filename".into(), file.name.to_string());
                metadata.insert("size".into(), file.size.to_string());
                metadata.insert("type".into(), file.media_type.essence().to_owned());
                check_metadata(&metadata)?;
                (id.to_string(), files.download_url(&id), metadata)
            }
            AttachedFile::Link { file_id, file_url } => (file_id, file_url, attachment.metadata),
        };
        let turn = Turn {
            origin: Arc::clone(&connection.socket),
            sender: Self::sender_in(connection, &live),
            kind: match attachment.kind {
                MessageKind::Voice => MessageKind::Voice,
                _ => MessageKind::File,
            },
            content: attachment.content,
            file_id: Some(file_id),
            file_url: Some(file_url),
            metadata,
            client_message_id: attachment.client_message_id,
            answer: None,
        };
        self.submit(&live, turn)
    }

    /// Who speaks when this connection writes in `live`: its owner is the user; anyone
    /// else got there as the assisting admin (see `reachable_live`), whatever the frame's
    /// `sender` claims.
    fn sender_in(connection: &Connection, live: &LiveSession) -> Sender {
        if live.read(|session| session.is_owned_by(connection.socket.user())) {
            Sender::User
        } else {
            Sender::Admin
        }
    }

    /// Counts one message of `user` against `RATE_LIMIT` per `RATE_WINDOW`: in the
    /// store the replicas share when there is one (a store that cannot decide refuses the
    /// message), else in this process.
    pub(super) async fn check_rate(&self, user: &UserId) -> Result<(), ChatError> {
        let verdict = match &self.deps.shared {
            Some(shared) => {
                let key = format!("rate:message:{user}");
                match shared.check_rate(&key, self.deps.settings.message_quota, 1).await {
                    Ok(LimitVerdict::Allowed) => Ok(()),
                    Ok(LimitVerdict::Limited { retry_after }) => Err(retry_after),
                    Err(_) => return Err(ChatError::SharedStateUnavailable),
                }
            }
            None => self.deps.limiter.check(user, self.deps.clock.monotonic()),
        };
        verdict.map_err(|retry_after| {
            info!(user_id = %user, retry_after_ms = retry_after.as_millis(), "rate limit exceeded: messages");
            self.deps.metrics.rate_limited(Limiter::Messages);
            ChatError::RateLimited { retry_after }
        })
    }

    /// Queues a turn with the session's actor (see [`LiveSession::admit_turn`]), unless
    /// the service is shutting down.
    pub(super) fn submit(&self, live: &LiveSession, turn: Turn) -> Result<(), ChatError> {
        if self.deps.live.is_shutting_down() {
            return Err(ChatError::ShuttingDown);
        }
        live.admit_turn(turn, self.deps.settings.answer_queue_limit, self.deps.clock.now())
    }
}
