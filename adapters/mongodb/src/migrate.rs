//! Converting sessions of the earlier Go service (layout 1, messages embedded) to the
//! current layout, for `chatbox migrate` and before the first write to such a session.
//!
//! Per session, in an order that makes a crash at any point harmless:
//! 1. insert its messages into the messages collection with deterministic ids
//!    (`<session_id>:<seq>`, see `legacy.rs`); a message already there from an earlier,
//!    interrupted run is a duplicate key and is checked to be the same message;
//! 2. replace the session document by its current-layout form, filtered on it still being
//!    the layout-1 document that was read (same `lastActivity` and `_mt`), so a session
//!    the old service changed meanwhile is read again, and one converted meanwhile is left
//!    alone.
//!
//! So the migration is idempotent and resumable: running it again converts what is left
//! and changes nothing else. A session that cannot be read (a field of the wrong type, a
//! ciphertext no configured key opens) is reported and left as it is; the others go on.
//!
//! It then fills in the derived fields (`duration_ms`, the response-time aggregates, see
//! `documents/derived.rs`) of current-layout sessions written before those existed, each
//! computed from the document and written filtered on the fields it derives from still
//! being what was read (`last_seq`, `status`, `last_activity`), so a session written
//! meanwhile is read again.

use std::future::IntoFuture;

use chatbox_application::ports::RepositoryError;
use chatbox_domain::{SessionId, StoredMessage};
use futures::TryStreamExt;
use mongodb::bson::{Bson, Document, doc};
use mongodb::error::ErrorKind;

use crate::MongoSessionRepository;
use crate::documents::{
    DocumentError, ResponseTotals, SCHEMA_VERSION, Timeline, field, message_document, session_document,
};
use crate::error::{storage_error, unreadable};
use crate::legacy;
use crate::operation::Operation;
use crate::retry::{DUPLICATE_KEY, retrying};

/// Messages inserted per round trip.
const BATCH: usize = 500;
/// Reads of a session the old service keeps changing before giving up on it.
const CONVERT_TRIES: usize = 3;
/// Failures listed in a report (the count covers all of them).
const LISTED_FAILURES: usize = 100;

/// What converting one session did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Converted now, with this many messages.
    Converted {
        /// Messages written.
        messages: u64,
    },
    /// Already in the current layout (converted earlier, or meanwhile by someone else).
    AlreadyCurrent,
    /// No such session.
    Missing,
}

/// The result of a whole run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MigrationReport {
    /// Layout-1 sessions found when the run started.
    pub found: u64,
    /// Sessions converted by this run.
    pub converted: u64,
    /// Messages written by this run.
    pub messages: u64,
    /// Sessions found but converted by someone else meanwhile, or gone.
    pub skipped: u64,
    /// Sessions that could not be converted; they are left as they were.
    pub failed: u64,
    /// The first failures: session id and reason.
    pub failures: Vec<(String, String)>,
    /// Current-layout sessions whose derived fields (duration, response aggregates) this
    /// run filled in.
    pub backfilled: u64,
}

impl MigrationReport {
    /// Sessions handled so far.
    #[must_use]
    pub const fn done(&self) -> u64 {
        self.converted + self.skipped + self.failed
    }
}

/// Converts every layout-1 session, calling `progress` after each one.
///
/// # Errors
/// A store failure that stops the run (failures of single sessions are counted in the
/// report instead). Running it again resumes.
pub async fn migrate_all(
    repository: &MongoSessionRepository,
    mut progress: impl FnMut(&MigrationReport),
) -> Result<MigrationReport, RepositoryError> {
    // The ids first: converting documents while a cursor walks the collection could make
    // it meet a document twice or not at all.
    let filter = doc! { field::SCHEMA: { "$exists": false } };
    let ids = matching_ids(repository, filter, Operation::ListLegacy).await?;
    let mut report =
        MigrationReport { found: u64::try_from(ids.len()).unwrap_or(u64::MAX), ..Default::default() };
    for id in &ids {
        let raw_id = match id.get(field::ID) {
            Some(Bson::String(raw)) => raw.clone(),
            _ => {
                report.failed += 1;
                push_failure(&mut report, "<not a string>".into(), "the _id is not a string".into());
                continue;
            }
        };
        let outcome = match SessionId::parse(&raw_id) {
            Ok(session_id) => migrate_session(repository, &session_id).await,
            Err(_) => Err(RepositoryError::Other("the _id is not a valid session id".into())),
        };
        match outcome {
            Ok(Outcome::Converted { messages }) => {
                report.converted += 1;
                report.messages += messages;
            }
            Ok(Outcome::AlreadyCurrent | Outcome::Missing) => report.skipped += 1,
            // The store is gone: stop, a later run resumes.
            Err(error @ RepositoryError::Unavailable(_)) => return Err(error),
            Err(error) => {
                report.failed += 1;
                push_failure(&mut report, raw_id, error.to_string());
            }
        }
        progress(&report);
    }
    report.backfilled = backfill_derived(repository).await?;
    progress(&report);
    Ok(report)
}

