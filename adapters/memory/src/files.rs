//! The [`FileCatalog`] of the in-memory store: stored files' records in a map of their
//! own, with the same semantics as the MongoDB adapter (checked by the contract suite):
//!
//! - a duplicate id is `AlreadyExists`, unless the stored record is this one (same owner,
//!   creation time, size and digest: a retry), which is success;
//! - a file is attached once, by its owner, to one session; attaching it again to that
//!   session returns it unchanged (its `attached_at` stays);
//! - ending a session copies its end time onto its files ([`record_end`], called by
//!   `end`), and a file whose session ended before `ended_before` is due for deletion;
//!   a file never attached is due once created before `orphaned_before`;
//! - files are not bounded by `MEMORY_STORE_MAX_SESSIONS` and outlive an evicted session.
//!
//! The map's mutex is never held across an `.await` (no method awaits) nor together with
//! the sessions' mutex.
//!
//! [`record_end`]: MemorySessionRepository::record_end

use async_trait::async_trait;
use chatbox_application::ports::{ExpiredFile, FileCatalog, RepositoryError, UploadTotals};
use chatbox_domain::upload::{ExpiryReason, FileId, StoredFile};
use chatbox_domain::{SessionId, Timestamp, UserId};

use crate::MemorySessionRepository;

/// A stored file's record and what only the store keeps about it.
#[derive(Debug, Clone)]
pub(crate) struct FileEntry {
    file: StoredFile,
    /// Its session's end time, once that session ended.
    session_ended_at: Option<Timestamp>,
}

impl MemorySessionRepository {
    /// Makes every file of `session` due for deletion at the next cleanup, whatever the
    /// retention: the session's data was deleted.
    pub(crate) fn files_due_now(&self, session: &SessionId) {
        let mut files = self.lock_files();
        for entry in files.values_mut() {
            if entry.file.session.as_ref() == Some(session) {
                entry.session_ended_at = Some(Timestamp::MIN_UTC);
            }
        }
    }

    /// Copies `ended_at`, the end time of `session`, onto its files that have none.
    pub(crate) fn record_end(&self, session: &SessionId, ended_at: Timestamp) {
        let mut files = self.lock_files();
        for entry in files.values_mut() {
            if entry.file.session.as_ref() == Some(session) && entry.session_ended_at.is_none() {
                entry.session_ended_at = Some(ended_at);
            }
        }
    }
}

fn millis(at: Timestamp) -> i64 {
    at.timestamp_millis()
}

#[async_trait]
impl FileCatalog for MemorySessionRepository {
    async fn insert_file(&self, file: &StoredFile) -> Result<(), RepositoryError> {
        let mut files = self.lock_files();
        if let Some(stored) = files.get(&file.id) {
            let same = stored.file.owner == file.owner
                && millis(stored.file.created_at) == millis(file.created_at)
                && stored.file.size == file.size
                && stored.file.sha256 == file.sha256;
            return if same { Ok(()) } else { Err(RepositoryError::AlreadyExists) };
        }
        files.insert(file.id.clone(), FileEntry { file: file.clone(), session_ended_at: None });
        Ok(())
    }

    async fn file(&self, id: &FileId) -> Result<Option<StoredFile>, RepositoryError> {
        Ok(self.lock_files().get(id).map(|entry| entry.file.clone()))
    }

    async fn attach_file(
        &self,
        id: &FileId,
        owner: &UserId,
        session: &SessionId,
        at: Timestamp,
    ) -> Result<Option<StoredFile>, RepositoryError> {
        let mut files = self.lock_files();
        let Some(entry) = files.get_mut(id) else {
            return Ok(None);
        };
        if !entry.file.attachable_by(owner, session) {
            return Ok(None);
        }
        if entry.file.session.is_none() {
            entry.file.session = Some(session.clone());
            entry.file.attached_at = Some(at);
        }
        Ok(Some(entry.file.clone()))
    }

    async fn uploaded_since(
        &self,
        owner: &UserId,
        since: Timestamp,
    ) -> Result<UploadTotals, RepositoryError> {
        let files = self.lock_files();
        let since = millis(since);
        Ok(files
            .values()
            .filter(|entry| entry.file.owner == *owner && millis(entry.file.created_at) >= since)
            .fold(UploadTotals::default(), |totals, entry| UploadTotals {
                files: totals.files.saturating_add(1),
                bytes: totals.bytes.saturating_add(entry.file.size),
            }))
    }

    async fn expired_files(
        &self,
        orphaned_before: Timestamp,
        ended_before: Timestamp,
        limit: usize,
    ) -> Result<Vec<ExpiredFile>, RepositoryError> {
        let files = self.lock_files();
        let (orphaned_before, ended_before) = (millis(orphaned_before), millis(ended_before));
        // Oldest first, orphans before retention, as the MongoDB adapter reads them.
        let mut orphans: Vec<&FileEntry> = files
            .values()
            .filter(|entry| entry.file.session.is_none() && millis(entry.file.created_at) < orphaned_before)
            .collect();
        orphans.sort_by_key(|entry| (entry.file.created_at, entry.file.id.clone()));
        let mut retained: Vec<(Timestamp, &FileId)> = files
            .values()
            .filter_map(|entry| {
                let ended = entry.session_ended_at.filter(|ended| millis(*ended) < ended_before)?;
                Some((ended, &entry.file.id))
            })
            .collect();
        retained.sort();
        Ok(orphans
            .into_iter()
            .map(|entry| ExpiredFile { id: entry.file.id.clone(), reason: ExpiryReason::Orphan })
            .chain(
                retained
                    .into_iter()
                    .map(|(_, id)| ExpiredFile { id: id.clone(), reason: ExpiryReason::Retention }),
            )
            .take(limit)
            .collect())
    }

    async fn delete_file(&self, id: &FileId) -> Result<(), RepositoryError> {
        self.lock_files().remove(id);
        Ok(())
    }
}
