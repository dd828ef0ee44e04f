//! Sessions across sockets: resume with `last_seq` (replay, then the partial answer,
//! then live chunks), answers that outlive their socket, and foreign session ids.

use serde_json::json;

use crate::support::{answer_text, done, spawn_app};

#[tokio::test]
async fn dropping_mid_answer_and_resuming_with_last_seq_gives_exactly_the_rest() {
    let app = spawn_app(&[("LLM_PROVIDER_1_DELAY", "25ms")]).await;
    let mut client = app.connect("alice", "").await;
    let session = client.session_id();
    let first = client.ask("first question").await;
    let last_seq = done(&first)["seq"].as_u64().expect("seq");

    client.send(json!({"type": "user_message", "content": "second question"})).await;
    let mut seen = Vec::new();
    while seen.len() < 6 {
        seen.push(client.next_json().await);
    }
    drop(client);

    let mut back = app.connect("alice", &format!("&session_id={session}&last_seq={last_seq}")).await;
    assert_eq!(back.session_id(), session);
    let frames = back.until_done().await;
    assert_eq!(frames[0]["type"], "user_message", "the stored question is replayed first");
    assert_eq!(frames[0]["content"], "second question");
    assert_eq!(frames[0]["seq"], last_seq + 1);
    assert_eq!(frames[1]["type"], "loading");
    assert_eq!(frames[1]["message_id"], seen[0]["message_id"], "the same answer continues");
    let resumed = answer_text(&frames[1..]);

    let mut fresh = app.connect("alice", &format!("&session_id={session}&last_seq={last_seq}")).await;
    let stored_question = fresh.next_json().await;
    assert_eq!(stored_question["seq"], last_seq + 1);
    let stored_answer = fresh.next_json().await;
    assert_eq!(stored_answer["type"], "ai_response");
    assert_eq!(
        stored_answer["content"].as_str(),
        Some(resumed.as_str()),
        "partial + live = the whole stored answer, nothing doubled"
    );
    assert_eq!(stored_answer["metadata"]["finish_reason"], "stop");
    app.stop().await;
}

#[tokio::test]
async fn the_resume_frame_replays_like_the_query_parameters() {
    let app = spawn_app(&[]).await;
    let mut client = app.connect("alice", "").await;
    let session = client.session_id();
    client.ask("one").await;
    let mut other = app.connect("alice", "").await;
    other.send(json!({"type": "resume", "session_id": session, "last_seq": 0})).await;
    let status = other.next_json().await;
    assert_eq!(
        (status["type"].as_str(), status["session_id"].as_str()),
        (Some("connection_status"), Some(session.as_str()))
    );
    let question = other.next_json().await;
    let answer = other.next_json().await;
    assert_eq!((question["seq"].as_u64(), question["content"].as_str()), (Some(1), Some("one")));
    assert_eq!(answer["seq"], 2);
    app.stop().await;
}

#[tokio::test]
async fn an_answer_keeps_running_when_its_socket_drops() {
    let app = spawn_app(&[("LLM_PROVIDER_1_DELAY", "10ms")]).await;
    let mut client = app.connect("alice", "").await;
    let session = client.session_id();
    client.send(json!({"type": "user_message", "content": "answer me while I'm away"})).await;
    assert_eq!(client.next_json().await["type"], "loading");
    drop(client);
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let mut back = app.connect("alice", &format!("&session_id={session}&last_seq=1")).await;
    let answer = back.next_json().await;
    assert_eq!(answer["type"], "ai_response");
    assert!(answer["content"].as_str().is_some_and(|c| c.contains("answer me while I'm away")));
    assert_eq!(answer["metadata"]["finish_reason"], "stop");
    app.stop().await;
}

#[tokio::test]
async fn a_foreign_session_id_behaves_like_an_unknown_one_and_reaches_nobody() {
    let app = spawn_app(&[]).await;
    let mut owner = app.connect("owner", "").await;
    owner.ask("my secret plans").await;
    let victim = owner.session_id();

    let mut intruder = app.connect("intruder", &format!("&session_id={victim}&last_seq=0")).await;
    assert_ne!(intruder.session_id(), victim, "not bound to someone else's session");
    intruder.send(json!({"type": "user_message", "session_id": victim, "content": "let me in"})).await;
    let status = intruder.next_json().await;
    assert_eq!(status["type"], "connection_status");
    let new_id = status["session_id"].as_str().expect("id").to_owned();
    assert_ne!(new_id, victim);
    let frames = intruder.until_done().await;
    assert!(!answer_text(&frames).contains("secret plans"), "no history leaks");
    assert!(frames.iter().all(|f| f["session_id"] == new_id.as_str()));

    intruder.send(json!({"type": "stop", "session_id": victim})).await;
    intruder
        .send(json!({"type": "typing_indicator", "session_id": victim, "metadata": {"typing": "true"}}))
        .await;
    owner.send(json!({"type": "ping"})).await;
    assert_eq!(owner.next_json().await["type"], "pong", "nothing from the intruder reached the owner");
    app.stop().await;
}