/// Fills in the derived fields of current-layout sessions that lack them; returns how
/// many it filled.
///
/// # Errors
/// A store failure, or a session that cannot be read or keeps changing.
pub async fn backfill_derived(repository: &MongoSessionRepository) -> Result<u64, RepositoryError> {
    let filter = doc! {
        field::SCHEMA: SCHEMA_VERSION,
        "$or": [
            { field::DURATION_MS: { "$exists": false } },
            { field::RESPONSE_COUNT: { "$exists": false } },
        ],
    };
    let ids = matching_ids(repository, filter, Operation::ListUnderived).await?;
    let mut filled = 0_u64;
    for id in &ids {
        let Some(id) = id.get_str(field::ID).ok().and_then(|raw| SessionId::parse(raw).ok()) else {
            continue;
        };
        if backfill_session(repository, &id).await? {
            filled += 1;
        }
    }
    Ok(filled)
}

/// Fills in one session's derived fields; `false` if it went away meanwhile.
async fn backfill_session(
    repository: &MongoSessionRepository,
    id: &SessionId,
) -> Result<bool, RepositoryError> {
    let mut projection = Timeline::projection();
    projection.extend(doc! { field::LAST_SEQ: 1, field::RESPONSE_TIMES_MS: 1 });
    for _ in 0..CONVERT_TRIES {
        let found = retrying(&repository.retry, Operation::LoadUnderived, || {
            repository
                .sessions
                .find_one(doc! { field::ID: id.as_str(), field::SCHEMA: SCHEMA_VERSION })
                .projection(projection.clone())
                .into_future()
        })
        .await
        .map_err(|e| storage_error(Operation::LoadUnderived, &e))?;
        let Some(stored) = found else {
            return Ok(false);
        };
        let fields = derived_fields(&stored).map_err(|e| unreadable("session", &e))?;
        let mut unchanged = doc! { field::ID: id.as_str(), field::SCHEMA: SCHEMA_VERSION };
        for name in [field::LAST_SEQ, field::STATUS, field::LAST_ACTIVITY] {
            unchanged.insert(name, stored.get(name).cloned().unwrap_or(Bson::Null));
        }
        let result = repository
            .update_session(Operation::BackfillSession, id, &unchanged, &doc! { "$set": fields })
            .await?;
        if result.matched_count > 0 {
            return Ok(true);
        }
        // Written meanwhile: read it again.
    }
    Err(RepositoryError::Other("the session kept changing while its derived fields were filled in".into()))
}

/// The derived fields of a stored session, from its times and its window.
fn derived_fields(stored: &Document) -> Result<Document, DocumentError> {
    let window = match stored.get(field::RESPONSE_TIMES_MS) {
        Some(Bson::Array(window)) => window.as_slice(),
        _ => return Err(DocumentError::WrongType(field::RESPONSE_TIMES_MS.into())),
    };
    let mut fields = ResponseTotals::of_window(window)?.fields();
    fields.insert(field::DURATION_MS, Timeline::read(stored)?.duration_ms());
    Ok(fields)
}

fn push_failure(report: &mut MigrationReport, id: String, reason: String) {
    if report.failures.len() < LISTED_FAILURES {
        report.failures.push((id, reason));
    }
}

