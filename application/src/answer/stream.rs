//! Streaming an answer: forwarding the provider's events to the session's sockets until
//! the answer ends, fails, stalls (`LLM_IDLE_TIMEOUT`), runs out of time
//! (`LLM_STREAM_TIMEOUT`), is stopped, or nobody comes back for it (`RECONNECT_TIMEOUT`).

use std::sync::Arc;
use std::time::Duration;

use chatbox_domain::{ErrorCode, FinishReason, ModelId, ProviderConversation, Usage};
use futures::StreamExt;
use tracing::{debug, warn};

use crate::events::{Frame, ServerEvent};
use crate::ports::{ChatRequest, LlmErrorKind, StreamEvent};
use crate::wait::Dormant;

use super::start::Started;
use super::{Actor, Answer, Outcome, PROVIDER_TIMEOUT, PROVIDER_UNAVAILABLE};

/// What the stream has told us so far.
struct Progress {
    model_id: ModelId,
    usage: Option<Usage>,
    first_token: Option<std::time::Duration>,
    conversation: Option<ProviderConversation>,
    /// Characters streamed so far.
    chars: usize,
    /// When the first token arrived from the provider (monotonic clock); stamped on the
    /// first chunk so the writer can measure the gateway's own latency.
    first_token_at: std::time::Duration,
}

impl Progress {
    fn ended(self, finish_reason: FinishReason) -> Outcome {
        Outcome {
            usage: self.usage,
            first_token: self.first_token,
            conversation: self.conversation,
            ..Outcome::ended_with(&self.model_id, finish_reason)
        }
    }

    fn failed(self, finish_reason: FinishReason, code: ErrorCode, message: &'static str) -> Outcome {
        Outcome { failure: Some((code, message)), ..self.ended(finish_reason) }
    }
}

impl Actor {
    /// Runs the answer: starts it (with retries and fallback), then forwards the stream
    /// to the sockets until it ends, fails, stalls, is cancelled, or runs out of time.
    /// Dropping the stream on return aborts the provider request.
    pub(super) async fn run(&mut self, request: ChatRequest, answer: &Answer) -> Outcome {
        let deps = Arc::clone(&self.deps);
        let settings = &deps.settings;
        let total_deadline = answer.started.saturating_add(settings.stream_timeout);
        let Started { mut stream, model_id, first_events, first_token_at } =
            match self.start(request, &answer.cancel, total_deadline).await {
                Ok(started) => started,
                Err(outcome) => return outcome,
            };
        let mut progress = Progress {
            model_id,
            usage: None,
            first_token: None,
            conversation: None,
            chars: 0,
            first_token_at,
        };
        for event in first_events {
            if let Some(reason) = self.apply(event, &mut progress, answer) {
                return progress.ended(reason);
            }
        }
        let mut last_event = self.deps.monotonic();
        // One timer for the whole answer, armed for the earliest deadline known when it
        // was set and moved only when it fires early (an event came since): resetting it
        // at every token would cost that token two more clock reads.
        let due = |last_event: Duration, unattended_since: Option<Duration>| {
            let idle = last_event.saturating_add(settings.idle_timeout).min(total_deadline);
            let unattended = unattended_since.map(|since| since.saturating_add(settings.reconnect_timeout));
            (unattended.map_or(idle, |at| at.min(idle)), unattended)
        };
        let (mut armed, _) = due(last_event, self.live.unattended_since());
        let mut timer = std::pin::pin!(tokio::time::sleep_until(self.deps.timer_deadline(armed)));
        // Polled at every token otherwise, and a token's wait takes two locks each time.
        let mut cancelled = std::pin::pin!(Dormant::new(answer.cancel.cancelled()));
        loop {
            tokio::select! {
                biased;
                () = &mut cancelled => return progress.ended(FinishReason::Cancelled),
                () = &mut timer => {
                    let now = self.deps.monotonic();
                    let (deadline, unattended) = due(last_event, self.live.unattended_since());
                    if deadline > now {
                        armed = deadline;
                        timer.as_mut().reset(self.deps.timer_deadline(armed));
                        continue;
                    }
                    if unattended.is_some_and(|at| at <= now) {
                        debug!(session_id = %self.live.id(), "no socket came back in time; answer cancelled");
                        return progress.ended(FinishReason::Cancelled);
                    }
                    self.deps.metrics.llm_error(&progress.model_id, LlmErrorKind::Timeout);
                    warn!(session_id = %self.live.id(), model_id = %progress.model_id, "answer timeout: silent for LLM_IDLE_TIMEOUT or longer than LLM_STREAM_TIMEOUT");
                    return progress.failed(FinishReason::Timeout, ErrorCode::LlmTimeout, PROVIDER_TIMEOUT);
                }
                event = stream.next() => {
                    last_event = self.deps.monotonic();
                    match event {
                        Some(Ok(event)) => {
                            if let Some(reason) = self.apply(event, &mut progress, answer) {
                                return progress.ended(reason);
                            }
                        }
                        None => return progress.ended(FinishReason::Stop),
                        Some(Err(error)) => {
                            self.deps.metrics.llm_error(&progress.model_id, LlmErrorKind::of(&error));
                            warn!(session_id = %self.live.id(), model_id = %progress.model_id, %error, "answer stream failed");
                            return progress.failed(FinishReason::Error, ErrorCode::LlmUnavailable, PROVIDER_UNAVAILABLE);
                        }
                    }
                    // Nobody left to read the answer: the reconnect deadline may come first.
                    if let (_, Some(unattended)) = due(last_event, self.live.unattended_since())
                        && unattended < armed
                    {
                        armed = unattended;
                        timer.as_mut().reset(self.deps.timer_deadline(armed));
                    }
                }
            }
        }
    }

    /// Applies one stream event; returns the finish reason when the stream says it is done.
    fn apply(&self, event: StreamEvent, progress: &mut Progress, answer: &Answer) -> Option<FinishReason> {
        match event {
            StreamEvent::Delta(text) if text.is_empty() => None,
            StreamEvent::Delta(text) => {
                let first = progress.first_token.is_none();
                progress
                    .first_token
                    .get_or_insert_with(|| self.deps.monotonic().saturating_sub(answer.started));
                // An answer's memory is bounded: at MAX_ANSWER_CHARS it is cut, and the
                // provider request ends with the stream.
                let room = self.deps.settings.max_answer_chars.saturating_sub(progress.chars);
                let (delta, reached) = match text.char_indices().nth(room) {
                    Some((cut, _)) => (&text[..cut], true),
                    None => (text.as_str(), false),
                };
                progress.chars = progress.chars.saturating_add(delta.chars().count());
                if !delta.is_empty() {
                    let event = ServerEvent::AnswerChunk {
                        session_id: self.live.id().clone(),
                        message_id: answer.message_id.clone(),
                        model_id: progress.model_id.clone(),
                        delta: Arc::from(delta),
                        style: answer.style,
                    };
                    let chunk = if first {
                        Frame::first_chunk(event, self.deps.clock.now(), progress.first_token_at)
                    } else {
                        self.frame(event)
                    };
                    self.live.push_chunk(delta, &chunk);
                }
                reached.then_some(FinishReason::Length)
            }
            StreamEvent::Usage(usage) => {
                progress.usage = Some(usage);
                None
            }
            StreamEvent::Conversation(id) => {
                // Kept with the answer and stored with it, like every session change.
                progress.conversation =
                    Some(ProviderConversation { model_id: progress.model_id.clone(), id });
                None
            }
            StreamEvent::Finished(reason) => Some(reason),
        }
    }
}
