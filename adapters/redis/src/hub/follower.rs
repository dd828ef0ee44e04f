//! The follower: one task that reads the streams of every session live on this replica
//! with one blocking read, hands each entry another replica wrote to the session's copy
//! here, and records how far each stream has been applied (the lease waits on it).
//!
//! A session is read from where it was decided when it became live here, or from the
//! start of its answer in progress if that is earlier (so a socket joining here mid-answer
//! gets the whole answer so far). A failed read is logged once, then the connection is
//! made again and every stream read on from where it was.

use std::sync::Weak;
use std::time::Duration;

use chatbox_domain::SessionId;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::Shared;
use crate::codec::{self, Carried};
use crate::connection::RedisConnection;
use crate::follow::StreamFollower;
use crate::stream::{before, id_parts};

/// How long one read waits for an entry (a session that becomes live here ends the wait).
const BLOCK: Duration = Duration::from_millis(200);
/// Entries read per stream per read.
const COUNT: usize = 256;
/// The pause before connecting again after a failure.
const RETRY: Duration = Duration::from_millis(500);

/// Follows until the hub is dropped.
pub(super) async fn run(shared: Weak<Shared>, connection: RedisConnection, stopped: CancellationToken) {
    let Some((prefix, origin)) =
        shared.upgrade().map(|shared| (shared.settings.prefix.clone(), shared.settings.replica.clone()))
    else {
        return;
    };
    let mut follower = loop {
        match StreamFollower::connect(&connection, prefix.clone(), origin.clone()).await {
            Ok(follower) => break follower,
            Err(_) => {
                if pause(&stopped).await {
                    return;
                }
            }
        }
    };
    let mut failing = false;
    loop {
        let Some(shared) = shared.upgrade() else { return };
        follow_live_sessions(&shared, &mut follower).await;
        if follower.is_empty() {
            // Nothing to read until a session becomes live here.
            tokio::select! {
                () = stopped.cancelled() => return,
                () = shared.new_session.notified() => {}
            }
            continue;
        }
        let read = tokio::select! {
            () = stopped.cancelled() => return,
            // A session became live here: read again with it. The read given up reads
            // nothing twice or never: positions move only with a read's answer.
            () = shared.new_session.notified() => continue,
            read = follower.next(BLOCK, COUNT) => read,
        };
        match read {
            Ok(entries) => {
                if failing {
                    info!("replica fan-out reads from Redis again");
                    failing = false;
                }
                for (session, entry) in entries {
                    apply(&shared, &session, &entry.frame);
                }
                record_positions(&shared, &follower);
            }
            Err(error) => {
                if !failing {
                    warn!(%error, "replica fan-out cannot read from Redis: frames of other replicas wait until it can");
                    failing = true;
                }
                drop(shared);
                if pause(&stopped).await {
                    return;
                }
                let _ = follower.reconnect(&connection).await;
            }
        }
    }
}

/// Waits a little; true when the hub stopped meanwhile.
async fn pause(stopped: &CancellationToken) -> bool {
    tokio::select! {
        () = stopped.cancelled() => true,
        () = tokio::time::sleep(RETRY) => false,
    }
}

/// Follows the sessions that became live here and stops following those that left.
async fn follow_live_sessions(shared: &Shared, follower: &mut StreamFollower) {
    let gone: Vec<SessionId> =
        follower.sessions().filter(|session| !shared.sessions.contains_key(*session)).cloned().collect();
    for session in gone {
        follower.unfollow(&session);
    }
    let new: Vec<(SessionId, String)> = shared
        .sessions
        .iter()
        .filter(|followed| !follower.follows(followed.key()))
        .map(|followed| (followed.key().clone(), followed.start.clone()))
        .collect();
    for (session, start) in new {
        // From the answer in progress, when it started before: a socket joining here
        // mid-answer catches up with all of it. Without an answer (or Redis), from start.
        let answer = shared.streams.answer_start(&session).await.ok().flatten().and_then(|id| before(&id));
        let from = match answer {
            Some(answer) if id_parts(&answer) < id_parts(&start) => answer,
            _ => start,
        };
        follower.follow(&session, &from);
    }
}

/// Hands one entry to the session's copy here, if it is still live.
fn apply(shared: &Shared, session: &SessionId, text: &str) {
    // The copy is reached without holding the map: dropping the last reference to it
    // drops its fan-out, which removes it from the map.
    let Some(events) = shared.sessions.get(session).map(|followed| followed.events.clone()) else { return };
    let Some(events) = events.upgrade() else { return };
    match codec::decode(text, &shared.settings.models) {
        Some(Carried::Frame(frame, published_at)) => events.apply_remote(frame, published_at),
        Some(Carried::Stop) => events.stop_requested(),
        None => warn!(session_id = %session, "an entry of another replica could not be read; skipped"),
    }
}

/// Records how far each followed stream has been applied.
fn record_positions(shared: &Shared, follower: &StreamFollower) {
    for followed in shared.sessions.iter() {
        if let Some(position) = follower.position(followed.key()) {
            followed.applied.send_if_modified(|applied| {
                let changed = applied.as_deref() != Some(position);
                if changed {
                    *applied = Some(position.to_owned());
                }
                changed
            });
        }
    }
}
