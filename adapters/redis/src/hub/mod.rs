//! The application's `SessionHub` across replicas, on Redis: each session's frames reach
//! its sockets on every replica, in order, and one replica at a time writes it.
//!
//! - **Publishing** ([`RedisFanout::publish`], under the session's lock, never blocking):
//!   the frame goes to the sockets here at once, exactly as in one process, and its
//!   entry text (encoded once, `codec`) is queued for the [`writer`], one task that
//!   appends the queue to the sessions' streams in order, a batch per round trip. The
//!   queue is bounded in bytes; past the bound, entries for the other replicas are
//!   dropped (with one warning per episode): those replicas catch up from the store when
//!   they next write, and their sockets from the store when they next resume.
//! - **Following** ([`follower`]): one task reads every stream of the sessions live here
//!   with one blocking read, and hands each entry another replica wrote to the session's
//!   copy here (`ReplicaEvents`), which records it and delivers it to its sockets. A
//!   session starts being read from a little before it became live here (its copy drops
//!   what it already has), or from the start of the answer in progress.
//! - **One writer** ([`lease`]): the writer's lease of a session is a Redis key held by
//!   one replica at a time while its actor works, renewed while held, expiring if the
//!   replica dies; giving it back is queued behind that replica's last frames, so the
//!   next holder reads them before it writes. A message is not forwarded to the replica
//!   that wrote last: the replica it reaches waits for the lease (another replica holds
//!   it only while it stores and answers) and writes it there, so no message depends on
//!   a second replica being alive, and an answer is streamed from where it was asked.
//! - **Users**: a user's sockets are counted and reached on this replica only
//!   (`local_sockets`); the per-user cap across replicas is the shared state's.

mod follower;
mod lease;
mod writer;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use crate::connection::RedisConnection;
use async_trait::async_trait;
use chatbox_application::events::{Frame, ServerEvent};
use chatbox_application::local_sockets::{SocketList, UserDirectory};
use chatbox_application::ports::{AnswerLease, LeaseUnavailable, ReplicaEvents, SessionFanout, SessionHub};
use chatbox_application::settings::ModelInfo;
use chatbox_application::socket::SocketId;
use chatbox_domain::{Seq, SessionId};
use dashmap::DashMap;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::codec;
use crate::lease::Leases;
use crate::stream::SessionStreams;
use writer::{Outbox, Write};

/// How the hub is set up.
#[derive(Debug, Clone)]
pub struct HubSettings {
    /// Every key starts with `<prefix>:`.
    pub prefix: String,
    /// This replica's name, unique among the replicas.
    pub replica: String,
    /// The configured models (a `connection_status` read from another replica names them).
    pub models: Arc<[ModelInfo]>,
    /// How long a writer's lease lives without renewal: a dead replica's sessions wait
    /// this long before another replica writes them.
    pub lease_ttl: Duration,
    /// About how many entries each session's stream keeps.
    pub stream_len: usize,
    /// The bound of the queue of entries not yet appended, in bytes.
    pub outbox_bytes: usize,
}

impl HubSettings {
    /// The settings the service runs with, for `prefix` and `replica`.
    #[must_use]
    pub fn new(prefix: &str, replica: &str, models: Arc<[ModelInfo]>) -> Self {
        Self {
            prefix: prefix.to_owned(),
            replica: replica.to_owned(),
            models,
            lease_ttl: Duration::from_secs(10),
            stream_len: 5_000,
            outbox_bytes: 16 * 1024 * 1024,
        }
    }
}

/// A session live here: its copy, and how far its stream has been applied to it.
struct Followed {
    /// Tells this session's registration apart from an earlier one (evicted, then live
    /// again), so the earlier one's end does not remove the later.
    token: u64,
    events: Weak<dyn ReplicaEvents>,
    /// Read from this entry on (exclusive), decided when it became live here.
    start: String,
    /// The last entry applied (this replica's own included), for the lease's catch-up.
    applied: watch::Sender<Option<String>>,
}

/// What the hub's parts share.
struct Shared {
    settings: HubSettings,
    sessions: DashMap<SessionId, Followed>,
    outbox: Outbox,
    streams: SessionStreams,
    leases: Leases,
    /// The fencing number of the last lease this replica was granted, per session: a
    /// grant that follows it directly was held by nobody else in between.
    fences: DashMap<SessionId, u64>,
    next_token: AtomicU64,
    stopped: CancellationToken,
    /// Signalled when a session becomes live here, so the follower starts reading its
    /// stream at once instead of after the read it is blocked in.
    new_session: tokio::sync::Notify,
}

/// Fan-out and writer leases across the replicas sharing a Redis.
pub struct RedisHub {
    shared: Arc<Shared>,
    users: UserDirectory,
}

impl std::fmt::Debug for RedisHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisHub")
            .field("replica", &self.shared.settings.replica)
            .field("sessions", &self.shared.sessions.len())
            .finish_non_exhaustive()
    }
}

impl Drop for RedisHub {
    fn drop(&mut self) {
        self.shared.stopped.cancel();
    }
}

