//! Chatting: streaming answers, the `user` alias, history, stop, model selection,
//! ping, typing relay, multi-device fan-out and idempotency.

use serde_json::json;

use crate::support::{answer_text, done, spawn_app};

#[tokio::test]
async fn a_message_streams_an_answer_in_chunks_with_one_message_id_and_a_done_frame() {
    let app = spawn_app(&[]).await;
    let mut client = app.connect("alice", "").await;
    client.send(json!({"type": "user_message", "content": "What is a WebSocket?"})).await;
    let frames = client.until_done().await;
    assert_eq!(frames[0]["type"], "loading");
    let message_id = frames[0]["message_id"].as_str().expect("loading carries the message id").to_owned();
    let chunks: Vec<_> = frames[1..frames.len() - 1].iter().collect();
    assert!(chunks.len() > 10, "streamed word by word");
    for chunk in &chunks {
        assert_eq!(chunk["type"], "ai_response");
        assert_eq!(chunk["message_id"], message_id.as_str());
        assert_eq!(chunk["metadata"]["streaming"], "true");
        assert_eq!(chunk["session_id"], client.session_id().as_str());
    }
    let text = answer_text(&frames);
    assert!(text.contains("\"What is a WebSocket?\""), "the demo quotes the question: {text}");
    let end = done(&frames);
    assert_eq!(end["content"], "");
    assert_eq!(end["message_id"], message_id.as_str());
    assert_eq!(end["metadata"]["finish_reason"], "stop");
    assert_eq!(end["seq"], 2, "question is seq 1, answer seq 2");
    let completion: u64 =
        end["metadata"]["completion_tokens"].as_str().expect("usage").parse().expect("number");
    assert!(completion > 10);
    app.stop().await;
}

#[tokio::test]
async fn the_short_user_type_of_the_operations_guide_gets_assistant_frames() {
    let app = spawn_app(&[]).await;
    let mut client = app.connect("alice", "").await;
    client.send(json!({"type": "user", "content": "Hello"})).await;
    let frames = client.until_done().await;
    assert!(frames[1..].iter().all(|f| f["type"] == "assistant"), "{frames:?}");
    assert!(answer_text(&frames).contains("\"Hello\""));
    app.stop().await;
}

#[tokio::test]
async fn the_answer_sees_the_conversation_history() {
    let app = spawn_app(&[]).await;
    let mut client = app.connect("alice", "").await;
    client.ask("first").await;
    let second = client.ask("second").await;
    assert!(answer_text(&second).contains("read 2 earlier messages"), "{}", answer_text(&second));
    app.stop().await;
}

#[tokio::test]
async fn stop_ends_the_answer_with_a_cancelled_done_frame() {
    let app = spawn_app(&[("LLM_PROVIDER_1_DELAY", "50ms")]).await;
    let mut client = app.connect("alice", "").await;
    client.send(json!({"type": "user_message", "content": "long answer please"})).await;
    assert_eq!(client.next_json().await["type"], "loading");
    assert_eq!(client.next_json().await["metadata"]["done"], "false");
    client.send(json!({"type": "stop"})).await;
    let frames = client.until_done().await;
    assert_eq!(done(&frames)["metadata"]["finish_reason"], "cancelled");
    assert!(done(&frames)["seq"].as_u64().is_some(), "the partial answer was stored");
    let next = client.ask("again").await;
    assert_eq!(done(&next)["metadata"]["finish_reason"], "stop", "the session keeps working");
    app.stop().await;
}

#[tokio::test]
async fn model_select_acks_with_the_model_and_refuses_unknown_ids() {
    let app = spawn_app(&[]).await;
    let mut client = app.connect("alice", "").await;
    client.send(json!({"type": "model_select", "model_id": "nope"})).await;
    let error = client.next_json().await;
    assert_eq!(error["error"]["code"], "INVALID_FORMAT");
    client.send(json!({"type": "model_select", "model_id": "second"})).await;
    let ack = client.next_json().await;
    assert_eq!((ack["type"].as_str(), ack["model_id"].as_str()), (Some("connection_status"), Some("second")));
    let frames = client.ask("hi").await;
    assert_eq!(done(&frames)["model_id"], "second");
    app.stop().await;
}

