//! The per-session actor: the single writer of a session's messages, and the streamer
//! of its answers.
//!
//! One actor runs per live session. It takes [`Turn`]s in arrival order from a bounded
//! queue, stores each (so sequence numbers are stored in order), fans it out, and
//! answers it before taking the next, so answers of one session never interleave and
//! each answer sees exactly the conversation up to its question. `stop` reaches the
//! running answer through its cancellation token.
//!
//! Every answer that starts ends with exactly one `done` frame, whatever happens: the
//! model finishes, the user stops it, the provider fails or stalls, or the server shuts
//! down. The text streamed so far is stored once, at the end, never per token.

use std::sync::Arc;

use chatbox_domain::validation::Metadata;
use chatbox_domain::{
    ClientMessageId, ErrorCode, FinishReason, MessageId, MessageKind, ModelId, Sender, StoredMessage, Usage,
};
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::chat::Deps;
use crate::events::{AnswerStyle, Frame, ServerEvent};
use crate::live::{LiveSession, StreamingAnswer};
use crate::ports::{AnswerStream, ChatRequest, ChatTurn, Role, StreamEvent};
use crate::socket::SocketHandle;

/// A message accepted from a socket, on its way to storage.
#[derive(Debug)]
pub struct Turn {
    /// The socket it came from (not echoed back to it; storage errors go to it).
    pub origin: Arc<SocketHandle>,
    /// Who wrote it.
    pub sender: Sender,
    /// Text, file or voice.
    pub kind: MessageKind,
    /// The text or caption.
    pub content: String,
    /// Attachment id.
    pub file_id: Option<String>,
    /// Attachment URL.
    pub file_url: Option<String>,
    /// Client metadata.
    pub metadata: Metadata,
    /// Idempotency key.
    pub client_message_id: Option<ClientMessageId>,
    /// `Some` when the model should answer it.
    pub answer: Option<AnswerStyle>,
}

/// How an answer ended, before it is stored.
struct Outcome {
    finish_reason: FinishReason,
    failure: Option<(ErrorCode, &'static str)>,
    usage: Option<Usage>,
    prompt_chars: usize,
}

impl Outcome {
    fn ended(finish_reason: FinishReason) -> Self {
        Self { finish_reason, failure: None, usage: None, prompt_chars: 0 }
    }

    fn failed(finish_reason: FinishReason, code: ErrorCode, message: &'static str) -> Self {
        Self { finish_reason, failure: Some((code, message)), usage: None, prompt_chars: 0 }
    }
}

const PROVIDER_UNAVAILABLE: &str = "AI service is temporarily unavailable";
const PROVIDER_TIMEOUT: &str = "AI service timed out";
const STORAGE_UNAVAILABLE: &str = "Storage is temporarily unavailable";

pub(crate) struct Actor {
    live: Arc<LiveSession>,
    deps: Arc<Deps>,
}

/// Runs a session's actor until the session is retired and its queue is drained.
pub(crate) async fn run(live: Arc<LiveSession>, mut turns: mpsc::Receiver<Turn>, deps: Arc<Deps>) {
    let mut actor = Actor { live, deps };
    let mut retiring = false;
    loop {
        let turn = tokio::select! {
            biased;
            () = actor.live.retired(), if !retiring => {
                // Take what was already accepted, then stop.
                retiring = true;
                turns.close();
                continue;
            }
            turn = turns.recv() => turn,
        };
        let Some(turn) = turn else { break };
        if let Some(style) = actor.store_turn(turn).await {
            actor.answer(style).await;
        }
    }
    debug!(session_id = %actor.live.id(), "session actor stopped");
}

impl Actor {
    fn frame(&self, event: ServerEvent) -> Arc<Frame> {
        Frame::new(event, self.deps.clock.now())
    }

