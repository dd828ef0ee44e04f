//! The read side ([`SessionCatalog`]) on MongoDB: listings, one session's summary,
//! analytics over a creation-time range, and share grants.
//!
//! - Listings cover sessions of the current layout only (`schema: 2`): documents of the
//!   earlier Go service have other fields and are converted by `chatbox migrate`. They
//!   filter and sort in the database on flat fields (indexes in `indexes.rs`), every sort
//!   followed by `_id` ascending so pages never overlap or skip, and read a projection
//!   without the response-time window (`documents/summary.rs`). `Duration` sorts on the
//!   stored `duration_ms`, kept by the writes (`documents/derived.rs`): FerretDB 1.24
//!   cannot sort on a computed expression.
//! - `stats` streams the range's sessions with a projection of a few numbers and adds
//!   them up here, in memory bounded by one cursor batch: FerretDB 1.24 has no `$max`
//!   (nor `$cond`) in `$group`, and computes only the first accumulator of a `$group`
//!   (the others silently come back 0), so a `$group` would be wrong there.
//! - Share grants are a field of the session document (`share: {token_digest,
//!   expires_at}`), written with a field-level `$set`/`$unset` through the session's lock
//!   like every other update (`locks.rs`), so a grant and a racing append both survive.
//!   A plain `share_token` carried over from the Go service never matches and is removed
//!   by the first `set_share` of its session.
//! - Names are decrypted as `load` decrypts them; one that does not open fails the read.
//!
//! Documents written before `duration_ms` and the response aggregates existed are read
//! with their window instead (fetched for the few that need it); until `chatbox migrate`
//! fills their `duration_ms` in, they sort as the shortest in a `Duration` listing.

use std::future::IntoFuture;

use async_trait::async_trait;
use chatbox_application::ports::{
    RepositoryError, SessionCatalog, SessionPage, SessionQuery, SessionSort, SessionStats, SessionSummary,
    ShareGrant,
};
use chatbox_domain::{SessionId, Timestamp};
use futures::TryStreamExt;
use mongodb::bson::{Document, doc};

use crate::MongoSessionRepository;
use crate::documents::{
    DocumentError, ResponseTotals, SCHEMA_VERSION, boolean, bson_date, count, field, needs_window, string,
    summary_from_document, summary_projection, with_window,
};
use crate::error::{storage_error, unreadable};
use crate::legacy;
use crate::operation::Operation;
use crate::retry::retrying;

/// Documents per cursor batch when streaming a range: bounds the memory of `stats`.
const STATS_BATCH: u32 = 1000;
/// Sessions per read of the windows of documents that predate the aggregates.
const WINDOW_BATCH: usize = 100;

/// The stored field a sort key orders by.
const fn sort_field(sort: SessionSort) -> &'static str {
    match sort {
        SessionSort::StartTime => field::CREATED_AT,
        // `null` (active) sorts before every date in BSON order: the smallest value.
        SessionSort::EndTime => field::ENDED_AT,
        SessionSort::LastActivity => field::LAST_ACTIVITY,
        SessionSort::Duration => field::DURATION_MS,
        SessionSort::MessageCount => field::MESSAGE_COUNT,
        SessionSort::TotalTokens => field::TOTAL_TOKENS,
        // Strings compare by bytes (no collation).
        SessionSort::UserId => field::USER_ID,
    }
}

/// The sort of a listing: the key in the asked direction, then the id ascending.
pub(crate) fn sort_document(sort: SessionSort, descending: bool) -> Document {
    doc! { sort_field(sort): if descending { -1 } else { 1 }, field::ID: 1 }
}

/// Sessions of the current layout created in `[from, to]`.
fn created_in(from: Option<Timestamp>, to: Option<Timestamp>) -> Document {
    let mut filter = doc! { field::SCHEMA: SCHEMA_VERSION };
    let mut range = Document::new();
    if let Some(from) = from {
        range.insert("$gte", bson_date(from));
    }
    if let Some(to) = to {
        range.insert("$lte", bson_date(to));
    }
    if !range.is_empty() {
        filter.insert(field::CREATED_AT, range);
    }
    filter
}

