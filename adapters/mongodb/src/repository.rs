//! The port's operations on MongoDB, per its write contract.
//!
//! - `append_message` is three steps, each idempotent, so a retry of the whole call (or a
//!   crash between steps) converges: (1) read the session's `last_seq` (a missing session
//!   is `NotFound` before anything is written; a `seq` at or below it is a retry, checked
//!   against the stored message; a gap is a `Conflict`); (2) insert the message, whose
//!   `_id` is its id: a duplicate key is success when the stored message at that `seq` is
//!   this one, `Conflict` when it is another; (3) update the session's counters filtered
//!   on `last_seq == seq - 1`, so the update applies exactly once however often it is
//!   sent. The message is stored before the counters move, so a reader never sees a
//!   `last_seq` whose message is missing. The name (only while unset), the token total
//!   (saturating) and the response-time window (set whole, bounded) are computed from
//!   what step 1 read: exact, because only appends change them and the filter of step 3
//!   fails if another append came between.
//! - `set_model`, `set_handoff` and `end` are `$set`s of their own fields (plus `$max` of
//!   `last_activity`); they never touch the counters, so they can run concurrently with
//!   appends. `end` on an ended session changes nothing: the first end time stays. Once
//!   the end is stored, `end` copies it onto the session's files (`files.rs`).
//! - Every write that moves `last_activity` or `ended_at` also keeps `duration_ms`, and
//!   every append the response-time aggregates (`documents/derived.rs`). They depend on
//!   the status, so each such write reads the session's times first and is filtered on
//!   the status it read; if the session ended in between, the write matches nothing and
//!   is made again from a fresh read.
//! - Every driver call is retried on transient failures (`retry.rs`).
//! - A write to a session of the earlier layout converts that session first
//!   (`migrate.rs`); reads serve it as it is (`legacy.rs`).

use std::future::IntoFuture;

use async_trait::async_trait;
use chatbox_application::ports::{RepositoryError, SessionRepository};
use chatbox_domain::{
    HandoffState, MessageEffects, ModelId, Seq, Session, SessionId, StoredMessage, Timestamp,
};
use futures::TryStreamExt;
use mongodb::bson::{Bson, Document, doc};
use mongodb::results::UpdateResult;

use crate::MongoSessionRepository;
use crate::documents::{
    DocumentError, ResponseTotals, SCHEMA_VERSION, Timeline, bson_count_value, bson_date, count, field,
    handoff_fields, message_document, message_from_document, millis, session_document, session_from_document,
};
use crate::error::{storage_error, unreadable};
use crate::operation::Operation;
use crate::retry::{is_duplicate_key, retrying};
use crate::{legacy, migrate};

/// What an append needs to know about its session.
struct AppendState {
    last_seq: u64,
    named: bool,
    total_tokens: u64,
    /// The stored response-time window, as stored.
    response_times: Vec<Bson>,
    /// What the duration derives from.
    timeline: Timeline,
}

/// Attempts of a write whose filter pins the status, when the session keeps changing
/// status under it (it can end only once, so the second attempt normally succeeds).
const STATUS_TRIES: usize = 3;

/// What a write found when its filter matched nothing.
enum Found {
    Missing,
    Legacy,
    Current(Document),
}

impl MongoSessionRepository {
    fn current_layout(id: &SessionId) -> Document {
        doc! { field::ID: id.as_str(), field::SCHEMA: SCHEMA_VERSION }
    }

    /// The session document (projected), telling apart a missing and a layout-1 one.
    async fn find_session(&self, id: &SessionId, projection: Document) -> Result<Found, RepositoryError> {
        let found = retrying(&self.retry, Operation::FindSession, || {
            self.sessions
                .find_one(doc! { field::ID: id.as_str() })
                .projection(projection.clone())
                .into_future()
        })
        .await
        .map_err(|e| storage_error(Operation::FindSession, &e))?;
        Ok(match found {
            None => Found::Missing,
            Some(doc) if legacy::is_legacy(&doc) => Found::Legacy,
            Some(doc) => Found::Current(doc),
        })
    }