impl RedisHub {
    /// A hub on `connection` (the follower opens a blocking connection of its own to the
    /// same primary), with its writer and follower tasks started; they stop when it is
    /// dropped.
    #[must_use]
    pub fn start(connection: RedisConnection, settings: HubSettings) -> Self {
        let (outbox, queued) = Outbox::new(settings.outbox_bytes);
        let shared = Arc::new(Shared {
            streams: SessionStreams::new(connection.clone(), settings.prefix.clone(), settings.stream_len),
            leases: Leases::new(connection.clone(), settings.prefix.clone()),
            settings,
            sessions: DashMap::new(),
            outbox,
            fences: DashMap::new(),
            next_token: AtomicU64::new(0),
            stopped: CancellationToken::new(),
            new_session: tokio::sync::Notify::new(),
        });
        tokio::spawn(writer::run(Arc::clone(&shared), connection.clone(), queued));
        tokio::spawn(follower::run(Arc::downgrade(&shared), connection, shared.stopped.clone()));
        Self { shared, users: UserDirectory::default() }
    }
}

/// The sockets of one session here, and its copies elsewhere through the streams.
struct RedisFanout {
    session: SessionId,
    token: u64,
    local: SocketList,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for RedisFanout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisFanout")
            .field("session", &self.session)
            .field("local", &self.local.len())
            .finish()
    }
}

impl Drop for RedisFanout {
    fn drop(&mut self) {
        if self.shared.sessions.remove_if(&self.session, |_, followed| followed.token == self.token).is_some()
        {
            // A copy made live here again starts as possibly behind.
            self.shared.fences.remove(&self.session);
        }
    }
}

/// What a frame changes about the session's answer in progress, for the writer's record
/// of where it started.
fn answer_mark(event: &ServerEvent) -> writer::Mark {
    match event {
        ServerEvent::Loading { .. } => writer::Mark::AnswerStarts,
        ServerEvent::AnswerDone { .. } => writer::Mark::AnswerEnds,
        _ => writer::Mark::None,
    }
}

impl SessionFanout for RedisFanout {
    fn publish(&mut self, frame: &Arc<Frame>, except: Option<SocketId>, stored_seq: Seq) -> usize {
        let remaining = self.local.send(frame, except);
        // An acknowledgement concerns its sender only; typing and the like concern the
        // other replicas' sockets too.
        if !matches!(frame.event, ServerEvent::MessageAck { .. })
            && let Some(text) = codec::encode(frame, stored_seq)
        {
            self.shared.outbox.push(Write::Entry {
                session: self.session.clone(),
                text,
                mark: answer_mark(&frame.event),
            });
        }
        remaining
    }

    fn relay_stop(&mut self) {
        self.shared.outbox.push(Write::Entry {
            session: self.session.clone(),
            text: codec::STOP.to_owned(),
            mark: writer::Mark::None,
        });
    }

    fn local(&self) -> &SocketList {
        &self.local
    }

    fn local_mut(&mut self) -> &mut SocketList {
        &mut self.local
    }
}

/// Whole milliseconds since the Unix epoch, by this replica's clock.
fn epoch_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| u64::try_from(since.as_millis()).unwrap_or(u64::MAX))
}

/// How far before becoming live here a session's stream is read: frames published while
/// it was being loaded are read (its copy drops what it has), replicas' clocks may
/// disagree by less than this.
const READ_BACK: Duration = Duration::from_secs(10);

#[async_trait]
impl SessionHub for RedisHub {
    fn open(&self, session: &SessionId, events: Weak<dyn ReplicaEvents>) -> Box<dyn SessionFanout> {
        let token = self.shared.next_token.fetch_add(1, Ordering::Relaxed);
        let read_back = u64::try_from(READ_BACK.as_millis()).unwrap_or(u64::MAX);
        let start = format!("{}-0", epoch_millis().saturating_sub(read_back));
        let (applied, _) = watch::channel(None);
        self.shared.sessions.insert(session.clone(), Followed { token, events, start, applied });
        self.shared.new_session.notify_one();
        Box::new(RedisFanout {
            session: session.clone(),
            token,
            local: SocketList::default(),
            shared: Arc::clone(&self.shared),
        })
    }

    fn local_users(&self) -> &UserDirectory {
        &self.users
    }

    async fn lease_answerer(&self, session: &SessionId) -> Result<AnswerLease, LeaseUnavailable> {
        lease::acquire(&self.shared, session).await
    }

    async fn field_changed(&self, session: &SessionId) {
        // Before the caller goes on: a replica that takes the lease after this reads the
        // change from the store. If Redis cannot be reached, the change stays stored and
        // reaches the other replicas' copies when they next load the session.
        if let Err(error) = self.shared.leases.bump(session.as_str()).await {
            tracing::warn!(session_id = %session, %error, "a session's change could not be announced to the other replicas");
        }
    }

    async fn answerer_gone(&self, session: &SessionId) {
        lease::wait_until_free(&self.shared, session).await;
    }
}
