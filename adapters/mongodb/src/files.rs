//! The [`FileCatalog`] on MongoDB: one document per stored file in `<collection>_files`
//! (layout in `documents/file.rs`), `_id` the file id.
//!
//! - `insert_file` is idempotent like `create`: a duplicate `_id` is success when the
//!   stored record is this one (same owner, creation time, size and digest: an earlier
//!   attempt whose acknowledgement was lost), `AlreadyExists` otherwise.
//! - `attach_file` is one conditional write: `find_one_and_update` filtered on
//!   `{_id, owner, session: null}` sets `session` and `attached_at` and returns the record
//!   after. When it matches nothing, the record is read: attached to this very session
//!   already (a resent message), it is returned as it is, its `attached_at` unchanged and
//!   nothing written; otherwise (missing, another user's, another session's) `None`.
//!   Once attached a file never moves, so that read cannot race a change that matters.
//! - Ending a session copies its stored end time onto its files (`session_ended_at`, an
//!   `update_many` on those that have none; [`record_end_on_files`], called by `end`), so
//!   `expired_files` is two indexed reads: unattached files created before the cut-off
//!   (`session_created_at`), and files whose session ended before the other
//!   (`session_ended_at`, sparse).
//! - `uploaded_since` reads the sizes of the owner's files created since (projection of
//!   `size` only, on `owner_created_at`) and adds them up here: FerretDB 1.24 computes
//!   only the first accumulator of a `$group`.
//! - FerretDB applies an update by rewriting the whole document, so this process
//!   serialises its updates of one file: attaching takes the file's lock and then the
//!   session's, recording an end takes the session's (see `locks.rs`).
//!
//! [`record_end_on_files`]: MongoSessionRepository::record_end_on_files

use std::future::IntoFuture;

use async_trait::async_trait;
use chatbox_application::ports::{ExpiredFile, FileCatalog, RepositoryError, UploadTotals};
use chatbox_domain::upload::{ExpiryReason, FileId, StoredFile};
use chatbox_domain::{SessionId, Timestamp, UserId};
use futures::TryStreamExt;
use mongodb::bson::{Bson, Document, doc};
use mongodb::options::ReturnDocument;

use crate::MongoSessionRepository;
use crate::documents::{
    DocumentError, bson_count, bson_date, field, file_document, file_field, file_from_document, parsed,
    string,
};
use crate::error::{storage_error, unreadable};
use crate::operation::Operation;
use crate::retry::{is_duplicate_key, retrying};

impl MongoSessionRepository {
    /// Copies the session's stored end time onto its files that have none. Called by
    /// `end` once the end is stored; idempotent, so a retried `end` completes it. A
    /// session that is missing or not ended changes nothing.
    pub(crate) async fn record_end_on_files(&self, id: &SessionId) -> Result<(), RepositoryError> {
        let found = retrying(&self.retry, Operation::FindSession, || {
            self.sessions
                .find_one(doc! { field::ID: id.as_str() })
                .projection(doc! { field::ENDED_AT: 1 })
                .into_future()
        })
        .await
        .map_err(|e| storage_error(Operation::FindSession, &e))?;
        let Some(ended_at @ Bson::DateTime(_)) = found.and_then(|doc| doc.get(field::ENDED_AT).cloned())
        else {
            return Ok(());
        };
        let filter = doc! { file_field::SESSION: id.as_str(), file_field::SESSION_ENDED_AT: Bson::Null };
        let update = doc! { "$set": { file_field::SESSION_ENDED_AT: ended_at } };
        let _serialised = self.locks.lock(id).await;
        retrying(&self.retry, Operation::RecordFileEnd, || {
            self.files.update_many(filter.clone(), update.clone()).into_future()
        })
        .await
        .map_err(|e| storage_error(Operation::RecordFileEnd, &e))?;
        Ok(())
    }

    async fn find_file(&self, id: &FileId) -> Result<Option<Document>, RepositoryError> {
        retrying(&self.retry, Operation::FindFile, || {
            self.files.find_one(doc! { field::ID: id.as_str() }).into_future()
        })
        .await
        .map_err(|e| storage_error(Operation::FindFile, &e))
    }

    fn read_file(&self, doc: &Document) -> Result<StoredFile, RepositoryError> {
        file_from_document(doc, &self.codec).map_err(|e| unreadable("file", &e))
    }

    /// The ids of at most `limit` files matching `filter`, in `sort` order.
    async fn file_ids(
        &self,
        filter: Document,
        sort: Document,
        limit: usize,
    ) -> Result<Vec<FileId>, RepositoryError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let documents: Vec<Document> = retrying(&self.retry, Operation::ExpiredFiles, || async {
            self.files
                .find(filter.clone())
                .projection(doc! { field::ID: 1 })
                .sort(sort.clone())
                .limit(limit)
                .await?
                .try_collect()
                .await
        })
        .await
        .map_err(|e| storage_error(Operation::ExpiredFiles, &e))?;
        documents
            .iter()
            .map(|doc| {
                string(doc, field::ID)
                    .and_then(|id| parsed(FileId::parse(id), field::ID))
                    .map_err(|e| unreadable("file", &e))
            })
            .collect()
    }
}

