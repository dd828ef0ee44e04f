//! The chat use-cases: connect, send a message and stream its answer, attachments,
//! select a model, stop, typing relay, resume, end, and the cleanup of idle state.
//!
//! A [`Connection`] is one socket's view: its user, the session it is bound to, and the
//! session id issued to it for a new conversation. The use-cases are split by
//! responsibility, one file each:
//! - [`submit`]: admission of messages and attachments (rate limit, queue, idempotency);
//! - [`session_ops`]: model selection, stop, typing, help requests, ending a session;
//! - [`resolve`]: what a client-supplied session id means (the bound session, the id
//!   issued to this connection, another session of the user, or — for an unknown or
//!   foreign id — a brand-new session, so nothing reveals whether someone else's id
//!   exists), and making sessions live;
//! - [`files`]: uploads, downloads and who may read a file, and the deletion of files
//!   whose time is up;
//! - [`replay`]: binding a socket to a session with the replay of what it missed.
//!
//! The shared dependencies live in `crate::deps`, so nothing here imports in a circle
//! with the session actor (`crate::answer`).

mod files;
mod handoff;
mod history;
mod replay;
mod resolve;
mod session_ops;
mod submit;

pub use files::{Download, FileReader, Uploaded};
pub use history::{MessagePage, Reader, SharedConversation};

use std::collections::HashMap;
use std::sync::Arc;

use chatbox_domain::command_budget::{CommandBudget, CommandKind, Spend};
use chatbox_domain::{ModelId, Seq, Session, SessionId, UserId};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::commands::ClientCommand;
use crate::deps::Deps;
use crate::error::ChatError;
use crate::events::{Frame, ServerEvent};
use crate::files::{Files, Uploads};
use crate::limits::{KeyedLimiter, MessageLimiter};
use crate::live::{LiveSession, LiveSessions};
use crate::ports::{
    Clock, IdGenerator, Limiter, LlmProvider, Metrics, Notifier, Randomness, SessionCatalog, SessionHub,
    SessionRepository, SocketSlot,
};
use crate::settings::ChatSettings;
use crate::shared_state::{ConnectionRefused, SharedStateClient};
use crate::socket::SocketHandle;

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
    /// Listings, analytics and share links (usually the same store as `repository`).
    pub catalog: Arc<dyn SessionCatalog>,
    /// Files in conversations (none: uploads are off, attachments are links only).
    pub uploads: Option<Uploads>,
    /// Alert channels for help requests (none: alerts are off).
    pub notifiers: Vec<Arc<dyn Notifier>>,
    /// Metrics ([`crate::ports::NoMetrics`] for none).
    pub metrics: Arc<dyn Metrics>,
    /// How frames reach the sockets of a session or a user, and who answers a session.
    pub hub: Arc<dyn SessionHub>,
    /// The limits and caps shared by every replica (none: this process keeps them).
    pub shared: Option<Arc<SharedStateClient>>,
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
    /// Pays for every command this socket sends.
    budget: CommandBudget,
    bound: Option<Arc<LiveSession>>,
    issued: SessionId,
    selected_model: Option<ModelId>,
    /// The socket's token carries the `admin` or `chat_admin` role.
    admin: bool,
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

    /// Whether this socket may enter `session`: its user owns it, or it is an admin's
    /// socket and that admin assists the session.
    #[must_use]
    pub fn may_enter(&self, session: &Session) -> bool {
        session.is_owned_by(self.socket.user()) || self.assists(session)
    }

    /// True when this is an admin's socket and that admin assists `session` now.
    #[must_use]
    pub fn assists(&self, session: &Session) -> bool {
        self.admin && session.handoff.assisted_by(self.socket.user())
    }
}

/// How often a bind is retried when the session is evicted under it (a race with the
/// cleanup task; one retry normally suffices).
const EVICTION_RETRIES: usize = 3;

