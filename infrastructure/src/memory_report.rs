//! How much state the service holds in memory right now: the size of every map keyed by
//! user, session or socket, and the number of tracked tasks. Read-only, and cheap enough
//! to call often (each figure is one `len()`); the soak test uses it to prove that churn
//! leaves nothing behind once the cleanup tasks have run.
//!
//! A [`MemoryProbe`] is taken from the [`crate::Application`] before it starts serving
//! (serving consumes the application), and stays valid while and after it runs.

use std::sync::Arc;

use chatbox_application::ChatService;
use chatbox_application::limits::ConnectionGate;
use chatbox_memory_store::MemorySessionRepository;
use tokio_util::task::TaskTracker;

/// The sizes of the in-memory state at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryReport {
    /// Sessions live in memory (the live-session registry), evicted after `SESSION_TTL`.
    pub live_sessions: usize,
    /// Users tracked by the message limiter, forgotten by its cleanup once recovered.
    pub rate_limiter_keys: usize,
    /// Sockets open (the connection gate's total).
    pub connections: usize,
    /// Users in the connection gate's per-user map (gone with their last socket).
    pub connection_users: usize,
    /// Users in the socket directory (gone with their last socket).
    pub socket_directory_users: usize,
    /// Sessions held by the memory storage backend (bounded by
    /// `MEMORY_STORE_MAX_SESSIONS`); `None` with another backend.
    pub stored_sessions: Option<usize>,
    /// Tasks still running in the application's tracker: sockets, session actors and the
    /// two cleanup loops.
    pub tasks: usize,
}

/// Reads a [`MemoryReport`] on demand. Cheap to clone.
#[derive(Debug, Clone)]
pub struct MemoryProbe {
    pub(crate) chat: ChatService,
    pub(crate) gate: Arc<ConnectionGate>,
    pub(crate) tasks: TaskTracker,
    pub(crate) memory_store: Option<Arc<MemorySessionRepository>>,
}

impl MemoryProbe {
    /// The sizes now. Each figure is read on its own, so under traffic they need not
    /// agree with each other; at rest they are exact.
    #[must_use]
    pub fn report(&self) -> MemoryReport {
        MemoryReport {
            live_sessions: self.chat.live_sessions(),
            rate_limiter_keys: self.chat.rate_limiter_keys(),
            connections: self.gate.total(),
            connection_users: self.gate.users(),
            socket_directory_users: self.chat.users_with_sockets(),
            stored_sessions: self.memory_store.as_ref().map(|store| store.len()),
            tasks: self.tasks.len() + self.chat.running_actors(),
        }
    }
}
