//! The writer's lease of a session across replicas: a Redis key set if absent, with an
//! expiry, renewed by its holder every third of its life, given back through the writer
//! once the holder's frames before it are appended (so the next holder reads them first).
//!
//! A grant that directly follows this replica's previous one (its fencing number is the
//! next) was held by nobody else in between: the copy here is current. Otherwise the
//! lease is handed out as possibly behind, after waiting (a bounded time) until the copy
//! here has applied every entry the session's stream had when the lease was granted;
//! the holder then catches up with the store for anything the stream did not carry (a
//! replica that died before appending).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chatbox_application::ports::{AnswerLease, LeaseUnavailable};
use chatbox_domain::SessionId;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::Shared;
use super::writer::Write;
use crate::lease::Grant;
use crate::stream::id_parts;

/// The first pause between two tries for a lease another replica holds; it doubles up to
/// [`MAX_WAIT`].
const FIRST_WAIT: Duration = Duration::from_millis(10);
const MAX_WAIT: Duration = Duration::from_millis(250);
/// How long Redis may stay unreachable while a lease is asked for before the asker is
/// told so (and refuses the turn that waits, which its client sends again).
const UNREACHABLE_FOR: Duration = Duration::from_secs(5);
/// How long a new holder waits for the stream's entries to be applied here.
const CATCH_UP_WAIT: Duration = Duration::from_secs(2);
/// How often a replica watching another's answer checks that its lease is still held.
const GONE_CHECK: Duration = Duration::from_secs(1);

/// Tells apart the grants this replica asks for.
static NEXT_HOLDER: AtomicU64 = AtomicU64::new(0);

/// A held grant: renewed while it lives, given back when dropped.
struct HeldGrant {
    grant: Option<Grant>,
    renewal: CancellationToken,
    shared: Arc<Shared>,
}

impl Drop for HeldGrant {
    fn drop(&mut self) {
        self.renewal.cancel();
        if let Some(grant) = self.grant.take() {
            self.shared.outbox.push(Write::Release(grant));
        }
    }
}

/// Waits until this replica holds `session`'s lease.
pub(super) async fn acquire(
    shared: &Arc<Shared>,
    session: &SessionId,
) -> Result<AnswerLease, LeaseUnavailable> {
    let ttl = shared.settings.lease_ttl;
    let mut wait = FIRST_WAIT;
    // Waiting for another replica to finish is unbounded (it holds the lease only while
    // it works, and the lease lapses if it dies); an unreachable Redis is not waited for
    // longer than UNREACHABLE_FOR.
    let mut unreachable_since: Option<tokio::time::Instant> = None;
    let grant = loop {
        let holder = format!("{}:{}", shared.settings.replica, NEXT_HOLDER.fetch_add(1, Ordering::Relaxed));
        match shared.leases.try_acquire(session.as_str(), &holder, ttl).await {
            Ok(Some(grant)) => break grant,
            Ok(None) => unreachable_since = None,
            Err(error) => {
                debug!(session_id = %session, %error, "the writer's lease could not be asked for");
                let since = *unreachable_since.get_or_insert_with(tokio::time::Instant::now);
                if since.elapsed() >= UNREACHABLE_FOR {
                    return Err(LeaseUnavailable);
                }
            }
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(MAX_WAIT);
    };
    let previous = shared.fences.insert(session.clone(), grant.fence());
    let behind = previous.is_none_or(|fence| fence.checked_add(1) != Some(grant.fence()));
    if behind {
        wait_for_stream(shared, session).await;
    }
    let renewal = CancellationToken::new();
    tokio::spawn(renew(Arc::clone(shared), grant.clone(), renewal.clone()));
    let held = HeldGrant { grant: Some(grant), renewal, shared: Arc::clone(shared) };
    Ok(if behind { AnswerLease::after_others(held) } else { AnswerLease::new(held) })
}

/// Renews `grant` every third of its life until `stop`, or until it turns out lost.
async fn renew(shared: Arc<Shared>, grant: Grant, stop: CancellationToken) {
    let ttl = shared.settings.lease_ttl;
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(ttl / 3) => {}
        }
        match shared.leases.renew(&grant, ttl).await {
            Ok(true) => {}
            Ok(false) => {
                // Expired and perhaps taken: the store refuses this holder's writes at a
                // seq the new holder used, so nothing is overwritten.
                warn!(lease = grant.name(), "a writer's lease expired while held");
                return;
            }
            Err(error) => debug!(%error, "renewing a writer's lease failed; trying again"),
        }
    }
}

/// Waits until the copy here has applied what `session`'s stream holds now.
async fn wait_for_stream(shared: &Shared, session: &SessionId) {
    let Ok(Some(last)) = shared.streams.last_id(session).await else { return };
    let Some(mut applied) = shared.sessions.get(session).map(|followed| followed.applied.subscribe()) else {
        return;
    };
    let caught_up = applied.wait_for(|applied| {
        applied.as_deref().and_then(id_parts).is_some_and(|applied| Some(applied) >= id_parts(&last))
    });
    if tokio::time::timeout(CATCH_UP_WAIT, caught_up).await.is_err() {
        debug!(session_id = %session, "the stream was not applied in time; catching up from the store");
    }
}

/// Completes once nobody holds `session`'s lease.
pub(super) async fn wait_until_free(shared: &Shared, session: &SessionId) {
    loop {
        tokio::time::sleep(GONE_CHECK).await;
        if let Ok(false) = shared.leases.is_held(session.as_str()).await {
            return;
        }
    }
}
