//! An upload: the body streamed into object storage while it is counted, its type
//! decided from its first bytes, images stripped of their metadata, hashed; then its
//! record. See the module invariants in `files`.

use bytes::{Bytes, BytesMut};
use chatbox_domain::ids::lower_hex;
use chatbox_domain::upload::{
    DailyUsage, FileId, MetadataStripper, StoredFile, UploadRefusal, accept, file_name, utc_day_start,
};
use chatbox_domain::{Timestamp, UserId};
use futures::{Stream, StreamExt};
use sha2::{Digest, Sha256};
use tokio::time::Instant;
use tracing::{info, warn};

use super::Files;
use super::sniff::{SNIFF_BYTES, sniff};
use crate::error::ChatError;
use crate::ports::{FileWriter, ObjectHeaders};

/// The request body failed before its end.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UploadBodyError {
    /// The body passed a size limit of the framing around the file (the inbound
    /// adapter's own bound, set above `UPLOAD_MAX_BYTES`): answered like a file too large.
    #[error("the body is too large")]
    TooLarge,
    /// The client went away, or the framing around the file was broken. The text is for
    /// logs.
    #[error("{0}")]
    Broken(String),
}

/// Where an upload's bytes go as they arrive.
struct Sink {
    writer: Box<dyn FileWriter>,
    stripper: Option<MetadataStripper>,
    digest: Sha256,
    stored: u64,
    scratch: Vec<u8>,
}

impl Sink {
    async fn push(&mut self, chunk: Bytes) -> Result<(), ChatError> {
        let chunk = match self.stripper.as_mut() {
            Some(stripper) => {
                stripper
                    .push(&chunk, &mut self.scratch)
                    .map_err(|_| ChatError::Upload(UploadRefusal::UnsupportedType))?;
                Bytes::from(std::mem::take(&mut self.scratch))
            }
            None => chunk,
        };
        if chunk.is_empty() {
            return Ok(());
        }
        self.digest.update(&chunk);
        self.stored = self.stored.saturating_add(chunk.len() as u64);
        self.writer.write(chunk).await.map_err(|error| {
            warn!(%error, "writing an upload to file storage failed");
            ChatError::FileStorage
        })
    }
}

