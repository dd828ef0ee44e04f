//! The memory store behind a switch: message and session-field writes work, fail, or
//! never complete, as the test sets it, and so does the readiness ping; reads always go
//! through.

use std::sync::{Arc, Mutex};

use tokio::sync::{Notify, Semaphore};

use async_trait::async_trait;
use chatbox_application::ports::{RepositoryError, SessionRepository};
use chatbox_domain::{
    HandoffState, MessageEffects, ModelId, Seq, Session, SessionId, StoredMessage, Timestamp,
};
use chatbox_memory_store::MemorySessionRepository;

/// What the storage does with writes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Storage {
    Works,
    Fails,
    Stalls,
    /// A message write lands in the store, then its call waits until
    /// [`FlakyRepository::release_writes`]: the window between storage having a message
    /// and the service recording it.
    LandsThenWaits,
}

/// The memory store, with writes that can be made to fail or stall.
pub struct FlakyRepository {
    inner: Arc<MemorySessionRepository>,
    mode: Mutex<Storage>,
    /// Signalled when a held write has landed.
    landed: Notify,
    /// Permits for held writes to return.
    release: Semaphore,
    /// How many times a session was read whole (`load`).
    loads: std::sync::atomic::AtomicUsize,
}

impl FlakyRepository {
    pub fn new(inner: Arc<MemorySessionRepository>) -> Self {
        Self {
            inner,
            mode: Mutex::new(Storage::Works),
            landed: Notify::new(),
            release: Semaphore::new(0),
            loads: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// Completes once a write held by [`Storage::LandsThenWaits`] is in the store.
    pub async fn write_landed(&self) {
        self.landed.notified().await;
    }

    /// How many times a session was read whole so far.
    pub fn loads(&self) -> usize {
        self.loads.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Lets every held write return.
    pub fn release_writes(&self) {
        self.release.add_permits(Semaphore::MAX_PERMITS / 2);
    }

    /// From now on, writes do what `mode` says.
    pub fn set(&self, mode: Storage) {
        *self.mode.lock().expect("lock") = mode;
    }

    async fn gate(&self) -> Result<(), RepositoryError> {
        let mode = *self.mode.lock().expect("lock");
        match mode {
            Storage::Works => Ok(()),
            Storage::Fails => Err(RepositoryError::Unavailable("down".into())),
            Storage::Stalls => futures::future::pending().await,
            Storage::LandsThenWaits => Ok(()),
        }
    }
}

#[async_trait]
impl SessionRepository for FlakyRepository {
    async fn create(&self, session: &Session) -> Result<(), RepositoryError> {
        self.inner.create(session).await
    }
    async fn load(&self, id: &SessionId) -> Result<Option<Session>, RepositoryError> {
        self.loads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.load(id).await
    }
    async fn append_message(
        &self,
        id: &SessionId,
        message: &StoredMessage,
        effects: &MessageEffects,
    ) -> Result<(), RepositoryError> {
        self.gate().await?;
        self.inner.append_message(id, message, effects).await?;
        if *self.mode.lock().expect("lock") == Storage::LandsThenWaits {
            self.landed.notify_one();
            let _ = self.release.acquire().await.map(tokio::sync::SemaphorePermit::forget);
        }
        Ok(())
    }
    async fn set_model(&self, id: &SessionId, model: &ModelId, at: Timestamp) -> Result<(), RepositoryError> {
        self.gate().await?;
        self.inner.set_model(id, model, at).await
    }
    async fn set_handoff(
        &self,
        id: &SessionId,
        handoff: &HandoffState,
        at: Timestamp,
    ) -> Result<(), RepositoryError> {
        self.gate().await?;
        self.inner.set_handoff(id, handoff, at).await
    }
    async fn end(&self, id: &SessionId, at: Timestamp) -> Result<(), RepositoryError> {
        self.gate().await?;
        self.inner.end(id, at).await
    }
    async fn messages_after(
        &self,
        id: &SessionId,
        after: Seq,
        limit: usize,
    ) -> Result<Vec<StoredMessage>, RepositoryError> {
        self.inner.messages_after(id, after, limit).await
    }
    async fn recent_messages(
        &self,
        id: &SessionId,
        limit: usize,
    ) -> Result<Vec<StoredMessage>, RepositoryError> {
        self.inner.recent_messages(id, limit).await
    }
    async fn ping(&self) -> Result<(), RepositoryError> {
        self.gate().await?;
        self.inner.ping().await
    }
}
