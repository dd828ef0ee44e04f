//! The indexes, created at start-up (creating an existing index is a no-op).
//!
//! Messages: `(session_id, seq)` unique — the store itself refuses a second message at a
//! taken sequence number, and it serves every message read (a page after a `seq`, the
//! last `n`).
//!
//! Sessions, for the admin API's listings, each ending in the sort key the listing uses:
//! a user's sessions by recent activity, sessions by status, by creation time, those that
//! asked for help and those an admin assisted (newest first); and `schema`, so finding
//! documents of the earlier layout (`schema` absent) does not scan the collection.
//!
//! For the catalog's sorts (`catalog.rs`), one index per sort key followed by `_id`, the
//! tie-break, in the order of the descending listing (newest, longest, largest first;
//! user ids ascending), so such a page is read in index order and stops after
//! `offset + limit` entries; the other direction is sorted by the server. And the share
//! grant's digest, so opening a shared link is one index lookup.
//!
//! Stored files (`files.rs`): a user's uploads by time (the upload quota), unattached
//! files by time (orphans), and the copied end time of their session (retention; sparse,
//! as most files have none for most of their life).
//!
//! Creating an index whose name exists with other keys fails start-up, so a changed index
//! gets a new name rather than new keys.

use std::future::IntoFuture;

use chatbox_application::ports::RepositoryError;
use mongodb::IndexModel;
use mongodb::bson::{Document, doc};
use mongodb::options::IndexOptions;

use crate::MongoSessionRepository;
use crate::documents::{field, file_field};
use crate::error::storage_error;
use crate::operation::Operation;
use crate::retry::retrying;

fn index(name: &str, keys: Document, unique: bool) -> IndexModel {
    let options = IndexOptions::builder().name(name.to_owned()).unique(unique.then_some(true)).build();
    IndexModel::builder().keys(keys).options(options).build()
}

/// An index leaving out documents without the (single) key field.
fn sparse_index(name: &str, keys: Document) -> IndexModel {
    let options = IndexOptions::builder().name(name.to_owned()).sparse(true).build();
    IndexModel::builder().keys(keys).options(options).build()
}

/// The session indexes, by name.
pub(crate) fn session_indexes() -> Vec<IndexModel> {
    vec![
        index("user_last_activity", doc! { field::USER_ID: 1, field::LAST_ACTIVITY: -1 }, false),
        index("status_last_activity", doc! { field::STATUS: 1, field::LAST_ACTIVITY: -1 }, false),
        index("created_at", doc! { field::CREATED_AT: -1 }, false),
        index("help_requested_created_at", doc! { field::HELP_REQUESTED: 1, field::CREATED_AT: -1 }, false),
        index("admin_assisted_created_at", doc! { field::ADMIN_ASSISTED: 1, field::CREATED_AT: -1 }, false),
        index("schema", doc! { field::SCHEMA: 1 }, false),
        index("last_activity_id", doc! { field::LAST_ACTIVITY: -1, field::ID: 1 }, false),
        index("created_at_id", doc! { field::CREATED_AT: -1, field::ID: 1 }, false),
        index("ended_at_id", doc! { field::ENDED_AT: -1, field::ID: 1 }, false),
        index("duration_id", doc! { field::DURATION_MS: -1, field::ID: 1 }, false),
        index("message_count_id", doc! { field::MESSAGE_COUNT: -1, field::ID: 1 }, false),
        index("total_tokens_id", doc! { field::TOTAL_TOKENS: -1, field::ID: 1 }, false),
        index("user_id_id", doc! { field::USER_ID: 1, field::ID: 1 }, false),
        index("share_digest", doc! { field::SHARE_TOKEN_DIGEST: 1 }, false),
    ]
}

/// The message indexes, by name.
pub(crate) fn message_indexes() -> Vec<IndexModel> {
    vec![index("session_seq", doc! { field::SESSION_ID: 1, field::SEQ: 1 }, true)]
}

/// The stored files' indexes, by name.
pub(crate) fn file_indexes() -> Vec<IndexModel> {
    vec![
        index("owner_created_at", doc! { file_field::OWNER: 1, field::CREATED_AT: 1 }, false),
        index("session_created_at", doc! { file_field::SESSION: 1, field::CREATED_AT: 1 }, false),
        sparse_index("session_ended_at", doc! { file_field::SESSION_ENDED_AT: 1 }),
    ]
}

/// Creates the indexes one `createIndexes` command each: FerretDB 1.24 drops the
/// connection when one command names two or more indexes that already exist.
pub(crate) async fn ensure(repository: &MongoSessionRepository) -> Result<(), RepositoryError> {
    let policy = &repository.retry;
    let all = message_indexes()
        .into_iter()
        .map(|index| (&repository.messages, index))
        .chain(session_indexes().into_iter().map(|index| (&repository.sessions, index)))
        .chain(file_indexes().into_iter().map(|index| (&repository.files, index)));
    for (collection, index) in all {
        retrying(policy, Operation::CreateIndex, || collection.create_index(index.clone()).into_future())
            .await
            .map_err(|e| storage_error(Operation::CreateIndex, &e))?;
    }
    Ok(())
}
