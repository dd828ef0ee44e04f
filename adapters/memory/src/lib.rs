//! # In-process adapters
//!
//! - [`LocalHub`] (`hub.rs`): the [`SessionHub`](chatbox_application::ports::SessionHub)
//!   of a single process: every socket of a session or a user is in this process, and a
//!   session's answer lease is a local semaphore.
//! - [`MemorySessionRepository`] (here): session storage in process memory.
//!
//! ## Session storage
//!
//! A [`SessionRepository`] kept in process memory, for `--dev` and tests. It keeps at
//! most `max_sessions` sessions (`MEMORY_STORE_MAX_SESSIONS`), dropping the least
//! recently active beyond that (its uploaded files become due for deletion with it), so
//! a long-running development server cannot grow without bound. Everything is lost when the process exits.
//!
//! It is also the [`SessionCatalog`](chatbox_application::ports::SessionCatalog) (listings,
//! analytics, share grants; `catalog.rs`). Besides the session and its messages it keeps,
//! per session, what only the catalog reads: the sticky analytics flags (help was ever
//! requested, an admin ever assisted, and the last assisting admin's name), kept by
//! `set_handoff` as the MongoDB adapter keeps them, and the share grant.
//!
//! It is also the [`FileCatalog`](chatbox_application::ports::FileCatalog): stored
//! files' records (`files.rs`), in a map of their own; `end` copies the session's end
//! time onto its files, as the MongoDB adapter does.
//!
//! One mutex guards the sessions, another the files; neither is held across an `.await`
//! (no method awaits), and never both at once.

#![forbid(unsafe_code)]

mod catalog;
mod files;
mod hub;

pub use hub::{LocalFanout, LocalHub};

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use chatbox_application::ports::{RepositoryError, SessionRepository, ShareGrant};
use chatbox_domain::upload::FileId;
use chatbox_domain::{
    HandoffState, MessageEffects, ModelId, Seq, Session, SessionId, StoredMessage, Timestamp,
};

#[derive(Debug)]
struct Stored {
    session: Session,
    messages: Vec<StoredMessage>,
    analytics: Analytics,
    share: Option<ShareGrant>,
}

/// What the handoff history leaves behind: flags that stay true once set, and the admin
/// who assists now or assisted last (a released session keeps the name).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Analytics {
    help_requested: bool,
    admin_assisted: bool,
    assisting_admin_name: Option<String>,
}

impl Analytics {
    /// Accounts for entering `handoff`.
    fn note(&mut self, handoff: &HandoffState) {
        match handoff {
            HandoffState::Ai => {}
            HandoffState::HelpRequested => self.help_requested = true,
            HandoffState::AdminAssisting { admin_name, .. } => {
                self.admin_assisted = true;
                self.assisting_admin_name = Some(admin_name.clone());
            }
        }
    }
}

/// Sessions and messages in memory.
#[derive(Debug)]
pub struct MemorySessionRepository {
    max_sessions: usize,
    sessions: Mutex<HashMap<SessionId, Stored>>,
    files: Mutex<HashMap<FileId, files::FileEntry>>,
}