    /// Stores one turn and fans it out; returns how to answer it if the model should.
    async fn store_turn(&mut self, turn: Turn) -> Option<AnswerStyle> {
        let now = self.deps.clock.now();
        let user_text =
            (turn.sender == Sender::User && turn.kind == MessageKind::Text).then_some(turn.content.as_str());
        let Ok(message_id) = MessageId::parse(&self.deps.ids.new_id()) else {
            warn!("id generator produced an invalid message id");
            return None;
        };
        let (message, snapshot) = self.live.with_state(|state| {
            let mut next = state.session.clone();
            let seq = next.record_message(now, user_text);
            let message = StoredMessage {
                id: message_id,
                seq,
                sender: turn.sender,
                kind: turn.kind,
                content: turn.content.clone(),
                timestamp: now,
                file_id: turn.file_id.clone(),
                file_url: turn.file_url.clone(),
                metadata: turn.metadata.clone(),
                client_message_id: turn.client_message_id.clone(),
                finish_reason: None,
                usage: None,
                model_id: None,
            };
            (message, next)
        });
        let stored = self.deps.repo.append_message(&snapshot, &message).await;
        let session_id = self.live.id().clone();
        let message = Arc::new(message);
        let echo =
            self.frame(ServerEvent::Stored { session_id: session_id.clone(), message: Arc::clone(&message) });
        let ai_answers = self.live.with_state(|state| {
            state.queued_turns = state.queued_turns.saturating_sub(1);
            match &stored {
                Ok(()) => {
                    state.session.record_message(now, user_text);
                    state.stored_seq = message.seq;
                    state.last_activity = Instant::now();
                    state.broadcast(&echo, Some(turn.origin.id()));
                }
                Err(_) => {
                    if let Some(id) = &turn.client_message_id {
                        state.forget_client_id(id);
                    }
                }
            }
            state.session.handoff.ai_answers()
        });
        if let Err(error) = stored {
            warn!(session_id = %session_id, %error, "storing a message failed");
            turn.origin.send(self.frame(ServerEvent::Error {
                session_id: Some(session_id),
                code: ErrorCode::DatabaseError,
                message: STORAGE_UNAVAILABLE.to_owned(),
                retry_after: None,
            }));
            return None;
        }
        turn.answer.filter(|_| ai_answers)
    }

    /// Streams one answer to the session's sockets and stores it.
    async fn answer(&mut self, style: AnswerStyle) {
        let Ok(message_id) = MessageId::parse(&self.deps.ids.new_id()) else {
            warn!("id generator produced an invalid message id");
            return;
        };
        let session_id = self.live.id().clone();
        let cancel = self.deps.answers_cutoff.child_token();
        let started = Instant::now();
        let loading = self.frame(ServerEvent::Loading {
            session_id: session_id.clone(),
            message_id: message_id.clone(),
            style,
        });
        let (model_id, user_id) = self.live.with_state(|state| {
            state.streaming = Some(StreamingAnswer {
                message_id: message_id.clone(),
                model_id: state.session.model_id.clone(),
                style,
                text: String::new(),
                cancel: cancel.clone(),
            });
            state.broadcast(&loading, None);
            (state.session.model_id.clone(), state.session.owner.clone())
        });

        let outcome = match self.request(&model_id, user_id).await {
            Ok((request, prompt_chars)) => {
                let mut outcome = self.stream(request, &model_id, &message_id, style, &cancel, started).await;
                outcome.prompt_chars = prompt_chars;
                outcome
            }
            Err(outcome) => outcome,
        };
        self.finish(outcome, &model_id, &message_id, style, started).await;
    }

    /// Builds the provider request from the stored history.
    async fn request(
        &self,
        model_id: &ModelId,
        user_id: chatbox_domain::UserId,
    ) -> Result<(ChatRequest, usize), Outcome> {
        let settings = &self.deps.settings;
        let recent =
            self.deps.repo.recent_messages(self.live.id(), settings.context_messages).await.map_err(
                |error| {
                    warn!(session_id = %self.live.id(), %error, "loading the history failed");
                    Outcome::failed(FinishReason::Error, ErrorCode::DatabaseError, STORAGE_UNAVAILABLE)
                },
            )?;
        let history = context_window(&recent, settings.context_max_chars);
        let prompt_chars = history.iter().map(|t| t.content.chars().count()).sum::<usize>()
            + settings.system_prompt.as_ref().map_or(0, |p| p.chars().count());
        let request = ChatRequest {
            model_id: model_id.clone(),
            system_prompt: settings.system_prompt.clone(),
            history,
            user_id,
            session_id: self.live.id().clone(),
        };
        Ok((request, prompt_chars))
    }

