//! Files as users and readers see them: an upload, a download with its access rule, and
//! the periodic deletion of files whose time is up. The storing itself is
//! `crate::files`; what is decided here needs sessions and share links.
//!
//! Who may read a file: the user who uploaded it; once it is attached to a session, the
//! session's owner, the admin assisting that session, and whoever holds a live share
//! link of that session. Anyone else is told it does not exist, exactly like a missing
//! file, so ids cannot be probed.

use std::ops::Range;

use bytes::Bytes;
use chatbox_domain::UserId;
use chatbox_domain::upload::{ByteRange, FileId, StoredFile};
use futures::Stream;

use super::ChatService;
use super::history::share_digest;
use crate::error::ChatError;
use crate::files::{DeletedFiles, Files, UploadBodyError};
use crate::ports::ObjectRead;

/// Who asks for a file.
#[derive(Debug, Clone, Copy)]
pub enum FileReader<'a> {
    /// A user with a token (an admin's token says so).
    User {
        /// The user.
        id: &'a UserId,
        /// The token carries an admin role.
        admin: bool,
    },
    /// Whoever holds this share link.
    Shared(&'a str),
}

/// A stored upload, as its uploader is told about it.
#[derive(Debug, Clone)]
pub struct Uploaded {
    /// Its record.
    pub file: StoredFile,
    /// Where it is downloaded (the `file_url` of the messages that attach it).
    pub url: String,
}

/// What a download answers with.
#[derive(Debug)]
pub enum Download {
    /// Go and read it from the store itself, at this presigned URL.
    Redirect(String),
    /// These bytes of the file.
    Bytes {
        /// The file.
        file: StoredFile,
        /// Which bytes, streamed.
        read: ObjectRead,
        /// A range was asked for (and these are its bytes).
        partial: bool,
    },
}

impl ChatService {
    /// Stores the file `body` of `owner`, named `client_name` by the client.
    ///
    /// # Errors
    /// Refusals ([`ChatError::Upload`], [`ChatError::UploadTimeout`],
    /// [`ChatError::BadRequest`]) and storage failures; nothing is kept after any.
    pub async fn upload<S>(&self, owner: &UserId, client_name: &str, body: S) -> Result<Uploaded, ChatError>
    where
        S: Stream<Item = Result<Bytes, UploadBodyError>> + Send + Unpin,
    {
        if self.deps.live.is_shutting_down() {
            return Err(ChatError::ShuttingDown);
        }
        let files = self.files()?;
        let file = files.upload(owner, client_name, body).await?;
        let url = files.download_url(&file.id);
        Ok(Uploaded { file, url })
    }

    /// `UPLOAD_MAX_BYTES`, when uploads are on.
    #[must_use]
    pub fn upload_max_bytes(&self) -> Option<u64> {
        self.deps.files.as_ref().map(|files| files.settings().limits.max_bytes)
    }

    /// `UPLOAD_TIMEOUT`, when uploads are on.
    #[must_use]
    pub fn upload_timeout(&self) -> Option<std::time::Duration> {
        self.deps.files.as_ref().map(|files| files.settings().upload_timeout)
    }

    /// Opens file `id` for `reader`: all of it, or `range`.
    ///
    /// # Errors
    /// [`ChatError::FileNotFound`] for a missing file or one `reader` may not read,
    /// [`ChatError::RangeNotSatisfiable`], storage failures.
    pub async fn download(
        &self,
        reader: FileReader<'_>,
        id: &str,
        range: Option<ByteRange>,
    ) -> Result<Download, ChatError> {
        let files = self.files()?;
        let id = FileId::parse(id).map_err(|_| ChatError::FileNotFound)?;
        let file = files.record(&id).await?.ok_or(ChatError::FileNotFound)?;
        if !self.may_read_file(reader, &file).await? {
            return Err(ChatError::FileNotFound);
        }
        let range: Option<Range<u64>> = range
            .map(|asked| {
                asked.resolve(file.size).map_err(|_| ChatError::RangeNotSatisfiable { size: file.size })
            })
            .transpose()?;
        // A range is served here: a redirect would not carry it reliably.
        if range.is_none()
            && let Some(url) = files.presigned_url(&file).await?
        {
            return Ok(Download::Redirect(url));
        }
        let partial = range.is_some();
        let read = files.read(&file, range).await?;
        Ok(Download::Bytes { file, read, partial })
    }

    /// Deletes the files whose time is up; the cleanup task calls it.
    ///
    /// # Errors
    /// Storage failures (the next run tries again).
    pub async fn cleanup_files(&self) -> Result<DeletedFiles, ChatError> {
        match &self.deps.files {
            Some(files) => files.remove_expired().await,
            None => Ok(DeletedFiles::default()),
        }
    }

    async fn may_read_file(&self, reader: FileReader<'_>, file: &StoredFile) -> Result<bool, ChatError> {
        if let FileReader::User { id, .. } = reader
            && file.owner == *id
        {
            return Ok(true);
        }
        let Some(session_id) = &file.session else {
            return Ok(false);
        };
        match reader {
            FileReader::User { id, admin } => {
                let session = self.deps.storage(self.deps.repo.load(session_id)).await?;
                Ok(session.is_some_and(|session| {
                    session.is_owned_by(id) || (admin && session.handoff.assisted_by(id))
                }))
            }
            FileReader::Shared(token) => {
                let now = self.deps.clock.now();
                let shared =
                    self.deps.storage(self.deps.catalog.find_shared(&share_digest(token), now)).await?;
                Ok(shared.as_ref() == Some(session_id))
            }
        }
    }

    fn files(&self) -> Result<&Files, ChatError> {
        self.deps.files.as_ref().ok_or(ChatError::BadRequest("uploads are not enabled on this server"))
    }
}
