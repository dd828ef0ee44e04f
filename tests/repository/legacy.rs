//! Documents of the earlier Go service (messages embedded, content encrypted as
//! `base64(nonce ‖ ciphertext ‖ tag)` under a raw 32-character key): readable through the
//! adapter as they are, converted by the migration, which is idempotent and resumes after
//! a crash, and converted on the first write to such a session.

use chatbox_application::ports::SessionRepository;
use chatbox_domain::{HandoffState, MessageEffects, MessageKind, Sender, Seq, SessionId};
use chatbox_mongodb_store::migrate::{MigrationReport, migrate_all};
use chatbox_mongodb_store::mongodb::bson::{Bson, DateTime, Document, doc};
use chatbox_mongodb_store::{EncryptionKey, KeyId, KeyRing, MongoSessionRepository};
use futures::TryStreamExt;

use crate::support::{config, fresh_database, reachable_mongo_uri, text};

/// The Go service's key: 32 characters used as raw bytes.
const GO_KEY: &str = "go-service-key-32-characters-abc";

fn go_key() -> EncryptionKey {
    EncryptionKey::parse(GO_KEY).expect("key").0
}

/// The key ring of the new service: a new current key, the Go key kept to read old data.
pub fn keys() -> KeyRing {
    KeyRing::new(
        KeyId::parse("k2").expect("id"),
        &EncryptionKey::from_bytes([9; 32]),
        &[(KeyId::parse("go").expect("id"), go_key())],
    )
    .expect("ring")
}

pub fn go_session(id: &str, encrypted: &str) -> Document {
    let at = |ms: i64| DateTime::from_millis(1_690_000_000_000 + ms);
    doc! {
        "_id": id, "uid": "user-7", "nm": "Question about", "modelId": "gpt-4",
        "msgs": [
            { "content": KeyRing::seal_legacy(&go_key(), encrypted).expect("seal"), "ts": at(1_000), "sender": "user" },
            { "content": "A plaintext answer from before the key", "ts": at(2_000), "sender": "ai" },
            { "content": "", "ts": at(3_000), "sender": "user", "fileId": "f-1",
              "fileUrl": "https://files.example/doc.pdf", "meta": { "size": "12" } },
        ],
        "ts": at(0), "dur": 0_i64, "adminAssisted": false, "helpRequested": true, "totalTokens": 12_i32,
        "lastActivity": at(3_000), "maxRespTime": 0_i64, "avgRespTime": 0_i64, "shareToken": "share-1",
        "_ts": at(0), "_mt": at(3_000),
    }
}

