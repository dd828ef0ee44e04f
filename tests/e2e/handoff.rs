//! Human handoff end to end, with two real sockets: the user asks for help, an admin
//! takes over (the user sees `admin_join`, an answer in progress stops), the admin joins
//! the session's socket and gets its history, admin and user talk while the model is
//! provably silent, a second admin is refused, and after the release (`admin_leave`) the
//! model answers again and the admin can no longer speak.

use serde_json::{Value, json};

use crate::support::{Client, admin_token, answer_text, spawn_app, token};
use crate::ws;

/// Reads until a frame matches `wanted`; fails on close or after the deadline.
async fn until(client: &mut Client, wanted: impl Fn(&Value) -> bool) -> Vec<Value> {
    ws::frames_until(&mut client.socket, ws::deadline_in(ws::WAIT), wanted).await
}

#[tokio::test]
async fn help_takeover_conversation_and_release() {
    // A slow model, so an answer is still streaming when the admin takes over.
    let app = spawn_app(&[("LLM_PROVIDER_1_DELAY", "40ms")]).await;
    let mut user = app.connect("alice", "").await;
    user.ask("hello").await;
    let session = user.session_id();
    let admin = admin_token("root");

    user.send(json!({"type": "help_request"})).await;
    let ack = until(&mut user, |f| f["type"] == "connection_status").await;
    assert_eq!(ack.last().expect("ack")["metadata"]["state"], "help_requested");
    let (_, _, listed) = app.json("GET", "/chat/admin/sessions?help_requested=true", Some(&admin)).await;
    assert_eq!(listed["total"], 1, "{listed}");

    // An answer is streaming when the admin takes over: it stops and is stored.
    user.send(json!({"type": "user_message", "content": "please write a long answer about many things"}))
        .await;
    until(&mut user, |f| f["type"] == "ai_response" && f["metadata"]["done"] == "false").await;
    let (status, _, taken) = app.json("POST", &format!("/chat/admin/takeover/{session}"), Some(&admin)).await;
    assert_eq!((status, taken["status"].as_str()), (200, Some("assisting")), "{taken}");
    let frames = until(&mut user, |f| f["type"] == "admin_join").await;
    let done = frames.iter().find(|f| f["metadata"]["done"] == "true");
    let join = frames.last().expect("join");
    assert_eq!(join["metadata"]["admin_id"], "root");
    assert_eq!(join["metadata"]["admin_name"], "Ada root");
    let done = match done {
        Some(done) => done.clone(),
        None => until(&mut user, crate::ws::is_done).await.pop().expect("done"),
    };
    assert_eq!(done["metadata"]["finish_reason"], "cancelled", "the answer in progress stopped: {done}");

    // A second admin is refused, and cannot release it either.
    let other = admin_token("other");
    let (status, _, refused) =
        app.json("POST", &format!("/chat/admin/takeover/{session}"), Some(&other)).await;
    assert_eq!((status, refused["code"].as_str()), (409, Some("CONFLICT")));
    let (status, _, _) = app.json("POST", &format!("/chat/admin/release/{session}"), Some(&other)).await;
    assert_eq!(status, 409);
    // A user token cannot take over.
    let (status, _, _) =
        app.json("POST", &format!("/chat/admin/takeover/{session}"), Some(&token("alice"))).await;
    assert_eq!(status, 403);

    // The admin joins the session's socket: the whole history, then live frames.
    let mut agent = app.connect_admin("root", &format!("&session_id={session}")).await;
    assert_eq!(agent.status["session_id"], session.as_str());
    let history = agent.frames_before_pong().await;
    let contents: Vec<&str> = history.iter().filter_map(|f| f["content"].as_str()).collect();
    assert!(contents.first().is_some_and(|c| *c == "hello"), "history from the start: {history:#?}");
    assert!(history.iter().any(|f| f["metadata"]["finish_reason"] == "cancelled"), "with the cut answer");

    // The admin speaks: stored as admin, delivered to the user.
    agent
        .send(json!({"type": "user_message", "content": "Hi, I am Ada. How can I help?", "sender": "user"}))
        .await;
    let heard = until(&mut user, |f| f["type"] == "user_message").await;
    let from_admin = heard.last().expect("message");
    assert_eq!(
        (from_admin["sender"].as_str(), from_admin["content"].as_str()),
        (Some("admin"), Some("Hi, I am Ada. How can I help?"))
    );

    // The user answers: the admin gets it, and the model says nothing. The admin's next
    // message is the barrier: the session's actor takes messages in order and answers
    // each before the next, so an answer to the user would reach the user before it.
    user.send(json!({"type": "user_message", "content": "My order is late"})).await;
    let seen = until(&mut agent, |f| f["type"] == "user_message").await;
    assert_eq!(seen.last().expect("message")["content"], "My order is late");
    agent.send(json!({"type": "user_message", "content": "Let me check."})).await;
    let between = until(&mut user, |f| f["type"] == "user_message" && f["content"] == "Let me check.").await;
    assert!(
        between.iter().all(|f| f["type"] != "loading" && f["type"] != "ai_response"),
        "the model stayed silent: {between:#?}"
    );

    // Release: both sides are told; the admin can no longer speak; the model answers again.
    let (status, _, released) =
        app.json("POST", &format!("/chat/admin/release/{session}"), Some(&admin)).await;
    assert_eq!((status, released["status"].as_str()), (200, Some("released")));
    let leave = until(&mut user, |f| f["type"] == "admin_leave").await;
    assert_eq!(leave.last().expect("leave")["metadata"]["admin_id"], "root");
    until(&mut agent, |f| f["type"] == "admin_leave").await;
    agent.send(json!({"type": "user_message", "content": "one more thing"})).await;
    let refused = until(&mut agent, |f| f["type"] == "error").await;
    assert_eq!(refused.last().expect("error")["error"]["code"], "CONFLICT");
    let answer = user.ask("are you back?").await;
    assert!(answer_text(&answer).contains("are you back?"), "the model answers again: {answer:#?}");

    // What is stored: the admin's messages as admin, the user's unanswered one, in order.
    let (_, _, stored) =
        app.json("GET", &format!("/chat/admin/sessions/{session}?limit=1000"), Some(&admin)).await;
    let senders: Vec<(&str, &str)> = stored["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| (m["sender"].as_str().unwrap_or_default(), m["content"].as_str().unwrap_or_default()))
        .filter(|(sender, _)| *sender != "ai")
        .collect();
    assert_eq!(
        senders,
        [
            ("user", "hello"),
            ("user", "please write a long answer about many things"),
            ("admin", "Hi, I am Ada. How can I help?"),
            ("user", "My order is late"),
            ("admin", "Let me check."),
            ("user", "are you back?"),
        ]
    );
    let (_, _, summary) = app.json("GET", "/chat/admin/sessions?admin_assisted=true", Some(&admin)).await;
    assert_eq!(summary["sessions"][0]["assisting_admin_name"], "Ada root", "{summary}");
    app.stop().await;
}

#[tokio::test]
async fn an_admin_cannot_enter_a_session_they_do_not_assist_and_ended_sessions_cannot_be_taken() {
    let app = spawn_app(&[]).await;
    let mut user = app.connect("alice", "").await;
    user.ask("hello").await;
    let session = user.session_id();
    // Not taken over: the admin's socket does not enter it (a fresh id instead).
    let agent = app.connect_admin("root", &format!("&session_id={session}")).await;
    assert_ne!(agent.status["session_id"], session.as_str());
    let (status, _, _) =
        app.json("POST", "/chat/admin/takeover/no-such-session", Some(&admin_token("root"))).await;
    assert_eq!(status, 404);
    let (_, _, _) = app.json("POST", &format!("/chat/sessions/{session}/end"), Some(&token("alice"))).await;
    let (status, _, body) =
        app.json("POST", &format!("/chat/admin/takeover/{session}"), Some(&admin_token("root"))).await;
    assert_eq!((status, body["code"].as_str()), (409, Some("SESSION_ENDED")));
    app.stop().await;
}

/// A help request over the socket needs an existing session of the user: a fresh id, or
/// none on a socket bound to nothing, is `NOT_FOUND`, and no session appears for it.
#[tokio::test]
async fn a_help_request_for_no_session_of_the_user_is_not_found() {
    let app = spawn_app(&[]).await;
    let mut client = app.connect("alice", "").await;
    for request in
        [json!({"type": "help_request"}), json!({"type": "help_request", "session_id": "fresh-id-1"})]
    {
        client.send(request.clone()).await;
        let frames = client.frames_before_pong().await;
        let codes: Vec<&Value> = frames.iter().map(|f| &f["error"]["code"]).collect();
        assert_eq!(codes, [&json!("NOT_FOUND")], "{request}: {frames:?}");
    }
    let (status, _, listing) = app.json("GET", "/chat/sessions", Some(&token("alice"))).await;
    assert_eq!(status, 200);
    assert_eq!(listing["sessions"], json!([]), "no session was created: {listing}");
    app.stop().await;
}
