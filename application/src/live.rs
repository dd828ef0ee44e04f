//! Live sessions: the in-memory state of the sessions in use, and their fan-out.
//!
//! A [`LiveSession`] holds the authoritative copy of a session while it is in use, the
//! sockets bound to it, and the answer being streamed. Its state sits behind a plain
//! mutex that is only ever held for short, non-awaiting sections, one per session, so
//! there is no process-wide lock on the message path.
//!
//! Ordering invariant (what makes resume exact): a stored message is broadcast in the
//! same critical section that advances `stored_seq`, and every answer chunk is appended
//! to the partial answer in the same critical section that broadcasts it. A socket that
//! attaches under the lock therefore sees each message either in its replay or live,
//! never both and never neither.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use chatbox_domain::{ClientMessageId, MessageId, ModelId, Seq, Session, SessionId};
use dashmap::DashMap;
use dashmap::mapref::entry::Entry;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::answer::Turn;
use crate::events::{AnswerStyle, Frame};
use crate::ports::Clock;
use crate::socket::{SocketHandle, SocketId};

/// How many recent client idempotency keys a live session remembers.
pub const REMEMBERED_CLIENT_IDS: usize = 128;

/// The answer being streamed.
#[derive(Debug)]
pub struct StreamingAnswer {
    /// Its message id.
    pub message_id: MessageId,
    /// The model answering.
    pub model_id: ModelId,
    /// Frame naming.
    pub style: AnswerStyle,
    /// Everything streamed so far (at most `MAX_ANSWER_CHARS` characters).
    pub text: String,
    /// Cancels it (stop, shutdown).
    pub cancel: CancellationToken,
    /// The frame with everything streamed so far, for sockets that join mid-answer: built
    /// once per length and shared by every socket that joins meanwhile, so joining
    /// copies nothing.
    catch_up: Option<Arc<Frame>>,
}

impl StreamingAnswer {
    /// A new answer with no text yet.
    #[must_use]
    pub fn new(
        message_id: MessageId,
        model_id: ModelId,
        style: AnswerStyle,
        cancel: CancellationToken,
    ) -> Self {
        Self { message_id, model_id, style, text: String::new(), cancel, catch_up: None }
    }

    /// Appends streamed text.
    pub fn append(&mut self, delta: &str) {
        self.text.push_str(delta);
        self.catch_up = None;
    }

    /// The catch-up frame for the text so far (`build` makes it from the shared text when
    /// there is none for this length yet); `None` before the first chunk.
    pub fn catch_up(&mut self, build: impl FnOnce(Arc<str>) -> Arc<Frame>) -> Option<Arc<Frame>> {
        if self.text.is_empty() {
            return None;
        }
        let text = &self.text;
        Some(Arc::clone(self.catch_up.get_or_insert_with(|| build(Arc::from(text.as_str())))))
    }
}

/// The mutable part of a live session.
pub struct LiveState {
    /// The authoritative session.
    pub session: Session,
    /// The sequence number of the last message known to be in storage.
    pub stored_seq: Seq,
    /// The answer being streamed.
    pub streaming: Option<StreamingAnswer>,
    /// Turns accepted and not yet processed (stored, or answered).
    pub queued_turns: usize,
    /// Last time anything happened (for eviction), on the service's monotonic clock.
    pub last_activity: Duration,
    /// Since when no socket is bound (for `RECONNECT_TIMEOUT`), on the same clock.
    pub unattended_since: Option<Duration>,
    /// An answer waits in the session actor's outbox for storage to return.
    pub unstored_answer: bool,
    clock: Arc<dyn Clock>,
    subscribers: Vec<Arc<SocketHandle>>,
    recent_client_ids: VecDeque<ClientKey>,
    evicted: bool,
}

/// A client idempotency key the session has seen, and where its message is once stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientKey {
    /// The key.
    pub id: ClientMessageId,
    /// The stored message's id and sequence number; `None` while it waits to be stored.
    pub stored: Option<(MessageId, Seq)>,
}

/// What [`LiveState::remember_client_id`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientKeySeen {
    /// Never seen: the message is new.
    New,
    /// Accepted before, not stored yet: its acknowledgement is still to come.
    Pending,
    /// Already stored with this id and sequence number.
    Stored(MessageId, Seq),
}

