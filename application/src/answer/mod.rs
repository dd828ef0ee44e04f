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
//! model finishes, the user stops it, the provider fails or stalls, the server shuts
//! down, or the actor itself dies (a panic in an adapter: see `Drop for Actor`). The
//! text streamed so far is stored once, at the end, never per token.

mod context;
mod finish;
mod lease;
mod outbox;
mod start;
mod stream;

use std::sync::Arc;
use std::time::Duration;

use chatbox_domain::upload::FileId;
use chatbox_domain::{
    ErrorCode, FinishReason, MessageId, MessageKind, ModelId, ProviderConversation, Sender, StoredMessage,
    Usage,
};
use futures::future::OptionFuture;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, warn};

use crate::deps::Deps;
use crate::events::{AnswerStyle, Frame, ServerEvent};
use crate::live::LiveSession;
use crate::ports::{AnswerLease, ChatRequest, ChatTurn, RepositoryError};
use crate::turn::Turn;
use context::{Context, context_window};

/// How an answer ended, before it is stored.
pub(super) struct Outcome {
    /// The model that answered (the fallback's, if it took over).
    pub(super) model_id: ModelId,
    pub(super) finish_reason: FinishReason,
    pub(super) failure: Option<(ErrorCode, &'static str)>,
    pub(super) usage: Option<Usage>,
    pub(super) first_token: Option<std::time::Duration>,
    pub(super) prompt_chars: usize,
    /// The provider's conversation id, when it issued one during this answer.
    pub(super) conversation: Option<ProviderConversation>,
}

impl Outcome {
    pub(super) fn ended_with(model_id: &ModelId, finish_reason: FinishReason) -> Self {
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

    pub(super) fn failed(
        model_id: &ModelId,
        finish_reason: FinishReason,
        code: ErrorCode,
        message: &'static str,
    ) -> Self {
        Self { failure: Some((code, message)), ..Self::ended_with(model_id, finish_reason) }
    }
}

/// The answer being produced: what every step needs to know about it.
pub(super) struct Answer {
    pub(super) message_id: MessageId,
    pub(super) style: AnswerStyle,
    pub(super) cancel: CancellationToken,
    pub(super) started: Duration,
}

const PROVIDER_UNAVAILABLE: &str = "AI service is temporarily unavailable";
const PROVIDER_TIMEOUT: &str = "AI service timed out";
const STORAGE_UNAVAILABLE: &str = "Storage is temporarily unavailable";

pub(crate) struct Actor {
    live: Arc<LiveSession>,
    deps: Arc<Deps>,
    /// An answer that finished while storage was failing (see `outbox.rs`). Boxed: it is
    /// rare, and inline it would be most of every waiting session's actor.
    held: Option<Box<outbox::HeldAnswer>>,
    /// The session's writer lease, while there is work (see `lease.rs`).
    lease: Option<AnswerLease>,
}

/// Runs a session's actor until the session is retired and its queue is drained.
pub(crate) async fn run(live: Arc<LiveSession>, deps: Arc<Deps>) {
    let mut actor = Actor { live, deps, held: None, lease: None };
    let mut retiring = false;
    loop {
        let watching_orphan = actor.lease.is_none() && actor.live.mirrors_an_answer();
        // Made, and boxed, only while an answer is held: `select!` makes every branch's
        // future, and the timer inline would be part of every waiting session's actor.
        let retry = OptionFuture::from(
            actor.held.is_some().then(|| Box::pin(tokio::time::sleep(outbox::RETRY_INTERVAL))),
        );
        let turn = tokio::select! {
            biased;
            () = actor.live.retired(), if !retiring => {
                // Take what was already accepted, then stop.
                retiring = true;
                actor.live.close_turns();
                continue;
            }
            Some(()) = retry, if actor.held.is_some() => {
                Box::pin(actor.flush()).await;
                actor.release_if_idle();
                continue;
            }
            // Another replica streams an answer here; if it stops holding the lease
            // without ending it, it died: end the answer from here.
            () = actor.live.mirror_started().notified(), if !watching_orphan => continue,
            () = actor.deps.hub.answerer_gone(actor.live.id()), if watching_orphan => {
                // Its end usually arrived meanwhile (it was written before the lease was
                // given back): only an answer still open here was orphaned.
                // Boxed, as the rare paths below are: inline, taking the lease would be
                // this future's largest state, held by every waiting session.
                if actor.live.mirrors_an_answer() && Box::pin(actor.take_lease()).await {
                    Box::pin(actor.end_orphaned_answer()).await;
                    actor.release_if_idle();
                }
                continue;
            }
            turn = actor.live.next_turn() => turn,
        };
        let Some(turn) = turn else { break };
        // Boxed: storing and answering are this future's largest states, and a session
        // that waits for its next turn (most of them, most of the time) should hold only
        // what waiting needs.
        Box::pin(actor.take_turn(*turn)).await;
        actor.release_if_idle();
    }
    actor.flush_before_exit().await;
    debug!(session_id = %actor.live.id(), "session actor stopped");
}

/// What must hold however the actor ends, a panic in an adapter included (its task's
/// future is dropped then). An actor that returns was retired and has taken every turn
/// and ended every answer; one that died leaves its session to be loaded again with a new
/// actor, and whoever waited on it is told: the turns still queued are refused (their
/// senders may send them again), and the answer it streamed is ended, unstored.
impl Drop for Actor {
    fn drop(&mut self) {
        // Made at every actor's end, the rare one that died included: a session's actor
        // ends once, when the session leaves memory.
        let internal = self.error_frame(&crate::error::ChatError::Internal);
        let refused = self.live.refuse_stranded_turns(&internal);
        let abandoned = self.live.abandon_answer(&internal);
        if self.live.actor_ended() {
            error!(session_id = %self.live.id(), refused_turns = refused, abandoned_answer = ?abandoned.map(|id| id.to_string()), held_answer_lost = self.held.is_some(), "the session's actor died; its next message loads the session again, with a new actor");
        }
    }
}

impl Actor {
    /// Stores a turn and, when the model should, answers it.
    async fn take_turn(&mut self, turn: Turn) {
        // One writer per session: across replicas, the lease's holder in turn.
        if !self.take_lease().await {
            self.live.refuse_turn(&turn, &self.shared_state_error());
            return;
        }
        // Nothing is stored after a held answer until it is: sequence numbers stay in order.
        if !self.flush().await {
            self.refuse(&turn);
        } else if !self.live.take_if_stored_elsewhere(&turn)
            && let Some(style) = self.store_turn(turn).await
        {
            self.answer(style).await;
        }
    }

