//! Starting an answer: the session's provider, retried with backoff (honouring
//! `Retry-After`) for failures whose kind allows it, then its fallback — all before the
//! first token; once a token arrives, a failure ends the answer instead.

use chatbox_domain::{ErrorCode, FinishReason, ModelId};
use std::time::Duration;

use futures::StreamExt;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::ports::{AnswerStream, ChatRequest, LlmErrorKind, LlmProvider, ProviderError, StreamEvent};

use super::{Actor, Outcome, PROVIDER_TIMEOUT, PROVIDER_UNAVAILABLE};

/// A provider stream that produced its first token (or ended), and the events read so far.
pub(super) struct Started {
    pub(super) stream: AnswerStream,
    pub(super) model_id: ModelId,
    pub(super) first_events: Vec<StreamEvent>,
    /// When the first token arrived (monotonic clock).
    pub(super) first_token_at: std::time::Duration,
}

/// Why one attempt did not produce a first token.
enum Attempt {
    Cancelled,
    TimedOut,
    Failed(ProviderError),
}

impl Actor {
    /// Starts the answer with the session's provider, retrying failures whose kind
    /// allows it (with backoff, honouring `Retry-After`), then the provider's fallback.
    /// Everything here happens before the first token: once one arrives, a failure
    /// ends the answer instead.
    pub(super) async fn start(
        &self,
        mut request: ChatRequest,
        cancel: &CancellationToken,
        total_deadline: Duration,
    ) -> Result<Started, Outcome> {
        let settings = &self.deps.settings;
        let policy = settings.retry;
        let asked = request.model_id.clone();
        let chain = settings.provider_chain(&asked);
        for (position, model_id) in chain.iter().enumerate() {
            let Some(provider) = self.deps.providers.get(model_id).cloned() else {
                warn!(%model_id, "no provider is configured for this model");
                continue;
            };
            if position > 0 {
                info!(session_id = %self.live.id(), from = %chain[position - 1], to = %model_id, "falling back to another provider");
            }
            // One request, changed for each model of the chain: never copied, since its
            // history is most of it.
            request.model_id = model_id.clone();
            request.conversation_id =
                self.live.read(|session| session.conversation_for(model_id).map(str::to_owned));
            let mut retry = 0;
            loop {
                self.deps.metrics.llm_request(model_id);
                let failure = match self.attempt(&*provider, &request, cancel, total_deadline).await {
                    Ok((stream, first_events, first_token_at)) => {
                        return Ok(Started {
                            stream,
                            model_id: model_id.clone(),
                            first_events,
                            first_token_at,
                        });
                    }
                    Err(Attempt::Cancelled) => {
                        return Err(Outcome::ended_with(model_id, FinishReason::Cancelled));
                    }
                    Err(Attempt::TimedOut) => {
                        self.deps.metrics.llm_error(model_id, LlmErrorKind::Timeout);
                        warn!(session_id = %self.live.id(), %model_id, "provider timeout: no first token within LLM_IDLE_TIMEOUT");
                        return Err(Outcome::failed(
                            model_id,
                            FinishReason::Timeout,
                            ErrorCode::LlmTimeout,
                            PROVIDER_TIMEOUT,
                        ));
                    }
                    Err(Attempt::Failed(error)) => error,
                };
                self.deps.metrics.llm_error(model_id, LlmErrorKind::of(&failure));
                warn!(session_id = %self.live.id(), %model_id, error = %failure, retryable = failure.is_retryable(), retry, "provider request failed");
                if !failure.is_retryable() || retry >= policy.max_retries {
                    break;
                }
                let wait = policy.delay(retry, failure.retry_after(), self.deps.random.unit());
                if self.deps.monotonic().saturating_add(wait) >= total_deadline {
                    break;
                }
                tokio::select! {
                    biased;
                    () = cancel.cancelled() => return Err(Outcome::ended_with(model_id, FinishReason::Cancelled)),
                    () = tokio::time::sleep(wait) => {}
                }
                self.deps.metrics.llm_retry(model_id);
                retry += 1;
            }
        }
        Err(Outcome::failed(&asked, FinishReason::Error, ErrorCode::LlmUnavailable, PROVIDER_UNAVAILABLE))
    }

    /// One request to one provider, read up to its first token (or its end).
    async fn attempt(
        &self,
        provider: &dyn LlmProvider,
        request: &ChatRequest,
        cancel: &CancellationToken,
        total_deadline: Duration,
    ) -> Result<(AnswerStream, Vec<StreamEvent>, Duration), Attempt> {
        let idle = self.deps.settings.idle_timeout;
        let deadline = self.deps.monotonic().saturating_add(idle).min(total_deadline);
        let mut stream = tokio::select! {
            biased;
            () = cancel.cancelled() => return Err(Attempt::Cancelled),
            () = self.deps.sleep_until(deadline) => return Err(Attempt::TimedOut),
            started = provider.stream(request) => started.map_err(Attempt::Failed)?,
        };
        let mut first_events = Vec::new();
        loop {
            let deadline = self.deps.monotonic().saturating_add(idle).min(total_deadline);
            let event = tokio::select! {
                biased;
                () = cancel.cancelled() => return Err(Attempt::Cancelled),
                () = self.deps.sleep_until(deadline) => return Err(Attempt::TimedOut),
                event = stream.next() => event,
            };
            match event {
                Some(Ok(event)) => {
                    let first_token = matches!(&event, StreamEvent::Delta(text) if !text.is_empty())
                        || matches!(event, StreamEvent::Finished(_));
                    first_events.push(event);
                    if first_token {
                        return Ok((stream, first_events, self.deps.monotonic()));
                    }
                }
                Some(Err(error)) => return Err(Attempt::Failed(error)),
                None => {
                    first_events.push(StreamEvent::Finished(FinishReason::Stop));
                    return Ok((stream, first_events, self.deps.monotonic()));
                }
            }
        }
    }
}
