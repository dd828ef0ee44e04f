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
    AnswerTiming, ClientMessageId, ErrorCode, FinishReason, MessageEffects, MessageId, MessageKind, ModelId,
    ProviderConversation, Sender, StoredMessage, Usage,
};
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::deps::Deps;
use crate::events::{AnswerStyle, Frame, ServerEvent};
use crate::live::{LiveSession, StreamingAnswer};
use crate::ports::{AnswerStream, ChatRequest, ChatTurn, LlmProvider, ProviderError, Role, StreamEvent};
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
    /// The model that answered (the fallback's, if it took over).
    model_id: ModelId,
    finish_reason: FinishReason,
    failure: Option<(ErrorCode, &'static str)>,
    usage: Option<Usage>,
    first_token: Option<std::time::Duration>,
    prompt_chars: usize,
    /// The provider's conversation id, when it issued one during this answer.
    conversation: Option<ProviderConversation>,
}

impl Outcome {
    fn ended_with(model_id: &ModelId, finish_reason: FinishReason) -> Self {
        Self {
            model_id: model_id.clone(),
            finish_reason,
            failure: None,
            usage: None,
            first_token: None,
            prompt_chars: 0,
            conversation: None,
        }
    }

    fn failed(
        model_id: &ModelId,
        finish_reason: FinishReason,
        code: ErrorCode,
        message: &'static str,
    ) -> Self {
        Self { failure: Some((code, message)), ..Self::ended_with(model_id, finish_reason) }
    }
}

/// The answer being produced: what every step needs to know about it.
struct Answer {
    message_id: MessageId,
    style: AnswerStyle,
    cancel: CancellationToken,
    started: Instant,
}

/// A provider stream that produced its first token (or ended), and the events read so far.
struct Started {
    stream: AnswerStream,
    model_id: ModelId,
    first_events: Vec<StreamEvent>,
}

/// Why one attempt did not produce a first token.
enum Attempt {
    Cancelled,
    TimedOut,
    Failed(ProviderError),
}

