//! The read side of storage, for the HTTP API: session listings with filters, sorts and
//! totals, analytics over a time range, and share links.
//!
//! Kept apart from [`SessionRepository`](super::SessionRepository), whose write contract
//! serves the chat path: nothing here changes a session's messages or counters. The
//! share operations write only the session's share grant, a field no other write
//! touches.

use async_trait::async_trait;
use chatbox_domain::{ModelId, SessionId, Timestamp, UserId};

use super::RepositoryError;

/// Which sessions a listing returns, in which order, which page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionQuery {
    /// Only this user's sessions.
    pub user_id: Option<UserId>,
    /// Only active (`true`) or only ended (`false`) sessions.
    pub active: Option<bool>,
    /// Only sessions an admin ever assisted (`true`), or never did (`false`).
    pub admin_assisted: Option<bool>,
    /// Only sessions whose user ever asked for help (`true`), or never did (`false`).
    pub help_requested: Option<bool>,
    /// Only sessions created at or after this time.
    pub created_from: Option<Timestamp>,
    /// Only sessions created at or before this time.
    pub created_to: Option<Timestamp>,
    /// The order.
    pub sort: SessionSort,
    /// Ascending or descending.
    pub descending: bool,
    /// At most this many sessions (the caller bounds it).
    pub limit: usize,
    /// Skip this many first.
    pub offset: usize,
    /// Also count every session that matches, ignoring `limit` and `offset`.
    pub with_total: bool,
}

impl SessionQuery {
    /// Every session, most recently active first, one page of `limit`.
    #[must_use]
    pub const fn recent(limit: usize) -> Self {
        Self {
            user_id: None,
            active: None,
            admin_assisted: None,
            help_requested: None,
            created_from: None,
            created_to: None,
            sort: SessionSort::LastActivity,
            descending: true,
            limit,
            offset: 0,
            with_total: false,
        }
    }
}

/// A sort key of the session listing. Ties are broken by session id, ascending, so pages
/// never overlap or skip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionSort {
    /// Creation time.
    StartTime,
    /// End time; active sessions (no end time) sort as if their end time were the
    /// smallest possible value.
    EndTime,
    /// Last stored message or change.
    LastActivity,
    /// [`SessionSummary::duration_ms`].
    Duration,
    /// Stored messages.
    MessageCount,
    /// Tokens of all answers.
    TotalTokens,
    /// Owner id, by bytes.
    UserId,
}

/// One session as listings show it: no messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionSummary {
    /// Its id.
    pub id: SessionId,
    /// Its owner.
    pub owner: UserId,
    /// Its name, once the first user message gave it one.
    pub name: Option<String>,
    /// The model that answers it.
    pub model_id: ModelId,
    /// Stored messages.
    pub message_count: u64,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last stored message or change.
    pub last_activity: Timestamp,
    /// End time, if it ended.
    pub ended_at: Option<Timestamp>,
    /// `(ended_at or last_activity) − created_at`, in whole milliseconds (0 if negative).
    pub duration_ms: u64,
    /// Tokens of all answers.
    pub total_tokens: u64,
    /// Mean of the stored answer durations (the session's window), in ms.
    pub avg_response_ms: Option<u64>,
    /// Longest stored answer duration (the session's window), in ms.
    pub max_response_ms: Option<u64>,
    /// The user ever asked for help (stays true).
    pub help_requested: bool,
    /// An admin ever assisted (stays true).
    pub admin_assisted: bool,
    /// The admin who assists now, or assisted last.
    pub assisting_admin_name: Option<String>,
}

/// A page of a listing.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SessionPage {
    /// The sessions of the page, in the query's order.
    pub sessions: Vec<SessionSummary>,
    /// Every match, when the query asked for it.
    pub total: Option<u64>,
}

/// Aggregates over the sessions created in a time range (both ends optional, inclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SessionStats {
    /// Sessions in the range.
    pub total_sessions: u64,
    /// Of those, still active.
    pub active_sessions: u64,
    /// Of those, whose user ever asked for help.
    pub help_requested_sessions: u64,
    /// Of those, that an admin ever assisted.
    pub admin_assisted_sessions: u64,
    /// Their stored messages.
    pub total_messages: u64,
    /// Their tokens.
    pub total_tokens: u64,
    /// Mean over every stored answer duration in their windows, in ms (0 when none).
    pub avg_response_ms: u64,
    /// Longest stored answer duration in their windows, in ms (0 when none).
    pub max_response_ms: u64,
}

/// A share grant as stored: the SHA-256 digest of the token handed out (never the token
/// itself, so a copy of the database opens no shared conversation) and its expiry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareGrant {
    /// Lower-case hex SHA-256 of the token.
    pub token_digest: String,
    /// When it stops working.
    pub expires_at: Timestamp,
}

/// Listings, analytics and share links.
#[async_trait]
pub trait SessionCatalog: Send + Sync + 'static {
    /// One page of the sessions matching `query`, in its order.
    ///
    /// # Errors
    /// A store failure.
    async fn list_sessions(&self, query: &SessionQuery) -> Result<SessionPage, RepositoryError>;

    /// One session's summary.
    ///
    /// # Errors
    /// A store failure.
    async fn summary(&self, id: &SessionId) -> Result<Option<SessionSummary>, RepositoryError>;

    /// Aggregates over the sessions created in `[from, to]`.
    ///
    /// # Errors
    /// A store failure.
    async fn stats(
        &self,
        from: Option<Timestamp>,
        to: Option<Timestamp>,
    ) -> Result<SessionStats, RepositoryError>;

    /// Replaces the session's share grant (`None` revokes it). Idempotent.
    ///
    /// # Errors
    /// [`RepositoryError::NotFound`] or a store failure.
    async fn set_share(&self, id: &SessionId, grant: Option<&ShareGrant>) -> Result<(), RepositoryError>;

    /// The session whose current grant has this digest and has not expired at `now`.
    ///
    /// # Errors
    /// A store failure.
    async fn find_shared(
        &self,
        token_digest: &str,
        now: Timestamp,
    ) -> Result<Option<SessionId>, RepositoryError>;
}