    /// Converts a layout-1 session before writing to it.
    async fn convert(&self, id: &SessionId) -> Result<(), RepositoryError> {
        self.note_legacy();
        migrate::migrate_session(self, id).await.map(|_| ())
    }

    async fn append_state(&self, id: &SessionId) -> Result<AppendState, RepositoryError> {
        let mut projection = doc! {
            field::SCHEMA: 1, field::LAST_SEQ: 1, field::NAME: 1, field::TOTAL_TOKENS: 1, field::RESPONSE_TIMES_MS: 1,
        };
        projection.extend(Timeline::projection());
        let doc = self.current_session(id, projection).await?;
        Ok(AppendState {
            last_seq: count(&doc, field::LAST_SEQ).map_err(|e| unreadable("session", &e))?,
            named: !matches!(doc.get(field::NAME), None | Some(Bson::Null)),
            total_tokens: count(&doc, field::TOTAL_TOKENS).map_err(|e| unreadable("session", &e))?,
            response_times: match doc.get(field::RESPONSE_TIMES_MS) {
                Some(Bson::Array(times)) => times.clone(),
                _ => {
                    return Err(unreadable(
                        "session",
                        &DocumentError::WrongType(field::RESPONSE_TIMES_MS.into()),
                    ));
                }
            },
            timeline: Timeline::read(&doc).map_err(|e| unreadable("session", &e))?,
        })
    }

    /// Whether the message stored at `message.seq` is `message` (a retry): `Ok` if so,
    /// `Conflict` if another message holds that `seq`, `when_absent` if none does.
    pub(crate) async fn confirm_stored(
        &self,
        id: &SessionId,
        message: &StoredMessage,
        when_absent: RepositoryError,
    ) -> Result<(), RepositoryError> {
        let filter = doc! { field::SESSION_ID: id.as_str(), field::SEQ: bson_count_value(message.seq.0) };
        let stored = retrying(&self.retry, Operation::FindMessage, || {
            self.messages.find_one(filter.clone()).projection(doc! { field::ID: 1 }).into_future()
        })
        .await
        .map_err(|e| storage_error(Operation::FindMessage, &e))?;
        match stored {
            Some(doc) if doc.get_str(field::ID).is_ok_and(|stored| stored == message.id.as_str()) => Ok(()),
            Some(_) => Err(RepositoryError::Conflict),
            None => Err(when_absent),
        }
    }

    /// The counter update of an append.
    fn append_update(
        &self,
        state: &AppendState,
        message: &StoredMessage,
        effects: &MessageEffects,
    ) -> Result<Document, RepositoryError> {
        let mut set = doc! { field::LAST_SEQ: bson_count_value(message.seq.0) };
        let mut window = state.response_times.clone();
        if let Some(duration) = effects.response_time {
            // The whole window is set, not pushed: FerretDB 1.24 ignores `$slice` in a
            // `$push`, so the window would grow without bound. Exact, because only
            // appends change it and this update is filtered on the `last_seq` read with it.
            window.push(Bson::Int64(millis(duration)));
            let excess = window.len().saturating_sub(chatbox_domain::session::RESPONSE_TIME_WINDOW);
            window.drain(..excess);
        }
        // Set on every append (not only with a new time) so a document that predates
        // the aggregates gets them on its next message.
        set.extend(ResponseTotals::of_window(&window).map_err(|e| unreadable("session", &e))?.fields());
        if effects.response_time.is_some() {
            set.insert(field::RESPONSE_TIMES_MS, window);
        }
        if !state.named
            && let Some(name) = &effects.name
        {
            set.insert(field::NAME, self.codec.seal(field::NAME, name).map_err(|e| unreadable("name", &e))?);
        }
        if let Some(conversation) = &effects.provider_conversation {
            set.insert(
                field::PROVIDER_CONVERSATION,
                doc! { field::MODEL_ID: conversation.model_id.as_str(), "id": conversation.id.as_str() },
            );
        }
        // Saturate instead of overflowing int64 on the server (the domain saturates too);
        // exact, because the single writer of the counters read them just before.
        let room = u64::try_from(i64::MAX).unwrap_or(u64::MAX).saturating_sub(state.total_tokens);
        let tokens = effects.tokens.min(room);
        let mut update = doc! {
            "$set": set,
            "$inc": { field::MESSAGE_COUNT: 1_i64, field::TOTAL_TOKENS: bson_count_value(tokens) },
            "$max": { field::LAST_ACTIVITY: bson_date(message.timestamp) },
        };
        state.timeline.touch(message.timestamp, &mut update);
        Ok(update)
    }