/// What the stream has told us so far.
struct Progress {
    model_id: ModelId,
    usage: Option<Usage>,
    first_token: Option<std::time::Duration>,
    conversation: Option<ProviderConversation>,
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
        let (message, effects) = self.live.with_state(|state| {
            let seq = state.session.next_seq();
            let effects = state.session.user_message_effects(user_text);
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
                timing: None,
            };
            (message, effects)
        });
        let stored =
            self.deps.storage(self.deps.repo.append_message(self.live.id(), &message, &effects)).await;
        let session_id = self.live.id().clone();
        let message = Arc::new(message);
        let echo =
            self.frame(ServerEvent::Stored { session_id: session_id.clone(), message: Arc::clone(&message) });
        let ai_answers = self.live.with_state(|state| {
            state.queued_turns = state.queued_turns.saturating_sub(1);
            match &stored {
                Ok(()) => {
                    state.session.record(message.seq, now, &effects);
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

        let answer = Answer { message_id, style, cancel, started };
        let outcome = match self.request(&model_id, user_id).await {
            Ok((request, prompt_chars)) => {
                let mut outcome = self.run(request, &answer).await;
                outcome.prompt_chars = prompt_chars;
                outcome
            }
            Err(outcome) => outcome,
        };
        self.finish(outcome, &answer).await;
    }

    /// Builds the provider request from the stored history.
    async fn request(
        &self,
        model_id: &ModelId,
        user_id: chatbox_domain::UserId,
    ) -> Result<(ChatRequest, usize), Outcome> {
        let settings = &self.deps.settings;
        let recent = self
            .deps
            .storage(self.deps.repo.recent_messages(self.live.id(), settings.context_messages))
            .await
            .map_err(|error| {
                warn!(session_id = %self.live.id(), %error, "loading the history failed");
                Outcome::failed(model_id, FinishReason::Error, ErrorCode::DatabaseError, STORAGE_UNAVAILABLE)
            })?;
        let history = context_window(&recent, settings.context_max_chars);
        let prompt_chars = history.iter().map(|t| t.content.chars().count()).sum::<usize>()
            + settings.system_prompt.as_ref().map_or(0, |p| p.chars().count());
        let request = ChatRequest {
            model_id: model_id.clone(),
            system_prompt: settings.system_prompt.clone(),
            history,
            user_id,
            session_id: self.live.id().clone(),
            conversation_id: None,
        };
        Ok((request, prompt_chars))
    }

    /// Runs the answer: starts it (with retries and fallback), then forwards the stream
    /// to the sockets until it ends, fails, stalls, is cancelled, or runs out of time.
    /// Dropping the stream on return aborts the provider request.
    async fn run(&mut self, request: ChatRequest, answer: &Answer) -> Outcome {
        let deps = Arc::clone(&self.deps);
        let settings = &deps.settings;
        let total_deadline = answer.started + settings.stream_timeout;
        let Started { mut stream, model_id, first_events } =
            match self.start(request, &answer.cancel, total_deadline).await {
                Ok(started) => started,
                Err(outcome) => return outcome,
            };
        let mut progress = Progress { model_id, usage: None, first_token: None, conversation: None };
        for event in first_events {
            if let Some(reason) = self.apply(event, &mut progress, answer) {
                return progress.ended(reason);
            }
        }
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
                () = answer.cancel.cancelled() => return progress.ended(FinishReason::Cancelled),
                () = sleep_until(deadline) => {
                    if unattended_deadline.is_some_and(|d| d <= Instant::now()) {
                        debug!(session_id = %self.live.id(), "no socket came back in time; answer cancelled");
                        return progress.ended(FinishReason::Cancelled);
                    }
                    warn!(session_id = %self.live.id(), model_id = %progress.model_id, "answer timed out");
                    return progress.failed(FinishReason::Timeout, ErrorCode::LlmTimeout, PROVIDER_TIMEOUT);
                }
                event = stream.next() => {
                    last_event = Instant::now();
                    match event {
                        Some(Ok(event)) => {
                            if let Some(reason) = self.apply(event, &mut progress, answer) {
                                return progress.ended(reason);
                            }
                        }
                        None => return progress.ended(FinishReason::Stop),
                        Some(Err(error)) => {
                            warn!(session_id = %self.live.id(), model_id = %progress.model_id, %error, "answer stream failed");
                            return progress.failed(FinishReason::Error, ErrorCode::LlmUnavailable, PROVIDER_UNAVAILABLE);
                        }
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
                progress.first_token.get_or_insert_with(|| answer.started.elapsed());
                let chunk = self.frame(ServerEvent::AnswerChunk {
                    session_id: self.live.id().clone(),
                    message_id: answer.message_id.clone(),
                    model_id: progress.model_id.clone(),
                    delta: Arc::from(text.as_str()),
                    style: answer.style,
                });
                self.live.with_state(|state| {
                    if let Some(streaming) = state.streaming.as_mut() {
                        streaming.text.push_str(&text);
                    }
                    state.broadcast(&chunk, None);
                });
                None
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

    /// Starts the answer with the session's provider, retrying failures whose kind
    /// allows it (with backoff, honouring `Retry-After`), then the provider's fallback.
    /// Everything here happens before the first token: once one arrives, a failure
    /// ends the answer instead.
    async fn start(
        &self,
        request: ChatRequest,
        cancel: &CancellationToken,
        total_deadline: Instant,
    ) -> Result<Started, Outcome> {
        let settings = &self.deps.settings;
        let policy = settings.retry;
        let chain = settings.provider_chain(&request.model_id);
        for (position, model_id) in chain.iter().enumerate() {
            let Some(provider) = self.deps.providers.get(model_id).cloned() else {
                warn!(%model_id, "no provider is configured for this model");
                continue;
            };
            if position > 0 {
                info!(session_id = %self.live.id(), from = %chain[position - 1], to = %model_id, "falling back to another provider");
            }
            let mut attempt_request = request.clone();
            attempt_request.model_id = model_id.clone();
            attempt_request.conversation_id =
                self.live.with_state(|state| state.session.conversation_for(model_id).map(str::to_owned));
            let mut retry = 0;
            loop {
                let failure = match self
                    .attempt(&*provider, attempt_request.clone(), cancel, total_deadline)
                    .await
                {
                    Ok((stream, first_events)) => {
                        return Ok(Started { stream, model_id: model_id.clone(), first_events });
                    }
                    Err(Attempt::Cancelled) => {
                        return Err(Outcome::ended_with(model_id, FinishReason::Cancelled));
                    }
                    Err(Attempt::TimedOut) => {
                        warn!(session_id = %self.live.id(), %model_id, "no answer from the provider in time");
                        return Err(Outcome::failed(
                            model_id,
                            FinishReason::Timeout,
                            ErrorCode::LlmTimeout,
                            PROVIDER_TIMEOUT,
                        ));
                    }
                    Err(Attempt::Failed(error)) => error,
                };
                warn!(session_id = %self.live.id(), %model_id, error = %failure, retryable = failure.is_retryable(), retry, "provider request failed");
                if !failure.is_retryable() || retry >= policy.max_retries {
                    break;
                }
                let wait = policy.delay(retry, failure.retry_after(), self.deps.random.unit());
                if Instant::now().checked_add(wait).is_none_or(|resume| resume >= total_deadline) {
                    break;
                }
                tokio::select! {
                    biased;
                    () = cancel.cancelled() => return Err(Outcome::ended_with(model_id, FinishReason::Cancelled)),
                    () = tokio::time::sleep(wait) => {}
                }
                retry += 1;
            }
        }
        Err(Outcome::failed(
            &request.model_id,
            FinishReason::Error,
            ErrorCode::LlmUnavailable,
            PROVIDER_UNAVAILABLE,
        ))
    }

    /// One request to one provider, read up to its first token (or its end).
    async fn attempt(
        &self,
        provider: &dyn LlmProvider,
        request: ChatRequest,
        cancel: &CancellationToken,
        total_deadline: Instant,
    ) -> Result<(AnswerStream, Vec<StreamEvent>), Attempt> {
        let idle = self.deps.settings.idle_timeout;
        let deadline = (Instant::now() + idle).min(total_deadline);
        let mut stream = tokio::select! {
            biased;
            () = cancel.cancelled() => return Err(Attempt::Cancelled),
            () = sleep_until(deadline) => return Err(Attempt::TimedOut),
            started = provider.stream(request) => started.map_err(Attempt::Failed)?,
        };
        let mut first_events = Vec::new();
        loop {
            let deadline = (Instant::now() + idle).min(total_deadline);
            let event = tokio::select! {
                biased;
                () = cancel.cancelled() => return Err(Attempt::Cancelled),
                () = sleep_until(deadline) => return Err(Attempt::TimedOut),
                event = stream.next() => event,
            };
            match event {
                Some(Ok(event)) => {
                    let first_token = matches!(&event, StreamEvent::Delta(text) if !text.is_empty())
                        || matches!(event, StreamEvent::Finished(_));
                    first_events.push(event);
                    if first_token {
                        return Ok((stream, first_events));
                    }
                }
                Some(Err(error)) => return Err(Attempt::Failed(error)),
                None => {
                    first_events.push(StreamEvent::Finished(FinishReason::Stop));
                    return Ok((stream, first_events));
                }
            }
        }
    }

    /// Stores what was streamed and ends the answer with its `done` frame.
    async fn finish(&mut self, outcome: Outcome, answer: &Answer) {
        let Answer { message_id, style, started, .. } = answer;
        let (style, model_id) = (*style, &outcome.model_id);
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
        let timing = AnswerTiming { first_token: outcome.first_token, total: duration };

        let effects =
            MessageEffects::answer(usage.unwrap_or_default(), duration, outcome.conversation.clone());
        let mut stored_seq = None;
        let mut storage_failed = false;
        if !text.is_empty() {
            let message = self.live.with_state(|state| {
                let seq = state.session.next_seq();
                let mut message = StoredMessage::text(message_id.clone(), seq, Sender::Ai, text.clone(), now);
                message.finish_reason = Some(outcome.finish_reason);
                message.usage = usage;
                message.model_id = Some(model_id.to_string());
                message.timing = Some(timing);
                message
            });
            match self.deps.storage(self.deps.repo.append_message(&session_id, &message, &effects)).await {
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
            timing,
            style,
        }));
        self.live.with_state(|state| {
            if let Some(seq) = stored_seq {
                state.session.record(seq, now, &effects);
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
