//! # MongoDB session storage
//!
//! A [`SessionRepository`](chatbox_application::ports::SessionRepository) on MongoDB (or a
//! server speaking its protocol, such as FerretDB). See `docs/storage.md` for the layout
//! and its reasons.
//!
//! - Sessions live in `MONGO_COLLECTION` (default `sessions`), one document each, fields
//!   flat and indexed for the admin API's listings; messages live in
//!   `<collection>_messages`, one document each, unique by `(session_id, seq)`, so a long
//!   conversation never approaches the 16 MB document limit.
//! - Every write is idempotent and field-level, as the port's write contract asks
//!   (`repository.rs`); transient failures are retried with backoff (`retry.rs`).
//! - It is also the [`SessionCatalog`](chatbox_application::ports::SessionCatalog):
//!   listings, analytics and share grants (`catalog.rs`), on stored fields kept by the
//!   writes for the purpose (`documents/derived.rs`).
//! - It is also the [`FileCatalog`](chatbox_application::ports::FileCatalog): the records
//!   of uploaded files in `<collection>_files` (`files.rs`); ending a session copies its
//!   end time onto its files, so that expired files are one indexed query.
//! - Message content, file URLs, session names and stored files' names are encrypted at
//!   rest when a key is configured (`crypto.rs`).
//! - Session documents of the earlier Go service (messages embedded) are readable as they
//!   are (`legacy.rs`) and converted by `chatbox migrate` (`migrate.rs`); a write to such a
//!   session converts it first.

#![forbid(unsafe_code)]

mod catalog;
pub mod crypto;
mod documents;
mod error;
mod files;
mod indexes;
mod legacy;
mod locks;
pub mod migrate;
mod operation;
mod repository;
pub mod retry;

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chatbox_domain::Secret;
use mongodb::bson::{Bson, Document, doc};
use mongodb::options::ClientOptions;
use mongodb::{Client, Collection, Database};

pub use crate::crypto::{EncryptionKey, KeyId, KeyRing};
pub use crate::documents::DocumentError;
pub use crate::error::ConnectError;
pub use crate::retry::RetryPolicy;
/// The driver, re-exported so tests and tools use the same version.
pub use mongodb;

use crate::documents::{Codec, field};
use crate::operation::Operation;
use crate::retry::retrying;

/// How to reach the store and how to treat what is stored there.
#[derive(Debug, Clone)]
pub struct MongoConfig {
    /// `MONGO_URI`; may carry a password, so it stays wrapped (`Debug` prints `***`) up
    /// to the driver.
    pub uri: Secret,
    /// `MONGO_DATABASE`.
    pub database: String,
    /// `MONGO_COLLECTION`: sessions; messages go to `<collection>_messages`, stored
    /// files' records to `<collection>_files`.
    pub collection: String,
    /// `MONGO_CONNECT_TIMEOUT`: for connecting and for finding a usable server.
    pub connect_timeout: Duration,
    /// `MONGO_RETRY_*`.
    pub retry: RetryPolicy,
    /// The encryption keys, if `ENCRYPTION_KEY` is set.
    pub keys: Option<KeyRing>,
}

/// Sessions and messages in MongoDB.
pub struct MongoSessionRepository {
    database: Database,
    sessions: Collection<Document>,
    messages: Collection<Document>,
    files: Collection<Document>,
    codec: Codec,
    retry: retry::Retry,
    /// Serialises this process's updates of one session document (see `locks.rs`).
    locks: locks::SessionLocks,
    /// Serialises this process's updates of one file document (see `files.rs`).
    file_locks: locks::SessionLocks,
    /// Whether documents of the earlier layout may exist: only then do reads of messages
    /// look at the session document first. Found at start-up; stays true until restart
    /// even if they are migrated meanwhile (costing one small read, never a wrong answer).
    legacy_present: AtomicBool,
}

impl fmt::Debug for MongoSessionRepository {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MongoSessionRepository")
            .field("database", &self.database.name())
            .field("sessions", &self.sessions.name())
            .field("messages", &self.messages.name())
            .field("files", &self.files.name())
            .field("encrypted", &self.codec.keys().is_some())
            .finish_non_exhaustive()
    }
}

