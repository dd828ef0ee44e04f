//! The writer's lease, as the actor uses it: taken when work arrives (a turn, a held
//! answer), given back when the actor is idle, so that across replicas whichever replica
//! a message reaches can be the session's one writer in turn.
//!
//! Taking a lease that another replica held since brings this copy up to the store first
//! (the session's fields and every message stored after this copy's last), so the next
//! `seq` here is the store's next one. A replica that was paused while another took the
//! lease over cannot overwrite it: the store refuses a second message at one `seq`.
//!
//! An answer mirrored from a replica that stopped holding the lease without ending it
//! (it died) is ended here, once this replica holds the lease: stored with what was
//! mirrored and finished with an error and its `done` on every replica.

use chatbox_domain::{ErrorCode, FinishReason};
use tracing::{info, warn};

use super::{Actor, Answer, Outcome};

/// The most messages read while catching up with the store.
const CATCH_UP_LIMIT: usize = 1_000;

const ANSWER_INTERRUPTED: &str = "The answer was interrupted; please ask again";

impl Actor {
    /// Takes the session's writer lease unless held, catching up with the store when
    /// another replica may have written meanwhile. False when it cannot be had (the
    /// store of leases is unreachable): nothing may be written then.
    pub(super) async fn take_lease(&mut self) -> bool {
        if self.lease.is_some() {
            return true;
        }
        let Ok(lease) = self.deps.hub.lease_answerer(self.live.id()).await else {
            warn!(session_id = %self.live.id(), "the writer's lease cannot be reached: the turn is refused");
            return false;
        };
        if lease.may_be_behind() {
            self.catch_up().await;
        }
        self.lease = Some(lease);
        true
    }

    /// Gives the lease back once nothing waits: no turn queued, no answer held.
    pub(super) fn release_if_idle(&mut self) {
        if !self.live.turns_waiting() && self.held.is_none() {
            self.lease = None;
        }
    }

    /// Reads what the store has beyond this copy and applies it. A store that fails
    /// leaves the copy as it is: a write at a `seq` another replica took is refused by
    /// the store, never stored twice.
    pub(super) async fn catch_up(&self) {
        let id = self.live.id();
        let loaded = match self.deps.storage(self.deps.repo.load(id)).await {
            Ok(Some(session)) => session,
            Ok(None) => return,
            Err(error) => {
                warn!(session_id = %id, %error, "catching up with the store failed");
                return;
            }
        };
        // Everything stored after this copy's last message, up to a bound: a copy further
        // behind than that records what it can; the store still refuses a taken `seq`.
        let behind = loaded.last_seq.0.saturating_sub(self.live.stored_seq().0);
        let missed = if behind == 0 {
            Vec::new()
        } else {
            let limit = usize::try_from(behind).unwrap_or(usize::MAX).min(CATCH_UP_LIMIT);
            match self.deps.storage(self.deps.repo.messages_after(id, self.live.stored_seq(), limit)).await {
                Ok(missed) => missed,
                Err(error) => {
                    warn!(session_id = %id, %error, "catching up with the store failed");
                    return;
                }
            }
        };
        self.live.catch_up(loaded, &missed, self.deps.clock.now());
    }

    /// Ends an answer mirrored from a replica that died while streaming it.
    pub(super) async fn end_orphaned_answer(&mut self) {
        let Some(orphan) = self.live.orphaned_answer() else {
            return;
        };
        info!(session_id = %self.live.id(), message_id = %orphan.message_id, "ending an answer whose replica stopped");
        let answer = Answer {
            message_id: orphan.message_id,
            style: orphan.style,
            cancel: tokio_util::sync::CancellationToken::new(),
            started: self.deps.monotonic(),
        };
        let outcome = Outcome::failed(
            &orphan.model_id,
            FinishReason::Error,
            ErrorCode::LlmUnavailable,
            ANSWER_INTERRUPTED,
        );
        self.finish(outcome, &answer).await;
    }
}