#[tokio::test]
async fn ping_gets_pong() {
    let app = spawn_app(&[]).await;
    let mut client = app.connect("alice", "").await;
    client.send(json!({"type": "ping"})).await;
    assert_eq!(client.next_json().await["type"], "pong");
    app.stop().await;
}

#[tokio::test]
async fn every_socket_of_a_session_gets_the_stream_and_only_the_others_the_echo_and_typing() {
    let app = spawn_app(&[]).await;
    let (mut phone, mut laptop) = app.two_devices("alice", "create the session").await;
    let session = phone.session_id();
    assert_eq!(laptop.session_id(), session);

    laptop
        .send(json!({"type": "typing_indicator", "session_id": session, "metadata": {"typing": true}}))
        .await;
    let typing = phone.next_json().await;
    assert_eq!(
        (typing["type"].as_str(), typing["metadata"]["typing"].as_str()),
        (Some("typing_indicator"), Some("true"))
    );

    phone
        .send(json!({"type": "user_message", "content": "from the phone", "client_message_id": "p-1"}))
        .await;
    let laptop_frames = laptop.until_done().await;
    assert_eq!(laptop_frames[0]["type"], "user_message");
    assert_eq!(laptop_frames[0]["content"], "from the phone");
    assert_eq!(laptop_frames[0]["sender"], "user");
    assert_eq!(laptop_frames[0]["client_message_id"], "p-1");
    let phone_frames = phone.until_done().await;
    assert!(
        phone_frames.iter().all(|f| f["type"] != "user_message" && f["type"] != "typing_indicator"),
        "no echo to the sender"
    );
    assert_eq!(answer_text(&phone_frames), answer_text(&laptop_frames));
    app.stop().await;
}

#[tokio::test]
async fn the_same_client_message_id_is_answered_once() {
    let app = spawn_app(&[]).await;
    let mut client = app.connect("alice", "").await;
    let session = client.session_id();
    client.send(json!({"type": "user_message", "content": "once", "client_message_id": "k1"})).await;
    assert_eq!(done(&client.until_done().await)["seq"], 2);
    client.send(json!({"type": "user_message", "content": "once", "client_message_id": "k1"})).await;
    // The barrier is a distinct message, not a pong: a session's answers are taken in
    // order and never interleave, so had the duplicate been stored and answered, its
    // `loading`, its answer and its two sequence numbers would come before this one's.
    client.send(json!({"type": "user_message", "content": "then this", "client_message_id": "k2"})).await;
    let next = client.until_done().await;
    let acks: Vec<(&str, u64)> = next
        .iter()
        .take_while(|f| f["type"] == "message_ack")
        .map(|f| (f["client_message_id"].as_str().unwrap_or_default(), f["seq"].as_u64().unwrap_or_default()))
        .collect();
    assert_eq!(
        acks,
        [("k1", 1), ("k2", 3)],
        "the repeat is acknowledged as stored, then the new one: {next:#?}"
    );
    assert_eq!(next[2]["type"], "loading", "{next:#?}");
    let text = answer_text(&next);
    assert!(text.contains("\"then this\""), "the very next answer is to the distinct message: {text}");
    assert_eq!(done(&next)["seq"], 4, "question 3, answer 4: the duplicate took no sequence number");

    // What is stored holds the duplicate once: replay everything on a fresh socket; the
    // replay is queued before that socket reads anything, so it all precedes the pong.
    let mut fresh = app.connect("alice", &format!("&session_id={session}&last_seq=0")).await;
    let history = fresh.frames_before_pong().await;
    let seqs: Vec<u64> = history.iter().filter_map(|f| f["seq"].as_u64()).collect();
    assert_eq!(seqs, [1, 2, 3, 4], "{history:#?}");
    let questions: Vec<&str> = history
        .iter()
        .filter(|f| f["type"] == "user_message")
        .filter_map(|f| f["content"].as_str())
        .collect();
    assert_eq!(questions, ["once", "then this"]);
    app.stop().await;
}