    /// One update of a session document, under the session's lock (see `locks.rs`).
    pub(crate) async fn update_session(
        &self,
        operation: Operation,
        id: &SessionId,
        filter: &Document,
        update: &Document,
    ) -> Result<UpdateResult, RepositoryError> {
        let _serialised = self.locks.lock(id).await;
        retrying(&self.retry, operation, || {
            self.sessions.update_one(filter.clone(), update.clone()).into_future()
        })
        .await
        .map_err(|e| storage_error(operation, &e))
    }

    /// The times of a session of the current layout, converting a layout-1 session
    /// first.
    async fn timeline(&self, id: &SessionId) -> Result<Timeline, RepositoryError> {
        let mut projection = Timeline::projection();
        projection.insert(field::SCHEMA, 1);
        let doc = self.current_session(id, projection).await?;
        Timeline::read(&doc).map_err(|e| unreadable("session", &e))
    }

    /// The `projection` of a session of the current layout, converting a layout-1 session
    /// first.
    async fn current_session(
        &self,
        id: &SessionId,
        projection: Document,
    ) -> Result<Document, RepositoryError> {
        let mut found = self.find_session(id, projection.clone()).await?;
        if matches!(found, Found::Legacy) {
            self.convert(id).await?;
            found = self.find_session(id, projection).await?;
        }
        match found {
            Found::Missing => Err(RepositoryError::NotFound),
            Found::Legacy => {
                Err(RepositoryError::Other("session could not be converted to the current layout".into()))
            }
            Found::Current(doc) => Ok(doc),
        }
    }

    /// Applies a field-level update that moves `last_activity` (and so the duration),
    /// built from the session's times as read just before and filtered on the status it
    /// read. `build` returning `None` means there is nothing to write (`end` of an ended
    /// session).
    async fn update_timed(
        &self,
        operation: Operation,
        id: &SessionId,
        build: impl Fn(&Timeline) -> Option<Document> + Send + Sync,
    ) -> Result<(), RepositoryError> {
        for _ in 0..STATUS_TRIES {
            let timeline = self.timeline(id).await?;
            let Some(update) = build(&timeline) else {
                return Ok(());
            };
            let mut filter = Self::current_layout(id);
            filter.insert(field::STATUS, timeline.status());
            if self.update_session(operation, id, &filter, &update).await?.matched_count > 0 {
                return Ok(());
            }
            // It ended (or went away) since it was read: read it again.
        }
        Err(RepositoryError::Other("session status kept changing during an update".into()))
    }

    /// Applies a field-level update to a session of the current layout, converting a
    /// layout-1 session first. A filter that matches no existing session of the current
    /// layout is not an error.
    pub(crate) async fn update_fields(
        &self,
        operation: Operation,
        id: &SessionId,
        filter: Document,
        update: Document,
    ) -> Result<(), RepositoryError> {
        for _ in 0..2 {
            let result = self.update_session(operation, id, &filter, &update).await?;
            if result.matched_count > 0 {
                return Ok(());
            }
            match self.find_session(id, doc! { field::SCHEMA: 1, field::STATUS: 1 }).await? {
                Found::Missing => return Err(RepositoryError::NotFound),
                Found::Legacy => self.convert(id).await?,
                Found::Current(_) => return Ok(()),
            }
        }
        Err(RepositoryError::Other("session could not be converted to the current layout".into()))
    }
}

