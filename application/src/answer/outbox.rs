//! The outbox: an answer that finished while storage was failing is held here and written
//! when storage returns — before the session's next message, on a retry timer while the
//! session is quiet, and at shutdown until the deadline. The client was told
//! `DATABASE_ERROR`; nothing acknowledged is dropped.
//!
//! An answer that can never be stored (its session is gone from storage, or its seq is
//! taken) is dropped with an error line rather than retried for ever.
//!
//! Bounded: at most one held answer per live session (of at most `MAX_ANSWER_CHARS`),
//! since nothing else is stored for the session until it is written, which also keeps
//! sequence numbers in order. A session with a held answer is never evicted.

use std::time::Duration;

use chatbox_domain::{MessageEffects, StoredMessage};
use tracing::{error, info, warn};

use super::Actor;
use crate::ports::RepositoryError;

/// How often a held answer is retried while the session is quiet.
pub(super) const RETRY_INTERVAL: Duration = Duration::from_secs(2);
/// How often it is retried during shutdown, until the deadline.
const SHUTDOWN_RETRY_INTERVAL: Duration = Duration::from_millis(200);

/// An answer waiting to be stored, with what it changes on its session.
#[derive(Debug)]
pub(super) struct HeldAnswer {
    message: StoredMessage,
    effects: MessageEffects,
}

impl Actor {
    /// Holds an answer that could not be stored.
    pub(super) fn hold(&mut self, message: StoredMessage, effects: MessageEffects) {
        warn!(session_id = %self.live.id(), seq = %message.seq, "answer held in the outbox until storage returns");
        self.live.hold_answer();
        self.held = Some(Box::new(HeldAnswer { message, effects }));
    }

    /// Writes the held answer, if any; true when nothing is held any more.
    pub(super) async fn flush(&mut self) -> bool {
        let Some(held) = &self.held else {
            return true;
        };
        let stored = self
            .deps
            .storage(self.deps.repo.append_message(self.live.id(), &held.message, &held.effects))
            .await;
        match stored {
            Ok(()) => {}
            // The session is gone from storage (deleted, or dropped by the memory store's
            // bound), or another message holds the seq: no retry can ever succeed, and
            // retrying would pin the live session for ever.
            Err(error @ (RepositoryError::NotFound | RepositoryError::Conflict)) => {
                error!(session_id = %self.live.id(), seq = %held.message.seq, %error, "held answer dropped: it can never be stored");
                self.live.release_held_answer(None);
                self.held = None;
                return true;
            }
            Err(error) => {
                warn!(session_id = %self.live.id(), %error, "storing a held answer failed; will retry");
                return false;
            }
        }
        self.live.release_held_answer(Some((held.message.seq, held.message.timestamp, &held.effects)));
        info!(session_id = %self.live.id(), seq = %held.message.seq, "held answer stored");
        self.held = None;
        true
    }

    /// At shutdown: keeps trying until the answers' deadline.
    pub(super) async fn flush_before_exit(&mut self) {
        while !self.flush().await {
            tokio::select! {
                () = self.deps.answers_cutoff.cancelled() => break,
                () = tokio::time::sleep(SHUTDOWN_RETRY_INTERVAL) => {}
            }
        }
        if let Some(held) = &self.held {
            error!(session_id = %self.live.id(), seq = %held.message.seq, "an answer could not be stored before the shutdown deadline");
        }
    }
}