impl LiveState {
    /// Sends a frame to every bound socket except `except`. Sockets that are closing or
    /// overflow are unbound.
    pub fn broadcast(&mut self, frame: &Arc<Frame>, except: Option<SocketId>) {
        let before = self.subscribers.len();
        self.subscribers.retain(|socket| Some(socket.id()) == except || socket.send(Arc::clone(frame)));
        if before > 0 && self.subscribers.is_empty() {
            self.unattended_since = Some(self.clock.monotonic());
        }
    }

    /// Marks the session active now.
    pub fn touch(&mut self) {
        self.last_activity = self.clock.monotonic();
    }

    /// Binds a socket. Refused (false) once the session was evicted: its actor is gone,
    /// and the caller must load the session again.
    #[must_use]
    pub fn attach(&mut self, socket: Arc<SocketHandle>) -> bool {
        if self.evicted {
            return false;
        }
        if !self.subscribers.iter().any(|s| s.id() == socket.id()) {
            self.subscribers.push(socket);
        }
        self.unattended_since = None;
        self.touch();
        true
    }

    /// Unbinds a socket.
    pub fn detach(&mut self, socket: SocketId) {
        let before = self.subscribers.len();
        self.subscribers.retain(|s| s.id() != socket);
        if before > 0 && self.subscribers.is_empty() {
            self.unattended_since = Some(self.clock.monotonic());
        }
        self.touch();
    }

    /// True once the cleanup task dropped this session from memory.
    #[must_use]
    pub const fn is_evicted(&self) -> bool {
        self.evicted
    }

    /// Remembers a client idempotency key, unless it is already known: then says whether
    /// its message is stored yet.
    pub fn remember_client_id(&mut self, id: &ClientMessageId) -> ClientKeySeen {
        if let Some(known) = self.recent_client_ids.iter().find(|known| &known.id == id) {
            return known
                .stored
                .clone()
                .map_or(ClientKeySeen::Pending, |(message_id, seq)| ClientKeySeen::Stored(message_id, seq));
        }
        if self.recent_client_ids.len() == REMEMBERED_CLIENT_IDS {
            self.recent_client_ids.pop_front();
        }
        self.recent_client_ids.push_back(ClientKey { id: id.clone(), stored: None });
        ClientKeySeen::New
    }

    /// Records where the message of a remembered key was stored, so a repeat of it is
    /// acknowledged again rather than stored twice.
    pub fn client_id_stored(&mut self, id: &ClientMessageId, message_id: &MessageId, seq: Seq) {
        if let Some(known) = self.recent_client_ids.iter_mut().find(|known| &known.id == id) {
            known.stored = Some((message_id.clone(), seq));
        }
    }

    /// Forgets a key whose message could not be stored, so a retry is accepted.
    pub fn forget_client_id(&mut self, id: &ClientMessageId) {
        self.recent_client_ids.retain(|known| &known.id != id);
    }
}

impl std::fmt::Debug for LiveState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveState")
            .field("session", &self.session.id)
            .field("stored_seq", &self.stored_seq)
            .field("subscribers", &self.subscribers.len())
            .finish_non_exhaustive()
    }
}

/// A session in use.
#[derive(Debug)]
pub struct LiveSession {
    id: SessionId,
    state: Mutex<LiveState>,
    /// Serialises the field-level writes of this session (model, handoff, end).
    control: tokio::sync::Mutex<()>,
    turns: mpsc::Sender<Turn>,
    retired: CancellationToken,
}

impl LiveSession {
    /// Its id.
    #[must_use]
    pub const fn id(&self) -> &SessionId {
        &self.id
    }

    /// Runs `f` on the state under the session's lock. `f` must not block.
    pub fn with_state<R>(&self, f: impl FnOnce(&mut LiveState) -> R) -> R {
        f(&mut self.lock())
    }

    fn lock(&self) -> MutexGuard<'_, LiveState> {
        // A panic while holding the lock leaves plain data behind, still consistent
        // enough to keep serving; poisoning would take the whole session down instead.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits for this session's turn to change one of its fields (model, handoff,
    /// status). It is held across the store write on purpose, so that the stored order of
    /// these rare changes and the in-memory order agree; the message path (the actor)
    /// never takes it, so streaming never waits on it.
    pub async fn control(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.control.lock().await
    }