#[async_trait]
impl SessionRepository for MongoSessionRepository {
    async fn create(&self, session: &Session) -> Result<(), RepositoryError> {
        let document = session_document(session, &self.codec).map_err(|e| unreadable("session", &e))?;
        let inserted = retrying(&self.retry, Operation::CreateSession, || {
            self.sessions.insert_one(document.clone()).into_future()
        })
        .await;
        match inserted {
            Ok(_) => Ok(()),
            Err(e) if is_duplicate_key(&e) => {
                // Ours, if an earlier attempt's acknowledgement was lost: same owner, same
                // creation time, current layout.
                let projection = doc! { field::SCHEMA: 1, field::USER_ID: 1, field::CREATED_AT: 1 };
                match self.find_session(&session.id, projection).await? {
                    Found::Current(doc)
                        if doc.get_str(field::USER_ID).is_ok_and(|owner| owner == session.owner.as_str())
                            && doc.get(field::CREATED_AT) == Some(&bson_date(session.created_at)) =>
                    {
                        Ok(())
                    }
                    _ => Err(RepositoryError::AlreadyExists),
                }
            }
            Err(e) => Err(storage_error(Operation::CreateSession, &e)),
        }
    }

    async fn load(&self, id: &SessionId) -> Result<Option<Session>, RepositoryError> {
        let found = retrying(&self.retry, Operation::LoadSession, || {
            self.sessions.find_one(doc! { field::ID: id.as_str() }).into_future()
        })
        .await
        .map_err(|e| storage_error(Operation::LoadSession, &e))?;
        let Some(doc) = found else {
            return Ok(None);
        };
        let session = if legacy::is_legacy(&doc) {
            self.note_legacy();
            legacy::session(&doc)
        } else {
            session_from_document(&doc, &self.codec)
        };
        session.map(Some).map_err(|e| unreadable("session", &e))
    }

    async fn append_message(
        &self,
        id: &SessionId,
        message: &StoredMessage,
        effects: &MessageEffects,
    ) -> Result<(), RepositoryError> {
        let mut state = self.append_state(id).await?;
        let seq = message.seq.0;
        if seq <= state.last_seq {
            // Counted already: a retry of this message, or another one at a taken seq.
            return self.confirm_stored(id, message, RepositoryError::Conflict).await;
        }
        if seq != state.last_seq.saturating_add(1) {
            return Err(RepositoryError::Conflict);
        }
        let document = message_document(id, message, &self.codec).map_err(|e| unreadable("message", &e))?;
        let inserted = retrying(&self.retry, Operation::InsertMessage, || {
            self.messages.insert_one(document.clone()).into_future()
        })
        .await;
        match inserted {
            Ok(_) => {}
            Err(e) if is_duplicate_key(&e) => {
                let reused = RepositoryError::Other("message id already used by another message".into());
                self.confirm_stored(id, message, reused).await?;
            }
            Err(e) => return Err(storage_error(Operation::InsertMessage, &e)),
        }
        for _ in 0..STATUS_TRIES {
            let update = self.append_update(&state, message, effects)?;
            let mut filter = Self::current_layout(id);
            filter.insert(field::LAST_SEQ, bson_count_value(seq - 1));
            filter.insert(field::STATUS, state.timeline.status());
            let result = self.update_session(Operation::CountMessage, id, &filter, &update).await?;
            if result.matched_count > 0 {
                return Ok(());
            }
            // An earlier attempt applied it (its acknowledgement was lost), the session
            // ended in between (count it again against its new status), or it went away.
            state = self.append_state(id).await?;
            if state.last_seq >= seq {
                return Ok(());
            }
            if state.last_seq != seq - 1 {
                break;
            }
        }
        Err(RepositoryError::Other("session counters changed during an append".into()))
    }

    async fn set_model(&self, id: &SessionId, model: &ModelId, at: Timestamp) -> Result<(), RepositoryError> {
        self.update_timed(Operation::SetModel, id, |timeline| {
            let mut update = doc! {
                "$set": { field::MODEL_ID: model.as_str() },
                "$max": { field::LAST_ACTIVITY: bson_date(at) },
            };
            timeline.touch(at, &mut update);
            Some(update)
        })
        .await
    }