impl Files {
    /// Stores the file `body` of `owner`, named `client_name` by the client.
    ///
    /// # Errors
    /// [`ChatError::Upload`] for a refusal (type, size, daily limits, empty),
    /// [`ChatError::UploadTimeout`] past `upload_timeout`, [`ChatError::BadRequest`] when
    /// the body broke, storage failures. Nothing is kept after any of them.
    pub(crate) async fn upload<S>(
        &self,
        owner: &UserId,
        client_name: &str,
        body: S,
    ) -> Result<StoredFile, ChatError>
    where
        S: Stream<Item = Result<Bytes, UploadBodyError>> + Send + Unpin,
    {
        let deadline = Instant::now() + self.settings.upload_timeout;
        let now = self.clock.now();
        let usage = self.usage_today(owner, now).await?;
        let limits = self.settings.limits;
        limits.check_start(usage).map_err(|refusal| self.refused(refusal))?;

        let mut body = Received { body, deadline, usage, limits, received: 0 };
        let head = body.head().await.map_err(|error| self.refused_error(error))?;
        let media_type = accept(sniff(&head)).map_err(|refusal| self.refused(refusal))?;

        let id = self.new_file_id();
        let mut record = StoredFile {
            id: id.clone(),
            owner: owner.clone(),
            session: None,
            name: file_name(client_name),
            media_type,
            size: 0,
            sha256: String::new(),
            created_at: now,
            attached_at: None,
        };
        let headers = ObjectHeaders {
            content_type: media_type.essence(),
            content_disposition: record.content_disposition(),
        };
        let writer = within(deadline, self.store_call(self.ports.store.create(&id, &headers))).await??;
        let mut sink = Sink {
            writer,
            stripper: media_type.image_format().map(MetadataStripper::new),
            digest: Sha256::new(),
            stored: 0,
            scratch: Vec::new(),
        };
        match Self::fill(&mut sink, &mut body, head).await {
            Ok(()) => {}
            Err(error) => {
                Self::abort(sink.writer).await;
                return Err(self.refused_error(error));
            }
        }
        let Sink { writer, digest, stored, .. } = sink;
        match within(deadline, writer.finish()).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                warn!(%error, "finishing an upload in file storage failed");
                return Err(ChatError::FileStorage);
            }
            Err(timeout) => return Err(timeout),
        }
        record.size = stored;
        record.sha256 = lower_hex(&digest.finalize());
        record.created_at = self.clock.now();
        if let Err(error) = self.catalog_call(self.ports.catalog.insert_file(&record)).await {
            // The bytes have no record: remove them now rather than leave them unowned.
            let _ = self.store_call(self.ports.store.delete(&id)).await;
            return Err(error);
        }
        self.metrics.file_uploaded(media_type.kind(), stored);
        info!(file_id = %id, user_id = %owner, media_type = media_type.essence(), bytes = stored, "file uploaded");
        Ok(record)
    }

    /// Writes `head` and the rest of the body into `sink`, then checks the whole.
    async fn fill<S>(sink: &mut Sink, body: &mut Received<S>, head: Bytes) -> Result<(), ChatError>
    where
        S: Stream<Item = Result<Bytes, UploadBodyError>> + Send + Unpin,
    {
        within(body.deadline, sink.push(head)).await??;
        while let Some(chunk) = body.next_chunk().await? {
            within(body.deadline, sink.push(chunk)).await??;
        }
        if let Some(stripper) = sink.stripper.take() {
            stripper.finish().map_err(|_| ChatError::Upload(UploadRefusal::UnsupportedType))?;
        }
        body.limits.check_finished(body.usage, body.received).map_err(ChatError::Upload)
    }

    async fn abort(writer: Box<dyn FileWriter>) {
        // Bounded: an abort that hangs must not hold the request.
        match tokio::time::timeout(std::time::Duration::from_secs(10), writer.abort()).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => warn!(%error, "aborting an upload in file storage failed"),
            Err(_) => warn!("aborting an upload in file storage did not finish in time"),
        }
    }

    /// What `owner` uploaded since the start of `now`'s UTC day.
    async fn usage_today(&self, owner: &UserId, now: Timestamp) -> Result<DailyUsage, ChatError> {
        let totals = self.catalog_call(self.ports.catalog.uploaded_since(owner, utc_day_start(now))).await?;
        Ok(DailyUsage { files: totals.files, bytes: totals.bytes })
    }

    fn new_file_id(&self) -> FileId {
        // Two ids of the generator (each unguessable) hashed: 128 of the bits make the id.
        let digest = Sha256::digest([self.ids.new_id(), self.ids.new_id()].concat().as_bytes());
        let mut bytes = [0; 16];
        bytes.copy_from_slice(&digest[..16]);
        FileId::from_random(bytes)
    }

    fn refused(&self, refusal: UploadRefusal) -> ChatError {
        self.refused_error(ChatError::Upload(refusal))
    }

    /// Counts a refusal by its code (and logs it), and hands it back.
    fn refused_error(&self, error: ChatError) -> ChatError {
        self.metrics.upload_refused(error.code().as_str());
        info!(code = error.code().as_str(), reason = %error, "upload refused");
        error
    }
}

/// The request body, counted against the limits as it arrives, read until `deadline`.
struct Received<S> {
    body: S,
    deadline: Instant,
    usage: DailyUsage,
    limits: chatbox_domain::upload::UploadLimits,
    received: u64,
}

impl<S> Received<S>
where
    S: Stream<Item = Result<Bytes, UploadBodyError>> + Send + Unpin,
{
    /// The next chunk, checked; `None` at the end.
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, ChatError> {
        let Some(chunk) = within(self.deadline, self.body.next()).await? else {
            return Ok(None);
        };
        let chunk = chunk.map_err(|error| match error {
            UploadBodyError::TooLarge => {
                ChatError::Upload(UploadRefusal::TooLarge { max: self.limits.max_bytes })
            }
            UploadBodyError::Broken(error) => {
                info!(%error, "an upload's body broke off");
                ChatError::BadRequest("the upload's body ended early or was malformed")
            }
        })?;
        self.received = self.received.saturating_add(chunk.len() as u64);
        self.limits.check_size(self.usage, self.received).map_err(ChatError::Upload)?;
        Ok(Some(chunk))
    }

    /// The first [`SNIFF_BYTES`] (fewer if the body is shorter).
    async fn head(&mut self) -> Result<Bytes, ChatError> {
        let mut head = BytesMut::new();
        while head.len() < SNIFF_BYTES {
            match self.next_chunk().await? {
                Some(chunk) => head.extend_from_slice(&chunk),
                None => break,
            }
        }
        if head.is_empty() {
            return Err(ChatError::Upload(UploadRefusal::Empty));
        }
        Ok(head.freeze())
    }
}

/// `step`, unless `deadline` passes first: then [`ChatError::UploadTimeout`].
async fn within<T>(deadline: Instant, step: impl Future<Output = T>) -> Result<T, ChatError> {
    tokio::time::timeout_at(deadline, step).await.map_err(|_| ChatError::UploadTimeout)
}