#[tokio::test]
async fn messages_sent_while_answering_are_queued_in_order_never_interleaved_then_busy() {
    let app = spawn_app(&[("LLM_PROVIDER_1_DELAY", "20ms")]).await;
    let mut client = app.connect("alice", "").await;
    for n in 1..=5 {
        client.send(json!({"type": "user_message", "content": format!("question {n}")})).await;
    }
    let mut answers: Vec<String> = Vec::new();
    let mut open: Option<String> = None;
    let mut busy = 0;
    while answers.len() < 4 {
        let frame = client.next_json().await;
        match frame["type"].as_str() {
            Some("error") => {
                assert_eq!(frame["error"]["code"], "SERVICE_ERROR");
                busy += 1;
            }
            Some("loading") => {
                assert!(open.is_none(), "a new answer started before the previous one ended");
                open = Some(String::new());
            }
            Some("ai_response") if frame["metadata"]["done"] == "false" => {
                open.as_mut()
                    .expect("chunk inside an answer")
                    .push_str(frame["content"].as_str().unwrap_or_default());
            }
            Some("ai_response") => answers.push(open.take().expect("done ends an open answer")),
            other => panic!("unexpected frame {other:?}"),
        }
    }
    assert_eq!(busy, 1, "one message over the queue of three");
    for (n, answer) in (1..).zip(&answers) {
        assert!(answer.contains(&format!("\"question {n}\"")), "answer {n} is to question {n}: {answer}");
    }
    app.stop().await;
}

