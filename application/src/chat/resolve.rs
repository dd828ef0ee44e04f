//! What a client-supplied session id resolves to, and making sessions live: the bound
//! session, the id issued to this connection (created on first message), another
//! session the user owns (loaded from storage), or — for an unknown or foreign id — a
//! brand-new session under a server-generated id, so nothing reveals whether someone
//! else's id exists.

use std::sync::Arc;

use chatbox_domain::{ModelId, Session, SessionId, UserId};
use tracing::{Instrument, info};

use super::{ChatService, Connection, EVICTION_RETRIES};
use crate::answer::{self};
use crate::error::ChatError;
use crate::live::{LiveSession, StoredKey};

/// The most a session actor's future may take. Every live session holds one, waiting for
/// its next turn (most of them, most of the time); tokio adds its header and trailer and
/// rounds the task up to 128 bytes, so up to this size the task stays within 512 bytes
/// (it took 896 while an answer held for storage was kept inline).
const ACTOR_FUTURE_MAX_BYTES: usize = 384;

/// What a client-supplied session id resolves to.
pub(super) enum Target {
    Live(Arc<LiveSession>),
    /// No stored session yet: create it under this id if a message needs it.
    New(SessionId),
}

impl ChatService {
    /// The live session of `user` with this id, loading it from storage if needed.
    /// `None` for unknown ids and ids of other users alike.
    pub(super) async fn owned_live(
        &self,
        user: &UserId,
        id: &SessionId,
    ) -> Result<Option<Arc<LiveSession>>, ChatError> {
        self.live_if(id, |session| session.is_owned_by(user)).await
    }

    /// The live session this connection may enter: its user's own, or — for an admin —
    /// one that admin assists. `None` for anything else, unknown ids included.
    pub(super) async fn reachable_live(
        &self,
        connection: &Connection,
        id: &SessionId,
    ) -> Result<Option<Arc<LiveSession>>, ChatError> {
        self.live_if(id, |session| connection.may_enter(session)).await
    }

    /// The live session with this id if `allowed` accepts it, loading it from storage if
    /// needed. A session `allowed` refuses is not made live.
    pub(super) async fn live_if(
        &self,
        id: &SessionId,
        allowed: impl Fn(&Session) -> bool,
    ) -> Result<Option<Arc<LiveSession>>, ChatError> {
        if let Some(live) = self.deps.live.get(id) {
            let reachable = live.read(&allowed);
            return Ok(reachable.then_some(live));
        }
        let Some(session) = self.deps.storage(self.deps.repo.load(id)).await? else {
            return Ok(None);
        };
        if !allowed(&session) {
            return Ok(None);
        }
        let recent =
            self.deps.storage(self.deps.repo.recent_messages(id, crate::live::REMEMBERED_CLIENT_IDS)).await?;
        let client_keys = recent
            .into_iter()
            .filter_map(|m| m.client_message_id.map(|id| StoredKey { id, message_id: m.id, seq: m.seq }))
            .collect();
        Ok(Some(self.activate(session, client_keys)))
    }

    pub(super) fn activate(&self, session: Session, client_keys: Vec<StoredKey>) -> Arc<LiveSession> {
        let (live, created) = self.deps.live.activate(session, client_keys);
        if created {
            // The actor's lines carry the session id; it outlives any one socket.
            let span = tracing::info_span!(parent: None, "session", session_id = %live.id());
            let actor = answer::run(Arc::clone(&live), Arc::clone(&self.deps)).instrument(span);
            debug_assert!(
                size_of_val(&actor) <= ACTOR_FUTURE_MAX_BYTES,
                "a session actor's future grew to {} bytes, past {ACTOR_FUTURE_MAX_BYTES}: every live session would cost more",
                size_of_val(&actor)
            );
            self.deps.actors.spawn(actor);
        }
        live
    }

    /// Resolves a client-supplied session id (see the module docs).
    pub(super) async fn resolve(
        &self,
        connection: &Connection,
        requested: Option<&SessionId>,
    ) -> Result<Target, ChatError> {
        let requested = requested.unwrap_or_else(|| connection.session_id());
        if let Some(bound) = &connection.bound
            && bound.id() == requested
            && !bound.is_evicted()
        {
            return Ok(Target::Live(Arc::clone(bound)));
        }
        if let Some(live) = self.reachable_live(connection, requested).await? {
            return Ok(Target::Live(live));
        }
        if requested == &connection.issued {
            return Ok(Target::New(requested.clone()));
        }
        Ok(Target::New(self.new_session_id()?))
    }

