//! The `chatbox` binary with MongoDB storage: it starts when the server is reachable
//! (indexes created), and when it is not, it exits non-zero after its retries with an
//! error that says so and never shows the URI's password.

use std::process::Stdio;
use std::time::Duration;

use chatbox_mongodb_store::MongoSessionRepository;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use crate::support::{config, fresh_database, mongo_uri};

const PASSWORD: &str = "pw-hunter2-do-not-print";

fn chatbox(uri: &str, database: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_chatbox"));
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("JWT_SECRET", "repository-K8f3Lq9ZxW2mN7vB4tR6yU1pJ5h")
        .env("LLM_PROVIDER_1_ID", "demo")
        .env("LLM_PROVIDER_1_TYPE", "demo")
        .env("SERVER_HOST", "127.0.0.1")
        .env("SERVER_PORT", "0")
        .env("MONGO_URI", uri)
        .env("MONGO_DATABASE", database)
        .env("MONGO_CONNECT_TIMEOUT", "300ms")
        .env("MONGO_RETRY_ATTEMPTS", "2")
        .env("MONGO_RETRY_DELAY", "10ms")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    command
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_up_fails_clearly_when_mongodb_is_unreachable() {
    // A port nothing listens on: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let uri = format!("mongodb://chat:{PASSWORD}@127.0.0.1:{port}/");
    let output = tokio::time::timeout(Duration::from_secs(30), chatbox(&uri, "unreachable").output())
        .await
        .expect("exits within 30 s")
        .expect("runs");
    let text =
        format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(!output.status.success(), "{text}");
    assert!(text.contains("MongoDB is unreachable after 2 attempt(s)"), "{text}");
    assert!(!text.contains(PASSWORD), "the password must never be printed: {text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_up_with_a_reachable_mongodb_creates_the_indexes() {
    let Ok(uri) = mongo_uri().await else {
        return;
    };
    let database = fresh_database("startup");
    let mut child =
        chatbox(&uri, &database).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let ready = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.expect("read") {
            if line.contains("MongoDB storage ready") {
                return true;
            }
        }
        false
    })
    .await
    .expect("ready within 30 s");
    child.kill().await.expect("stop the server");
    assert!(ready, "the server said it was ready");
    let repo = MongoSessionRepository::connect(config(&uri, &database, None)).await.expect("connect");
    let names = repo.messages_collection().list_index_names().await.expect("indexes");
    assert!(names.iter().any(|n| n == "session_seq"), "{names:?}");
    repo.database().drop().await.expect("drop");
}