#[tokio::test]
async fn help_request_marks_the_session_and_acknowledges_to_its_sockets() {
    let app = spawn_app(&[]).await;
    let (mut phone, mut laptop) = app.two_devices("alice", "my order is late").await;
    let session = phone.session_id();
    phone.send(json!({"type": "help_request", "session_id": session})).await;
    for client in [&mut phone, &mut laptop] {
        let ack = client.next_json().await;
        assert_eq!(ack["type"], "connection_status");
        assert_eq!(ack["metadata"]["state"], "help_requested");
        assert_eq!(ack["session_id"], session.as_str());
        assert!(ack["content"].as_str().is_some_and(|c| c.contains("Help request sent")));
    }
    phone.send(json!({"type": "help_request"})).await;
    assert_eq!(phone.next_json().await["metadata"]["state"], "help_requested", "repeating is harmless");
    let frames = phone.ask("still there?").await;
    assert_eq!(
        done(&frames)["metadata"]["finish_reason"],
        "stop",
        "the model answers until an admin takes over"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_model_id_on_a_message_switches_the_sessions_model() {
    let app = spawn_app(&[]).await;
    let mut client = app.connect("alice", "").await;
    client.send(json!({"type": "user_message", "content": "hi", "model_id": "nope"})).await;
    assert_eq!(client.next_json().await["error"]["code"], "INVALID_FORMAT");
    client.send(json!({"type": "user_message", "content": "hi", "model_id": "second"})).await;
    assert_eq!(done(&client.until_done().await)["model_id"], "second");
    let next = client.ask("and now?").await;
    assert_eq!(done(&next)["model_id"], "second", "the session keeps the model it was switched to");
    app.stop().await;
}

#[tokio::test]
async fn attachments_are_stored_and_fanned_out_without_a_model_call() {
    let app = spawn_app(&[]).await;
    let (mut phone, mut laptop) = app.two_devices("alice", "hello").await;
    for kind in ["file_upload", "voice_message"] {
        phone
            .send(json!({"type": kind, "file_id": "f-1", "file_url": "https://cdn.example.com/a.png",
                         "content": "a caption", "metadata": {"size": 1234}}))
            .await;
        let echo = laptop.next_json().await;
        assert_eq!(echo["type"], kind);
        assert_eq!(echo["file_url"], "https://cdn.example.com/a.png");
        assert_eq!(echo["content"], "a caption");
        assert_eq!(echo["metadata"]["size"], "1234", "numbers in metadata become strings");
        assert_eq!(echo["sender"], "user");
        assert!(echo["seq"].as_u64().is_some(), "stored");
    }
    for bad_url in ["http://cdn.example.com/a.png", "https://10.0.0.5/a.png", "https://localhost/a.png"] {
        phone.send(json!({"type": "file_upload", "file_id": "f-2", "file_url": bad_url})).await;
        assert_eq!(phone.next_json().await["error"]["code"], "INVALID_FORMAT", "{bad_url}");
    }
    phone.send(json!({"type": "file_upload", "file_url": "https://cdn.example.com/a.png"})).await;
    assert_eq!(phone.next_json().await["error"]["code"], "MISSING_FIELD");
    // No model call: the next message is answered next, and the sequence shows nothing
    // was stored after the two attachments (seq 3 and 4) but this question and its
    // answer. An answer to an attachment would have come first, and taken numbers.
    phone.send(json!({"type": "user_message", "content": "after the files"})).await;
    let answer = phone.until_done().await;
    assert_eq!(answer[0]["type"], "loading", "no loading or answer came for the attachments: {answer:#?}");
    assert!(answer_text(&answer).contains("\"after the files\""));
    assert_eq!(done(&answer)["seq"], 6);
    let seen = laptop.until_done().await;
    assert_eq!(
        (seen[0]["type"].as_str(), seen[0]["seq"].as_u64()),
        (Some("user_message"), Some(5)),
        "the refused attachments reached nobody: {seen:#?}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_question_at_the_content_limit_arrives_whole_though_far_larger_than_a_read() {
    // The server reads a socket in small pieces (its read buffer is a few hundred
    // bytes); a question of the default limit, 10,000 characters of two bytes each,
    // spans dozens of reads and splits characters between them.
    let app = spawn_app(&[]).await;
    let (mut phone, mut laptop) = app.two_devices("alice", "create the session").await;
    let question = "é".repeat(10_000);
    phone.send(json!({"type": "user_message", "content": question})).await;
    let seen = laptop.until_done().await;
    assert_eq!(seen[0]["type"], "user_message", "{:?}", seen[0]["type"]);
    assert_eq!(seen[0]["content"].as_str(), Some(question.as_str()), "the question arrived whole");
    assert!(phone.until_done().await.iter().all(|f| f["type"] != "error"), "no error for the asker");
    app.stop().await;
}

#[tokio::test]
async fn a_protocol_ping_is_answered_between_whole_frames_of_a_streaming_answer() {
    use futures::SinkExt;
    use tokio_tungstenite::tungstenite::Message;

    let app = spawn_app(&[]).await;
    let mut client = app.connect("alice", "").await;
    client.send(json!({"type": "user_message", "content": "Ping me while you answer"})).await;
    // The pings go out while the answer streams: their pongs are written by the reader's
    // protocol layer and must land between the writer's frames, whole.
    for n in 0..3 {
        client.socket.send(Message::Ping(format!("p{n}").into_bytes().into())).await.expect("ping");
    }
    let deadline = crate::ws::deadline_in(crate::ws::WAIT);
    let (mut pongs, mut frames) = (Vec::new(), Vec::new());
    while !frames.last().is_some_and(|frame: &serde_json::Value| frame["metadata"]["done"] == "true") {
        match crate::ws::next_message(&mut client.socket, deadline).await {
            Some(Message::Pong(payload)) => pongs.push(String::from_utf8(payload.to_vec()).expect("text")),
            Some(Message::Text(text)) => {
                frames.push(serde_json::from_str(&text).expect("every frame whole JSON"))
            }
            Some(Message::Close(close)) => panic!("closed: {close:?}"),
            Some(_) => {}
            None => panic!("the answer did not end in time; pongs {pongs:?}"),
        }
    }
    assert_eq!(pongs, ["p0", "p1", "p2"], "each ping answered, in order");
    assert!(answer_text(&frames).contains("Ping me while you answer"), "the answer arrived whole");
    app.stop().await;
}