impl MemorySessionRepository {
    /// An empty store keeping at most `max_sessions` sessions.
    #[must_use]
    pub fn new(max_sessions: usize) -> Self {
        Self {
            max_sessions: max_sessions.max(1),
            sessions: Mutex::new(HashMap::new()),
            files: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<SessionId, Stored>> {
        self.sessions.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn lock_files(&self) -> MutexGuard<'_, HashMap<FileId, files::FileEntry>> {
        self.files.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sessions stored now.
    #[must_use]
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// True when none is stored.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }
}

impl MemorySessionRepository {
    /// Applies a field-level change to one stored session.
    fn change(&self, id: &SessionId, change: impl FnOnce(&mut Stored)) -> Result<(), RepositoryError> {
        let mut sessions = self.lock();
        change(sessions.get_mut(id).ok_or(RepositoryError::NotFound)?);
        Ok(())
    }
}

/// Drops the least recently active session; returns its id.
fn evict_least_recent(sessions: &mut HashMap<SessionId, Stored>) -> Option<SessionId> {
    let oldest = sessions
        .values()
        .min_by_key(|stored| stored.session.last_activity)
        .map(|stored| stored.session.id.clone())?;
    sessions.remove(&oldest);
    Some(oldest)
}

#[async_trait]
impl SessionRepository for MemorySessionRepository {
    async fn create(&self, session: &Session) -> Result<(), RepositoryError> {
        let mut evicted = Vec::new();
        {
            let mut sessions = self.lock();
            if sessions.contains_key(&session.id) {
                return Err(RepositoryError::AlreadyExists);
            }
            while sessions.len() >= self.max_sessions {
                evicted.extend(evict_least_recent(&mut sessions));
            }
            let mut analytics = Analytics::default();
            analytics.note(&session.handoff);
            let stored = Stored { session: session.clone(), messages: Vec::new(), analytics, share: None };
            sessions.insert(session.id.clone(), stored);
        }
        // A session's data is gone: its files go with it, at the next cleanup (taken after
        // the sessions' lock, never together with it).
        for id in &evicted {
            self.files_due_now(id);
        }
        Ok(())
    }

    async fn load(&self, id: &SessionId) -> Result<Option<Session>, RepositoryError> {
        Ok(self.lock().get(id).map(|stored| stored.session.clone()))
    }

    async fn append_message(
        &self,
        id: &SessionId,
        message: &StoredMessage,
        effects: &MessageEffects,
    ) -> Result<(), RepositoryError> {
        let mut sessions = self.lock();
        let stored = sessions.get_mut(id).ok_or(RepositoryError::NotFound)?;
        if let Some(existing) = stored.messages.iter().rev().find(|m| m.seq == message.seq) {
            // The same message again (a retry) is a success; another one is a conflict.
            return if existing.id == message.id { Ok(()) } else { Err(RepositoryError::Conflict) };
        }
        if message.seq != stored.session.next_seq() {
            return Err(RepositoryError::Conflict);
        }
        stored.session.record(message.seq, message.timestamp, effects);
        stored.messages.push(message.clone());
        Ok(())
    }

    async fn set_model(&self, id: &SessionId, model: &ModelId, at: Timestamp) -> Result<(), RepositoryError> {
        self.change(id, |stored| {
            stored.session.model_id = model.clone();
            stored.session.last_activity = stored.session.last_activity.max(at);
        })
    }

    async fn set_handoff(
        &self,
        id: &SessionId,
        handoff: &HandoffState,
        at: Timestamp,
    ) -> Result<(), RepositoryError> {
        self.change(id, |stored| {
            stored.analytics.note(handoff);
            stored.session.handoff = handoff.clone();
            stored.session.last_activity = stored.session.last_activity.max(at);
        })
    }

    async fn end(&self, id: &SessionId, at: Timestamp) -> Result<(), RepositoryError> {
        let mut ended_at = None;
        self.change(id, |stored| {
            stored.session.end(at);
            ended_at = stored.session.ended_at();
        })?;
        // The stored (first) end time onto the session's files, the sessions' lock
        // released first.
        if let Some(ended_at) = ended_at {
            self.record_end(id, ended_at);
        }
        Ok(())
    }

    async fn messages_after(
        &self,
        id: &SessionId,
        after: Seq,
        limit: usize,
    ) -> Result<Vec<StoredMessage>, RepositoryError> {
        let sessions = self.lock();
        let Some(stored) = sessions.get(id) else {
            return Ok(Vec::new());
        };
        let start = stored.messages.partition_point(|m| m.seq <= after);
        Ok(stored.messages[start..].iter().take(limit).cloned().collect())
    }

    async fn recent_messages(
        &self,
        id: &SessionId,
        limit: usize,
    ) -> Result<Vec<StoredMessage>, RepositoryError> {
        let sessions = self.lock();
        let Some(stored) = sessions.get(id) else {
            return Ok(Vec::new());
        };
        let start = stored.messages.len().saturating_sub(limit);
        Ok(stored.messages[start..].to_vec())
    }

    async fn ping(&self) -> Result<(), RepositoryError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chatbox_domain::{MessageId, ModelId, Sender, UserId};

    fn session(id: &str, owner: &str, at: i64) -> Session {
        Session::new(
            SessionId::parse(id).expect("id"),
            UserId::parse(owner).expect("id"),
            ModelId::parse("demo").expect("id"),
            chrono::DateTime::from_timestamp(at, 0).expect("time"),
        )
    }

    #[tokio::test]
    async fn keeps_at_most_max_sessions_dropping_the_least_recent() {
        let repo = MemorySessionRepository::new(2);
        repo.create(&session("a", "u", 10)).await.expect("a");
        repo.create(&session("b", "u", 30)).await.expect("b");
        repo.create(&session("c", "u", 20)).await.expect("c");
        assert_eq!(repo.len(), 2);
        assert!(repo.load(&SessionId::parse("a").expect("id")).await.expect("load").is_none());
        assert!(matches!(repo.create(&session("b", "u", 40)).await, Err(RepositoryError::AlreadyExists)));
    }

    #[tokio::test]
    async fn the_files_of_an_evicted_session_are_due_for_deletion_at_once() {
        use chatbox_application::ports::FileCatalog;
        use chatbox_domain::upload::{ExpiryReason, FileId, MediaType, StoredFile};

        let repo = MemorySessionRepository::new(1);
        let first = session("a", "u", 10);
        repo.create(&first).await.expect("a");
        let file = StoredFile {
            id: FileId::from_random([1; 16]),
            owner: UserId::parse("u").expect("id"),
            session: None,
            name: "a.png".into(),
            media_type: MediaType::from_essence("image/png").expect("png"),
            size: 1,
            sha256: String::new(),
            created_at: first.created_at,
            attached_at: None,
        };
        repo.insert_file(&file).await.expect("insert");
        repo.attach_file(&file.id, &file.owner, &first.id, first.created_at).await.expect("attach");
        let long_ago = chrono::DateTime::from_timestamp(0, 0).expect("time");
        assert!(
            repo.expired_files(long_ago, long_ago, 10).await.expect("expired").is_empty(),
            "a live session's"
        );
        repo.create(&session("b", "u", 20)).await.expect("b evicts a");
        let due = repo.expired_files(long_ago, long_ago, 10).await.expect("expired");
        assert_eq!(due.len(), 1, "due whatever the retention");
        assert_eq!((due[0].id.clone(), due[0].reason), (file.id, ExpiryReason::Retention));
    }

    #[tokio::test]
    async fn messages_page_by_sequence_number() {
        let repo = MemorySessionRepository::new(10);
        let mut s = session("s", "u", 10);
        repo.create(&s).await.expect("create");
        for i in 1..=5u64 {
            let seq = s.next_seq();
            let effects = s.user_message_effects(Some("hi"));
            s.record(seq, s.created_at, &effects);
            let message = StoredMessage::text(
                MessageId::parse(&format!("m{i}")).expect("id"),
                seq,
                Sender::User,
                format!("text {i}"),
                s.created_at,
            );
            repo.append_message(&s.id, &message, &effects).await.expect("append");
            repo.append_message(&s.id, &message, &effects).await.expect("a retry is a success");
        }
        let after = repo.messages_after(&s.id, Seq(2), 2).await.expect("page");
        assert_eq!(after.iter().map(|m| m.seq.0).collect::<Vec<_>>(), vec![3, 4]);
        let recent = repo.recent_messages(&s.id, 2).await.expect("recent");
        assert_eq!(recent.iter().map(|m| m.seq.0).collect::<Vec<_>>(), vec![4, 5]);
        let stored = repo.load(&s.id).await.expect("load").expect("exists");
        assert_eq!((stored.last_seq, stored.message_count), (Seq(5), 5), "retries counted once");
        assert_eq!(stored.name.as_deref(), Some("hi"));
        let other = StoredMessage::text(
            MessageId::parse("intruder").expect("id"),
            Seq(5),
            Sender::User,
            String::new(),
            s.created_at,
        );
        let taken = repo.append_message(&s.id, &other, &MessageEffects::default()).await;
        assert!(matches!(taken, Err(RepositoryError::Conflict)), "a taken seq is never reused");
    }
}
