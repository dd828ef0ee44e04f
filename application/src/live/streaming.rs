//! The answer a live session is streaming: its text so far (bounded by
//! `MAX_ANSWER_CHARS`, which the actor enforces), its cancellation, and the catch-up
//! frames a socket joining mid-answer gets. An answer streamed by another replica is
//! mirrored here from its frames, so a socket joining on this replica catches up too;
//! stopping it is asked of that replica.

use std::sync::Arc;

use chatbox_domain::{MessageId, ModelId, SessionId, Timestamp};
use tokio_util::sync::CancellationToken;

use crate::events::{AnswerStyle, Frame, ServerEvent};

/// The answer being streamed.
#[derive(Debug)]
pub(super) struct StreamingAnswer {
    message_id: MessageId,
    model_id: ModelId,
    style: AnswerStyle,
    text: String,
    /// `None` for a mirror: the answer runs on another replica.
    cancel: Option<CancellationToken>,
    /// Another replica ended this answer (it took the session over while this replica
    /// was cut off from the lease): it is neither stored nor ended here.
    taken_over: bool,
    /// The chunk frame with everything streamed so far, built once per length and shared
    /// by every socket that joins meanwhile, so joining copies nothing.
    catch_up: Option<Arc<Frame>>,
}

impl StreamingAnswer {
    pub(super) fn new(
        message_id: MessageId,
        model_id: ModelId,
        style: AnswerStyle,
        cancel: CancellationToken,
    ) -> Self {
        Self {
            message_id,
            model_id,
            style,
            text: String::new(),
            cancel: Some(cancel),
            taken_over: false,
            catch_up: None,
        }
    }

    /// The mirror of an answer another replica streams.
    pub(super) fn mirror(message_id: MessageId, model_id: ModelId, style: AnswerStyle) -> Self {
        Self {
            message_id,
            model_id,
            style,
            text: String::new(),
            cancel: None,
            taken_over: false,
            catch_up: None,
        }
    }

    /// Another replica ended this answer: it stops here, without being stored or ended.
    pub(super) fn take_over(&mut self) {
        self.taken_over = true;
        let _ = self.cancel();
    }

    pub(super) const fn is_taken_over(&self) -> bool {
        self.taken_over
    }

    /// True when the answer runs on another replica.
    pub(super) const fn is_mirror(&self) -> bool {
        self.cancel.is_none()
    }

    pub(super) const fn message_id(&self) -> &MessageId {
        &self.message_id
    }

    pub(super) const fn model_id(&self) -> &ModelId {
        &self.model_id
    }

    pub(super) const fn style(&self) -> AnswerStyle {
        self.style
    }

    pub(super) fn append(&mut self, delta: &str) {
        self.text.push_str(delta);
        self.catch_up = None;
    }

    pub(super) fn text(&self) -> &str {
        &self.text
    }

    /// Cancels the answer if it runs here; false for a mirror (its replica must be asked).
    pub(super) fn cancel(&self) -> bool {
        self.cancel.as_ref().map(CancellationToken::cancel).is_some()
    }

    /// `loading`, then everything streamed so far as one chunk (none before the first).
    pub(super) fn catch_up_frames(&mut self, session_id: &SessionId, now: Timestamp) -> Vec<Arc<Frame>> {
        let mut frames = Vec::with_capacity(2);
        frames.push(Frame::new(
            ServerEvent::Loading {
                session_id: session_id.clone(),
                message_id: self.message_id.clone(),
                style: self.style,
            },
            now,
        ));
        if !self.text.is_empty() {
            let (text, message_id, model_id, style) =
                (&self.text, &self.message_id, &self.model_id, self.style);
            let chunk = self.catch_up.get_or_insert_with(|| {
                Frame::new(
                    ServerEvent::AnswerChunk {
                        session_id: session_id.clone(),
                        message_id: message_id.clone(),
                        model_id: model_id.clone(),
                        delta: Arc::from(text.as_str()),
                        style,
                    },
                    now,
                )
            });
            frames.push(Arc::clone(chunk));
        }
        frames
    }
}