    /// The live session a message goes to, creating and binding it as needed.
    pub(super) async fn target_session(
        &self,
        connection: &mut Connection,
        requested: Option<&SessionId>,
        model: Option<ModelId>,
    ) -> Result<Arc<LiveSession>, ChatError> {
        match self.resolve_and_bind(connection, requested).await? {
            Target::Live(live) => Ok(live),
            Target::New(id) => self.create_session(connection, id, requested, model).await,
        }
    }

    /// [`Self::resolve`], with the socket bound to the live session it names; a session
    /// evicted between resolving and binding is resolved again (which reloads it).
    async fn resolve_and_bind(
        &self,
        connection: &mut Connection,
        requested: Option<&SessionId>,
    ) -> Result<Target, ChatError> {
        for _ in 0..EVICTION_RETRIES {
            match self.resolve(connection, requested).await? {
                Target::Live(live) if !self.rebind_if_needed(connection, &live) => {}
                target => return Ok(target),
            }
        }
        Err(ChatError::Internal)
    }

    /// The existing session a command names (or the bound one), bound to the socket;
    /// [`ChatError::NotFound`] when it names none the connection may enter.
    pub(super) async fn existing_session(
        &self,
        connection: &mut Connection,
        requested: Option<&SessionId>,
    ) -> Result<Arc<LiveSession>, ChatError> {
        if requested.is_none() && connection.bound.is_none() {
            return Err(ChatError::NotFound);
        }
        match self.resolve_and_bind(connection, requested).await? {
            Target::Live(live) => Ok(live),
            Target::New(_) => Err(ChatError::NotFound),
        }
    }

    /// Creates a session under `id`, makes it live and binds the socket to it.
    pub(super) async fn create_session(
        &self,
        connection: &mut Connection,
        id: SessionId,
        requested: Option<&SessionId>,
        model: Option<ModelId>,
    ) -> Result<Arc<LiveSession>, ChatError> {
        let model = model
            .or_else(|| connection.selected_model.clone())
            .unwrap_or_else(|| self.deps.settings.default_model().clone());
        if self.deps.live.is_shutting_down() {
            return Err(ChatError::ShuttingDown);
        }
        let session = Session::new(id, connection.socket.user().clone(), model, self.deps.clock.now());
        self.end_surplus_sessions(&session.owner).await?;
        self.deps.storage(self.deps.repo.create(&session)).await?;
        self.deps.metrics.session_created();
        info!(session_id = %session.id, user_id = %session.owner, "session created");
        let live = self.activate(session, Vec::new());
        let announced = requested.is_none_or(|id| id == live.id()) && connection.issued == *live.id();
        // A session created a moment ago cannot have been evicted yet.
        let _ = self.attach_plain(connection, &live);
        if !announced {
            // The client used an id we did not honour: tell it the real one.
            self.send_status(connection, self.model_of(connection), "connected");
        }
        Ok(live)
    }

    /// Moves the socket to `live` (a session change) unless it is bound there already.
    /// False when `live` was evicted meanwhile.
    #[must_use]
    pub(super) fn rebind_if_needed(&self, connection: &mut Connection, live: &Arc<LiveSession>) -> bool {
        if connection.bound.as_ref().is_some_and(|bound| Arc::ptr_eq(bound, live)) {
            return true;
        }
        if !self.attach_plain(connection, live) {
            return false;
        }
        self.send_status(connection, self.model_of(connection), "connected");
        true
    }

    /// Binds the socket to `live` with no replay (but with the answer in progress).
    /// False when `live` was evicted meanwhile; the socket is then unbound.
    #[must_use]
    pub(super) fn attach_plain(&self, connection: &mut Connection, live: &Arc<LiveSession>) -> bool {
        self.detach_current(connection);
        if !live.join(&connection.socket, self.deps.clock.now()) {
            return false;
        }
        connection.bound = Some(Arc::clone(live));
        true
    }

    pub(super) fn detach_current(&self, connection: &mut Connection) {
        if let Some(previous) = connection.bound.take() {
            let socket = connection.socket.id();
            previous.leave(socket);
        }
    }

    pub(super) fn new_session_id(&self) -> Result<SessionId, ChatError> {
        SessionId::parse(&self.deps.ids.new_id()).map_err(|error| {
            tracing::error!(%error, "the id generator produced an invalid session id");
            ChatError::Internal
        })
    }
}
