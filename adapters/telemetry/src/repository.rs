//! Storage operations, timed: a [`SessionRepository`] that passes every call to the real
//! one and records its duration and outcome under the operation's name
//! (`chatbox_mongodb_operation_seconds{operation,outcome}`, whichever the store). The
//! names are the port methods', except where the earlier service had a name for the same
//! operation (`create_session`, `load_session`, `end_session`), which dashboards know.
//!
//! The use-cases bound each storage call with a deadline and drop the call when it
//! passes; a call dropped before it completed is recorded with outcome `timeout`, so a
//! stalled store shows up here rather than vanishing.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use chatbox_application::ports::{Metrics, RepositoryError, SessionRepository, StorageOutcome};
use chatbox_domain::{
    HandoffState, MessageEffects, ModelId, Seq, Session, SessionId, StoredMessage, Timestamp,
};

/// A repository whose every operation is timed.
pub struct MeteredRepository {
    inner: Arc<dyn SessionRepository>,
    metrics: Arc<dyn Metrics>,
}

impl std::fmt::Debug for MeteredRepository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MeteredRepository").finish_non_exhaustive()
    }
}

impl MeteredRepository {
    /// Times the operations of `inner` into `metrics`.
    #[must_use]
    pub fn new(inner: Arc<dyn SessionRepository>, metrics: Arc<dyn Metrics>) -> Self {
        Self { inner, metrics }
    }

    pub(crate) async fn timed<T>(
        &self,
        operation: &'static str,
        call: impl Future<Output = Result<T, RepositoryError>> + Send,
    ) -> Result<T, RepositoryError> {
        let mut timer = Timer { metrics: &*self.metrics, operation, started: Instant::now(), done: false };
        let result = call.await;
        timer.finish(StorageOutcome::of(&result));
        result
    }
}

/// Records an operation once: when it completes, or as `timeout` when it is dropped.
struct Timer<'a> {
    metrics: &'a dyn Metrics,
    operation: &'static str,
    started: Instant,
    done: bool,
}

impl Timer<'_> {
    fn finish(&mut self, outcome: StorageOutcome) {
        self.done = true;
        self.metrics.storage_operation(self.operation, outcome, self.started.elapsed());
    }
}

impl Drop for Timer<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.metrics.storage_operation(self.operation, StorageOutcome::Timeout, self.started.elapsed());
        }
    }
}

#[async_trait]
impl SessionRepository for MeteredRepository {
    async fn create(&self, session: &Session) -> Result<(), RepositoryError> {
        self.timed("create_session", self.inner.create(session)).await
    }

    async fn load(&self, id: &SessionId) -> Result<Option<Session>, RepositoryError> {
        self.timed("load_session", self.inner.load(id)).await
    }

    async fn append_message(
        &self,
        id: &SessionId,
        message: &StoredMessage,
        effects: &MessageEffects,
    ) -> Result<(), RepositoryError> {
        self.timed("append_message", self.inner.append_message(id, message, effects)).await
    }

    async fn set_model(&self, id: &SessionId, model: &ModelId, at: Timestamp) -> Result<(), RepositoryError> {
        self.timed("set_model", self.inner.set_model(id, model, at)).await
    }

    async fn set_handoff(
        &self,
        id: &SessionId,
        handoff: &HandoffState,
        at: Timestamp,
    ) -> Result<(), RepositoryError> {
        self.timed("set_handoff", self.inner.set_handoff(id, handoff, at)).await
    }

    async fn end(&self, id: &SessionId, at: Timestamp) -> Result<(), RepositoryError> {
        self.timed("end_session", self.inner.end(id, at)).await
    }

    async fn messages_after(
        &self,
        id: &SessionId,
        after: Seq,
        limit: usize,
    ) -> Result<Vec<StoredMessage>, RepositoryError> {
        self.timed("messages_after", self.inner.messages_after(id, after, limit)).await
    }

    async fn recent_messages(
        &self,
        id: &SessionId,
        limit: usize,
    ) -> Result<Vec<StoredMessage>, RepositoryError> {
        self.timed("recent_messages", self.inner.recent_messages(id, limit)).await
    }

    async fn ping(&self) -> Result<(), RepositoryError> {
        self.timed("ping", self.inner.ping()).await
    }
}
