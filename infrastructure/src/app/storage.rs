//! The storage choice: the memory store (also kept for the memory probe) or MongoDB per
//! `MONGO_*` and `ENCRYPTION_*`. One store serves both ports: the chat path's writes
//! (each timed by the metrics) and the API's reads.

use std::sync::Arc;

use anyhow::Context;
use chatbox_application::ports::{FileCatalog, SessionCatalog, SessionRepository};
use chatbox_memory_store::MemorySessionRepository;
use chatbox_mongodb_store::MongoSessionRepository;
use tracing::info;

use crate::config::{StorageBackend, StorageSection};
use crate::metrics::ServiceMetrics;

/// The opened store, behind the two ports.
pub(super) struct Stores {
    /// Where the use-cases write (and read), every operation timed.
    pub repository: Arc<dyn SessionRepository>,
    /// What the API lists and counts.
    pub catalog: Arc<dyn SessionCatalog>,
    /// The records of uploaded files.
    pub files: Arc<dyn FileCatalog>,
    /// The memory backend, when it is the one in use.
    pub memory: Option<Arc<MemorySessionRepository>>,
    /// The MongoDB backend, when it is the one in use (closed at the end of shutdown).
    pub mongo: Option<Arc<MongoSessionRepository>>,
}

/// Opens the configured backend.
///
/// # Errors
/// When MongoDB is configured but cannot be used.
pub(super) async fn open(storage: &StorageSection, metrics: &ServiceMetrics) -> anyhow::Result<Stores> {
    let memory = (storage.backend == StorageBackend::Memory)
        .then(|| Arc::new(MemorySessionRepository::new(storage.memory_store_max_sessions)));
    let mut mongo = None;
    let (repository, catalog, files): (
        Arc<dyn SessionRepository>,
        Arc<dyn SessionCatalog>,
        Arc<dyn FileCatalog>,
    ) = match &memory {
        Some(store) => (
            Arc::clone(store) as Arc<dyn SessionRepository>,
            Arc::clone(store) as Arc<dyn SessionCatalog>,
            Arc::clone(store) as Arc<dyn FileCatalog>,
        ),
        None => {
            let store = Arc::new(mongo_repository(storage).await?.with_metrics(metrics.recorder()));
            mongo = Some(Arc::clone(&store));
            (
                Arc::clone(&store) as Arc<dyn SessionRepository>,
                Arc::clone(&store) as Arc<dyn SessionCatalog>,
                store,
            )
        }
    };
    Ok(Stores { repository: metrics.timed(repository), catalog, files, memory, mongo })
}

/// Connects to MongoDB per `MONGO_*` and `ENCRYPTION_*`: waits for a server (with the
/// retries), creates the indexes; fails with a clear error (never the URI) otherwise.
///
/// # Errors
/// When MongoDB is not configured, unreachable after the retries, or its indexes cannot
/// be created.
pub async fn mongo_repository(storage: &StorageSection) -> anyhow::Result<MongoSessionRepository> {
    let config = storage.mongo_config()?;
    let (database, collection) = (config.database.clone(), config.collection.clone());
    let repository = MongoSessionRepository::connect(config).await.context("cannot use MongoDB storage")?;
    info!(database = %database, collection = %collection, "MongoDB storage ready");
    Ok(repository)
}
