//! Builders for sessions and messages, and the two repositories under test: memory, and
//! MongoDB in a fresh database when `MONGO_URI` reaches a server.

use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use chatbox_application::ports::{SessionCatalog, SessionRepository};
use chatbox_domain::{
    MessageEffects, MessageId, ModelId, Sender, Seq, Session, SessionId, StoredMessage, Timestamp, UserId,
};
use chatbox_memory_store::MemorySessionRepository;
use chatbox_mongodb_store::{
    EncryptionKey, KeyId, KeyRing, MongoConfig, MongoSessionRepository, RetryPolicy,
};
use tokio::sync::OnceCell;

/// `CHATBOX_REQUIRE_MONGO=1`: the MongoDB half must run (CI).
pub fn mongo_required() -> bool {
    std::env::var("CHATBOX_REQUIRE_MONGO").is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"))
}

/// Prints one line to the real standard error (not the captured test output), once per
/// distinct `key`.
pub fn say_once(key: &'static str, line: &str) {
    static SAID: std::sync::Mutex<Vec<&'static str>> = std::sync::Mutex::new(Vec::new());
    let mut said = SAID.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if !said.contains(&key) {
        said.push(key);
        let _ = writeln!(std::io::stderr(), "{line}");
    }
}

/// A whole-millisecond time (MongoDB keeps milliseconds).
pub fn at(millis: i64) -> Timestamp {
    chrono::DateTime::from_timestamp_millis(1_700_000_000_000 + millis).expect("time")
}

pub fn session(id: &str) -> Session {
    Session::new(
        SessionId::parse(id).expect("id"),
        UserId::parse("user-1").expect("id"),
        ModelId::parse("demo").expect("id"),
        at(0),
    )
}

pub fn text(session: &str, seq: u64, content: &str) -> StoredMessage {
    StoredMessage::text(
        MessageId::parse(&format!("{session}-m{seq}")).expect("id"),
        Seq(seq),
        if seq % 2 == 1 { Sender::User } else { Sender::Ai },
        content.to_owned(),
        at(i64::try_from(seq).expect("small") * 1000),
    )
}

/// Appends messages `1..=count` (text "message <seq>") with no effects.
pub async fn append_texts(repo: &dyn SessionRepository, id: &str, count: u64) {
    let session_id = SessionId::parse(id).expect("id");
    for seq in 1..=count {
        repo.append_message(
            &session_id,
            &text(id, seq, &format!("message {seq}")),
            &MessageEffects::default(),
        )
        .await
        .expect("append");
    }
}

pub fn memory() -> Arc<dyn SessionRepository> {
    Arc::new(MemorySessionRepository::new(1000))
}

/// Both ports of one store, as the catalog cases use them.
pub trait Store: SessionRepository + SessionCatalog {}

impl<T: SessionRepository + SessionCatalog> Store for T {}

pub fn memory_store() -> Arc<dyn Store> {
    Arc::new(MemorySessionRepository::new(1000))
}

/// The key ring the MongoDB half runs with: encryption on, with a rotated-out key.
pub fn test_keys() -> KeyRing {
    KeyRing::new(
        KeyId::parse("test-2").expect("id"),
        &EncryptionKey::from_bytes([7; 32]),
        &[(KeyId::parse("test-1").expect("id"), EncryptionKey::from_bytes([3; 32]))],
    )
    .expect("ring")
}

pub fn config(uri: &str, database: &str, keys: Option<KeyRing>) -> MongoConfig {
    MongoConfig {
        uri: chatbox_domain::Secret::new(uri),
        database: database.to_owned(),
        collection: "sessions".to_owned(),
        connect_timeout: Duration::from_secs(5),
        retry: RetryPolicy {
            attempts: 3,
            delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(200),
        },
        keys,
    }
}

/// A database name no other test (or run) uses.
pub fn fresh_database(test: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let short: String = test.chars().filter(char::is_ascii_alphanumeric).take(24).collect();
    format!(
        "t{}_{}_{}_{short}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        uuid::Uuid::new_v4().simple().to_string().get(..6).unwrap_or("x")
    )
}

/// Whether `MONGO_URI` reaches a server: `Ok(uri)`, or why not. Probed once per run.
async fn mongo_uri() -> Result<String, String> {
    static PROBE: OnceCell<Result<String, String>> = OnceCell::const_new();
    PROBE
        .get_or_init(|| async {
            let uri = std::env::var("MONGO_URI").map_err(|_| "MONGO_URI is not set".to_owned())?;
            let mut probe = config(&uri, "chatbox_probe", None);
            probe.connect_timeout = Duration::from_secs(3);
            probe.retry.attempts = 1;
            let repository = MongoSessionRepository::connect(probe)
                .await
                .map_err(|e| format!("MONGO_URI does not reach a server: {e}"))?;
            repository.database().drop().await.map_err(|e| format!("cannot drop the probe database: {e}"))?;
            Ok(uri)
        })
        .await
        .clone()
}

/// `MONGO_URI` when it reaches a server; otherwise `None` after one printed line, or a
/// failed test when `CHATBOX_REQUIRE_MONGO` is set.
pub async fn reachable_mongo_uri() -> Option<String> {
    match mongo_uri().await {
        Ok(uri) => Some(uri),
        Err(reason) if mongo_required() => panic!("CHATBOX_REQUIRE_MONGO is set but {reason}"),
        Err(reason) => {
            say_once(
                "mongo-skipped",
                &format!(
                    "repository suite: MongoDB half SKIPPED ({reason}); run `scripts/ferretdb.sh start` and export \
                     MONGO_URI to run it"
                ),
            );
            None
        }
    }
}

/// A MongoDB repository in a fresh database, or `None` as [`reachable_mongo_uri`].
pub async fn mongo(test: &str) -> Option<MongoStore> {
    let uri = reachable_mongo_uri().await?;
    let database = fresh_database(test);
    let repository = MongoSessionRepository::connect(config(&uri, &database, Some(test_keys())))
        .await
        .expect("connect to a fresh database");
    Some(MongoStore { repository: Arc::new(repository) })
}

/// A repository in a database of its own.
pub struct MongoStore {
    repository: Arc<MongoSessionRepository>,
}

impl MongoStore {
    pub fn repository(&self) -> Arc<dyn SessionRepository> {
        self.repository.clone()
    }

    pub fn store(&self) -> Arc<dyn Store> {
        self.repository.clone()
    }

    pub fn mongo(&self) -> &MongoSessionRepository {
        &self.repository
    }

    /// The repository itself, for every port it implements.
    pub fn shared(&self) -> Arc<MongoSessionRepository> {
        self.repository.clone()
    }

    /// Drops the database (called when a test passed; a failed one keeps it to look at).
    pub async fn drop_database(&self) {
        self.repository.database().drop().await.expect("drop the test database");
    }
}

/// Polls `condition` every 20 ms until it holds; fails the test at `deadline`.
pub async fn wait_until<F, Fut>(what: &str, deadline: Duration, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = tokio::time::Instant::now();
    while !condition().await {
        assert!(start.elapsed() < deadline, "timed out after {deadline:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
