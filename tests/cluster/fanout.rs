//! One session across replicas: its sockets on different replicas see one conversation,
//! whichever replica a message reaches it is stored once and in order, a socket dropped
//! mid-answer resumes on another replica exactly, a retried key sent to another replica
//! is acknowledged once, a takeover on one replica silences the model on another, and
//! the answer of a replica killed mid-stream is ended by another.

use std::time::Duration;

use futures::SinkExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::ws::answer_text;
use crate::ws::{Read, Socket, deadline_in, frames_until, is_done, next_json, read};
use crate::{Redis, SECRET, cluster, jwt, mongo, redis_binary, send, until_done};

async fn send_json(socket: &mut Socket, frame: Value) {
    socket.send(Message::text(frame.to_string())).await.expect("send");
}

/// The `seq`s of `messages`, which must be 1, 2, 3… with no gap and no repeat.
fn assert_one_order(messages: &[Value]) {
    let seqs: Vec<u64> = messages.iter().filter_map(|m| m["seq"].as_u64()).collect();
    let expected: Vec<u64> = (1..=seqs.len() as u64).collect();
    assert_eq!(seqs, expected, "one writer, one order: {messages:#?}");
}

#[tokio::test]
async fn sockets_of_one_session_on_two_replicas_see_one_conversation() {
    let (redis, mongo) = needs_redis_and_mongo!("cluster one conversation");
    let c = cluster("fanoutone", &redis.url(), &mongo, 2, &[("LLM_PROVIDER_1_DELAY", "5ms")]).await;
    let (first, mut phone, status) = c.open("amy", "").await;
    let session = status["session_id"].as_str().expect("session").to_owned();
    send(&mut phone, "create the session").await;
    until_done(&mut phone).await;
    let (second, mut laptop, status) =
        c.open_elsewhere(first, "amy", &format!("&session_id={session}")).await;
    assert_ne!(first, second);
    assert_eq!(status["session_id"], session.as_str());

    send_json(
        &mut phone,
        json!({"type": "user_message", "content": "from the phone", "client_message_id": "p-1"}),
    )
    .await;
    let laptop_frames = until_done(&mut laptop).await;
    assert_eq!(
        laptop_frames[0]["type"], "user_message",
        "the echo reaches the other replica: {laptop_frames:#?}"
    );
    assert_eq!(laptop_frames[0]["content"], "from the phone");
    assert_eq!(laptop_frames[0]["client_message_id"], "p-1");
    let phone_frames = until_done(&mut phone).await;
    assert!(phone_frames.iter().all(|f| f["type"] != "user_message"), "no echo to the sender");
    assert_eq!(phone_frames[0]["type"], "message_ack", "{phone_frames:#?}");
    assert!(!answer_text(&phone_frames).is_empty());
    assert_eq!(answer_text(&phone_frames), answer_text(&laptop_frames), "one answer, streamed to both");

    send(&mut laptop, "from the laptop").await;
    let phone_frames = until_done(&mut phone).await;
    assert_eq!(phone_frames[0]["content"], "from the laptop");
    let laptop_frames = until_done(&mut laptop).await;
    assert_eq!(answer_text(&phone_frames), answer_text(&laptop_frames));

    let history = c.history(second, "amy", &session).await;
    assert_eq!(history.len(), 6, "{history:#?}");
    assert_one_order(&history);
    let texts: Vec<&str> = history.iter().filter_map(|m| m["content"].as_str()).collect();
    assert_eq!((texts[2], texts[4]), ("from the phone", "from the laptop"));
}

