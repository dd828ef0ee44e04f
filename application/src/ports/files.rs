//! The ports of files in conversations: [`FileStore`] keeps the bytes (object storage:
//! a local directory, S3 or any store the `object_store` crate reaches), [`FileCatalog`]
//! keeps what is known about each file (the session store: MongoDB or memory).
//!
//! Invariants the adapters keep:
//! - **A file's bytes appear whole or not at all**: nothing can be read under an id
//!   until its [`FileWriter::finish`] returned; a writer aborted or dropped leaves no
//!   readable object.
//! - **The store is keyed by [`FileId`] alone**, which is 32 hexadecimal digits: no
//!   client text ever becomes part of a path or key.
//! - **Reads are streamed**: neither port ever holds a whole file in memory.

use std::fmt;
use std::ops::Range;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use chatbox_domain::upload::{ExpiryReason, FileId, StoredFile};
use chatbox_domain::{SessionId, Timestamp, UserId};
use futures::stream::BoxStream;
use thiserror::Error;

use super::RepositoryError;

/// A failure of object storage. The text is for logs only: it never holds a credential
/// or a presigned URL.
#[derive(Debug, Error)]
pub enum FileStoreError {
    /// No object under this id.
    #[error("file not found in storage")]
    NotFound,
    /// The store could not be reached, refused the request or failed.
    #[error("file storage unavailable: {0}")]
    Unavailable(String),
}

/// The headers stored with an object, for stores that hand the object out themselves
/// (a presigned URL of S3 answers with them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectHeaders {
    /// `Content-Type`, the sniffed media type.
    pub content_type: &'static str,
    /// `Content-Disposition`, naming the file.
    pub content_disposition: String,
}

/// Some bytes of a stored object.
pub struct ObjectRead {
    /// Which bytes `body` holds.
    pub range: Range<u64>,
    /// Those bytes, in order.
    pub body: BoxStream<'static, Result<Bytes, FileStoreError>>,
}

impl fmt::Debug for ObjectRead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectRead").field("range", &self.range).finish_non_exhaustive()
    }
}

/// One object being written, chunk by chunk.
#[async_trait]
pub trait FileWriter: Send {
    /// Appends `chunk`. Memory held stays bounded whatever the object's size (a store
    /// that uploads in parts keeps at most a few parts).
    ///
    /// # Errors
    /// A storage failure; the caller then aborts.
    async fn write(&mut self, chunk: Bytes) -> Result<(), FileStoreError>;

    /// Makes the object readable, whole.
    ///
    /// # Errors
    /// A storage failure; nothing is readable then.
    async fn finish(self: Box<Self>) -> Result<(), FileStoreError>;

    /// Gives the object up: nothing is left readable.
    ///
    /// # Errors
    /// A storage failure while removing what was written.
    async fn abort(self: Box<Self>) -> Result<(), FileStoreError>;
}

/// Where files' bytes live.
#[async_trait]
pub trait FileStore: Send + Sync + fmt::Debug + 'static {
    /// Starts the object of `id`, to be stored with `headers`.
    ///
    /// # Errors
    /// A storage failure.
    async fn create(
        &self,
        id: &FileId,
        headers: &ObjectHeaders,
    ) -> Result<Box<dyn FileWriter>, FileStoreError>;

    /// Reads `range` of the object of `id` (a range within its size, checked by the
    /// caller against the file's record), or all of it.
    ///
    /// # Errors
    /// [`FileStoreError::NotFound`], or a storage failure.
    async fn read(&self, id: &FileId, range: Option<Range<u64>>) -> Result<ObjectRead, FileStoreError>;

    /// Deletes the object of `id`; one already gone is no error.
    ///
    /// # Errors
    /// A storage failure.
    async fn delete(&self, id: &FileId) -> Result<(), FileStoreError>;

    /// A URL that lets whoever holds it read the object for `expires_in`, from the store
    /// itself, where the store can make one (S3 can; a local directory cannot: `None`).
    ///
    /// # Errors
    /// A storage failure.
    async fn presigned_url(
        &self,
        id: &FileId,
        expires_in: Duration,
    ) -> Result<Option<String>, FileStoreError>;
}

/// How much a user uploaded since a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UploadTotals {
    /// Files.
    pub files: u32,
    /// Bytes.
    pub bytes: u64,
}

/// A file due for deletion, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpiredFile {
    /// The file.
    pub id: FileId,
    /// Why it is due.
    pub reason: ExpiryReason,
}

/// What is known about each stored file.
///
/// A session's end is recorded on its files too (the session store's
/// [`end`](super::SessionRepository::end) does it in the adapter), so that
/// [`expired_files`](Self::expired_files) is one indexed query.
#[async_trait]
pub trait FileCatalog: Send + Sync + 'static {
    /// Records a new file (unattached).
    ///
    /// # Errors
    /// [`RepositoryError::AlreadyExists`] if the id is taken, or a store failure.
    async fn insert_file(&self, file: &StoredFile) -> Result<(), RepositoryError>;

    /// The record of `id`.
    ///
    /// # Errors
    /// A store failure.
    async fn file(&self, id: &FileId) -> Result<Option<StoredFile>, RepositoryError>;

    /// Attaches the file to `session` at `at`, in one conditional write, if `owner`
    /// uploaded it and it is unattached or already attached to `session` (then it is
    /// left as it was). Returns the record as it is after, or `None` when the file is
    /// missing, another user's, or attached to another session.
    ///
    /// # Errors
    /// A store failure.
    async fn attach_file(
        &self,
        id: &FileId,
        owner: &UserId,
        session: &SessionId,
        at: Timestamp,
    ) -> Result<Option<StoredFile>, RepositoryError>;

    /// How many files, and how many bytes, `owner` uploaded at or after `since`.
    ///
    /// # Errors
    /// A store failure.
    async fn uploaded_since(&self, owner: &UserId, since: Timestamp)
    -> Result<UploadTotals, RepositoryError>;

    /// At most `limit` files due for deletion: never attached and created before
    /// `orphaned_before`, or attached to a session that ended before `ended_before`.
    ///
    /// # Errors
    /// A store failure.
    async fn expired_files(
        &self,
        orphaned_before: Timestamp,
        ended_before: Timestamp,
        limit: usize,
    ) -> Result<Vec<ExpiredFile>, RepositoryError>;

    /// Forgets the record of `id`; one already gone is no error.
    ///
    /// # Errors
    /// A store failure.
    async fn delete_file(&self, id: &FileId) -> Result<(), RepositoryError>;
}
