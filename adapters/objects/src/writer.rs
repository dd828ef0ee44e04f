//! One object being written: an `object_store` multipart upload fed chunk by chunk.
//!
//! Invariants:
//! - **Memory stays bounded**: bytes are gathered into parts of [`PART_SIZE`] (S3's
//!   smallest part but the last), and a write waits while
//!   [`MAX_PARTS_IN_FLIGHT`] parts are being sent, so a writer holds at most about
//!   three parts whatever the object's size.
//! - **Nothing is readable before [`FileWriter::finish`] returned**: a local upload
//!   writes a staging file renamed into place at the end; an S3 multipart upload is
//!   invisible until it is completed.
//! - **A writer aborted or dropped leaves nothing readable**, and removes what it
//!   wrote: dropping one unfinished starts its abort in the background (on the current
//!   tokio runtime). Without a runtime, or when a `finish` is cancelled midway, the local
//!   staging file is still removed, and an S3 upload is left incomplete: invisible, and
//!   removed by the bucket's lifecycle rule for incomplete multipart uploads.

use async_trait::async_trait;
use bytes::Bytes;
use chatbox_application::ports::{FileStoreError, FileWriter};
use chatbox_domain::upload::FileId;
use object_store::{MultipartUpload, WriteMultipart};

use crate::errors::Redactor;

/// The size of each part sent (the last may be smaller): 5 MiB, S3's minimum.
pub(crate) const PART_SIZE: usize = 5 * 1024 * 1024;

/// How many parts may be on their way at once.
pub(crate) const MAX_PARTS_IN_FLIGHT: usize = 2;

/// The writer of one object.
#[derive(Debug)]
pub(crate) struct ObjectWriter {
    /// The upload, until finished or aborted.
    upload: Option<WriteMultipart>,
    /// The object's id, for logs.
    id: FileId,
    redactor: Redactor,
}

impl ObjectWriter {
    /// A writer of `upload`, the object of `id`.
    pub(crate) fn new(upload: Box<dyn MultipartUpload>, id: FileId, redactor: Redactor) -> Self {
        Self { upload: Some(WriteMultipart::new_with_chunk_size(upload, PART_SIZE)), id, redactor }
    }

    /// The upload, or the error of a writer already closed.
    fn upload(&mut self) -> Result<&mut WriteMultipart, FileStoreError> {
        self.upload.as_mut().ok_or_else(closed)
    }
}

/// The error of a writer whose upload is gone (unreachable through the port, whose
/// `finish` and `abort` consume the writer).
fn closed() -> FileStoreError {
    FileStoreError::Unavailable("the object's upload is already closed".to_owned())
}

#[async_trait]
impl FileWriter for ObjectWriter {
    async fn write(&mut self, chunk: Bytes) -> Result<(), FileStoreError> {
        let redactor = self.redactor.clone();
        let upload = self.upload()?;
        upload.put(chunk);
        upload.wait_for_capacity(MAX_PARTS_IN_FLIGHT).await.map_err(|error| redactor.failure(&error))
    }

    async fn finish(mut self: Box<Self>) -> Result<(), FileStoreError> {
        let upload = self.upload.take().ok_or_else(closed)?;
        // On failure, `WriteMultipart::finish` aborts the upload itself.
        upload.finish().await.map(drop).map_err(|error| self.redactor.failure(&error))
    }

    async fn abort(mut self: Box<Self>) -> Result<(), FileStoreError> {
        let Some(upload) = self.upload.take() else { return Ok(()) };
        match upload.abort().await.map_err(|error| self.redactor.error(error)) {
            Ok(()) | Err(FileStoreError::NotFound) => Ok(()),
            Err(error) => Err(error),
        }
    }
}

impl Drop for ObjectWriter {
    fn drop(&mut self) {
        let Some(upload) = self.upload.take() else { return };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(file_id = %self.id, "object upload dropped outside a runtime; not aborted");
            return;
        };
        let id = self.id.clone();
        let redactor = self.redactor.clone();
        drop(runtime.spawn(async move {
            match upload.abort().await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {
                    tracing::debug!(file_id = %id, "unfinished object upload aborted");
                }
                Err(error) => {
                    let error = redactor.redact(&error.to_string());
                    tracing::warn!(file_id = %id, %error, "could not abort an unfinished object upload");
                }
            }
        }));
    }
}
