//! Encryption at rest, checked where it matters: in the bytes of the database files.
//! A conversation is written with encryption on; the server is stopped (so everything is
//! flushed to its SQLite files) and every file of its data directory is scanned. The
//! encrypted fields' plaintext must not be there, while a field that is not encrypted
//! (message metadata) must be: that proves the scan sees the data at all.

use chatbox_application::ports::SessionRepository;
use chatbox_domain::{MessageEffects, MessageKind, Seq};
use chatbox_mongodb_store::MongoSessionRepository;

use crate::server::PrivateServer;
use crate::support::{config, session, test_keys, text};

fn files_contain(dir: &std::path::Path, needle: &str) -> bool {
    std::fs::read_dir(dir).expect("data dir").any(|entry| {
        let path = entry.expect("entry").path();
        path.is_file()
            && std::fs::read(&path).expect("file").windows(needle.len()).any(|w| w == needle.as_bytes())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_plaintext_of_encrypted_fields_reaches_the_database_files() {
    let Some(server) = PrivateServer::start("plaintext").await else {
        return;
    };
    let canary = format!("SECRET{}", uuid::Uuid::new_v4().simple());
    let visible = format!("VISIBLE{}", uuid::Uuid::new_v4().simple());
    let repo = MongoSessionRepository::connect(config(&server.uri(), "scan", Some(test_keys())))
        .await
        .expect("connect");
    let s = session("s-scan");
    repo.create(&s).await.expect("create");
    let mut first = text("s-scan", 1, &format!("{canary}-content first line"));
    first.metadata.insert("visible".into(), visible.clone());
    let effects = MessageEffects { name: Some(format!("{canary}-name")), ..MessageEffects::default() };
    repo.append_message(&s.id, &first, &effects).await.expect("append");
    let mut file = text("s-scan", 2, "caption");
    file.kind = MessageKind::File;
    file.file_url = Some(format!("https://files.example/{canary}-url"));
    repo.append_message(&s.id, &file, &MessageEffects::default()).await.expect("append");
    let read = repo.messages_after(&s.id, Seq(0), 10).await.expect("read back");
    assert!(read[0].content.starts_with(&canary), "stored content reads back as text");
    drop(repo);
    server.stop().await;

    let dir = server.data_dir();
    assert!(files_contain(&dir, &visible), "the scan must see unencrypted fields");
    for field in ["content", "name", "url"] {
        assert!(
            !files_contain(&dir, &format!("{canary}-{field}")),
            "plaintext {field} found in the database files"
        );
    }
    assert!(!files_contain(&dir, &canary), "no encrypted field's plaintext anywhere");
}
