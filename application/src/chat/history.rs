//! The conversation history for the HTTP API: a user's sessions, one session's messages
//! page by page, share links and the read-only shared view, and the admin listings and
//! analytics. Everything here reads storage (the catalog and the repository); nothing
//! makes a session live, except ending one (its sockets must be told).
//!
//! A session someone may not read is reported exactly like a missing one
//! ([`ChatError::NotFound`]), so ids of other users' sessions reveal nothing.

use chatbox_domain::ids::lower_hex;
use chatbox_domain::{Seq, Session, SessionId, StoredMessage, Timestamp, UserId};
use sha2::{Digest, Sha256};
use tracing::{info, instrument};

use super::ChatService;
use crate::error::ChatError;
use crate::ports::{SessionPage, SessionQuery, SessionSort, SessionStats, ShareGrant};

/// A page of one session's messages.
#[derive(Debug, Clone, PartialEq)]
pub struct MessagePage {
    /// The session (fields, no messages).
    pub session: Session,
    /// Messages with `seq` after the requested one, oldest first.
    pub messages: Vec<StoredMessage>,
    /// More messages follow the page: ask again with `after_seq` = the last one's `seq`.
    pub more: bool,
}

/// Who reads a session's messages, and so which sessions they may read.
#[derive(Debug, Clone, Copy)]
pub enum Reader<'a> {
    /// A user: their own sessions, and — when `admin` — the sessions they assist (the
    /// earlier admin chat page loads history through the owner's route).
    User {
        /// The user.
        id: &'a UserId,
        /// The token carries an admin role.
        admin: bool,
    },
    /// An admin on the admin routes: any session.
    Admin,
}

impl Reader<'_> {
    fn may_read(self, session: &Session) -> bool {
        match self {
            Self::User { id, admin } => session.is_owned_by(id) || (admin && session.handoff.assisted_by(id)),
            Self::Admin => true,
        }
    }
}

/// A conversation opened with a share link.
pub type SharedConversation = MessagePage;

/// The hex SHA-256 of a share token: what storage keeps instead of the token.
#[must_use]
pub fn share_digest(token: &str) -> String {
    lower_hex(&Sha256::digest(token.as_bytes()))
}