/// The filter of a listing.
pub(crate) fn listing_filter(query: &SessionQuery) -> Document {
    let mut filter = created_in(query.created_from, query.created_to);
    if let Some(user) = &query.user_id {
        filter.insert(field::USER_ID, user.as_str());
    }
    if let Some(active) = query.active {
        filter.insert(field::STATUS, if active { "active" } else { "ended" });
    }
    if let Some(flag) = query.admin_assisted {
        filter.insert(field::ADMIN_ASSISTED, flag);
    }
    if let Some(flag) = query.help_requested {
        filter.insert(field::HELP_REQUESTED, flag);
    }
    filter
}

/// Running totals of `stats`.
#[derive(Debug, Default)]
struct Totals {
    stats: SessionStats,
    answers: u64,
    answer_ms: u64,
}

impl Totals {
    /// Adds one session (projected); its response aggregates come separately.
    fn add(&mut self, doc: &Document) -> Result<(), DocumentError> {
        let stats = &mut self.stats;
        stats.total_sessions = stats.total_sessions.saturating_add(1);
        stats.active_sessions += u64::from(string(doc, field::STATUS)? == "active");
        stats.help_requested_sessions += u64::from(boolean(doc, field::HELP_REQUESTED)?);
        stats.admin_assisted_sessions += u64::from(boolean(doc, field::ADMIN_ASSISTED)?);
        stats.total_messages = stats.total_messages.saturating_add(count(doc, field::MESSAGE_COUNT)?);
        stats.total_tokens = stats.total_tokens.saturating_add(count(doc, field::TOTAL_TOKENS)?);
        Ok(())
    }

    fn add_responses(&mut self, responses: &ResponseTotals) {
        self.answers = self.answers.saturating_add(responses.count);
        self.answer_ms = self.answer_ms.saturating_add(responses.sum_ms);
        self.stats.max_response_ms = self.stats.max_response_ms.max(responses.max_ms.unwrap_or(0));
    }

    fn finish(mut self) -> SessionStats {
        self.stats.avg_response_ms = self.answer_ms.checked_div(self.answers).unwrap_or(0);
        self.stats
    }
}

/// Either failure of a streamed read: the store's (retried) or a document's (not).
enum StreamError {
    Store(mongodb::error::Error),
    Document(DocumentError),
}

impl From<mongodb::error::Error> for StreamError {
    fn from(error: mongodb::error::Error) -> Self {
        Self::Store(error)
    }
}

impl From<DocumentError> for StreamError {
    fn from(error: DocumentError) -> Self {
        Self::Document(error)
    }
}

impl MongoSessionRepository {
    /// The response-time windows of `ids` (documents that predate the aggregates).
    async fn windows(&self, ids: &[String]) -> Result<Vec<Document>, mongodb::error::Error> {
        self.sessions
            .find(doc! { field::ID: { "$in": ids } })
            .projection(doc! { field::ID: 1, field::RESPONSE_TIMES_MS: 1 })
            .await?
            .try_collect()
            .await
    }

    /// Summaries of projected documents, reading the windows of those that need them.
    async fn summaries(&self, documents: Vec<Document>) -> Result<Vec<SessionSummary>, RepositoryError> {
        let missing: Vec<String> = documents
            .iter()
            .filter(|doc| needs_window(doc))
            .filter_map(|doc| doc.get_str(field::ID).ok().map(str::to_owned))
            .collect();
        let windows = if missing.is_empty() {
            Vec::new()
        } else {
            retrying(&self.retry, Operation::ReadWindows, || self.windows(&missing))
                .await
                .map_err(|e| storage_error(Operation::ReadWindows, &e))?
        };
        documents
            .into_iter()
            .map(|doc| {
                let window = windows
                    .iter()
                    .find(|w| w.get(field::ID) == doc.get(field::ID))
                    .and_then(|w| w.get(field::RESPONSE_TIMES_MS));
                let doc = if needs_window(&doc) { with_window(doc, window) } else { doc };
                summary_from_document(&doc, &self.codec).map_err(|e| unreadable("session", &e))
            })
            .collect()
    }

