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
    // The replay is queued while the `resume` is handled, before the `ping` after it is
    // read, so the pong on this same socket fences it: exactly the two stored messages.
    let replay = other.frames_before_pong().await;
    let seqs: Vec<Option<u64>> = replay.iter().map(|f| f["seq"].as_u64()).collect();
    assert_eq!(seqs, [Some(1), Some(2)], "each stored message once: {replay:#?}");
    assert_eq!(replay[0]["content"], "one");
    assert_eq!(replay[1]["type"], "ai_response");
    app.stop().await;
}

#[tokio::test]
async fn an_answer_keeps_running_when_its_socket_drops() {
    let app = spawn_app(&[("LLM_PROVIDER_1_DELAY", "10ms")]).await;
    let mut client = app.connect("alice", "").await;
    let session = client.session_id();
    client.send(json!({"type": "user_message", "content": "answer me while I'm away"})).await;
    assert_eq!(client.next_json().await["type"], "loading");
    // Close, and wait for the server's side of the closing handshake: the server has
    // then already detached the socket from the session (its reader detaches before the
    // writer answers the close), so from here on nobody watches the answer.
    client.socket.close(None).await.expect("close");
    client.until_closed().await;

    // Back at once, nothing waited for: the answer is either stored by now, or still
    // running (then the socket gets `loading`, what was streamed so far, and the rest).
    // Either way it must end as a whole answer, not cancelled by the drop.
    let mut back = app.connect("alice", &format!("&session_id={session}&last_seq=1")).await;
    let first = back.next_json().await;
    let (text, finish_reason) = if first["type"] == "loading" {
        let rest = back.until_done().await;
        (answer_text(&rest), done(&rest)["metadata"]["finish_reason"].clone())
    } else {
        assert_eq!(first["type"], "ai_response", "{first}");
        (first["content"].as_str().unwrap_or_default().to_owned(), first["metadata"]["finish_reason"].clone())
    };
    assert!(text.contains("answer me while I'm away"), "{text}");
    assert_eq!(finish_reason, "stop");
    app.stop().await;
}

#[tokio::test]
async fn a_foreign_session_id_behaves_like_an_unknown_one_and_reaches_nobody() {
    let app = spawn_app(&[("LLM_PROVIDER_1_DELAY", "20ms")]).await;
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

    // While the owner's next answer streams, the intruder aims `stop` and typing at the
    // owner's session. The intruder's pong proves both were handled (a socket's frames
    // are handled in order, and a relay is queued while its frame is handled); anything
    // they did to the owner's session therefore happened before the owner's answer
    // ended, so the owner's frames up to its `done` would show it.
    owner.send(json!({"type": "user_message", "content": "a long answer please"})).await;
    assert_eq!(owner.next_json().await["type"], "loading");
    assert_eq!(owner.next_json().await["metadata"]["done"], "false", "the answer is streaming");
    intruder.send(json!({"type": "stop", "session_id": victim})).await;
    intruder
        .send(json!({"type": "typing_indicator", "session_id": victim, "metadata": {"typing": "true"}}))
        .await;
    let intruder_frames = intruder.frames_before_pong().await;
    assert!(intruder_frames.iter().all(|f| f["session_id"] != victim.as_str()), "{intruder_frames:#?}");
    let owner_frames = owner.until_done().await;
    assert_eq!(done(&owner_frames)["metadata"]["finish_reason"], "stop", "the intruder's stop did nothing");
    assert!(
        owner_frames.iter().all(|f| f["type"] != "typing_indicator"),
        "nothing from the intruder reached the owner: {owner_frames:#?}"
    );
    app.stop().await;
}
