//! Binding a socket to a session: `connection_status`, then the stored messages after
//! the client's `last_seq`, then the answer in progress, then live frames — nothing lost,
//! nothing doubled, even if the session is evicted during the replay.

use std::sync::Arc;

use chatbox_domain::{ModelId, Seq};

use super::{ChatService, Connection, EVICTION_RETRIES};
use crate::error::ChatError;
use crate::events::{Frame, ServerEvent};
use crate::live::{LiveSession, ReplayStep};

impl ChatService {
    /// Binds the socket to `live`: `connection_status`, then the stored messages after
    /// `last_seq`, then the answer in progress, then live frames.
    ///
    /// The replay is read from storage page by page, each page queued as one batch as
    /// soon as it is read (so a long history never sits in memory at once). The last
    /// page is queued under the session lock together with the attach, and only if no
    /// message was stored after it (else the difference is read first), so nothing is
    /// lost or doubled. If the session is evicted meanwhile it is loaded again and the
    /// replay continues where it stopped.
    pub(super) async fn bind(
        &self,
        connection: &mut Connection,
        mut live: Arc<LiveSession>,
        last_seq: Option<Seq>,
        state_name: &'static str,
    ) -> Result<(), ChatError> {
        let mut cursor = last_seq;
        for _ in 0..EVICTION_RETRIES {
            if self.try_bind(connection, &live, &mut cursor, state_name).await? {
                return Ok(());
            }
            let id = live.id().clone();
            live = self.reachable_live(connection, &id).await?.ok_or(ChatError::NotFound)?;
        }
        Err(ChatError::Internal)
    }

    /// One attempt of [`Self::bind`]; false when `live` was evicted meanwhile. `cursor`
    /// advances past every message already queued to the socket.
    pub(super) async fn try_bind(
        &self,
        connection: &mut Connection,
        live: &Arc<LiveSession>,
        cursor: &mut Option<Seq>,
        state_name: &'static str,
    ) -> Result<bool, ChatError> {
        self.detach_current(connection);
        connection.bound = Some(Arc::clone(live));
        self.send_status(connection, live.model_id(), state_name);
        connection.bound = None;

        let Some(after) = cursor.as_mut() else {
            return Ok(self.attach_plain(connection, live));
        };
        let page_size = self.deps.settings.replay_page_size.max(1);
        loop {
            let page = self.deps.storage(self.deps.repo.messages_after(live.id(), *after, page_size)).await?;
            let full = page.len() >= page_size;
            let frames: Vec<(Seq, Arc<Frame>)> = page
                .into_iter()
                .map(|message| {
                    let seq = message.seq;
                    let frame = self.frame(ServerEvent::Stored {
                        session_id: live.id().clone(),
                        message: Arc::new(message),
                    });
                    (seq, frame)
                })
                .collect();
            // Serialised here, so the session's lock is not held for it.
            connection.socket.encode_ahead(frames.iter().map(|(_, frame)| frame));
            match live.replay_page(&connection.socket, frames, full, after, self.deps.clock.now()) {
                // More may follow: read on at the pace the client reads (the socket's
                // queue is bounded in bytes).
                ReplayStep::More => connection.socket.wait_for_room().await,
                ReplayStep::Behind => {}
                ReplayStep::Evicted => return Ok(false),
                ReplayStep::Closed => return Ok(true),
                ReplayStep::Joined => {
                    connection.bound = Some(Arc::clone(live));
                    return Ok(true);
                }
            }
        }
    }

    pub(super) fn model_of(&self, connection: &Connection) -> ModelId {
        match &connection.bound {
            Some(live) => live.model_id(),
            None => connection
                .selected_model
                .clone()
                .unwrap_or_else(|| self.deps.settings.default_model().clone()),
        }
    }

    pub(super) fn send_status(&self, connection: &Connection, model_id: ModelId, state: &'static str) {
        connection.socket.send(self.frame(ServerEvent::ConnectionStatus {
            user_id: connection.socket.user().clone(),
            session_id: connection.session_id().clone(),
            models: Arc::clone(&self.deps.settings.models),
            model_id,
            state,
            content: None,
        }));
    }
}
