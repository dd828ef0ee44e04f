//! Ending an answer: what was streamed is stored once, then every socket gets the
//! `error` frame (if any) and the one `done` frame with the finish reason, usage, timing
//! and the stored `seq`.

use chatbox_domain::{AnswerTiming, MessageEffects, Sender, StoredMessage, Usage};
use tracing::warn;

use crate::events::ServerEvent;

use super::{Actor, Answer, Outcome};

impl Actor {
    /// Counts the answer: its duration and end, its first token, its tokens.
    fn record(&self, outcome: &Outcome, usage: Option<Usage>, duration: std::time::Duration) {
        let metrics = &self.deps.metrics;
        let model_id = &outcome.model_id;
        metrics.answer_finished(model_id, outcome.finish_reason, duration);
        if let Some(first_token) = outcome.first_token {
            metrics.time_to_first_token(model_id, first_token);
        }
        if let Some(usage) = usage {
            metrics.tokens_used(model_id, usage.prompt_tokens, usage.completion_tokens);
        }
    }

    /// Stores what was streamed and ends the answer with its `done` frame.
    pub(super) async fn finish(&mut self, outcome: Outcome, answer: &Answer) {
        if self.live.answer_taken_over() {
            // Another replica stored and ended it; its `done` reached every socket.
            warn!(session_id = %self.live.id(), "an answer was ended by another replica while this one lost the lease");
            self.live.finish_answer(None, &[]);
            return;
        }
        let Answer { message_id, style, started, .. } = answer;
        let (style, model_id) = (*style, &outcome.model_id);
        let now = self.deps.clock.now();
        let session_id = self.live.id().clone();
        let (text, seq) = self.live.answer_to_store();
        let usage = (!text.is_empty() || outcome.usage.is_some()).then(|| {
            outcome.usage.unwrap_or(Usage {
                prompt_tokens: (outcome.prompt_chars as u64).div_ceil(4),
                completion_tokens: Usage::estimate_tokens(&text),
                estimated: true,
            })
        });
        let duration = self.deps.monotonic().saturating_sub(*started);
        let timing = AnswerTiming { first_token: outcome.first_token, total: duration };
        self.record(&outcome, usage, duration);

        let effects =
            MessageEffects::answer(usage.unwrap_or_default(), duration, outcome.conversation.clone());
        let mut stored_seq = None;
        let mut storage_failed = false;
        if !text.is_empty() {
            let mut message = StoredMessage::text(message_id.clone(), seq, Sender::Ai, text.clone(), now);
            message.finish_reason = Some(outcome.finish_reason);
            message.usage = usage;
            message.model_id = Some(model_id.to_string());
            message.timing = Some(timing);
            match self.deps.storage(self.deps.repo.append_message(&session_id, &message, &effects)).await {
                Ok(()) => stored_seq = Some(message.seq),
                Err(error) => {
                    warn!(%session_id, %error, "storing an answer failed");
                    storage_failed = true;
                    self.hold(message, effects.clone());
                }
            }
        }

        let mut frames = Vec::with_capacity(3);
        if let Some((code, message)) = outcome.failure {
            frames.push(self.frame(ServerEvent::Error {
                session_id: Some(session_id.clone()),
                code,
                message: message.to_owned(),
                retry_after: None,
            }));
        }
        if storage_failed {
            frames.push(self.storage_error());
        }
        frames.push(self.frame(ServerEvent::AnswerDone {
            session_id,
            message_id: message_id.clone(),
            model_id: model_id.clone(),
            seq: stored_seq,
            finish_reason: outcome.finish_reason,
            usage,
            timing,
            style,
        }));
        self.live.finish_answer(stored_seq.map(|seq| (seq, now, &effects)), &frames);
    }
}
