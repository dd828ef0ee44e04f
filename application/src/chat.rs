//! The chat use-cases: connect, send a message and stream its answer, attachments,
//! select a model, stop, typing relay, resume, end, and the cleanup of idle state.
//!
//! A [`Connection`] is one socket's view: its user, the session it is bound to, and the
//! session id issued to it for a new conversation. Session ids from clients are resolved
//! the same way everywhere ([`ChatService::resolve`]): the bound session, the issued id
//! (created on first message), another session the user owns, or — for an unknown or
//! foreign id — a brand-new session under a server-generated id, so nothing reveals
//! whether someone else's id exists.

use std::collections::HashMap;
use std::sync::Arc;

use chatbox_domain::{MessageKind, ModelId, Sender, Seq, Session, SessionId, Timestamp, UserId};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info};

use crate::answer::{self, Turn};
use crate::commands::{Attachment, ClientCommand, SendMessage};
use crate::error::ChatError;
use crate::events::{Frame, ServerEvent};
use crate::limits::MessageLimiter;
use crate::live::{LiveSession, LiveSessions};
use crate::ports::{Clock, IdGenerator, LlmProvider, Randomness, RepositoryError, SessionRepository};
use crate::settings::ChatSettings;
use crate::socket::{SocketDirectory, SocketHandle};

/// Everything the use-cases and the session actors share.
pub(crate) struct Deps {
    pub repo: Arc<dyn SessionRepository>,
    pub providers: HashMap<ModelId, Arc<dyn LlmProvider>>,
    pub clock: Arc<dyn Clock>,
    pub ids: Arc<dyn IdGenerator>,
    pub random: Arc<dyn Randomness>,
    pub settings: ChatSettings,
    pub live: LiveSessions,
    pub limiter: MessageLimiter,
    pub sockets: SocketDirectory,
    pub tasks: TaskTracker,
    /// Cancelled when answers still running at shutdown must stop.
    pub answers_cutoff: CancellationToken,
}

impl Deps {
    /// Runs a storage call within `storage_timeout`: a store that stalls is a store that
    /// failed, so one slow write cannot freeze a session.
    pub async fn storage<T>(
        &self,
        call: impl std::future::Future<Output = Result<T, RepositoryError>>,
    ) -> Result<T, RepositoryError> {
        tokio::time::timeout(self.settings.storage_timeout, call)
            .await
            .unwrap_or_else(|_| Err(RepositoryError::Unavailable("the storage call timed out".into())))
    }
}

/// The outside world the chat use-cases need.
pub struct ChatPorts {
    /// Session storage.
    pub repository: Arc<dyn SessionRepository>,
    /// One provider per configured model id.
    pub providers: HashMap<ModelId, Arc<dyn LlmProvider>>,
    /// Time.
    pub clock: Arc<dyn Clock>,
    /// Ids.
    pub ids: Arc<dyn IdGenerator>,
    /// Randomness (retry jitter).
    pub random: Arc<dyn Randomness>,
}

impl std::fmt::Debug for ChatPorts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatPorts").field("models", &self.providers.len()).finish_non_exhaustive()
    }
}

/// The chat use-cases. Cheap to clone.
#[derive(Clone)]
pub struct ChatService {
    deps: Arc<Deps>,
}

impl std::fmt::Debug for ChatService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatService").field("live_sessions", &self.deps.live.len()).finish_non_exhaustive()
    }
}

/// One socket's state, owned by the inbound adapter's connection task.
#[derive(Debug)]
pub struct Connection {
    socket: Arc<SocketHandle>,
    bound: Option<Arc<LiveSession>>,
    issued: SessionId,
    selected_model: Option<ModelId>,
}

impl Connection {
    /// The socket.
    #[must_use]
    pub const fn socket(&self) -> &Arc<SocketHandle> {
        &self.socket
    }

    /// The session the socket is bound to, or the id issued for a new one.
    #[must_use]
    pub fn session_id(&self) -> &SessionId {
        self.bound.as_ref().map_or(&self.issued, |live| live.id())
    }
}

/// How often a bind is retried when the session is evicted under it (a race with the
/// cleanup task; one retry normally suffices).
const EVICTION_RETRIES: usize = 3;

/// One step of a replay's last page (see [`ChatService::bind`]).
enum Replay {
    /// Messages were stored after the page: queue it and read the difference.
    Behind(Vec<Arc<Frame>>),
    /// The session was evicted: queue the page, then load the session again.
    Evicted(Vec<Arc<Frame>>),
    /// Attached: the page and the answer in progress, then live frames.
    Attached(Vec<Arc<Frame>>),
}

