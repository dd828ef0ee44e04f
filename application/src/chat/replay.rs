//! Binding a socket to a session: `connection_status`, then the stored messages after
//! the client's `last_seq`, then the answer in progress, then live frames — nothing lost,
//! nothing doubled, even if the session is evicted during the replay.

use std::sync::Arc;

use chatbox_domain::{ModelId, Seq, SessionId};

use super::{ChatService, Connection, EVICTION_RETRIES};
use crate::error::ChatError;
use crate::events::{Frame, ServerEvent};
use crate::live::LiveSession;

/// One step of a replay's last page (see [`ChatService::bind`]).
enum Replay {
    /// Messages were stored after the page: queue it and read the difference.
    Behind(Vec<Arc<Frame>>),
    /// The session was evicted: queue the page, then load the session again.
    Evicted(Vec<Arc<Frame>>),
    /// Attached: the page and the answer in progress, then live frames.
    Attached(Vec<Arc<Frame>>),
}

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
        let model = live.with_state(|state| state.session.model_id.clone());
        connection.bound = Some(Arc::clone(live));
        self.send_status(connection, model, state_name);
        connection.bound = None;

        let Some(after) = cursor.as_mut() else {
            return Ok(self.attach_plain(connection, live));
        };
        let page_size = self.deps.settings.replay_page_size.max(1);
        loop {
            let page = self.deps.storage(self.deps.repo.messages_after(live.id(), *after, page_size)).await?;
            let full = page.len() >= page_size;
            if let Some(last) = page.last() {
                *after = last.seq;
            }
            let frames: Vec<Arc<Frame>> = page
                .into_iter()
                .map(|message| {
                    self.frame(ServerEvent::Stored {
                        session_id: live.id().clone(),
                        message: Arc::new(message),
                    })
                })
                .collect();
            if full {
                // More may follow: deliver this page now and read on, at the pace the
                // client reads (the socket's queue is bounded in bytes).
                if !connection.socket.send_batch(frames) {
                    return Ok(true);
                }
                connection.socket.wait_for_room().await;
                continue;
            }
            let step = live.with_state(|state| {
                if state.is_evicted() {
                    return Replay::Evicted(frames);
                }
                if state.stored_seq > *after {
                    return Replay::Behind(frames);
                }
                let mut frames = frames;
                frames.extend(self.in_progress_frames(live.id(), state));
                if state.attach(Arc::clone(&connection.socket)) {
                    Replay::Attached(frames)
                } else {
                    Replay::Evicted(frames)
                }
            });
            match step {
                Replay::Behind(frames) => {
                    connection.socket.send_batch(frames);
                }
                Replay::Evicted(frames) => {
                    connection.socket.send_batch(frames);
                    return Ok(false);
                }
                Replay::Attached(frames) => {
                    connection.socket.send_batch(frames);
                    connection.bound = Some(Arc::clone(live));
                    return Ok(true);
                }
            }
        }
    }

    /// `loading` plus everything streamed so far, for a socket joining mid-answer.
    pub(super) fn in_progress_frames(
        &self,
        session_id: &SessionId,
        state: &mut crate::live::LiveState,
    ) -> Vec<Arc<Frame>> {
        let Some(answer) = state.streaming.as_mut() else {
            return Vec::new();
        };
        let mut frames = vec![self.frame(ServerEvent::Loading {
            session_id: session_id.clone(),
            message_id: answer.message_id.clone(),
            style: answer.style,
        })];
        let (message_id, model_id, style) =
            (answer.message_id.clone(), answer.model_id.clone(), answer.style);
        frames.extend(answer.catch_up(|delta| {
            self.frame(ServerEvent::AnswerChunk {
                session_id: session_id.clone(),
                message_id,
                model_id,
                delta,
                style,
            })
        }));
        frames
    }

    pub(super) fn model_of(&self, connection: &Connection) -> ModelId {
        match &connection.bound {
            Some(live) => live.with_state(|state| state.session.model_id.clone()),
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