#[tokio::test]
async fn messages_sent_at_once_on_two_replicas_are_stored_in_one_order_and_both_answered() {
    let (redis, mongo) = needs_redis_and_mongo!("cluster concurrent writers");
    let c = cluster("fanoutboth", &redis.url(), &mongo, 2, &[("LLM_PROVIDER_1_DELAY", "5ms")]).await;
    let (first, mut phone, status) = c.open("bob", "").await;
    let session = status["session_id"].as_str().expect("session").to_owned();
    send(&mut phone, "start").await;
    until_done(&mut phone).await;
    let (_, mut laptop, _) = c.open_elsewhere(first, "bob", &format!("&session_id={session}")).await;

    for round in 0..3 {
        send(&mut phone, &format!("phone {round}")).await;
        send(&mut laptop, &format!("laptop {round}")).await;
        for socket in [&mut phone, &mut laptop] {
            // Each socket sees both answers; neither message is refused.
            let mut dones = 0;
            let frames = frames_until(socket, deadline_in(Duration::from_secs(30)), |frame| {
                dones += usize::from(is_done(frame));
                dones == 2 || frame["type"] == "error"
            })
            .await;
            assert!(frames.iter().all(|f| f["type"] != "error"), "{frames:#?}");
        }
    }
    let history = c.history(0, "bob", &session).await;
    assert_eq!(history.len(), 2 + 3 * 4, "{history:#?}");
    assert_one_order(&history);
    for round in 0..3 {
        for device in ["phone", "laptop"] {
            let text = format!("{device} {round}");
            let at = history.iter().position(|m| m["content"] == text.as_str()).expect("stored");
            assert_eq!(history.iter().filter(|m| m["content"] == text.as_str()).count(), 1, "{text} once");
            assert!(history[at + 1..].iter().any(|m| m["sender"] == "ai"), "{text} is answered");
        }
    }
}

#[tokio::test]
async fn a_socket_dropped_mid_answer_resumes_on_another_replica_exactly() {
    let (redis, mongo) = needs_redis_and_mongo!("cluster resume");
    let c = cluster("fanoutresume", &redis.url(), &mongo, 2, &[("LLM_PROVIDER_1_DELAY", "25ms")]).await;
    let (first, mut socket, status) = c.open("cara", "").await;
    let session = status["session_id"].as_str().expect("session").to_owned();
    send(&mut socket, "first question").await;
    let last_seq =
        until_done(&mut socket).await.last().expect("done")["metadata"]["seq"].as_u64().unwrap_or(2);

    send(&mut socket, "second question").await;
    let mut seen = Vec::new();
    while seen.len() < 6 {
        seen.push(next_json(&mut socket, deadline_in(Duration::from_secs(10))).await);
    }
    drop(socket);

    let query = format!("&session_id={session}&last_seq={last_seq}");
    let (_, mut back, _) = c.open_elsewhere(first, "cara", &query).await;
    let frames = until_done(&mut back).await;
    assert_eq!(frames[0]["type"], "user_message", "the stored question is replayed first: {frames:#?}");
    assert_eq!(frames[0]["content"], "second question");
    assert_eq!(frames[1]["type"], "loading");
    let loading = seen.iter().find(|f| f["type"] == "loading").expect("loading seen before the drop");
    assert_eq!(frames[1]["message_id"], loading["message_id"], "the same answer continues");
    let resumed = answer_text(&frames[1..]);

    let history = c.history(first, "cara", &session).await;
    let stored = history.last().expect("the answer");
    assert_eq!(stored["sender"], "ai");
    assert_eq!(
        stored["content"].as_str(),
        Some(resumed.as_str()),
        "caught up + live = the stored answer, nothing doubled"
    );
    assert_eq!(stored["finish_reason"], "stop");
}

#[tokio::test]
async fn a_retried_key_sent_to_another_replica_is_acknowledged_once() {
    let (redis, mongo) = needs_redis_and_mongo!("cluster idempotency");
    let c = cluster("fanoutkey", &redis.url(), &mongo, 2, &[("LLM_PROVIDER_1_DELAY", "5ms")]).await;
    let (first, mut phone, status) = c.open("dan", "").await;
    let session = status["session_id"].as_str().expect("session").to_owned();
    let message = json!({"type": "user_message", "content": "only once", "client_message_id": "k-1", "session_id": session});
    send_json(&mut phone, message.clone()).await;
    let frames = until_done(&mut phone).await;
    let ack = frames.iter().find(|f| f["type"] == "message_ack").expect("acknowledged").clone();
    drop(phone);

    // The same message again, as a client that lost the acknowledgement would send it,
    // through a socket on the other replica.
    let (_, mut retry, _) =
        c.open_elsewhere(first, "dan", &format!("&session_id={session}&last_seq=2")).await;
    send_json(&mut retry, message).await;
    let again =
        frames_until(&mut retry, deadline_in(Duration::from_secs(10)), |f| f["type"] == "message_ack").await;
    let again = again.last().expect("ack");
    assert_eq!((&again["message_id"], &again["seq"]), (&ack["message_id"], &ack["seq"]), "the first one's");
    let history = c.history(first, "dan", &session).await;
    assert_eq!(history.iter().filter(|m| m["content"] == "only once").count(), 1, "{history:#?}");
    assert_eq!(history.len(), 2, "stored once, answered once: {history:#?}");
}