/// Converts one session if it is of layout 1.
///
/// # Errors
/// [`RepositoryError::Other`] when it cannot be read or a message conflicts with one
/// already stored; a store failure.
pub async fn migrate_session(
    repository: &MongoSessionRepository,
    id: &SessionId,
) -> Result<Outcome, RepositoryError> {
    for _ in 0..CONVERT_TRIES {
        let found = retrying(&repository.retry, Operation::LoadLegacy, || {
            repository.sessions.find_one(doc! { field::ID: id.as_str() }).into_future()
        })
        .await
        .map_err(|e| storage_error(Operation::LoadLegacy, &e))?;
        let Some(old) = found else {
            return Ok(Outcome::Missing);
        };
        if !legacy::is_legacy(&old) {
            return Ok(Outcome::AlreadyCurrent);
        }
        let session = legacy::session(&old).map_err(|e| unreadable("layout-1 session", &e))?;
        let messages =
            legacy::messages(&old, &repository.codec).map_err(|e| unreadable("layout-1 session", &e))?;
        for batch in messages.chunks(BATCH) {
            insert_messages(repository, id, batch).await?;
        }
        let mut current =
            session_document(&session, &repository.codec).map_err(|e| unreadable("session", &e))?;
        // The old flags stay true after the handoff state moved on.
        let flags = legacy::analytics_fields(&old).map_err(|e| unreadable("layout-1 session", &e))?;
        for (name, value) in flags {
            if value == Bson::Boolean(false) {
                continue;
            }
            current.insert(name, value);
        }
        if let Some(token) = legacy::share_token(&old).map_err(|e| unreadable("layout-1 session", &e))? {
            current.insert(field::SHARE_TOKEN, token);
        }
        // Still the document that was read: the old service changes these on every write.
        let mut unchanged = doc! { field::ID: id.as_str(), field::SCHEMA: { "$exists": false } };
        for name in ["lastActivity", "_mt"] {
            unchanged.insert(
                name,
                old.get(name).cloned().unwrap_or_else(|| Bson::Document(doc! { "$exists": false })),
            );
        }
        let serialised = repository.locks.lock(id).await;
        let replaced = retrying(&repository.retry, Operation::ConvertSession, || {
            repository.sessions.replace_one(unchanged.clone(), current.clone()).into_future()
        })
        .await
        .map_err(|e| storage_error(Operation::ConvertSession, &e))?;
        drop(serialised);
        if replaced.matched_count > 0 {
            return Ok(Outcome::Converted { messages: u64::try_from(messages.len()).unwrap_or(u64::MAX) });
        }
        // Converted or changed meanwhile: look again.
    }
    Err(RepositoryError::Other("the session kept changing while being converted".into()))
}

/// Inserts converted messages; those already stored by an interrupted run must be the
/// same messages.
async fn insert_messages(
    repository: &MongoSessionRepository,
    id: &SessionId,
    batch: &[StoredMessage],
) -> Result<(), RepositoryError> {
    let documents = batch
        .iter()
        .map(|message| message_document(id, message, &repository.codec))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| unreadable("message", &e))?;
    let inserted = retrying(&repository.retry, Operation::InsertMessages, || {
        repository.messages.insert_many(documents.clone()).ordered(false).into_future()
    })
    .await;
    let Err(error) = inserted else {
        return Ok(());
    };
    let duplicates = match error.kind.as_ref() {
        ErrorKind::InsertMany(many) if many.write_concern_error.is_none() => many
            .write_errors
            .as_ref()
            .filter(|errors| errors.iter().all(|e| e.code == DUPLICATE_KEY))
            .map(|errors| errors.iter().map(|e| e.index).collect::<Vec<_>>()),
        _ => None,
    };
    let Some(duplicates) = duplicates else {
        return Err(storage_error(Operation::InsertMessages, &error));
    };
    for index in duplicates {
        let message =
            batch.get(index).ok_or_else(|| RepositoryError::Other("bad write error index".into()))?;
        let reused = RepositoryError::Other("a converted message id is used by another message".into());
        repository.confirm_stored(id, message, reused).await?;
    }
    Ok(())
}

/// The `_id`s of the sessions matching `filter`, in id order, read in full before anything
/// is converted: converting while a cursor walks the collection could make it meet a
/// document twice or not at all.
async fn matching_ids(
    repository: &MongoSessionRepository,
    filter: Document,
    operation: Operation,
) -> Result<Vec<Document>, RepositoryError> {
    retrying(&repository.retry, operation, || async {
        repository
            .sessions
            .find(filter.clone())
            .projection(doc! { field::ID: 1 })
            .sort(doc! { field::ID: 1 })
            .await?
            .try_collect()
            .await
    })
    .await
    .map_err(|e| storage_error(operation, &e))
}
