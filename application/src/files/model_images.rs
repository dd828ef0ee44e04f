//! The pictures a model is shown: an image attached in the session, small enough
//! (`LLM_IMAGE_MAX_BYTES`), read whole from storage. Anything that goes wrong leaves
//! the picture out (the model is told its name instead); it never fails the answer.

use bytes::BytesMut;
use chatbox_domain::SessionId;
use chatbox_domain::upload::{FileId, FileKind};
use futures::StreamExt;
use tracing::warn;

use super::Files;
use crate::ports::InlineImage;

impl Files {
    /// The picture of file `id` for a model answering in `session`, if it is an image
    /// attached there and no larger than the bound.
    pub(crate) async fn image_for_model(&self, id: &FileId, session: &SessionId) -> Option<InlineImage> {
        let file = self.record(id).await.ok().flatten()?;
        let shown = file.session.as_ref() == Some(session)
            && file.kind() == FileKind::Image
            && file.size <= self.settings.model_image_max_bytes;
        if !shown {
            return None;
        }
        let read = self.read(&file, None).await.ok()?;
        let mut data = BytesMut::with_capacity(usize::try_from(file.size).ok()?);
        let mut body = read.body;
        let collected = tokio::time::timeout(self.settings.storage_timeout, async {
            while let Some(chunk) = body.next().await {
                let chunk = chunk.ok()?;
                // The record says how large it is: more than that is not this file.
                if (data.len() + chunk.len()) as u64 > file.size {
                    return None;
                }
                data.extend_from_slice(&chunk);
            }
            Some(())
        })
        .await;
        if !matches!(collected, Ok(Some(()))) || data.len() as u64 != file.size {
            warn!(file_id = %id, "a picture for the model could not be read whole; it is named instead");
            return None;
        }
        Some(InlineImage { media_type: file.media_type.essence(), data: data.freeze() })
    }
}
