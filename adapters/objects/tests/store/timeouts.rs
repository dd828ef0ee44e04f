//! No operation hangs: against a server that accepts connections and never answers,
//! each operation fails within a bound set by the configured timeout.

use std::time::{Duration, Instant};

use chatbox_application::ports::{FileStore, FileStoreError};
use chatbox_domain::Secret;
use chatbox_object_store::{ObjectFileStore, ObjectStoreConfig, S3Config};
use tokio::net::TcpListener;

use crate::common::{headers, new_id};

/// A server on loopback that takes connections and says nothing; its address.
async fn silent_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    format!("http://{address}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operations_against_a_silent_server_give_up() {
    let endpoint = silent_server().await;
    let timeout = Duration::from_millis(500);
    let store = ObjectFileStore::open(&ObjectStoreConfig::S3(S3Config {
        endpoint: Some(endpoint),
        access_key_id: Some(Secret::new("key-id")),
        secret_access_key: Some(Secret::new("secret")),
        allow_http: true,
        timeout,
        ..S3Config::new("chatbox-test", "us-east-1")
    }))
    .expect("opens");
    let id = new_id();
    let bound = Duration::from_secs(8);

    let started = Instant::now();
    let created = store.create(&id, &headers()).await;
    assert!(matches!(created, Err(FileStoreError::Unavailable(_))), "create: {:?}", created.err());
    assert!(started.elapsed() < bound, "create took {:?}", started.elapsed());

    let started = Instant::now();
    let read = store.read(&id, None).await;
    assert!(matches!(read, Err(FileStoreError::Unavailable(_))), "read: {read:?}");
    assert!(started.elapsed() < bound, "read took {:?}", started.elapsed());

    let started = Instant::now();
    let deleted = store.delete(&id).await;
    assert!(matches!(deleted, Err(FileStoreError::Unavailable(_))), "delete: {deleted:?}");
    assert!(started.elapsed() < bound, "delete took {:?}", started.elapsed());
}