/// What a client-supplied session id resolves to.
enum Target {
    Live(Arc<LiveSession>),
    /// No stored session yet: create it under this id if a message needs it.
    New(SessionId),
}

impl ChatService {
    /// The service. `settings.models` must name exactly the models of `ports.providers`.
    #[must_use]
    pub fn new(ports: ChatPorts, settings: ChatSettings, tasks: TaskTracker) -> Self {
        let limiter = MessageLimiter::new(settings.message_quota);
        Self {
            deps: Arc::new(Deps {
                repo: ports.repository,
                providers: ports.providers,
                clock: ports.clock,
                ids: ports.ids,
                random: ports.random,
                settings,
                live: LiveSessions::default(),
                limiter,
                sockets: SocketDirectory::default(),
                tasks,
                answers_cutoff: CancellationToken::new(),
            }),
        }
    }

    /// The settings.
    #[must_use]
    pub fn settings(&self) -> &ChatSettings {
        &self.deps.settings
    }

    /// The clock.
    #[must_use]
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.deps.clock
    }

    /// Sessions live in memory now.
    #[must_use]
    pub fn live_sessions(&self) -> usize {
        self.deps.live.len()
    }

    /// Whether storage answers (readiness).
    ///
    /// # Errors
    /// The storage failure.
    pub async fn storage_ready(&self) -> Result<(), ChatError> {
        Ok(self.deps.storage(self.deps.repo.ping()).await?)
    }

    /// A frame stamped now.
    #[must_use]
    pub fn frame(&self, event: ServerEvent) -> Arc<Frame> {
        Frame::new(event, self.deps.clock.now())
    }

    /// The error frame for `error`, concerning `session_id`.
    #[must_use]
    pub fn error_frame(&self, error: &ChatError, session_id: Option<SessionId>) -> Arc<Frame> {
        self.frame(ServerEvent::Error {
            session_id,
            code: error.code(),
            message: error.to_string(),
            retry_after: error.retry_after(),
        })
    }

    /// A socket connected. Sends `connection_status` first; when `requested` is a
    /// session of the user, binds to it and replays what follows `last_seq` (and the
    /// answer in progress).
    ///
    /// # Errors
    /// A storage failure while loading the session or its replay.
    pub async fn connect(
        &self,
        socket: Arc<SocketHandle>,
        requested: Option<SessionId>,
        last_seq: Option<Seq>,
    ) -> Result<Connection, ChatError> {
        let mut connection =
            Connection { socket, bound: None, issued: self.new_session_id()?, selected_model: None };
        let resumed = match requested {
            Some(id) => self.owned_live(connection.socket.user(), &id).await?,
            None => None,
        };
        match resumed {
            Some(live) => self.bind(&mut connection, live, last_seq, "connected").await?,
            None => self.send_status(&connection, self.deps.settings.default_model().clone(), "connected"),
        }
        self.deps.sockets.register(&connection.socket);
        Ok(connection)
    }

    /// Handles one client command.
    ///
    /// # Errors
    /// A [`ChatError`] for the socket that sent the command.
    pub async fn handle(&self, connection: &mut Connection, command: ClientCommand) -> Result<(), ChatError> {
        match command {
            ClientCommand::SendMessage(message) => self.send_message(connection, message).await,
            ClientCommand::Attachment(attachment) => self.attach_file(connection, attachment).await,
            ClientCommand::SelectModel { session_id, model_id } => {
                self.select_model(connection, session_id, model_id).await
            }
            ClientCommand::Stop { session_id } => self.stop(connection, session_id).await,
            ClientCommand::HelpRequest { session_id } => self.request_help(connection, session_id).await,
            ClientCommand::Typing { session_id, typing } => {
                self.typing(connection, session_id.as_ref(), typing);
                Ok(())
            }
            ClientCommand::Resume { session_id, last_seq } => {
                match self.owned_live(connection.socket.user(), &session_id).await? {
                    Some(live) => self.bind(connection, live, Some(last_seq), "resumed").await,
                    // Unknown or foreign: as if no id was given, and nothing says which.
                    None => {
                        self.send_status(connection, self.model_of(connection), "connected");
                        Ok(())
                    }
                }
            }
        }
    }

    /// The socket closed.
    pub fn disconnect(&self, connection: Connection) {
        self.deps.sockets.unregister(&connection.socket);
        if let Some(live) = connection.bound {
            let socket = connection.socket.id();
            live.with_state(|state| state.detach(socket));
        }
    }

    async fn send_message(&self, connection: &mut Connection, message: SendMessage) -> Result<(), ChatError> {
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
        let turn = Turn {
            origin: Arc::clone(&connection.socket),
            sender: Sender::User,
            kind: MessageKind::Text,
            content: message.content.into_inner(),
            file_id: None,
            file_url: None,
            metadata: message.metadata,
            client_message_id: message.client_message_id,
            answer: Some(message.style),
        };
        self.submit(&live, turn)
    }

    async fn attach_file(
        &self,
        connection: &mut Connection,
        attachment: Attachment,
    ) -> Result<(), ChatError> {
        self.check_rate(connection.socket.user())?;
        let live = self.target_session(connection, attachment.session_id.as_ref(), None).await?;
        let turn = Turn {
            origin: Arc::clone(&connection.socket),
            sender: Sender::User,
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

    fn check_rate(&self, user: &UserId) -> Result<(), ChatError> {
        self.deps
            .limiter
            .check(user, self.deps.clock.monotonic())
            .map_err(|retry_after| ChatError::RateLimited { retry_after })
    }

    /// Queues a turn with the session's actor: refused if the session ended, the key was
    /// already used, or too many answers wait.
    fn submit(&self, live: &Arc<LiveSession>, turn: Turn) -> Result<(), ChatError> {
        let limit = self.deps.settings.answer_queue_limit;
        live.with_state(|state| {
            if !state.session.is_active() {
                return Err(ChatError::SessionEnded);
            }
            if state.queued_turns >= limit {
                return Err(ChatError::Busy);
            }
            if let Some(id) = &turn.client_message_id
                && !state.remember_client_id(id)
            {
                debug!(session_id = %live.id(), "duplicate client_message_id ignored");
                return Ok(false);
            }
            state.queued_turns += 1;
            state.last_activity = tokio::time::Instant::now();
            Ok(true)
        })
        .and_then(|accepted| {
            if !accepted {
                return Ok(());
            }
            live.submit(turn).map_err(|turn| {
                live.with_state(|state| {
                    state.queued_turns = state.queued_turns.saturating_sub(1);
                    if let Some(id) = &turn.client_message_id {
                        state.forget_client_id(id);
                    }
                });
                ChatError::Busy
            })
        })
    }

    async fn select_model(
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

    async fn change_model(&self, live: &Arc<LiveSession>, model_id: ModelId) -> Result<(), ChatError> {
        let _turn = live.control().await;
        let now = self.deps.clock.now();
        self.deps.storage(self.deps.repo.set_model(live.id(), &model_id, now)).await?;
        live.with_state(|state| state.session.model_id = model_id);
        Ok(())
    }

    async fn stop(
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
            live.with_state(|state| {
                if let Some(answer) = &state.streaming {
                    answer.cancel.cancel();
                }
            });
        }
        Ok(())
    }

    fn typing(&self, connection: &Connection, session_id: Option<&SessionId>, typing: bool) {
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
        live.with_state(|state| state.broadcast(&frame, Some(connection.socket.id())));
    }

    /// The user asks for a human: the session is marked as waiting for one (stored), and
    /// its sockets get `connection_status` with `state="help_requested"`. Repeating it is
    /// harmless. (Alerting admins by email or SMS is not part of this release.)
    async fn request_help(
        &self,
        connection: &mut Connection,
        session_id: Option<SessionId>,
    ) -> Result<(), ChatError> {
        let live = self.target_session(connection, session_id.as_ref(), None).await?;
        let content = "Help request sent. An administrator will join your session shortly.";
        let _turn = live.control().await;
        let handoff = live.with_state(|state| state.session.handoff.clone().request_help());
        let repo = &self.deps.repo;
        let id = live.id().clone();
        self.change_and_announce(
            &live,
            "help_requested",
            Some(content.into()),
            |session, _| session.handoff = handoff.clone(),
            |now| repo.set_handoff(&id, &handoff, now),
        )
        .await
    }

    /// Tells every socket of `user` that a new connection was refused because the user
    /// holds too many (the earlier service did the same, so users learn why).
    pub fn notify_connection_refused(&self, user: &UserId) {
        let frame = self.frame(ServerEvent::Notification {
            content: "Connection limit reached: a new connection was refused. Close another tab or device to connect it."
                .into(),
        });
        self.deps.sockets.send_to_user(user, &frame);
    }

    /// Ends a session of `user`. Idempotent. Its sockets get `connection_status` with
    /// `state="ended"`.
    ///
    /// # Errors
    /// [`ChatError::NotFound`] when the session is not the user's; storage failures.
    pub async fn end_session(&self, user: &UserId, id: &SessionId) -> Result<(), ChatError> {
        let live = self.owned_live(user, id).await?.ok_or(ChatError::NotFound)?;
        live.with_state(|state| {
            if let Some(answer) = &state.streaming {
                answer.cancel.cancel();
            }
        });
        let repo = &self.deps.repo;
        let _turn = live.control().await;
        self.change_and_announce(
            &live,
            "ended",
            None,
            |session, now| session.end(now),
            |now| repo.end(id, now),
        )
        .await
    }

    /// Stores one field-level change of the session (`write`), then applies the same
    /// change to memory (`change`) and tells its sockets the new state with
    /// `connection_status`. Memory changes only after the store accepted the write. The
    /// caller holds the session's control turn ([`LiveSession::control`]).
    async fn change_and_announce<W>(
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
        let snapshot = live.with_state(|state| {
            change(&mut state.session, now);
            state.session.clone()
        });
        let frame = self.frame(ServerEvent::ConnectionStatus {
            user_id: snapshot.owner.clone(),
            session_id: snapshot.id.clone(),
            models: Arc::clone(&self.deps.settings.models),
            model_id: snapshot.model_id.clone(),
            state: state_name,
            content,
        });
        live.with_state(|state| state.broadcast(&frame, None));
        Ok(())
    }

    /// Evicts idle live state (the sessions stay stored); returns how many.
    #[must_use]
    pub fn cleanup_sessions(&self) -> usize {
        self.deps.live.evict_idle(self.deps.settings.session_ttl)
    }

    /// Forgets recovered rate-limit keys; returns (before, after).
    #[must_use]
    pub fn cleanup_rate_limiter(&self) -> (usize, usize) {
        self.deps.limiter.cleanup(self.deps.clock.monotonic())
    }

    /// Shutdown, step one: session actors finish what they hold, then stop.
    pub fn begin_shutdown(&self) {
        self.deps.live.retire_all();
    }

    /// Shutdown, step two (at the deadline): cancel the answers still running; each is
    /// stored with what it has and ends with `done` `finish_reason="cancelled"`.
    pub fn cancel_running_answers(&self) {
        self.deps.answers_cutoff.cancel();
    }

    /// The live session of `user` with this id, loading it from storage if needed.
    /// `None` for unknown ids and ids of other users alike.
    async fn owned_live(&self, user: &UserId, id: &SessionId) -> Result<Option<Arc<LiveSession>>, ChatError> {
        if let Some(live) = self.deps.live.get(id) {
            let owned = live.with_state(|state| state.session.is_owned_by(user));
            return Ok(owned.then_some(live));
        }
        let Some(session) = self.deps.storage(self.deps.repo.load(id)).await? else {
            return Ok(None);
        };
        if !session.is_owned_by(user) {
            return Ok(None);
        }
        let recent =
            self.deps.storage(self.deps.repo.recent_messages(id, crate::live::REMEMBERED_CLIENT_IDS)).await?;
        let client_ids = recent.into_iter().filter_map(|m| m.client_message_id).collect();
        Ok(Some(self.activate(session, client_ids)))
    }

    fn activate(
        &self,
        session: Session,
        client_ids: Vec<chatbox_domain::ClientMessageId>,
    ) -> Arc<LiveSession> {
        let capacity = self.deps.settings.answer_queue_limit + 2;
        let (live, receiver) = self.deps.live.activate(session, client_ids, capacity);
        if let Some(receiver) = receiver {
            self.deps.tasks.spawn(answer::run(Arc::clone(&live), receiver, Arc::clone(&self.deps)));
        }
        live
    }

    /// Resolves a client-supplied session id (see the module docs).
    async fn resolve(
        &self,
        connection: &Connection,
        requested: Option<&SessionId>,
    ) -> Result<Target, ChatError> {
        let requested = requested.unwrap_or_else(|| connection.session_id());
        if let Some(bound) = &connection.bound
            && bound.id() == requested
            && !bound.with_state(|s| s.is_evicted())
        {
            return Ok(Target::Live(Arc::clone(bound)));
        }
        if let Some(live) = self.owned_live(connection.socket.user(), requested).await? {
            return Ok(Target::Live(live));
        }
        if requested == &connection.issued {
            return Ok(Target::New(requested.clone()));
        }
        Ok(Target::New(self.new_session_id()?))
    }

    /// The live session a message goes to, creating and binding it as needed.
    async fn target_session(
        &self,
        connection: &mut Connection,
        requested: Option<&SessionId>,
        model: Option<ModelId>,
    ) -> Result<Arc<LiveSession>, ChatError> {
        for _ in 0..EVICTION_RETRIES {
            match self.resolve(connection, requested).await? {
                // Evicted between resolving and binding: resolve again (it reloads).
                Target::Live(live) if !self.rebind_if_needed(connection, &live) => {}
                Target::Live(live) => return Ok(live),
                Target::New(id) => return self.create_session(connection, id, requested, model).await,
            }
        }
        Err(ChatError::Internal)
    }

    /// Creates a session under `id`, makes it live and binds the socket to it.
    async fn create_session(
        &self,
        connection: &mut Connection,
        id: SessionId,
        requested: Option<&SessionId>,
        model: Option<ModelId>,
    ) -> Result<Arc<LiveSession>, ChatError> {
        let model = model
            .or_else(|| connection.selected_model.clone())
            .unwrap_or_else(|| self.deps.settings.default_model().clone());
        let session = Session::new(id, connection.socket.user().clone(), model, self.deps.clock.now());
        self.deps.storage(self.deps.repo.create(&session)).await?;
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
    fn rebind_if_needed(&self, connection: &mut Connection, live: &Arc<LiveSession>) -> bool {
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
    fn attach_plain(&self, connection: &mut Connection, live: &Arc<LiveSession>) -> bool {
        self.detach_current(connection);
        let frames = live.with_state(|state| {
            let frames = self.in_progress_frames(live.id(), state);
            state.attach(Arc::clone(&connection.socket)).then_some(frames)
        });
        let Some(frames) = frames else { return false };
        connection.socket.send_batch(frames);
        connection.bound = Some(Arc::clone(live));
        true
    }

    fn detach_current(&self, connection: &mut Connection) {
        if let Some(previous) = connection.bound.take() {
            let socket = connection.socket.id();
            previous.with_state(|state| state.detach(socket));
        }
    }

    /// Binds the socket to `live`: `connection_status`, then the stored messages after
    /// `last_seq`, then the answer in progress, then live frames.
    ///
    /// The replay is read from storage page by page, each page queued as one batch as
    /// soon as it is read (so a long history never sits in memory at once). The last
    /// page is queued under the session lock together with the attach, and only if no
    /// message was stored after it (else the difference is read first), so nothing is
    /// lost or doubled. If the session is evicted meanwhile it is loaded again and the
    /// replay continues where it stopped.
    async fn bind(
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
            let user = connection.socket.user().clone();
            live = self.owned_live(&user, live.id()).await?.ok_or(ChatError::NotFound)?;
        }
        Err(ChatError::Internal)
    }

    /// One attempt of [`Self::bind`]; false when `live` was evicted meanwhile. `cursor`
    /// advances past every message already queued to the socket.
    async fn try_bind(
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
                // More may follow: deliver this page now and read on.
                if !connection.socket.send_batch(frames) {
                    return Ok(true);
                }
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
    fn in_progress_frames(&self, session_id: &SessionId, state: &crate::live::LiveState) -> Vec<Arc<Frame>> {
        let Some(answer) = &state.streaming else {
            return Vec::new();
        };
        let mut frames = vec![self.frame(ServerEvent::Loading {
            session_id: session_id.clone(),
            message_id: answer.message_id.clone(),
            style: answer.style,
        })];
        if !answer.text.is_empty() {
            frames.push(self.frame(ServerEvent::AnswerChunk {
                session_id: session_id.clone(),
                message_id: answer.message_id.clone(),
                model_id: answer.model_id.clone(),
                delta: Arc::from(answer.text.as_str()),
                style: answer.style,
            }));
        }
        frames
    }

    fn model_of(&self, connection: &Connection) -> ModelId {
        match &connection.bound {
            Some(live) => live.with_state(|state| state.session.model_id.clone()),
            None => connection
                .selected_model
                .clone()
                .unwrap_or_else(|| self.deps.settings.default_model().clone()),
        }
    }

    fn send_status(&self, connection: &Connection, model_id: ModelId, state: &'static str) {
        connection.socket.send(self.frame(ServerEvent::ConnectionStatus {
            user_id: connection.socket.user().clone(),
            session_id: connection.session_id().clone(),
            models: Arc::clone(&self.deps.settings.models),
            model_id,
            state,
            content: None,
        }));
    }

    fn new_session_id(&self) -> Result<SessionId, ChatError> {
        SessionId::parse(&self.deps.ids.new_id()).map_err(|error| {
            tracing::error!(%error, "the id generator produced an invalid session id");
            ChatError::Internal
        })
    }
}
