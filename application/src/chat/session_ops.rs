//! Operations on a session's own fields and live state: model selection, stop, typing
//! relay, help requests and ending. Field changes are stored first and applied to memory
//! after, one at a time per session (its control turn).

use std::sync::Arc;

use chatbox_domain::{HandoffState, ModelId, Session, SessionId, Timestamp, UserId};

use super::resolve::Target;
use super::{ChatService, Connection};
use crate::error::ChatError;
use crate::events::ServerEvent;
use crate::live::LiveSession;
use crate::ports::RepositoryError;

impl ChatService {
    pub(super) async fn select_model(
        &self,
        connection: &mut Connection,
        session_id: Option<SessionId>,
        model_id: ModelId,
    ) -> Result<(), ChatError> {
        if !self.deps.settings.knows_model(&model_id) {
            return Err(ChatError::UnknownModel);
        }
        match self.resolve(connection, session_id.as_ref()).await? {
            Target::Live(live) => {
                if !self.rebind_if_needed(connection, &live) {
                    return Err(ChatError::Internal);
                }
                self.change_model(&live, model_id.clone()).await?;
            }
            // No conversation yet: remember the choice for the session the next message
            // creates, rather than creating an empty session.
            Target::New(id) => {
                connection.issued = id;
                connection.selected_model = Some(model_id.clone());
            }
        }
        self.send_status(connection, model_id, "model_selected");
        Ok(())
    }

    pub(super) async fn change_model(
        &self,
        live: &Arc<LiveSession>,
        model_id: ModelId,
    ) -> Result<(), ChatError> {
        let _turn = live.control().await;
        let now = self.deps.clock.now();
        self.deps.storage(self.deps.repo.set_model(live.id(), &model_id, now)).await?;
        self.deps.hub.field_changed(live.id()).await;
        live.apply_stored_change(|session| session.model_id = model_id);
        Ok(())
    }

    pub(super) async fn stop(
        &self,
        connection: &mut Connection,
        session_id: Option<SessionId>,
    ) -> Result<(), ChatError> {
        let live = match (&connection.bound, session_id) {
            (Some(bound), None) => Some(Arc::clone(bound)),
            (Some(bound), Some(id)) if bound.id() == &id => Some(Arc::clone(bound)),
            (_, Some(id)) => self.owned_live(connection.socket.user(), &id).await?,
            (None, None) => None,
        };
        if let Some(live) = live {
            live.stop_answer();
        }
        Ok(())
    }

    pub(super) fn typing(&self, connection: &Connection, session_id: Option<&SessionId>, typing: bool) {
        let Some(live) = &connection.bound else {
            return;
        };
        if session_id.is_some_and(|id| id != live.id()) {
            return;
        }
        let frame = self.frame(ServerEvent::Typing {
            session_id: live.id().clone(),
            user_id: connection.socket.user().clone(),
            typing,
        });
        live.publish(&frame, Some(connection.socket.id()));
    }

    /// The user asks for a human in an existing session of theirs (the bound one, or the
    /// one named): the session is marked as waiting for one (stored), its sockets get
    /// `connection_status` with `state="help_requested"`, and the admins are alerted (see
    /// `handoff.rs`). Repeating it is harmless; alerts are rate limited per session and
    /// per user. An id that names no session of the user is `NOT_FOUND`: a help request
    /// never creates a session, so fresh ids cannot multiply the alerts.
    pub(super) async fn request_help(
        &self,
        connection: &mut Connection,
        session_id: Option<SessionId>,
    ) -> Result<(), ChatError> {
        let live = self.existing_session(connection, session_id.as_ref()).await?;
        let content = "Help request sent. An administrator will join your session shortly.";
        let _turn = live.control().await;
        let handoff = live.read(|session| session.handoff.clone().request_help());
        let repo = &self.deps.repo;
        let id = live.id().clone();
        self.change_and_announce(
            &live,
            "help_requested",
            Some(content.into()),
            |session, _| session.handoff = handoff.clone(),
            |now| repo.set_handoff(&id, &handoff, now),
        )
        .await?;
        self.deps.metrics.help_requested();
        // An admin already assists: nobody needs to be called.
        if live.read(|session| session.handoff == HandoffState::HelpRequested) {
            self.alert_admins(&live);
        }
        Ok(())
    }

    /// Ends a session of `user`. Idempotent. Its sockets get `connection_status` with
    /// `state="ended"`.
    ///
    /// # Errors
    /// [`ChatError::NotFound`] when the session is not the user's; storage failures.
    #[tracing::instrument(name = "end_session", skip_all, fields(session_id = %id, user_id = %user))]
    pub async fn end_session(&self, user: &UserId, id: &SessionId) -> Result<(), ChatError> {
        let live = self.owned_live(user, id).await?.ok_or(ChatError::NotFound)?;
        live.stop_answer();
        let repo = &self.deps.repo;
        let _turn = live.control().await;
        let was_active = live.read(Session::is_active);
        self.change_and_announce(
            &live,
            "ended",
            None,
            |session, now| session.end(now),
            |now| repo.end(id, now),
        )
        .await?;
        if was_active {
            self.deps.metrics.session_ended();
        }
        Ok(())
    }

    /// Stores one field-level change of the session (`write`), then applies the same
    /// change to memory (`change`) and tells its sockets the new state with
    /// `connection_status`. Memory changes only after the store accepted the write. The
    /// caller holds the session's control turn ([`LiveSession::control`]).
    pub(super) async fn change_and_announce<W>(
        &self,
        live: &Arc<LiveSession>,
        state_name: &'static str,
        content: Option<String>,
        change: impl FnOnce(&mut Session, Timestamp),
        write: impl FnOnce(Timestamp) -> W,
    ) -> Result<(), ChatError>
    where
        W: std::future::Future<Output = Result<(), RepositoryError>>,
    {
        let now = self.deps.clock.now();
        self.deps.storage(write(now)).await?;
        self.deps.hub.field_changed(live.id()).await;
        let snapshot = live.apply_stored_change(|session| change(session, now));
        let frame = self.frame(ServerEvent::ConnectionStatus {
            user_id: snapshot.owner.clone(),
            session_id: snapshot.id.clone(),
            models: Arc::clone(&self.deps.settings.models),
            model_id: snapshot.model_id.clone(),
            state: state_name,
            content,
        });
        live.publish(&frame, None);
        Ok(())
    }
}