async fn everything(repo: &MongoSessionRepository) -> (Vec<Document>, Vec<Document>) {
    let sessions = repo.sessions_collection().find(doc! {}).sort(doc! { "_id": 1 }).await.expect("find");
    let messages = repo.messages_collection().find(doc! {}).sort(doc! { "_id": 1 }).await.expect("find");
    (sessions.try_collect().await.expect("sessions"), messages.try_collect().await.expect("messages"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn go_documents_read_migrate_once_and_resume_after_a_crash() {
    let Some(uri) = reachable_mongo_uri().await else {
        return;
    };
    let database = fresh_database("legacy");
    let setup =
        MongoSessionRepository::connect(config(&uri, &database, Some(keys()))).await.expect("connect");
    let id = "a".repeat(32);
    let original = go_session(&id, "What is the capital of France?");
    setup.sessions_collection().insert_one(original.clone()).await.expect("insert a Go document");
    setup.sessions_collection().insert_one(go_session(&"b".repeat(32), "second")).await.expect("insert");
    // A fresh connection finds the legacy documents at start-up, as the service does.
    let repo = MongoSessionRepository::connect(config(&uri, &database, Some(keys()))).await.expect("connect");
    let session_id = SessionId::parse(&id).expect("id");

    // Readable as it is.
    let session = repo.load(&session_id).await.expect("load").expect("exists");
    assert_eq!((session.last_seq, session.message_count, session.total_tokens), (Seq(3), 3, 12));
    assert_eq!(
        (session.name.as_deref(), session.handoff.clone()),
        (Some("Question about"), HandoffState::HelpRequested)
    );
    let before = repo.messages_after(&session_id, Seq(0), 10).await.expect("messages");
    assert_eq!(before[0].content, "What is the capital of France?", "the Go ciphertext opens");
    assert_eq!(before[1].content, "A plaintext answer from before the key");
    assert_eq!((before[1].sender, before[2].kind), (Sender::Ai, MessageKind::File));
    assert_eq!(before[2].file_url.as_deref(), Some("https://files.example/doc.pdf"));
    assert_eq!(repo.recent_messages(&session_id, 1).await.expect("recent"), before[2..].to_vec());
    assert_eq!(repo.messages_after(&session_id, Seq(1), 1).await.expect("page"), before[1..2].to_vec());

    // Migrated once.
    let report = migrate_all(&repo, |_| {}).await.expect("migrate");
    assert_eq!((report.found, report.converted, report.messages, report.failed), (2, 2, 6, 0), "{report:?}");
    assert_eq!(repo.load(&session_id).await.expect("load"), Some(session.clone()), "same session after");
    assert_eq!(
        repo.messages_after(&session_id, Seq(0), 10).await.expect("messages"),
        before,
        "same messages after"
    );
    let converted =
        repo.sessions_collection().find_one(doc! { "_id": &id }).await.expect("find").expect("exists");
    assert!(converted.get("msgs").is_none() && converted.get_str("share_token") == Ok("share-1"));
    assert!(matches!(converted.get("name"), Some(Bson::Binary(_))), "the name is now encrypted");

    // A second run changes nothing.
    let snapshot = everything(&repo).await;
    let again = migrate_all(&repo, |_| {}).await.expect("migrate again");
    assert_eq!(again, MigrationReport::default());
    assert_eq!(everything(&repo).await, snapshot, "the second run changed nothing");

    // A crash between writing the messages and converting the session: the session
    // document is the old one again, its messages already stored. The next run finishes
    // the job without a second copy of any message.
    repo.sessions_collection().replace_one(doc! { "_id": &id }, original).await.expect("simulate the crash");
    let resumed = migrate_all(&repo, |_| {}).await.expect("resume");
    assert_eq!((resumed.converted, resumed.messages, resumed.failed), (1, 3, 0), "{resumed:?}");
    assert_eq!(without_names(everything(&repo).await), without_names(snapshot), "resumed to the same state");
    assert_eq!(repo.load(&session_id).await.expect("load"), Some(session), "and the same session");

    repo.database().drop().await.expect("drop");
}

/// Session documents without `name`, whose ciphertext has a fresh nonce each time it is
/// written; messages stay as they are (a resumed run keeps the ones already stored).
fn without_names((mut sessions, messages): (Vec<Document>, Vec<Document>)) -> (Vec<Document>, Vec<Document>) {
    for session in &mut sessions {
        session.remove("name");
    }
    (sessions, messages)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_write_to_a_go_session_converts_it() {
    let Some(uri) = reachable_mongo_uri().await else {
        return;
    };
    let database = fresh_database("legacy-write");
    let repo = MongoSessionRepository::connect(config(&uri, &database, Some(keys()))).await.expect("connect");
    let id = "c".repeat(32);
    repo.sessions_collection().insert_one(go_session(&id, "hello")).await.expect("insert a Go document");
    let session_id = SessionId::parse(&id).expect("id");
    let effects = MessageEffects { tokens: 5, ..MessageEffects::default() };
    repo.append_message(&session_id, &text(&id, 4, "the next message"), &effects).await.expect("append");
    let session = repo.load(&session_id).await.expect("load").expect("exists");
    assert_eq!((session.last_seq, session.message_count, session.total_tokens), (Seq(4), 4, 17));
    let messages = repo.messages_after(&session_id, Seq(0), 10).await.expect("messages");
    assert_eq!(messages.iter().map(|m| m.seq.0).collect::<Vec<_>>(), [1, 2, 3, 4]);
    assert_eq!(messages[0].content, "hello");
    let report = migrate_all(&repo, |_| {}).await.expect("migrate");
    assert_eq!(report, MigrationReport::default(), "nothing left to convert");
    repo.database().drop().await.expect("drop");
}

/// Runs `chatbox migrate` with the service's configuration; its exit status and output.
fn run_migrate(uri: &str, database: &str) -> (bool, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_chatbox"))
        .arg("migrate")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("JWT_SECRET", "repository-K8f3Lq9ZxW2mN7vB4tR6yU1pJ5h")
        .env("LLM_PROVIDER_1_ID", "demo")
        .env("LLM_PROVIDER_1_TYPE", "demo")
        .env("MONGO_URI", uri)
        .env("MONGO_DATABASE", database)
        // The Go service's key, as that service took it (32 raw characters).
        .env("ENCRYPTION_KEY", GO_KEY)
        .env("ENCRYPTION_KEY_ID", "go")
        .output()
        .expect("run chatbox migrate");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    (output.status.success(), format!("{stdout}{}", String::from_utf8_lossy(&output.stderr)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_migrate_command_converts_then_finds_nothing_left() {
    let Some(uri) = reachable_mongo_uri().await else {
        return;
    };
    let database = fresh_database("legacy-cli");
    let repo = MongoSessionRepository::connect(config(&uri, &database, Some(keys()))).await.expect("connect");
    for letter in ["d", "e", "f"] {
        repo.sessions_collection().insert_one(go_session(&letter.repeat(32), "hi")).await.expect("insert");
    }
    let (ok, output) = tokio::task::spawn_blocking({
        let (uri, database) = (uri.clone(), database.clone());
        move || run_migrate(&uri, &database)
    })
    .await
    .expect("task");
    assert!(ok, "{output}");
    assert!(
        output.contains("done: 3 sessions found, 3 converted (9 messages), 0 skipped, 0 failed, 0 current sessions backfilled"),
        "final count: {output}"
    );
    let (ok, output) = tokio::task::spawn_blocking(move || run_migrate(&uri, &database)).await.expect("task");
    assert!(ok, "{output}");
    assert!(output.contains("done: 0 sessions found, 0 converted (0 messages)"), "second run: {output}");
    let converted = repo.messages_collection().count_documents(doc! {}).await.expect("count");
    assert_eq!(converted, 9);
    repo.database().drop().await.expect("drop");
}