#[tokio::test]
async fn a_takeover_on_one_replica_silences_the_model_on_another() {
    let (redis, mongo) = needs_redis_and_mongo!("cluster takeover");
    let c = cluster("fanouttakeover", &redis.url(), &mongo, 2, &[("LLM_PROVIDER_1_DELAY", "40ms")]).await;
    let (first, mut user, status) = c.open("eve", "").await;
    let session = status["session_id"].as_str().expect("session").to_owned();
    send(&mut user, "please write a long answer about many things").await;
    frames_until(&mut user, deadline_in(Duration::from_secs(10)), |f| {
        f["type"] == "ai_response" && f["metadata"]["done"] == "false"
    })
    .await;

    let other = 1 - first;
    let admin = jwt::admin_token("root", SECRET);
    let (status, taken) =
        c.replica_json(other, "POST", &format!("/chat/admin/takeover/{session}"), &admin).await;
    assert_eq!((status, taken["status"].as_str()), (200, Some("assisting")), "{taken}");
    let frames =
        frames_until(&mut user, deadline_in(Duration::from_secs(10)), |f| f["type"] == "admin_join").await;
    let done = match frames.iter().find(|f| f["metadata"]["done"] == "true") {
        Some(done) => done.clone(),
        None => until_done(&mut user).await.pop().expect("done"),
    };
    assert_eq!(
        done["metadata"]["finish_reason"], "cancelled",
        "the answer on the other replica stopped: {done}"
    );

    // The model stays silent on the user's replica while the admin assists.
    send(&mut user, "are you there?").await;
    let deadline = deadline_in(Duration::from_secs(2));
    loop {
        match read(&mut user, deadline).await {
            Read::Frame(frame) => assert_ne!(frame["type"], "loading", "the model answered: {frame}"),
            Read::Closed(close) => panic!("closed: {close:?}"),
            Read::TimedOut => break,
        }
    }
    let history = c.history(first, "eve", &session).await;
    assert_eq!(history.last().expect("message")["content"], "are you there?", "stored, not answered");
}

#[tokio::test]
async fn the_answer_of_a_replica_killed_mid_stream_is_ended_by_another() {
    let Some(binary) = redis_binary("cluster replica killed") else { return };
    let Some(mongo) = mongo::reachable("cluster replica killed").await else { return };
    let redis = Redis::start(&binary).await;
    let mut c = cluster("fanoutkill", &redis.url(), &mongo, 2, &[("LLM_PROVIDER_1_DELAY", "100ms")]).await;
    let (first, mut doomed, status) = c.open("fay", "").await;
    let session = status["session_id"].as_str().expect("session").to_owned();
    send(&mut doomed, "start").await;
    until_done(&mut doomed).await;
    let (survivor, mut watcher, _) = c.open_elsewhere(first, "fay", &format!("&session_id={session}")).await;

    send(&mut doomed, "please write a long answer about many things").await;
    let seen = frames_until(&mut watcher, deadline_in(Duration::from_secs(10)), |f| {
        f["type"] == "ai_response" && f["metadata"]["done"] == "false"
    })
    .await;
    assert!(seen.iter().any(|f| f["type"] == "user_message"));
    c.replicas[first].kill().await;
    drop(doomed);

    // The lease lapses (10 s), then the surviving replica ends the answer.
    let frames = frames_until(&mut watcher, deadline_in(Duration::from_secs(30)), is_done).await;
    let done = frames.last().expect("done");
    assert_eq!(done["metadata"]["finish_reason"], "error", "{frames:#?}");
    let streamed = answer_text(&seen) + &answer_text(&frames);
    let history = c.history(survivor, "fay", &session).await;
    let stored = history.last().expect("the answer");
    assert_eq!(stored["sender"], "ai", "{history:#?}");
    assert_eq!(stored["finish_reason"], "error");
    assert_eq!(stored["content"].as_str(), Some(streamed.as_str()), "what was streamed is what is stored");
    assert_one_order(&history);
}
