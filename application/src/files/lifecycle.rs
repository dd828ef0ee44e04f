//! The deletion of files whose time is up: orphans (uploaded, never attached) after
//! `UPLOAD_ORPHAN_AGE`, and the files of a session `UPLOAD_RETENTION` after it ended.
//! Run by the periodic cleanup task.
//!
//! Bytes go first, then the record: a failure in between leaves a record whose bytes
//! are gone, which the next run finds again (deleting what is gone is no error), never
//! bytes nobody can find.

use chatbox_domain::upload::ExpiryReason;
use tracing::{info, warn};

use super::Files;
use crate::error::ChatError;

/// Records asked for per query.
const BATCH: usize = 100;
/// Queries per run: a backlog larger than this is worked off over several runs.
const MAX_BATCHES: usize = 20;

/// Files deleted by one run, by reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DeletedFiles {
    /// Never attached.
    pub orphans: u64,
    /// Their session ended long enough ago.
    pub retained: u64,
}

impl Files {
    /// Deletes the files whose time is up (up to a bounded number per run).
    ///
    /// # Errors
    /// A store failure of the catalog query (a file that fails to delete is logged and
    /// left for the next run).
    pub(crate) async fn remove_expired(&self) -> Result<DeletedFiles, ChatError> {
        let now = self.clock.now();
        let before = |age: std::time::Duration| {
            chrono::Duration::from_std(age).ok().and_then(|age| now.checked_sub_signed(age)).unwrap_or(now)
        };
        let orphaned_before = before(self.settings.orphan_age);
        let ended_before = before(self.settings.retention);
        let mut deleted = DeletedFiles::default();
        for _ in 0..MAX_BATCHES {
            let due = self
                .catalog_call(self.ports.catalog.expired_files(orphaned_before, ended_before, BATCH))
                .await?;
            let mut removed_any = false;
            for file in &due {
                if let Err(error) = self.remove(&file.id).await {
                    warn!(file_id = %file.id, %error, "deleting an expired file failed; retried next run");
                    continue;
                }
                removed_any = true;
                self.metrics.file_deleted(file.reason.as_str());
                match file.reason {
                    ExpiryReason::Orphan => deleted.orphans += 1,
                    ExpiryReason::Retention => deleted.retained += 1,
                }
            }
            // A short page is the last; a page of failures would only be asked again.
            if due.len() < BATCH || !removed_any {
                break;
            }
        }
        if deleted != DeletedFiles::default() {
            info!(orphans = deleted.orphans, retention = deleted.retained, "expired files deleted");
        }
        Ok(deleted)
    }

    async fn remove(&self, id: &chatbox_domain::upload::FileId) -> Result<(), ChatError> {
        self.store_call(self.ports.store.delete(id)).await?;
        self.catalog_call(self.ports.catalog.delete_file(id)).await
    }
}