impl MongoSessionRepository {
    /// Connects, waits until a server answers (retrying per the policy), creates the
    /// indexes, and looks for documents of the earlier layout.
    ///
    /// # Errors
    /// A [`ConnectError`], whose text never holds the URI's password.
    pub async fn connect(config: MongoConfig) -> Result<Self, ConnectError> {
        let uri = config.uri.expose();
        let mut options = ClientOptions::parse(uri)
            .await
            .map_err(|e| ConnectError::InvalidUri(error::redact(&e.kind.to_string(), uri)))?;
        options.connect_timeout = Some(config.connect_timeout);
        options.server_selection_timeout = Some(config.connect_timeout);
        options.app_name = Some("chatbox".to_owned());
        let client = Client::with_options(options)
            .map_err(|e| ConnectError::InvalidUri(error::redact(&e.kind.to_string(), uri)))?;
        let repository = Self::with_client(&client, &config);
        retrying(&config.retry, Operation::Ping, || {
            repository.database.run_command(doc! { "ping": 1 }).into_future()
        })
        .await
        .map_err(|e| {
            let signals = retry::Signals::of(&e);
            if signals.is_transient() {
                ConnectError::Unreachable {
                    attempts: config.retry.attempts.max(1),
                    reason: signals.describe(),
                }
            } else {
                ConnectError::Refused(signals.describe())
            }
        })?;
        repository.ensure_indexes().await.map_err(|e| ConnectError::Indexes(e.to_string()))?;
        repository.detect_legacy().await.map_err(|e| ConnectError::Indexes(e.to_string()))?;
        Ok(repository)
    }

    /// Closes the client's connections and ends its server sessions, at the end of
    /// shutdown. Without it, the driver does this from the last handle's `Drop`, in a
    /// task spawned while the runtime stops, which can find its pool already gone and
    /// panic after the shutdown's last line.
    pub async fn close(&self) {
        self.database.client().clone().shutdown().immediate(true).await;
    }

    fn with_client(client: &Client, config: &MongoConfig) -> Self {
        let database = client.database(&config.database);
        Self {
            sessions: database.collection(&config.collection),
            messages: database.collection(&format!("{}_messages", config.collection)),
            files: database.collection(&format!("{}_files", config.collection)),
            database,
            codec: Codec::new(config.keys.clone()),
            retry: retry::Retry::uncounted(config.retry),
            locks: locks::SessionLocks::default(),
            file_locks: locks::SessionLocks::default(),
            legacy_present: AtomicBool::new(false),
        }
    }

    /// The same repository, counting each storage retry in `metrics`
    /// (`storage_retry`, by operation; every operation's series starts at 0).
    #[must_use]
    pub fn with_metrics(mut self, metrics: std::sync::Arc<dyn chatbox_application::ports::Metrics>) -> Self {
        metrics.storage_retry_operations(&Operation::NAMES);
        self.retry.metrics = metrics;
        self
    }

    /// Creates the indexes the writes and the listings need (idempotent; done by
    /// [`connect`](Self::connect)).
    ///
    /// # Errors
    /// A store failure, or an index of the same name with other options.
    pub async fn ensure_indexes(&self) -> Result<(), chatbox_application::ports::RepositoryError> {
        indexes::ensure(self).await
    }

    async fn detect_legacy(&self) -> Result<(), chatbox_application::ports::RepositoryError> {
        let found = retrying(&self.retry, Operation::DetectLegacy, || {
            self.sessions
                .find_one(doc! { field::SCHEMA: { "$exists": false } })
                .projection(doc! { field::ID: 1 })
                .into_future()
        })
        .await
        .map_err(|e| error::storage_error(Operation::DetectLegacy, &e))?;
        if found.is_some() {
            tracing::warn!(
                "sessions of the earlier service's layout found: they are readable, and converted on their next \
                 write; run `chatbox migrate` to convert them all"
            );
        }
        self.legacy_present.store(found.is_some(), Ordering::Relaxed);
        // Sessions written before the catalog's derived fields existed: listed and
        // counted correctly, but sorted as the shortest by duration until filled in. A
        // missing field equals null, which the `duration_id` index finds.
        let underived = retrying(&self.retry, Operation::DetectUnderived, || {
            self.sessions
                .find_one(doc! { field::SCHEMA: documents::SCHEMA_VERSION, field::DURATION_MS: Bson::Null })
                .projection(doc! { field::ID: 1 })
                .into_future()
        })
        .await
        .map_err(|e| error::storage_error(Operation::DetectUnderived, &e))?;
        if underived.is_some() {
            tracing::warn!(
                "sessions without a stored duration found (written by an earlier version): they sort as the \
                 shortest in a duration listing until `chatbox migrate` fills it in"
            );
        }
        Ok(())
    }

    /// The database (for tools and tests).
    #[must_use]
    pub const fn database(&self) -> &Database {
        &self.database
    }

    /// The sessions collection (for tools and tests).
    #[must_use]
    pub const fn sessions_collection(&self) -> &Collection<Document> {
        &self.sessions
    }

    /// The messages collection (for tools and tests).
    #[must_use]
    pub const fn messages_collection(&self) -> &Collection<Document> {
        &self.messages
    }

    /// The stored files' collection (for tools and tests).
    #[must_use]
    pub const fn files_collection(&self) -> &Collection<Document> {
        &self.files
    }

    fn legacy_possible(&self) -> bool {
        self.legacy_present.load(Ordering::Relaxed)
    }

    fn note_legacy(&self) {
        self.legacy_present.store(true, Ordering::Relaxed);
    }
}