    /// Adds the sessions `ids` (predating the aggregates) to `totals` from their windows.
    async fn add_windows(&self, ids: &[String], totals: &mut Totals) -> Result<(), StreamError> {
        for doc in self.windows(ids).await? {
            totals.add_responses(&ResponseTotals::read_or_compute(&doc)?);
        }
        Ok(())
    }

    /// One pass over the range (see the module doc).
    async fn stream_stats(&self, filter: &Document) -> Result<SessionStats, StreamError> {
        let projection = doc! {
            field::ID: 1, field::STATUS: 1, field::HELP_REQUESTED: 1, field::ADMIN_ASSISTED: 1,
            field::MESSAGE_COUNT: 1, field::TOTAL_TOKENS: 1, field::RESPONSE_COUNT: 1,
            field::RESPONSE_SUM_MS: 1, field::RESPONSE_MAX_MS: 1,
        };
        let mut cursor =
            self.sessions.find(filter.clone()).projection(projection).batch_size(STATS_BATCH).await?;
        let mut totals = Totals::default();
        let mut pending = Vec::new();
        while let Some(doc) = cursor.try_next().await? {
            totals.add(&doc)?;
            match ResponseTotals::read(&doc)? {
                Some(responses) => totals.add_responses(&responses),
                None => {
                    pending.push(string(&doc, field::ID)?.to_owned());
                    if pending.len() >= WINDOW_BATCH {
                        self.add_windows(&pending, &mut totals).await?;
                        pending.clear();
                    }
                }
            }
        }
        if !pending.is_empty() {
            self.add_windows(&pending, &mut totals).await?;
        }
        Ok(totals.finish())
    }
}

#[async_trait]
impl SessionCatalog for MongoSessionRepository {
    async fn list_sessions(&self, query: &SessionQuery) -> Result<SessionPage, RepositoryError> {
        let filter = listing_filter(query);
        let total = if query.with_total {
            let counted = retrying(&self.retry, Operation::CountSessions, || {
                self.sessions.count_documents(filter.clone()).into_future()
            })
            .await
            .map_err(|e| storage_error(Operation::CountSessions, &e))?;
            Some(counted)
        } else {
            None
        };
        // A limit of 0 means "no limit" to the server: an empty page is asked for here.
        if query.limit == 0 {
            return Ok(SessionPage { sessions: Vec::new(), total });
        }
        let sort = sort_document(query.sort, query.descending);
        let skip = u64::try_from(query.offset).unwrap_or(u64::MAX);
        let limit = i64::try_from(query.limit).unwrap_or(i64::MAX);
        let documents: Vec<Document> = retrying(&self.retry, Operation::ListSessions, || async {
            self.sessions
                .find(filter.clone())
                .projection(summary_projection())
                .sort(sort.clone())
                .skip(skip)
                .limit(limit)
                .await?
                .try_collect()
                .await
        })
        .await
        .map_err(|e| storage_error(Operation::ListSessions, &e))?;
        Ok(SessionPage { sessions: self.summaries(documents).await?, total })
    }

    async fn summary(&self, id: &SessionId) -> Result<Option<SessionSummary>, RepositoryError> {
        let found = retrying(&self.retry, Operation::SessionSummary, || {
            self.sessions
                .find_one(doc! { field::ID: id.as_str() })
                .projection(summary_projection())
                .into_future()
        })
        .await
        .map_err(|e| storage_error(Operation::SessionSummary, &e))?;
        match found {
            None => Ok(None),
            Some(doc) if legacy::is_legacy(&doc) => self.legacy_summary(id).await,
            Some(doc) => Ok(self.summaries(vec![doc]).await?.pop()),
        }
    }

    async fn stats(
        &self,
        from: Option<Timestamp>,
        to: Option<Timestamp>,
    ) -> Result<SessionStats, RepositoryError> {
        let filter = created_in(from, to);
        // A transient failure restarts the pass; an unreadable document ends it.
        let streamed = retrying(&self.retry, Operation::SessionStats, || async {
            match self.stream_stats(&filter).await {
                Ok(stats) => Ok(Ok(stats)),
                Err(StreamError::Store(error)) => Err(error),
                Err(StreamError::Document(error)) => Ok(Err(error)),
            }
        })
        .await
        .map_err(|e| storage_error(Operation::SessionStats, &e))?;
        streamed.map_err(|e| unreadable("session", &e))
    }