impl ChatService {
    /// The service. `settings.models` must name exactly the models of `ports.providers`.
    #[must_use]
    pub fn new(ports: ChatPorts, settings: ChatSettings, tasks: TaskTracker) -> Self {
        let limiter = MessageLimiter::new(settings.message_quota);
        let help_alerts = KeyedLimiter::new(settings.help_alert_quota);
        let help_alerts_per_user = KeyedLimiter::new(settings.help_alert_user_quota);
        let live = LiveSessions::new(Arc::clone(&ports.clock), Arc::clone(&ports.hub));
        let files = ports.uploads.map(|uploads| {
            Files::new(uploads, Arc::clone(&ports.clock), Arc::clone(&ports.ids), Arc::clone(&ports.metrics))
        });
        Self {
            deps: Arc::new(Deps {
                repo: ports.repository,
                providers: ports.providers,
                clock: ports.clock,
                ids: ports.ids,
                random: ports.random,
                catalog: ports.catalog,
                files,
                notifiers: ports.notifiers,
                help_alerts,
                help_alerts_per_user,
                metrics: ports.metrics,
                settings,
                live,
                limiter,
                hub: ports.hub,
                shared: ports.shared,
                tasks,
                answers_cutoff: CancellationToken::new(),
                actors: TaskTracker::new(),
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

    /// Users the message limiter tracks now (read-only; for memory reports).
    #[must_use]
    pub fn rate_limiter_keys(&self) -> usize {
        self.deps.limiter.len()
    }

    /// Users with at least one registered socket now (read-only; for memory reports).
    #[must_use]
    pub fn users_with_sockets(&self) -> usize {
        self.deps.hub.users()
    }

    /// Whether storage answers (readiness).
    ///
    /// # Errors
    /// The storage failure.
    pub async fn storage_ready(&self) -> Result<(), ChatError> {
        Ok(self.deps.storage(self.deps.repo.ping()).await?)
    }

    /// Whether the store the replicas share answers (readiness); `None` when there is
    /// none (one process).
    pub async fn shared_state_ready(&self) -> Option<bool> {
        match &self.deps.shared {
            Some(shared) => Some(shared.ping().await.is_ok()),
            None => None,
        }
    }

    /// Takes a slot of `user`'s sockets across the replicas, under `cap`, when they share
    /// a store: `Ok(None)` when they do not (the process's own gate counts then).
    ///
    /// # Errors
    /// [`ConnectionRefused::Cap`] when `user` holds `cap` sockets across the replicas,
    /// [`ConnectionRefused::Unavailable`] when the store cannot count.
    pub async fn claim_shared_socket(
        &self,
        user: &UserId,
        cap: usize,
    ) -> Result<Option<SocketSlot>, ConnectionRefused> {
        let Some(shared) = &self.deps.shared else {
            return Ok(None);
        };
        match shared.claim_socket(user, cap).await {
            Ok(Some(slot)) => Ok(Some(slot)),
            Ok(None) => Err(ConnectionRefused::Cap),
            Err(_) => Err(ConnectionRefused::Unavailable),
        }
    }

    /// A frame stamped now.
    #[must_use]
    pub fn frame(&self, event: ServerEvent) -> Arc<Frame> {
        Frame::new(event, self.deps.clock.now())
    }

    /// The error frame for `error`, concerning `session_id`.
    #[must_use]
    pub fn error_frame(&self, error: &ChatError, session_id: Option<SessionId>) -> Arc<Frame> {
        self.frame(ServerEvent::error(error, session_id))
    }

    /// A socket connected. Sends `connection_status` first; when `requested` is a
    /// session of the user, binds to it and replays what follows `last_seq` (and the
    /// answer in progress).
    ///
    /// # Errors
    /// A storage failure while loading the session or its replay.
    ///
    /// An admin's socket (`admin`) may also name a session that admin assists: it gets
    /// the whole history (unless `last_seq` says otherwise), then the live frames.
    pub async fn connect(
        &self,
        socket: Arc<SocketHandle>,
        admin: bool,
        requested: Option<SessionId>,
        last_seq: Option<Seq>,
    ) -> Result<Connection, ChatError> {
        let mut connection = Connection {
            socket,
            budget: CommandBudget::new(self.deps.settings.command_quota),
            bound: None,
            issued: self.new_session_id()?,
            selected_model: None,
            admin,
        };
        let resumed = match requested {
            Some(id) => self.reachable_live(&connection, &id).await?,
            None => None,
        };
        match resumed {
            Some(live) => {
                let assisting = live.read(|session| connection.assists(session));
                let last_seq = last_seq.or(assisting.then_some(Seq(0)));
                self.bind(&mut connection, live, last_seq, "connected").await?;
            }
            None => self.send_status(&connection, self.deps.settings.default_model().clone(), "connected"),
        }
        self.deps.hub.register(&connection.socket);
        Ok(connection)
    }

    /// Charges the connection's command budget for one command of `kind` (the adapter
    /// charges frames it could not parse as [`CommandKind::Malformed`]).
    ///
    /// # Errors
    /// [`ChatError::RateLimited`] over budget; [`ChatError::Flooding`] far past it, after
    /// which the adapter closes the socket.
    pub fn charge(&self, connection: &mut Connection, kind: CommandKind) -> Result<(), ChatError> {
        let user = connection.socket.user();
        match connection.budget.spend(kind, self.deps.clock.monotonic()) {
            Spend::Allowed => Ok(()),
            Spend::Refused { retry_after } => {
                self.deps.metrics.rate_limited(Limiter::CommandBudget);
                info!(user_id = %user, ?kind, retry_after_ms = retry_after.as_millis(), "rate limit exceeded: command budget");
                Err(ChatError::RateLimited { retry_after })
            }
            Spend::Flooding => {
                self.deps.metrics.rate_limited(Limiter::CommandBudget);
                warn!(user_id = %user, ?kind, "rate limit exceeded far past the command budget: closing the socket");
                Err(ChatError::Flooding)
            }
        }
    }

    /// Handles one client command, after charging the connection's budget for it.
    ///
    /// # Errors
    /// A [`ChatError`] for the socket that sent the command.
    pub async fn handle(&self, connection: &mut Connection, command: ClientCommand) -> Result<(), ChatError> {
        self.charge(connection, command.kind())?;
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
                match self.reachable_live(connection, &session_id).await? {
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
        self.deps.hub.unregister(&connection.socket);
        if let Some(live) = connection.bound {
            live.leave(connection.socket.id());
        }
    }

    /// Tells every socket of `user` that a new connection was refused because the user
    /// holds too many (the earlier service did the same, so users learn why).
    pub fn notify_connection_refused(&self, user: &UserId) {
        let frame = self.frame(ServerEvent::Notification {
            content: "Connection limit reached: a new connection was refused. Close another tab or device to connect it."
                .into(),
        });
        self.deps.hub.publish_to_user(user, &frame);
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

    /// Completes once every session actor has stopped (after [`Self::begin_shutdown`]):
    /// every answer finished or was cut, was stored, and its last frame is queued to its
    /// sockets.
    pub async fn actors_stopped(&self) {
        self.deps.actors.close();
        self.deps.actors.wait().await;
    }

    /// Session actors running now.
    #[must_use]
    pub fn running_actors(&self) -> usize {
        self.deps.actors.len()
    }

    /// Shutdown, step two (at the deadline): cancel the answers still running; each is
    /// stored with what it has and ends with `done` `finish_reason="cancelled"`.
    pub fn cancel_running_answers(&self) {
        self.deps.answers_cutoff.cancel();
    }
}