#[async_trait]
impl FileCatalog for MongoSessionRepository {
    async fn insert_file(&self, file: &StoredFile) -> Result<(), RepositoryError> {
        let document = file_document(file, &self.codec).map_err(|e| unreadable("file", &e))?;
        let inserted = retrying(&self.retry, Operation::InsertFile, || {
            self.files.insert_one(document.clone()).into_future()
        })
        .await;
        match inserted {
            Ok(_) => Ok(()),
            Err(e) if is_duplicate_key(&e) => {
                // Ours, if an earlier attempt's acknowledgement was lost.
                let stored = self.find_file(&file.id).await?.map(|doc| self.read_file(&doc)).transpose()?;
                match stored {
                    Some(stored)
                        if stored.owner == file.owner
                            && stored.created_at.timestamp_millis() == file.created_at.timestamp_millis()
                            && stored.size == file.size
                            && stored.sha256 == file.sha256 =>
                    {
                        Ok(())
                    }
                    _ => Err(RepositoryError::AlreadyExists),
                }
            }
            Err(e) => Err(storage_error(Operation::InsertFile, &e)),
        }
    }

    async fn file(&self, id: &FileId) -> Result<Option<StoredFile>, RepositoryError> {
        self.find_file(id).await?.map(|doc| self.read_file(&doc)).transpose()
    }

    async fn attach_file(
        &self,
        id: &FileId,
        owner: &UserId,
        session: &SessionId,
        at: Timestamp,
    ) -> Result<Option<StoredFile>, RepositoryError> {
        let filter = doc! { field::ID: id.as_str(), file_field::OWNER: owner.as_str(), file_field::SESSION: Bson::Null };
        let update = doc! {
            "$set": { file_field::SESSION: session.as_str(), file_field::ATTACHED_AT: bson_date(at) },
        };
        let attached = {
            let _file = self.file_locks.lock_key(id.as_str()).await;
            let _session = self.locks.lock(session).await;
            retrying(&self.retry, Operation::AttachFile, || {
                self.files
                    .find_one_and_update(filter.clone(), update.clone())
                    .return_document(ReturnDocument::After)
                    .into_future()
            })
            .await
            .map_err(|e| storage_error(Operation::AttachFile, &e))?
        };
        let doc = match attached {
            Some(doc) => doc,
            // Attached already (to this session: a resent message), or not attachable.
            None => match self.find_file(id).await? {
                Some(doc) => doc,
                None => return Ok(None),
            },
        };
        let file = self.read_file(&doc)?;
        Ok(file.attachable_by(owner, session).then_some(file).filter(|file| file.session.is_some()))
    }

    async fn uploaded_since(
        &self,
        owner: &UserId,
        since: Timestamp,
    ) -> Result<UploadTotals, RepositoryError> {
        let filter =
            doc! { file_field::OWNER: owner.as_str(), field::CREATED_AT: { "$gte": bson_date(since) } };
        let documents: Vec<Document> = retrying(&self.retry, Operation::CountUploads, || async {
            self.files
                .find(filter.clone())
                .projection(doc! { field::ID: 0, file_field::SIZE: 1 })
                .await?
                .try_collect()
                .await
        })
        .await
        .map_err(|e| storage_error(Operation::CountUploads, &e))?;
        let mut totals = UploadTotals::default();
        for doc in &documents {
            let size = doc
                .get(file_field::SIZE)
                .ok_or_else(|| DocumentError::Missing(file_field::SIZE.into()))
                .and_then(|size| bson_count(size, file_field::SIZE))
                .map_err(|e| unreadable("file", &e))?;
            totals.files = totals.files.saturating_add(1);
            totals.bytes = totals.bytes.saturating_add(size);
        }
        Ok(totals)
    }

    async fn expired_files(
        &self,
        orphaned_before: Timestamp,
        ended_before: Timestamp,
        limit: usize,
    ) -> Result<Vec<ExpiredFile>, RepositoryError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let orphans = doc! { file_field::SESSION: Bson::Null, field::CREATED_AT: { "$lt": bson_date(orphaned_before) } };
        let mut expired: Vec<ExpiredFile> = self
            .file_ids(orphans, doc! { field::CREATED_AT: 1 }, limit)
            .await?
            .into_iter()
            .map(|id| ExpiredFile { id, reason: ExpiryReason::Orphan })
            .collect();
        let room = limit.saturating_sub(expired.len());
        if room > 0 {
            let ended = doc! { file_field::SESSION_ENDED_AT: { "$lt": bson_date(ended_before) } };
            let retained = self.file_ids(ended, doc! { file_field::SESSION_ENDED_AT: 1 }, room).await?;
            expired
                .extend(retained.into_iter().map(|id| ExpiredFile { id, reason: ExpiryReason::Retention }));
        }
        Ok(expired)
    }

    async fn delete_file(&self, id: &FileId) -> Result<(), RepositoryError> {
        let _serialised = self.file_locks.lock_key(id.as_str()).await;
        retrying(&self.retry, Operation::DeleteFile, || {
            self.files.delete_one(doc! { field::ID: id.as_str() }).into_future()
        })
        .await
        .map(|_| ())
        .map_err(|e| storage_error(Operation::DeleteFile, &e))
    }
}