    /// Forwards the provider's stream to the sockets until it ends, fails, stalls, is
    /// cancelled, or runs out of time. Dropping the stream on return aborts the request.
    async fn stream(
        &mut self,
        request: ChatRequest,
        model_id: &ModelId,
        message_id: &MessageId,
        style: AnswerStyle,
        cancel: &CancellationToken,
        started: Instant,
    ) -> Outcome {
        let deps = Arc::clone(&self.deps);
        let settings = &deps.settings;
        let total_deadline = started + settings.stream_timeout;
        let Some(provider) = self.deps.providers.get(model_id).cloned() else {
            warn!(%model_id, "no provider is configured for the session's model");
            return Outcome::failed(FinishReason::Error, ErrorCode::LlmUnavailable, PROVIDER_UNAVAILABLE);
        };
        let idle_deadline = (started + settings.idle_timeout).min(total_deadline);
        let mut stream: AnswerStream = tokio::select! {
            biased;
            () = cancel.cancelled() => return Outcome::ended(FinishReason::Cancelled),
            () = sleep_until(idle_deadline) => {
                return Outcome::failed(FinishReason::Timeout, ErrorCode::LlmTimeout, PROVIDER_TIMEOUT);
            }
            started_stream = provider.stream(request) => match started_stream {
                Ok(stream) => stream,
                Err(error) => {
                    warn!(session_id = %self.live.id(), %model_id, %error, "starting the answer failed");
                    return Outcome::failed(FinishReason::Error, ErrorCode::LlmUnavailable, PROVIDER_UNAVAILABLE);
                }
            },
        };

        let mut usage = None;
        let mut last_event = Instant::now();
        loop {
            let idle_deadline = (last_event + settings.idle_timeout).min(total_deadline);
            let unattended_deadline = self
                .live
                .with_state(|state| state.unattended_since)
                .map(|since| since + settings.reconnect_timeout);
            let deadline = unattended_deadline.map_or(idle_deadline, |d| d.min(idle_deadline));
            tokio::select! {
                biased;
                () = cancel.cancelled() => return Outcome { usage, ..Outcome::ended(FinishReason::Cancelled) },
                () = sleep_until(deadline) => {
                    if unattended_deadline.is_some_and(|d| d <= Instant::now()) {
                        debug!(session_id = %self.live.id(), "no socket came back in time; answer cancelled");
                        return Outcome { usage, ..Outcome::ended(FinishReason::Cancelled) };
                    }
                    warn!(session_id = %self.live.id(), %model_id, "answer timed out");
                    return Outcome { usage, ..Outcome::failed(FinishReason::Timeout, ErrorCode::LlmTimeout, PROVIDER_TIMEOUT) };
                }
                event = stream.next() => {
                    last_event = Instant::now();
                    match event {
                        Some(Ok(StreamEvent::Delta(text))) if !text.is_empty() => {
                            let chunk = self.frame(ServerEvent::AnswerChunk {
                                session_id: self.live.id().clone(),
                                message_id: message_id.clone(),
                                model_id: model_id.clone(),
                                delta: Arc::from(text.as_str()),
                                style,
                            });
                            self.live.with_state(|state| {
                                if let Some(streaming) = state.streaming.as_mut() {
                                    streaming.text.push_str(&text);
                                }
                                state.broadcast(&chunk, None);
                            });
                        }
                        Some(Ok(StreamEvent::Delta(_))) => {}
                        Some(Ok(StreamEvent::Usage(reported))) => usage = Some(reported),
                        Some(Ok(StreamEvent::Finished(reason))) => return Outcome { usage, ..Outcome::ended(reason) },
                        None => return Outcome { usage, ..Outcome::ended(FinishReason::Stop) },
                        Some(Err(error)) => {
                            warn!(session_id = %self.live.id(), %model_id, %error, "answer stream failed");
                            return Outcome {
                                usage,
                                ..Outcome::failed(FinishReason::Error, ErrorCode::LlmUnavailable, PROVIDER_UNAVAILABLE)
                            };
                        }
                    }
                }
            }
        }
    }