    async fn set_share(&self, id: &SessionId, grant: Option<&ShareGrant>) -> Result<(), RepositoryError> {
        // The plain token of the Go service never worked here; it goes with any change.
        let update = match grant {
            Some(grant) => doc! {
                "$set": { field::SHARE: {
                    field::TOKEN_DIGEST: grant.token_digest.as_str(),
                    field::EXPIRES_AT: bson_date(grant.expires_at),
                } },
                "$unset": { field::SHARE_TOKEN: "" },
            },
            None => doc! { "$unset": { field::SHARE: "", field::SHARE_TOKEN: "" } },
        };
        self.update_fields(
            Operation::SetShare,
            id,
            doc! { field::ID: id.as_str(), field::SCHEMA: SCHEMA_VERSION },
            update,
        )
        .await
    }

    async fn find_shared(
        &self,
        token_digest: &str,
        now: Timestamp,
    ) -> Result<Option<SessionId>, RepositoryError> {
        let filter = doc! {
            field::SHARE_TOKEN_DIGEST: token_digest,
            field::SHARE_EXPIRES_AT: { "$gt": bson_date(now) },
        };
        let found = retrying(&self.retry, Operation::FindShared, || {
            self.sessions.find_one(filter.clone()).projection(doc! { field::ID: 1 }).into_future()
        })
        .await
        .map_err(|e| storage_error(Operation::FindShared, &e))?;
        found
            .map(|doc| {
                string(&doc, field::ID)
                    .and_then(|id| SessionId::parse(id).map_err(|_| DocumentError::Invalid(field::ID.into())))
                    .map_err(|e| unreadable("session", &e))
            })
            .transpose()
    }
}

impl MongoSessionRepository {
    /// The summary of a session of the earlier layout, read whole (its messages are
    /// embedded, so only here and only for such a session).
    async fn legacy_summary(&self, id: &SessionId) -> Result<Option<SessionSummary>, RepositoryError> {
        self.note_legacy();
        let found = retrying(&self.retry, Operation::LoadLegacy, || {
            self.sessions.find_one(doc! { field::ID: id.as_str() }).into_future()
        })
        .await
        .map_err(|e| storage_error(Operation::LoadLegacy, &e))?;
        match found {
            None => Ok(None),
            Some(doc) if legacy::is_legacy(&doc) => {
                legacy::summary(&doc).map(Some).map_err(|e| unreadable("layout-1 session", &e))
            }
            // Converted in between.
            Some(_) => Box::pin(self.summary(id)).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use mongodb::bson::Bson;

    use super::*;

    #[test]
    fn every_sort_breaks_ties_by_id_ascending() {
        for sort in [
            SessionSort::StartTime,
            SessionSort::EndTime,
            SessionSort::LastActivity,
            SessionSort::Duration,
            SessionSort::MessageCount,
            SessionSort::TotalTokens,
            SessionSort::UserId,
        ] {
            for descending in [false, true] {
                let keys: Vec<(String, Bson)> = sort_document(sort, descending).into_iter().collect();
                assert_eq!(keys.len(), 2);
                assert_eq!(keys[0].1, Bson::Int32(if descending { -1 } else { 1 }));
                assert_eq!(keys[1], (field::ID.to_owned(), Bson::Int32(1)));
            }
        }
    }

    #[test]
    fn filters_cover_only_the_current_layout() {
        let mut query = SessionQuery::recent(10);
        assert_eq!(listing_filter(&query), doc! { field::SCHEMA: SCHEMA_VERSION });
        query.active = Some(false);
        query.help_requested = Some(true);
        query.created_to = Some(chrono::DateTime::from_timestamp(5, 0).expect("time"));
        let filter = listing_filter(&query);
        assert_eq!(filter.get_str(field::STATUS), Ok("ended"));
        assert_eq!(filter.get_bool(field::HELP_REQUESTED), Ok(true));
        assert!(
            filter
                .get_document(field::CREATED_AT)
                .is_ok_and(|r| r.contains_key("$lte") && !r.contains_key("$gte"))
        );
    }
}
