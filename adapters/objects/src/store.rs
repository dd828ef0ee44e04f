//! [`ObjectFileStore`]: the [`FileStore`] port over `object_store`, a local directory or
//! an S3 bucket.
//!
//! Invariants:
//! - **Objects are keyed `files/{file_id}`**, the id alone: no client text reaches a key
//!   or a path.
//! - **Reads stream**: the body is handed on as it arrives, never gathered.
//! - **No operation waits forever** (see [`S3Config::timeout`](crate::S3Config::timeout));
//!   a local directory has no network to wait on.
//! - **Errors and `Debug` hold no credential**: error texts go through the redactor of
//!   the configured secrets, and the store prints only its kind and bucket or directory.

use std::fmt;
use std::ops::Range;
use std::time::Duration;

use async_trait::async_trait;
use chatbox_application::ports::{FileStore, FileStoreError, FileWriter, ObjectHeaders, ObjectRead};
use chatbox_domain::upload::FileId;
use futures::{StreamExt as _, TryStreamExt as _};
use object_store::path::Path;
use object_store::signer::{Method, Signer as _};
use object_store::{
    Attribute, Attributes, GetOptions, GetRange, ObjectStore, ObjectStoreExt as _, PutMultipartOptions,
};

use crate::backend::{self, Backend};
use crate::config::ObjectStoreConfig;
use crate::errors::{OpenError, Redactor};
use crate::writer::ObjectWriter;

/// The folder of every object.
const FOLDER: &str = "files";

/// Files' bytes in a local directory or an S3 bucket.
pub struct ObjectFileStore {
    backend: Backend,
    redactor: Redactor,
}

impl fmt::Debug for ObjectFileStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The clients' `Display` names the directory or bucket only.
        let store = match &self.backend {
            Backend::Local(local) => local.to_string(),
            Backend::S3(s3) => s3.writes.to_string(),
        };
        f.debug_struct("ObjectFileStore").field("store", &store).finish()
    }
}

impl ObjectFileStore {
    /// Opens the store of `config`: creates a local directory if it is missing, or builds
    /// the S3 clients (no request is made yet).
    ///
    /// # Errors
    /// The directory cannot be created, or the S3 configuration is incomplete (a key id
    /// without its secret, say).
    pub fn open(config: &ObjectStoreConfig) -> Result<Self, OpenError> {
        let (backend, redactor) = backend::open(config)?;
        Ok(Self { backend, redactor })
    }

    /// The client for operations other than reads.
    fn client(&self) -> &dyn ObjectStore {
        match &self.backend {
            Backend::Local(local) => local,
            Backend::S3(s3) => &s3.writes,
        }
    }

    /// The error of `error`, redacted.
    fn error(&self, error: object_store::Error) -> FileStoreError {
        self.redactor.error(error)
    }
}

/// The key of the object of `id`.
fn location(id: &FileId) -> Path {
    Path::from_iter([FOLDER, id.as_str()])
}

/// The attributes an S3 object is stored with, so a presigned URL answers with them.
fn attributes(headers: &ObjectHeaders) -> Attributes {
    let mut attributes = Attributes::new();
    attributes.insert(Attribute::ContentType, headers.content_type.into());
    attributes.insert(Attribute::ContentDisposition, headers.content_disposition.clone().into());
    attributes
}

#[async_trait]
impl FileStore for ObjectFileStore {
    async fn create(
        &self,
        id: &FileId,
        headers: &ObjectHeaders,
    ) -> Result<Box<dyn FileWriter>, FileStoreError> {
        let options = match &self.backend {
            // A local directory keeps no headers: whoever serves its files sets them.
            Backend::Local(_) => PutMultipartOptions::default(),
            Backend::S3(_) => PutMultipartOptions::from(attributes(headers)),
        };
        let upload = self
            .client()
            .put_multipart_opts(&location(id), options)
            .await
            .map_err(|error| self.redactor.failure(&error))?;
        Ok(Box::new(ObjectWriter::new(upload, id.clone(), self.redactor.clone())))
    }

    async fn read(&self, id: &FileId, range: Option<Range<u64>>) -> Result<ObjectRead, FileStoreError> {
        let options = GetOptions::new().with_range(range.map(GetRange::Bounded));
        let location = location(id);
        let result = match &self.backend {
            Backend::Local(local) => local.get_opts(&location, options).await,
            Backend::S3(s3) => {
                // The reads' client has no whole-request timeout: bound the wait for the
                // answer's headers here (a first try and its retries).
                let deadline = s3.timeout.saturating_mul(2);
                tokio::time::timeout(deadline, s3.reads.get_opts(&location, options)).await.map_err(|_| {
                    FileStoreError::Unavailable(format!("no answer from S3 within {deadline:?}"))
                })?
            }
        }
        .map_err(|e| self.error(e))?;
        let range = result.range.clone();
        let redactor = self.redactor.clone();
        let body = result.into_stream().map_err(move |error| redactor.error(error)).boxed();
        Ok(ObjectRead { range, body })
    }

    async fn delete(&self, id: &FileId) -> Result<(), FileStoreError> {
        match self.client().delete(&location(id)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(error) => Err(self.error(error)),
        }
    }

    async fn presigned_url(
        &self,
        id: &FileId,
        expires_in: Duration,
    ) -> Result<Option<String>, FileStoreError> {
        match &self.backend {
            Backend::Local(_) => Ok(None),
            Backend::S3(s3) => {
                let url = s3
                    .writes
                    .signed_url(Method::GET, &location(id), expires_in)
                    .await
                    .map_err(|error| self.redactor.failure(&error))?;
                Ok(Some(url.to_string()))
            }
        }
    }
}
