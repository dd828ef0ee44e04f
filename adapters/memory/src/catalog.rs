//! The read side ([`SessionCatalog`]) of the in-memory store: listings, analytics and
//! share grants, computed from the stored sessions on each call.
//!
//! Invariants, shared with the MongoDB adapter and checked by the contract suite:
//! - every sort breaks ties by session id ascending, whatever the direction, so pages of
//!   one listing never overlap or skip;
//! - times count in whole milliseconds as MongoDB stores them: a duration is the
//!   difference of the two times' millisecond stamps, and a response time counts its
//!   whole milliseconds, so both stores give the same numbers;
//! - a share grant is found only while `expires_at > now`.
//!
//! Every call takes the store's one mutex for the time of a scan (bounded by
//! `MEMORY_STORE_MAX_SESSIONS`) and never across an `.await`.

use std::cmp::Ordering;

use async_trait::async_trait;
use chatbox_application::ports::{
    RepositoryError, SessionCatalog, SessionPage, SessionQuery, SessionSort, SessionStats, SessionSummary,
    ShareGrant,
};
use chatbox_domain::{SessionId, Timestamp};

use crate::{MemorySessionRepository, Stored};

/// Whole milliseconds of an answer duration, as stored by MongoDB.
fn millis(duration: std::time::Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// `(ended_at or last_activity) − created_at` in whole milliseconds, 0 if negative.
fn duration_ms(stored: &Stored) -> u64 {
    let session = &stored.session;
    let until = session.ended_at().unwrap_or(session.last_activity);
    u64::try_from(until.timestamp_millis().saturating_sub(session.created_at.timestamp_millis())).unwrap_or(0)
}

/// The response-time window as (count, sum, max), in whole milliseconds.
fn response_totals(stored: &Stored) -> (u64, u64, u64) {
    stored.session.response_times.iter().map(millis).fold((0, 0, 0), |(count, sum, max), ms| {
        (count.saturating_add(1), sum.saturating_add(ms), max.max(ms))
    })
}

fn summary(stored: &Stored) -> SessionSummary {
    let session = &stored.session;
    let (count, sum, max) = response_totals(stored);
    SessionSummary {
        id: session.id.clone(),
        owner: session.owner.clone(),
        name: session.name.clone(),
        model_id: session.model_id.clone(),
        message_count: session.message_count,
        created_at: session.created_at,
        last_activity: session.last_activity,
        ended_at: session.ended_at(),
        duration_ms: duration_ms(stored),
        total_tokens: session.total_tokens,
        avg_response_ms: sum.checked_div(count),
        max_response_ms: (count > 0).then_some(max),
        help_requested: stored.analytics.help_requested,
        admin_assisted: stored.analytics.admin_assisted,
        assisting_admin_name: stored.analytics.assisting_admin_name.clone(),
    }
}

fn in_range(at: Timestamp, from: Option<Timestamp>, to: Option<Timestamp>) -> bool {
    from.is_none_or(|from| at >= from) && to.is_none_or(|to| at <= to)
}

fn matches(query: &SessionQuery, stored: &Stored) -> bool {
    let session = &stored.session;
    query.user_id.as_ref().is_none_or(|user| &session.owner == user)
        && query.active.is_none_or(|active| session.is_active() == active)
        && query.admin_assisted.is_none_or(|flag| stored.analytics.admin_assisted == flag)
        && query.help_requested.is_none_or(|flag| stored.analytics.help_requested == flag)
        && in_range(session.created_at, query.created_from, query.created_to)
}

/// The order of a listing: the sort key in the asked direction, then the id ascending.
fn compare(sort: SessionSort, descending: bool, a: &SessionSummary, b: &SessionSummary) -> Ordering {
    let by_key = match sort {
        SessionSort::StartTime => a.created_at.cmp(&b.created_at),
        // `None` (active) sorts before every time: the smallest possible value.
        SessionSort::EndTime => a.ended_at.cmp(&b.ended_at),
        SessionSort::LastActivity => a.last_activity.cmp(&b.last_activity),
        SessionSort::Duration => a.duration_ms.cmp(&b.duration_ms),
        SessionSort::MessageCount => a.message_count.cmp(&b.message_count),
        SessionSort::TotalTokens => a.total_tokens.cmp(&b.total_tokens),
        SessionSort::UserId => a.owner.as_str().as_bytes().cmp(b.owner.as_str().as_bytes()),
    };
    let by_key = if descending { by_key.reverse() } else { by_key };
    by_key.then_with(|| a.id.as_str().as_bytes().cmp(b.id.as_str().as_bytes()))
}

#[async_trait]
impl SessionCatalog for MemorySessionRepository {
    async fn list_sessions(&self, query: &SessionQuery) -> Result<SessionPage, RepositoryError> {
        let mut matching: Vec<SessionSummary> =
            self.lock().values().filter(|stored| matches(query, stored)).map(summary).collect();
        let total = query.with_total.then(|| u64::try_from(matching.len()).unwrap_or(u64::MAX));
        matching.sort_unstable_by(|a, b| compare(query.sort, query.descending, a, b));
        let sessions = matching.into_iter().skip(query.offset).take(query.limit).collect();
        Ok(SessionPage { sessions, total })
    }

    async fn summary(&self, id: &SessionId) -> Result<Option<SessionSummary>, RepositoryError> {
        Ok(self.lock().get(id).map(summary))
    }

    async fn stats(
        &self,
        from: Option<Timestamp>,
        to: Option<Timestamp>,
    ) -> Result<SessionStats, RepositoryError> {
        let sessions = self.lock();
        let mut stats = SessionStats::default();
        let (mut answers, mut answer_ms) = (0_u64, 0_u64);
        for stored in sessions.values().filter(|stored| in_range(stored.session.created_at, from, to)) {
            let session = &stored.session;
            stats.total_sessions += 1;
            stats.active_sessions += u64::from(session.is_active());
            stats.help_requested_sessions += u64::from(stored.analytics.help_requested);
            stats.admin_assisted_sessions += u64::from(stored.analytics.admin_assisted);
            stats.total_messages = stats.total_messages.saturating_add(session.message_count);
            stats.total_tokens = stats.total_tokens.saturating_add(session.total_tokens);
            let (count, sum, max) = response_totals(stored);
            answers = answers.saturating_add(count);
            answer_ms = answer_ms.saturating_add(sum);
            stats.max_response_ms = stats.max_response_ms.max(max);
        }
        stats.avg_response_ms = answer_ms.checked_div(answers).unwrap_or(0);
        Ok(stats)
    }

    async fn set_share(&self, id: &SessionId, grant: Option<&ShareGrant>) -> Result<(), RepositoryError> {
        self.change(id, |stored| stored.share = grant.cloned())
    }

    async fn find_shared(
        &self,
        token_digest: &str,
        now: Timestamp,
    ) -> Result<Option<SessionId>, RepositoryError> {
        Ok(self
            .lock()
            .values()
            .find(|stored| {
                stored
                    .share
                    .as_ref()
                    .is_some_and(|grant| grant.token_digest == token_digest && grant.expires_at > now)
            })
            .map(|stored| stored.session.id.clone()))
    }
}