    async fn set_handoff(
        &self,
        id: &SessionId,
        handoff: &HandoffState,
        at: Timestamp,
    ) -> Result<(), RepositoryError> {
        self.update_timed(Operation::SetHandoff, id, |timeline| {
            let mut update =
                doc! { "$set": handoff_fields(handoff), "$max": { field::LAST_ACTIVITY: bson_date(at) } };
            timeline.touch(at, &mut update);
            Some(update)
        })
        .await
    }

    async fn end(&self, id: &SessionId, at: Timestamp) -> Result<(), RepositoryError> {
        self.update_timed(Operation::EndSession, id, |timeline| {
            // An ended session keeps its first end time: nothing to write.
            timeline.is_active().then(|| {
                let mut update = doc! {
                    "$set": { field::STATUS: "ended", field::ENDED_AT: bson_date(at) },
                    "$max": { field::LAST_ACTIVITY: bson_date(at) },
                };
                timeline.end(at, &mut update);
                update
            })
        })
        .await?;
        // Its stored end time onto its files (also if it had ended: a retry completes it).
        self.record_end_on_files(id).await
    }

    async fn messages_after(
        &self,
        id: &SessionId,
        after: Seq,
        limit: usize,
    ) -> Result<Vec<StoredMessage>, RepositoryError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        if let Some(messages) = self.legacy_messages(id).await? {
            return Ok(messages.into_iter().filter(|m| m.seq > after).take(limit).collect());
        }
        let filter =
            doc! { field::SESSION_ID: id.as_str(), field::SEQ: { "$gt": bson_count_value(after.0) } };
        self.find_messages(Operation::MessagesAfter, filter, doc! { field::SEQ: 1 }, limit).await
    }

    async fn recent_messages(
        &self,
        id: &SessionId,
        limit: usize,
    ) -> Result<Vec<StoredMessage>, RepositoryError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        if let Some(messages) = self.legacy_messages(id).await? {
            let start = messages.len().saturating_sub(limit);
            return Ok(messages[start..].to_vec());
        }
        let filter = doc! { field::SESSION_ID: id.as_str() };
        let mut messages =
            self.find_messages(Operation::RecentMessages, filter, doc! { field::SEQ: -1 }, limit).await?;
        messages.reverse();
        Ok(messages)
    }

    async fn ping(&self) -> Result<(), RepositoryError> {
        // One attempt: readiness reports the store as it is now.
        self.database
            .run_command(doc! { "ping": 1 })
            .await
            .map(|_| ())
            .map_err(|e| storage_error(Operation::Ping, &e))
    }
}

impl MongoSessionRepository {
    async fn find_messages(
        &self,
        operation: Operation,
        filter: Document,
        sort: Document,
        limit: usize,
    ) -> Result<Vec<StoredMessage>, RepositoryError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let documents: Vec<Document> = retrying(&self.retry, operation, || async {
            self.messages.find(filter.clone()).sort(sort.clone()).limit(limit).await?.try_collect().await
        })
        .await
        .map_err(|e| storage_error(operation, &e))?;
        documents
            .iter()
            .map(|doc| message_from_document(doc, &self.codec).map_err(|e| unreadable("message", &e)))
            .collect()
    }

    /// The messages of a layout-1 session, or `None` for a session of the current layout
    /// (or none). Only looks when such sessions may exist.
    async fn legacy_messages(&self, id: &SessionId) -> Result<Option<Vec<StoredMessage>>, RepositoryError> {
        if !self.legacy_possible() {
            return Ok(None);
        }
        let filter = doc! { field::ID: id.as_str(), field::SCHEMA: { "$exists": false } };
        let found = retrying(&self.retry, Operation::LoadLegacy, || {
            self.sessions.find_one(filter.clone()).into_future()
        })
        .await
        .map_err(|e| storage_error(Operation::LoadLegacy, &e))?;
        found
            .map(|doc| legacy::messages(&doc, &self.codec).map_err(|e| unreadable("session", &e)))
            .transpose()
    }
}