impl ChatService {
    /// One page of `user`'s sessions, most recently active first; true when more follow.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn own_sessions(
        &self,
        user: &UserId,
        limit: usize,
        offset: usize,
    ) -> Result<(SessionPage, bool), ChatError> {
        let mut query = SessionQuery::recent(limit.saturating_add(1));
        query.user_id = Some(user.clone());
        query.offset = offset;
        let mut page = self.deps.storage(self.deps.catalog.list_sessions(&query)).await?;
        let truncated = page.sessions.len() > limit;
        page.sessions.truncate(limit);
        Ok((page, truncated))
    }

    /// A page of a session's messages for `reader`.
    ///
    /// # Errors
    /// [`ChatError::NotFound`] when it does not exist or `reader` may not read it;
    /// storage failures.
    pub async fn read_session(
        &self,
        reader: Reader<'_>,
        id: &SessionId,
        after: Seq,
        limit: usize,
    ) -> Result<MessagePage, ChatError> {
        let session = self.deps.storage(self.deps.repo.load(id)).await?.ok_or(ChatError::NotFound)?;
        if !reader.may_read(&session) {
            return Err(ChatError::NotFound);
        }
        self.page_of(session, after, limit).await
    }

    async fn page_of(&self, session: Session, after: Seq, limit: usize) -> Result<MessagePage, ChatError> {
        let mut messages = self
            .deps
            .storage(self.deps.repo.messages_after(&session.id, after, limit.saturating_add(1)))
            .await?;
        let more = messages.len() > limit;
        messages.truncate(limit);
        Ok(MessagePage { session, messages, more })
    }

    /// Shares `user`'s session `id`: a new link replacing any earlier one, valid for
    /// `SHARE_TTL`. Returns the token (shown once; storage keeps only its digest) and its
    /// expiry.
    ///
    /// # Errors
    /// [`ChatError::NotFound`]; storage failures.
    #[instrument(name = "share", skip_all, fields(session_id = %id, user_id = %user))]
    pub async fn share(&self, user: &UserId, id: &SessionId) -> Result<(String, Timestamp), ChatError> {
        self.own_session(user, id).await?;
        let token: String = [self.deps.ids.new_id(), self.deps.ids.new_id()]
            .concat()
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .collect();
        if token.len() < 32 {
            tracing::error!("the id generator produced too short an id for a share token");
            return Err(ChatError::Internal);
        }
        let now = self.deps.clock.now();
        let expires_at = chrono::Duration::from_std(self.deps.settings.share_ttl)
            .ok()
            .and_then(|ttl| now.checked_add_signed(ttl))
            .ok_or(ChatError::Internal)?;
        let grant = ShareGrant { token_digest: share_digest(&token), expires_at };
        self.deps.storage(self.deps.catalog.set_share(id, Some(&grant))).await?;
        info!("session shared");
        Ok((token, expires_at))
    }

    /// Revokes the share link of `user`'s session `id`; the token stops working at once.
    ///
    /// # Errors
    /// [`ChatError::NotFound`]; storage failures.
    #[instrument(name = "revoke_share", skip_all, fields(session_id = %id, user_id = %user))]
    pub async fn revoke_share(&self, user: &UserId, id: &SessionId) -> Result<(), ChatError> {
        self.own_session(user, id).await?;
        self.deps.storage(self.deps.catalog.set_share(id, None)).await?;
        info!("session share revoked");
        Ok(())
    }

    /// The conversation a share token opens, a page at a time.
    ///
    /// # Errors
    /// [`ChatError::NotFound`] when the token is unknown, revoked or expired; storage
    /// failures.
    pub async fn shared(
        &self,
        token: &str,
        after: Seq,
        limit: usize,
    ) -> Result<SharedConversation, ChatError> {
        let now = self.deps.clock.now();
        let id = self
            .deps
            .storage(self.deps.catalog.find_shared(&share_digest(token), now))
            .await?
            .ok_or(ChatError::NotFound)?;
        let session = self.deps.storage(self.deps.repo.load(&id)).await?.ok_or(ChatError::NotFound)?;
        self.page_of(session, after, limit).await
    }

    /// The admin listing.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn list_sessions(&self, query: &SessionQuery) -> Result<SessionPage, ChatError> {
        Ok(self.deps.storage(self.deps.catalog.list_sessions(query)).await?)
    }

    /// Aggregates over the sessions created in `[from, to]`.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn session_stats(
        &self,
        from: Option<Timestamp>,
        to: Option<Timestamp>,
    ) -> Result<SessionStats, ChatError> {
        Ok(self.deps.storage(self.deps.catalog.stats(from, to)).await?)
    }

    async fn own_session(&self, user: &UserId, id: &SessionId) -> Result<Session, ChatError> {
        self.deps
            .storage(self.deps.repo.load(id))
            .await?
            .filter(|session| session.is_owned_by(user))
            .ok_or(ChatError::NotFound)
    }

    /// Before `owner` gets one more session: ends their least recently active sessions
    /// so that at most `MAX_ACTIVE_SESSIONS_PER_USER` stay active with the new one.
    pub(super) async fn end_surplus_sessions(&self, owner: &UserId) -> Result<(), ChatError> {
        let max = self.deps.settings.max_active_sessions_per_user.max(1);
        let mut query = SessionQuery::recent(max);
        query.user_id = Some(owner.clone());
        query.active = Some(true);
        query.sort = SessionSort::LastActivity;
        query.descending = false;
        query.with_total = true;
        let page = self.deps.storage(self.deps.catalog.list_sessions(&query)).await?;
        let total = usize::try_from(page.total.unwrap_or(0)).unwrap_or(usize::MAX);
        let surplus = total.saturating_sub(max - 1);
        for oldest in page.sessions.iter().take(surplus) {
            info!(session_id = %oldest.id, user_id = %owner, "ending the least recently active session: MAX_ACTIVE_SESSIONS_PER_USER reached");
            self.end_session(owner, &oldest.id).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_share_digest_is_the_hex_sha256() {
        assert_eq!(share_digest("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }
}
