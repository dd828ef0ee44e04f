//! Races between the sockets of one session, run many rounds over real sockets, on the
//! memory store and on MongoDB when one is reachable (where storage is slow enough for
//! the windows to be wide):
//! - a socket that resumes with `last_seq` while another socket of the session sends
//!   gets that message once, not in its replay and again live;
//! - the same `client_message_id` sent from two sockets at once is stored once, and the
//!   socket that stays gets its acknowledgement even when the other leaves before its
//!   own.

use std::time::Duration;

use serde_json::{Value, json};

use crate::mongo;
use crate::support::{TestApp, spawn_app};

/// Rounds per storage: each round is a fresh session.
const ROUNDS: usize = 30;

/// The server variants to race on: the memory store, and MongoDB when reachable.
async fn servers(test: &str) -> Vec<TestApp> {
    // Every round sends a few messages: keep the message limit out of the way.
    let common = [("RATE_LIMIT", "10000"), ("LLM_PROVIDER_1_DELAY", "1ms")];
    let mut apps = vec![spawn_app(&common).await];
    if let Some(mongo) = mongo::reachable(test).await {
        let database = mongo::fresh_database(test);
        let mut overrides = common.to_vec();
        overrides.extend([
            ("STORAGE_BACKEND", "mongodb"),
            ("MONGO_URI", mongo.uri.as_str()),
            ("MONGO_DATABASE", database.as_str()),
        ]);
        apps.push(spawn_app(&overrides).await);
    }
    apps
}

/// An answer's end: the `done` frame, or the stored answer in a replay.
fn ends_an_answer(frame: &Value) -> bool {
    frame["type"] == "ai_response" && frame["metadata"]["finish_reason"].is_string()
}

#[tokio::test]
async fn a_resume_racing_a_message_of_another_socket_gets_it_once() {
    for app in servers("resume race").await {
        for round in 0..ROUNDS {
            let mut writer = app.connect("alice", "").await;
            let session = writer.session_id();
            let first = writer.ask("first").await;
            let last_seq = first.last().expect("done")["seq"].as_u64().expect("seq");
            let question = format!("question {round}");

            let query = format!("&session_id={session}&last_seq={last_seq}");
            // Not a wait for anything: the reader's replay is moved across the store's
            // latency round by round, so some rounds read while the write is in flight.
            let offset = Duration::from_micros(250 * (round as u64 % 16));
            let (mut reader, ()) = tokio::join!(
                async {
                    tokio::time::sleep(offset).await;
                    app.connect("alice", &query).await
                },
                writer.send(json!({"type": "user_message", "content": question})),
            );
            let mut frames = crate::ws::frames_until(
                &mut reader.socket,
                crate::ws::deadline_in(crate::ws::WAIT),
                ends_an_answer,
            )
            .await;
            // Anything still queued for the reader arrives before its pong.
            frames.extend(reader.frames_before_pong().await);
            let copies =
                frames.iter().filter(|f| f["type"] == "user_message" && f["content"] == question).count();
            assert_eq!(copies, 1, "round {round}: the question once: {frames:#?}");
            let ends = frames.iter().filter(|f| ends_an_answer(f)).count();
            assert_eq!(ends, 1, "round {round}: the answer ends once: {frames:#?}");
            let seqs: Vec<u64> = frames
                .iter()
                .filter(|f| f["type"] == "user_message" || f["metadata"]["finish_reason"].is_string())
                .filter_map(|f| f["seq"].as_u64())
                .collect();
            assert!(seqs.windows(2).all(|w| w[0] < w[1]), "round {round}: in order: {seqs:?}");
            writer.until_done().await;
        }
        app.stop().await;
    }
}

#[tokio::test]
async fn one_key_from_two_sockets_is_stored_once_and_the_socket_that_stays_is_acknowledged() {
    for app in servers("key race").await {
        for round in 0..ROUNDS {
            let mut leaving = app.connect("alice", "").await;
            let session = leaving.session_id();
            let first = leaving.ask("first").await;
            let last_seq = first.last().expect("done")["seq"].as_u64().expect("seq");
            let mut staying =
                app.connect("alice", &format!("&session_id={session}&last_seq={last_seq}")).await;
            let key = format!("key-{round}");
            let message = json!({"type": "user_message", "content": "twice", "client_message_id": key});

            tokio::join!(leaving.send(message.clone()), staying.send(message));
            drop(leaving);

            let frames = staying.until_done().await;
            let acks: Vec<&Value> = frames
                .iter()
                .filter(|f| f["type"] == "message_ack" && f["client_message_id"] == key)
                .collect();
            assert_eq!(acks.len(), 1, "round {round}: one acknowledgement: {frames:#?}");
            let (status, _, page) = app
                .json("GET", &format!("/chat/sessions/{session}"), Some(&crate::support::token("alice")))
                .await;
            assert_eq!(status, 200);
            let stored: Vec<&Value> = page["messages"]
                .as_array()
                .expect("messages")
                .iter()
                .filter(|m| m["content"] == "twice")
                .collect();
            assert_eq!(stored.len(), 1, "round {round}: stored once: {page:#}");
            assert_eq!(acks[0]["seq"], stored[0]["seq"], "round {round}: the ack names the stored seq");
        }
        app.stop().await;
    }
}
