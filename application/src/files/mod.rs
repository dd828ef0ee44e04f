//! Files in conversations: uploads streamed into object storage, the records kept about
//! them, the file an attachment message names, the pictures a model is shown, and the
//! deletion of files whose time is up.
//!
//! [`Files`] holds the two file ports ([`FileStore`] for bytes, [`FileCatalog`] for
//! records) and their settings; the chat use-cases reach it through their shared
//! dependencies, and the access rules (who may read a file) live with them in
//! `chat::files`, since they need sessions and share links.
//!
//! Invariants:
//! - **Nothing half-stored is kept**: an upload refused, timed out or failed midway is
//!   aborted in storage and leaves no record; a record is written only after its bytes
//!   are whole.
//! - **Memory per upload is bounded** by the sniffing window plus one chunk, whatever the
//!   file's size; sizes are counted as bytes arrive and the first byte over a limit ends
//!   the upload.
//! - **Every call to a store is bounded in time** (`storage_timeout`, and the upload as a
//!   whole by `upload_timeout`).

mod lifecycle;
mod model_images;
mod sniff;
mod upload;

pub use lifecycle::DeletedFiles;
pub use upload::UploadBodyError;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use chatbox_domain::upload::{FileId, StoredFile, UploadLimits};
use chatbox_domain::{SessionId, UserId};

use crate::error::ChatError;
use crate::ports::{
    Clock, FileCatalog, FileStore, FileStoreError, IdGenerator, Metrics, ObjectRead, RepositoryError,
};

/// The file ports.
#[derive(Clone)]
pub struct FilePorts {
    /// Where the bytes live.
    pub store: Arc<dyn FileStore>,
    /// Where the records live (usually the session store).
    pub catalog: Arc<dyn FileCatalog>,
}

impl fmt::Debug for FilePorts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FilePorts").field("store", &self.store).finish_non_exhaustive()
    }
}

/// Files in conversations, when they are on: the ports and their settings.
#[derive(Debug, Clone)]
pub struct Uploads {
    /// The stores.
    pub ports: FilePorts,
    /// The knobs.
    pub settings: FileSettings,
}

/// How files are taken, kept and shown.
#[derive(Debug, Clone)]
pub struct FileSettings {
    /// `UPLOAD_MAX_BYTES` and the per-user daily limits.
    pub limits: UploadLimits,
    /// `UPLOAD_TIMEOUT`: the longest one upload may take, start to end.
    pub upload_timeout: Duration,
    /// `UPLOAD_RETENTION`: how long a file outlives the end of its session.
    pub retention: Duration,
    /// `UPLOAD_ORPHAN_AGE`: how long a file nobody attached is kept.
    pub orphan_age: Duration,
    /// The path a stored file is downloaded at, before its id (e.g. `/chat/files/`):
    /// attachment messages carry it as their `file_url`.
    pub download_path: String,
    /// `UPLOAD_PRESIGNED_TTL`: downloads redirect to a presigned URL of the store valid
    /// this long, where the store can make one; `None`: the service streams every file.
    pub presigned_ttl: Option<Duration>,
    /// `LLM_IMAGE_MAX_BYTES`: a larger picture is named to the model, not shown.
    pub model_image_max_bytes: u64,
    /// `LLM_IMAGES_MAX`: the most recent pictures shown per request; older ones are named.
    pub model_images_max: usize,
    /// The longest one call to either store may take.
    pub storage_timeout: Duration,
}

/// The files of conversations: ports, settings, and what they count.
pub(crate) struct Files {
    ports: FilePorts,
    settings: FileSettings,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdGenerator>,
    metrics: Arc<dyn Metrics>,
}

impl fmt::Debug for Files {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Files").field("ports", &self.ports).finish_non_exhaustive()
    }
}

impl Files {
    pub(crate) fn new(
        Uploads { ports, settings }: Uploads,
        clock: Arc<dyn Clock>,
        ids: Arc<dyn IdGenerator>,
        metrics: Arc<dyn Metrics>,
    ) -> Self {
        Self { ports, settings, clock, ids, metrics }
    }

    pub(crate) const fn settings(&self) -> &FileSettings {
        &self.settings
    }

    /// The `file_url` of a stored file: where this service serves it.
    pub(crate) fn download_url(&self, id: &FileId) -> String {
        format!("{}{id}", self.settings.download_path)
    }

    /// The record of `id`.
    pub(crate) async fn record(&self, id: &FileId) -> Result<Option<StoredFile>, ChatError> {
        self.catalog_call(self.ports.catalog.file(id)).await
    }

    /// Attaches `owner`'s file `id` to `session` (see [`FileCatalog::attach_file`]);
    /// [`ChatError::FileNotFound`] when it is missing, another user's or attached to
    /// another session, which the caller cannot tell apart.
    pub(crate) async fn attach(
        &self,
        id: &FileId,
        owner: &UserId,
        session: &SessionId,
    ) -> Result<StoredFile, ChatError> {
        let now = self.clock.now();
        self.catalog_call(self.ports.catalog.attach_file(id, owner, session, now))
            .await?
            .ok_or(ChatError::FileNotFound)
    }

    /// Reads `file`'s bytes, or the part of them in `range`.
    pub(crate) async fn read(
        &self,
        file: &StoredFile,
        range: Option<std::ops::Range<u64>>,
    ) -> Result<ObjectRead, ChatError> {
        self.store_call(self.ports.store.read(&file.id, range)).await
    }

    /// A presigned URL for `file`, when configured and the store makes them.
    pub(crate) async fn presigned_url(&self, file: &StoredFile) -> Result<Option<String>, ChatError> {
        let Some(ttl) = self.settings.presigned_ttl else {
            return Ok(None);
        };
        self.store_call(self.ports.store.presigned_url(&file.id, ttl)).await
    }

    async fn catalog_call<T>(
        &self,
        call: impl Future<Output = Result<T, RepositoryError>>,
    ) -> Result<T, ChatError> {
        tokio::time::timeout(self.settings.storage_timeout, call)
            .await
            .unwrap_or_else(|_| Err(RepositoryError::Unavailable("file catalog call timeout".into())))
            .map_err(ChatError::Storage)
    }

    async fn store_call<T>(
        &self,
        call: impl Future<Output = Result<T, FileStoreError>>,
    ) -> Result<T, ChatError> {
        match tokio::time::timeout(self.settings.storage_timeout, call).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(FileStoreError::NotFound)) => Err(ChatError::FileNotFound),
            Ok(Err(error)) => {
                tracing::warn!(%error, "file storage failed");
                Err(ChatError::FileStorage)
            }
            Err(_) => {
                tracing::warn!("file storage did not answer in time");
                Err(ChatError::FileStorage)
            }
        }
    }
}
