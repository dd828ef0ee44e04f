//! Serialises this process's updates of one session document.
//!
//! MongoDB applies each update of a document atomically, so the field-level updates of
//! the write contract (counters by the appender, model, handoff and end by others) never
//! undo each other. FerretDB 1.x does not: it applies an update by reading the document,
//! changing it in memory and writing the whole document back, unconditionally. Two
//! concurrent updates of one session would then lose one of them (the contract suite's
//! race test shows it). Holding a lock around each update of a session document makes
//! the adapter correct on FerretDB for a single Chatbox process, and costs MongoDB
//! next to nothing (one session's updates rarely overlap).
//!
//! The locks are striped by a hash of the session id: memory stays fixed however many
//! sessions there are, and two sessions sharing a stripe only wait for one short update.
//! A lock is held for one driver call (with its retries), never across another lock of
//! the same set. Stored files' records (`files.rs`) have a set of their own, keyed by file
//! id; attaching a file takes its file lock and then its session's lock (never the other
//! way round), so attaching and recording a session's end on its files never overwrite
//! each other on FerretDB.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

use chatbox_domain::SessionId;
use tokio::sync::{Mutex, MutexGuard};

const STRIPES: usize = 64;

/// Striped locks over session ids.
#[derive(Debug)]
pub(crate) struct SessionLocks {
    stripes: Vec<Mutex<()>>,
}

impl Default for SessionLocks {
    fn default() -> Self {
        Self { stripes: (0..STRIPES).map(|_| Mutex::new(())).collect() }
    }
}

impl SessionLocks {
    /// Waits for the lock of `id`'s stripe.
    pub(crate) async fn lock(&self, id: &SessionId) -> MutexGuard<'_, ()> {
        self.lock_key(id.as_str()).await
    }

    /// Waits for the lock of `key`'s stripe (for documents keyed by another id, such as
    /// stored files: a separate set of locks, so the two never share a stripe).
    pub(crate) async fn lock_key(&self, key: &str) -> MutexGuard<'_, ()> {
        let mut hasher = DefaultHasher::new();
        key.hash(&mut hasher);
        let stripe = usize::try_from(hasher.finish() % STRIPES as u64).unwrap_or(0);
        self.stripes[stripe].lock().await
    }
}