    /// Hands a turn to the session's actor without waiting.
    ///
    /// # Errors
    /// Gives the turn back when the actor's queue is full or the actor is gone.
    pub fn submit(&self, turn: Turn) -> Result<(), Box<Turn>> {
        self.turns.try_send(turn).map_err(|error| Box::new(error.into_inner()))
    }

    /// Completes when the session was evicted or the service shuts down its actors.
    pub async fn retired(&self) {
        self.retired.cancelled().await;
    }
}

/// The registry of live sessions.
pub struct LiveSessions {
    sessions: DashMap<SessionId, Arc<LiveSession>>,
    clock: Arc<dyn Clock>,
    /// Cancelled at shutdown. Every session's `retired` token is a child of it, so a
    /// session made live after shutdown began is born retired and its actor ends too.
    shutdown: CancellationToken,
}

impl std::fmt::Debug for LiveSessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveSessions").field("sessions", &self.sessions.len()).finish_non_exhaustive()
    }
}

impl LiveSessions {
    /// An empty registry; idleness is measured on `clock`.
    #[must_use]
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self { sessions: DashMap::new(), clock, shutdown: CancellationToken::new() }
    }

    /// The live session with this id, if it is in memory and not evicted.
    #[must_use]
    pub fn get(&self, id: &SessionId) -> Option<Arc<LiveSession>> {
        self.sessions
            .get(id)
            .map(|live| Arc::clone(&live))
            .filter(|live| !live.with_state(|s| s.is_evicted()))
    }

    /// Makes `session` live unless it already is, in which case the existing one wins.
    /// Returns the live session and, when it was created here, the receiver its actor
    /// must consume.
    pub fn activate(
        &self,
        session: Session,
        client_keys: Vec<ClientKey>,
        queue_capacity: usize,
    ) -> (Arc<LiveSession>, Option<mpsc::Receiver<Turn>>) {
        match self.sessions.entry(session.id.clone()) {
            Entry::Occupied(existing) if !existing.get().with_state(|s| s.is_evicted()) => {
                (Arc::clone(existing.get()), None)
            }
            entry => {
                let (turns, receiver) = mpsc::channel(queue_capacity.max(1));
                let stored_seq = session.last_seq;
                let mut recent_client_ids = VecDeque::with_capacity(client_keys.len());
                recent_client_ids.extend(client_keys.into_iter().rev().take(REMEMBERED_CLIENT_IDS).rev());
                let live = Arc::new(LiveSession {
                    id: session.id.clone(),
                    state: Mutex::new(LiveState {
                        session,
                        stored_seq,
                        streaming: None,
                        queued_turns: 0,
                        last_activity: self.clock.monotonic(),
                        unattended_since: Some(self.clock.monotonic()),
                        unstored_answer: false,
                        clock: Arc::clone(&self.clock),
                        subscribers: Vec::new(),
                        recent_client_ids,
                        evicted: false,
                    }),
                    control: tokio::sync::Mutex::new(()),
                    turns,
                    retired: self.shutdown.child_token(),
                });
                match entry {
                    Entry::Occupied(mut stale) => {
                        stale.insert(Arc::clone(&live));
                    }
                    Entry::Vacant(vacant) => {
                        vacant.insert(Arc::clone(&live));
                    }
                }
                (live, Some(receiver))
            }
        }
    }

    /// Evicts sessions with no socket, no work, and no activity for `ttl`. Returns how
    /// many were evicted. Their stored data is untouched.
    pub fn evict_idle(&self, ttl: Duration) -> usize {
        let now = self.clock.monotonic();
        let mut evicted = 0;
        self.sessions.retain(|_, live| {
            let evict = live.with_state(|s| {
                let idle = s.subscribers.is_empty()
                    && s.streaming.is_none()
                    && s.queued_turns == 0
                    && !s.unstored_answer
                    && now.saturating_sub(s.last_activity) >= ttl;
                if idle {
                    s.evicted = true;
                }
                idle
            });
            if evict {
                live.retired.cancel();
                evicted += 1;
            }
            !evict
        });
        evicted
    }

    /// Retires every live session's actor (shutdown, after answers had their time).
    pub fn retire_all(&self) {
        self.shutdown.cancel();
    }

    /// True once shutdown began ([`Self::retire_all`]).
    #[must_use]
    pub fn is_shutting_down(&self) -> bool {
        self.shutdown.is_cancelled()
    }

    /// How many sessions are live.
    #[must_use]
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    /// True when none is.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chatbox_domain::{ModelId, UserId};

    struct FixedClock;

    impl Clock for FixedClock {
        fn now(&self) -> chatbox_domain::Timestamp {
            chrono::DateTime::from_timestamp(1_800_000_000, 0).expect("time")
        }

        fn monotonic(&self) -> Duration {
            Duration::from_secs(1_000)
        }
    }

    fn session(id: &str) -> Session {
        let now = chrono::DateTime::from_timestamp(1_800_000_000, 0).expect("time");
        Session::new(
            SessionId::parse(id).expect("id"),
            UserId::parse("u").expect("id"),
            ModelId::parse("m").expect("id"),
            now,
        )
    }

    #[test]
    fn an_evicted_session_refuses_sockets_and_is_replaced_on_the_next_activation() {
        let sessions = LiveSessions::new(Arc::new(FixedClock));
        let (live, receiver) = sessions.activate(session("s"), Vec::new(), 4);
        assert!(receiver.is_some(), "a new live session gets an actor queue");
        let (same, none) = sessions.activate(session("s"), Vec::new(), 4);
        assert!(Arc::ptr_eq(&live, &same) && none.is_none(), "the live one wins");

        assert_eq!(sessions.evict_idle(Duration::ZERO), 1);
        // A socket that resolved the session just before the eviction must not attach
        // to it: its actor is gone.
        let budget = crate::socket::SocketBudget { max_bytes: 4096, encode: |_| String::new() };
        let (socket, _queue) = SocketHandle::new(UserId::parse("u").expect("id"), budget);
        assert!(!live.with_state(|state| state.attach(Arc::clone(&socket))));
        assert!(sessions.get(live.id()).is_none());
        let (fresh, receiver) = sessions.activate(session("s"), Vec::new(), 4);
        assert!(!Arc::ptr_eq(&live, &fresh) && receiver.is_some(), "loaded again with a new actor");
        assert!(fresh.with_state(|state| state.attach(socket)));
        assert_eq!(sessions.evict_idle(Duration::ZERO), 0, "a bound session is never evicted");
    }

    #[tokio::test]
    async fn a_session_made_live_after_shutdown_began_is_retired_at_once() {
        let sessions = LiveSessions::new(Arc::new(FixedClock));
        let (before, _) = sessions.activate(session("before"), Vec::new(), 4);
        sessions.retire_all();
        let (after, _) = sessions.activate(session("after"), Vec::new(), 4);
        let retired = async {
            before.retired().await;
            after.retired().await;
        };
        tokio::time::timeout(Duration::from_secs(5), retired).await.expect("both actors are told to stop");
    }

    #[test]
    fn client_ids_are_remembered_boundedly_and_can_be_forgotten() {
        let sessions = LiveSessions::new(Arc::new(FixedClock));
        let (live, _) = sessions.activate(session("s"), Vec::new(), 4);
        live.with_state(|state| {
            let first = ClientMessageId::parse("k0").expect("id");
            assert_eq!(state.remember_client_id(&first), ClientKeySeen::New);
            assert_eq!(state.remember_client_id(&first), ClientKeySeen::Pending, "a repeat is recognised");
            state.forget_client_id(&first);
            assert_eq!(
                state.remember_client_id(&first),
                ClientKeySeen::New,
                "forgotten after a failed store"
            );
            let message_id = MessageId::parse("m0").expect("id");
            state.client_id_stored(&first, &message_id, Seq(7));
            assert_eq!(
                state.remember_client_id(&first),
                ClientKeySeen::Stored(message_id, Seq(7)),
                "a stored repeat names its message"
            );
            for n in 1..=REMEMBERED_CLIENT_IDS {
                let key = ClientMessageId::parse(&format!("k{n}")).expect("id");
                assert_eq!(state.remember_client_id(&key), ClientKeySeen::New);
            }
            assert_eq!(
                state.remember_client_id(&first),
                ClientKeySeen::New,
                "the oldest key fell out of the bounded window"
            );
        });
    }
}