    fn frame(&self, event: ServerEvent) -> Arc<Frame> {
        Frame::new(event, self.deps.clock.now())
    }

    /// Refuses a turn because storage is failing: the sender gets `DATABASE_ERROR` and may
    /// send it again with the same `client_message_id`.
    fn refuse(&self, turn: &Turn) {
        self.live.refuse_turn(turn, &self.storage_error());
    }

    /// The writer's lease could not be reached: the sender may send again shortly.
    fn shared_state_error(&self) -> Arc<Frame> {
        self.error_frame(&crate::error::ChatError::SharedStateUnavailable)
    }

    /// The `error` frame for `error`, concerning this session.
    fn error_frame(&self, error: &crate::error::ChatError) -> Arc<Frame> {
        self.frame(ServerEvent::error(error, Some(self.live.id().clone())))
    }

    fn storage_error(&self) -> Arc<Frame> {
        self.frame(ServerEvent::Error {
            session_id: Some(self.live.id().clone()),
            code: ErrorCode::DatabaseError,
            message: STORAGE_UNAVAILABLE.to_owned(),
            retry_after: None,
        })
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
        let (seq, mut effects) = self.live.next_message(user_text);
        let mut message = StoredMessage {
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
        let mut stored =
            self.deps.storage(self.deps.repo.append_message(self.live.id(), &message, &effects)).await;
        if matches!(stored, Err(RepositoryError::Conflict)) {
            // Another writer took this seq, which this copy did not know of (its lease
            // did not say so: a shared store that lost its memory). Catch up, then try
            // once more at the store's next seq.
            warn!(session_id = %self.live.id(), seq = %message.seq, "seq already taken: catching up with the store");
            self.catch_up().await;
            if self.live.take_if_stored_elsewhere(&turn) {
                return None;
            }
            (message.seq, effects) = self.live.next_message(user_text);
            stored =
                self.deps.storage(self.deps.repo.append_message(self.live.id(), &message, &effects)).await;
        }
        if let Err(error) = stored {
            warn!(session_id = %self.live.id(), %error, "storing a message failed");
            self.refuse(&turn);
            return None;
        }
        let message = Arc::new(message);
        let echo = self
            .frame(ServerEvent::Stored { session_id: self.live.id().clone(), message: Arc::clone(&message) });
        let ai_answers = self.live.turn_stored(&turn, &message, &effects, &echo);
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
        let started = self.deps.monotonic();
        let loading = self.frame(ServerEvent::Loading {
            session_id: session_id.clone(),
            message_id: message_id.clone(),
            style,
        });
        let (model_id, user_id) = self.live.start_answer(message_id.clone(), style, cancel.clone(), &loading);

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

    /// Puts the most recent uploaded pictures that can be shown (`LLM_IMAGES_MAX`) into
    /// their turns, when the model sees images; the others stay named only.
    async fn show_pictures(&self, model_id: &ModelId, turns: &mut [ChatTurn], pictures: &[(usize, FileId)]) {
        let (Some(files), Some(provider)) = (&self.deps.files, self.deps.providers.get(model_id)) else {
            return;
        };
        if !provider.sees_images() {
            return;
        }
        // Newest first, until LLM_IMAGES_MAX are shown: a picture that cannot be (too
        // large, gone) does not use up a place.
        let mut shown = 0;
        for (index, file) in pictures.iter().rev() {
            if shown >= files.settings().model_images_max {
                break;
            }
            if let (Some(image), Some(turn)) =
                (files.image_for_model(file, self.live.id()).await, turns.get_mut(*index))
            {
                turn.images.push(image);
                shown += 1;
            }
        }
    }

    /// Builds the provider request from the stored history.
    pub(super) async fn request(
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
        let Context { turns: mut history, pictures } = context_window(&recent, settings.context_max_chars);
        self.show_pictures(model_id, &mut history, &pictures).await;
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
}