    /// Stores what was streamed and ends the answer with its `done` frame.
    async fn finish(
        &mut self,
        outcome: Outcome,
        model_id: &ModelId,
        message_id: &MessageId,
        style: AnswerStyle,
        started: Instant,
    ) {
        let now = self.deps.clock.now();
        let session_id = self.live.id().clone();
        let text = self
            .live
            .with_state(|state| state.streaming.as_ref().map(|s| s.text.clone()))
            .unwrap_or_default();
        let usage = (!text.is_empty() || outcome.usage.is_some()).then(|| {
            outcome.usage.unwrap_or(Usage {
                prompt_tokens: (outcome.prompt_chars as u64).div_ceil(4),
                completion_tokens: Usage::estimate_tokens(&text),
                estimated: true,
            })
        });
        let duration = started.elapsed();

        let mut stored_seq = None;
        let mut storage_failed = false;
        if !text.is_empty() {
            let (message, snapshot) = self.live.with_state(|state| {
                let mut next = state.session.clone();
                let seq = next.record_message(now, None);
                next.record_answer(usage.unwrap_or_default(), duration);
                let mut message = StoredMessage::text(message_id.clone(), seq, Sender::Ai, text.clone(), now);
                message.finish_reason = Some(outcome.finish_reason);
                message.usage = usage;
                message.model_id = Some(model_id.to_string());
                (message, next)
            });
            match self.deps.repo.append_message(&snapshot, &message).await {
                Ok(()) => stored_seq = Some(message.seq),
                Err(error) => {
                    warn!(%session_id, %error, "storing an answer failed");
                    storage_failed = true;
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
            frames.push(self.frame(ServerEvent::Error {
                session_id: Some(session_id.clone()),
                code: ErrorCode::DatabaseError,
                message: STORAGE_UNAVAILABLE.to_owned(),
                retry_after: None,
            }));
        }
        frames.push(self.frame(ServerEvent::AnswerDone {
            session_id,
            message_id: message_id.clone(),
            model_id: model_id.clone(),
            seq: stored_seq,
            finish_reason: outcome.finish_reason,
            usage,
            style,
        }));
        self.live.with_state(|state| {
            if let Some(seq) = stored_seq {
                state.session.record_message(now, None);
                state.session.record_answer(usage.unwrap_or_default(), duration);
                state.stored_seq = seq;
            }
            state.streaming = None;
            state.last_activity = Instant::now();
            for frame in &frames {
                state.broadcast(frame, None);
            }
        });
    }
}

/// The turns the model sees: the most recent messages that fit in `max_chars`, oldest
/// first. The newest message (the question) is always kept.
fn context_window(recent: &[StoredMessage], max_chars: usize) -> Vec<ChatTurn> {
    let mut turns = Vec::with_capacity(recent.len());
    let mut used = 0usize;
    for message in recent.iter().rev() {
        let role = match message.sender {
            Sender::User | Sender::Admin => Role::User,
            Sender::Ai => Role::Assistant,
            Sender::System => continue,
        };
        let content = match (message.kind, message.file_url.as_deref()) {
            (MessageKind::Text, _) => message.content.clone(),
            (_, Some(url)) if message.content.is_empty() => format!("[attachment: {url}]"),
            (_, Some(url)) => format!("{} [attachment: {url}]", message.content),
            (_, None) => message.content.clone(),
        };
        if content.is_empty() {
            continue;
        }
        let chars = content.chars().count();
        if !turns.is_empty() && used + chars > max_chars {
            break;
        }
        used += chars;
        turns.push(ChatTurn { role, content });
    }
    turns.reverse();
    turns
}

#[cfg(test)]
mod tests {
    use super::*;
    use chatbox_domain::{Seq, Timestamp};

    fn message(seq: u64, sender: Sender, content: &str) -> StoredMessage {
        StoredMessage::text(
            MessageId::parse(&format!("m{seq}")).expect("id"),
            Seq(seq),
            sender,
            content.to_owned(),
            Timestamp::default(),
        )
    }

    #[test]
    fn context_keeps_the_newest_turns_that_fit_and_always_the_question() {
        let recent = vec![
            message(1, Sender::User, "aaaa"),
            message(2, Sender::Ai, "bbbb"),
            message(3, Sender::System, "ignored"),
            message(4, Sender::User, "cc"),
        ];
        let turns = context_window(&recent, 6);
        assert_eq!(turns.len(), 2);
        assert_eq!(turns[0], ChatTurn { role: Role::Assistant, content: "bbbb".into() });
        assert_eq!(turns[1], ChatTurn { role: Role::User, content: "cc".into() });
        let only_question = context_window(&[message(1, Sender::User, &"x".repeat(50))], 10);
        assert_eq!(only_question.len(), 1);
    }
}
