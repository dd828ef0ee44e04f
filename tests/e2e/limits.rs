//! Bad input and abuse: malformed and oversized frames, floods, slow consumers, expired
//! tokens, silent sockets. Every one gets its documented answer and loses nothing else.

use std::time::Duration;

use futures::SinkExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::metrics::scrape_until;
use crate::support::{open, spawn_app, token_expiring};
use crate::ws;

#[tokio::test]
async fn malformed_frames_get_invalid_format_and_the_socket_stays_open() {
    let app = spawn_app(&[("MAX_CONTENT_CHARS", "20")]).await;
    let mut client = app.connect("alice", "").await;
    // The session must exist (a first message creates it) for a second device to join
    // it; otherwise the other device gets a session of its own and could never receive
    // anything of the first's.
    client.ask("hi").await;
    let mut other_device = app.connect("alice", &format!("&session_id={}", client.session_id())).await;
    assert_eq!(other_device.session_id(), client.session_id());
    let cases: [(&str, &str); 7] = [
        ("{not json", "INVALID_FORMAT"),
        (r#"{"content":"no type"}"#, "INVALID_FORMAT"),
        (r#"{"type":"teleport"}"#, "INVALID_FORMAT"),
        (r#"{"type":"user_message"}"#, "MISSING_FIELD"),
        (
            r#"{"type":"user_message","content":"this text is longer than twenty characters"}"#,
            "INVALID_FORMAT",
        ),
        (r#"{"type":"user_message","content":"ok","metadata":{"nested":{"a":1}}}"#, "INVALID_FORMAT"),
        (r#"{"type":"user_message","content":"ok","timestamp":"2999-01-01T00:00:00Z"}"#, "INVALID_FORMAT"),
    ];
    for (frame, code) in cases {
        client.send_text(frame).await;
        let error = client.next_json().await;
        assert_eq!(error["type"], "error", "{frame}");
        assert_eq!(error["error"]["code"], code, "{frame}");
        assert_eq!(error["error"]["recoverable"], true);
    }
    client.socket.send(Message::Binary(vec![1, 2, 3].into())).await.expect("send");
    assert_eq!(client.next_json().await["error"]["code"], "INVALID_FORMAT");
    client.send(json!({"type": "ping"})).await;
    assert_eq!(client.next_json().await["type"], "pong", "still open");
    // The barrier for the other device is a frame that does reach it: a typing indicator
    // from the same socket is handled after every frame above and relayed while it is
    // handled, so an error sent to the other device would have been queued before it.
    client.send(json!({"type": "typing_indicator", "metadata": {"typing": "true"}})).await;
    let first = other_device.next_json().await;
    assert_eq!(first["type"], "typing_indicator", "errors go only to the sender: {first}");
    app.stop().await;
}

#[tokio::test]
async fn an_oversized_frame_closes_the_socket_with_1009() {
    let app = spawn_app(&[("MAX_MESSAGE_SIZE", "2048")]).await;
    let mut client = app.connect("alice", "").await;
    let huge = json!({"type": "user_message", "content": "x".repeat(4096)}).to_string();
    client.send_text(&huge).await;
    let (close, _) = client.until_closed().await;
    assert_eq!(close.map(|c| c.code), Some(CloseCode::Size));
    app.stop().await;
}

#[tokio::test]
async fn a_message_flood_is_rate_limited_with_retry_after() {
    let app = spawn_app(&[("RATE_LIMIT", "3"), ("RATE_WINDOW", "1m"), ("ANSWER_QUEUE_LIMIT", "10")]).await;
    let mut client = app.connect("alice", "").await;
    for n in 0..4 {
        client.send(json!({"type": "user_message", "content": format!("flood {n}")})).await;
    }
    let mut limited = None;
    for _ in 0..200 {
        let frame = client.next_json().await;
        if frame["type"] == "error" {
            limited = Some(frame);
            break;
        }
    }
    let limited = limited.expect("the fourth message is limited");
    assert_eq!(limited["error"]["code"], "TOO_MANY_REQUESTS");
    let retry_after = limited["error"]["retry_after"].as_u64().expect("retry_after in ms");
    assert!((1..=20_000).contains(&retry_after), "{retry_after}");
    client.send(json!({"type": "ping"})).await;
    let mut pong = false;
    for _ in 0..200 {
        if client.next_json().await["type"] == "pong" {
            pong = true;
            break;
        }
    }
    assert!(pong, "pings are not rate limited");
    app.stop().await;
}

#[tokio::test]
async fn a_slow_consumer_is_disconnected_after_a_gapless_prefix_and_others_are_unaffected() {
    let app = spawn_app(&[
        ("WS_SEND_BUFFER", "16384"),
        ("RATE_LIMIT", "100000"),
        ("ANSWER_QUEUE_LIMIT", "100"),
        ("MAX_CONTENT_CHARS", "100000"),
    ])
    .await;
    let mut writer = app.connect("alice", "").await;
    writer.ask("start").await;
    let session = writer.session_id();
    let mut slow = app.connect("alice", &format!("&session_id={session}")).await;

    // The slow device reads nothing while the other floods the session with large
    // attachment captions (within its command budget); its queue overflows once the
    // TCP buffers are full.
    writer.send_captions(110).await;
    let (close, frames) = slow.until_closed().await;
    let close = close.expect("a close frame");
    assert_eq!((close.code, close.reason.as_str()), (CloseCode::Policy, "Slow consumer"));
    // What arrived before the close is a gapless prefix (possibly empty when a burst
    // overflowed the queue before the first write); the rest is not silently skipped.
    let seqs: Vec<u64> = frames.iter().filter_map(|f| f["seq"].as_u64()).collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "what arrived has no gap: {seqs:?}");
    assert!(seqs.len() < 110, "the slow socket did not receive the whole flood");

    // The fast socket is unaffected: it still answers, and it received no error.
    let before_pong = writer.frames_before_pong().await;
    assert!(before_pong.iter().all(|f| f["type"] != "error"), "{before_pong:#?}");
    app.stop().await;
}

#[tokio::test]
async fn a_client_that_takes_nothing_is_dropped_after_the_write_timeout() {
    let app = spawn_app(&[
        // Room for the whole flood: the queue never overflows, so only the write
        // timeout can end the socket.
        ("WS_SEND_BUFFER", "67108864"),
        ("WS_WRITE_TIMEOUT", "300ms"),
        ("RATE_LIMIT", "100000"),
        ("WS_COMMAND_BUDGET", "100000"),
        ("MAX_CONTENT_CHARS", "100000"),
    ])
    .await;
    let (mut writer, mut stuck) = app.two_devices("alice", "start").await;

    // The stuck device reads nothing while the other floods the session, so a write to
    // it waits, then gives up.
    writer.send_captions(300).await;
    // Nothing else signals the end of a socket's task: the gauge falls to the one
    // device left, and not for a slow consumer (its queue had room).
    let s =
        scrape_until(&app, "the stuck socket's end", |s| s.get("chatbox_websocket_connections", &[]) == 1.0)
            .await;
    assert_eq!(s.get("chatbox_slow_consumer_disconnects_total", &[]), 0.0);
    // Reading now, the stuck client finds its connection ended before the whole flood.
    let (_, frames) = stuck.until_closed().await;
    assert!(frames.len() < 300, "the stuck socket did not receive the whole flood");

    // The device that reads is unaffected.
    let before_pong = writer.frames_before_pong().await;
    assert!(before_pong.iter().all(|f| f["type"] != "error"), "{before_pong:#?}");
    app.stop().await;
}

#[tokio::test]
async fn a_slow_consumer_that_reads_nothing_is_dropped_at_once_not_after_the_write_timeout() {
    let app = spawn_app(&[
        ("WS_SEND_BUFFER", "16384"),
        // Far past the test's patience: only the close from outside can end the write
        // the stuck device never takes.
        ("WS_WRITE_TIMEOUT", "1h"),
        ("RATE_LIMIT", "100000"),
        ("WS_COMMAND_BUDGET", "100000"),
        ("MAX_CONTENT_CHARS", "100000"),
    ])
    .await;
    let (mut writer, _stuck) = app.two_devices("alice", "start").await;
    writer.send_captions(300).await;
    let s =
        scrape_until(&app, "the slow consumer's end", |s| s.get("chatbox_websocket_connections", &[]) == 1.0)
            .await;
    assert_eq!(s.get("chatbox_slow_consumer_disconnects_total", &[]), 1.0);
    app.stop().await;
}

#[tokio::test]
async fn a_socket_whose_token_expires_gets_token_expired_then_close_1008() {
    let app = spawn_app(&[("JWT_LEEWAY", "0s")]).await;
    let url = app.ws_url(&format!("?token={}", token_expiring("alice", 2)));
    let mut socket = open(url).await;
    let (close, frames) = ws::until_closed(&mut socket, ws::deadline_in(ws::WAIT)).await;
    let expired: Vec<_> = frames.iter().filter(|f| f["error"]["code"] == "TOKEN_EXPIRED").collect();
    assert_eq!(expired.len(), 1, "{frames:#?}");
    assert_eq!(expired[0]["error"]["recoverable"], false);
    assert_eq!(close.map(|c| c.code), Some(CloseCode::Policy));
    app.stop().await;
}

#[tokio::test]
async fn protocol_pings_keep_live_sockets_and_close_silent_ones() {
    let app = spawn_app(&[("WS_PING_INTERVAL", "200ms"), ("WS_PONG_TIMEOUT", "1s")]).await;
    let mut live = app.connect("alice", "").await;
    let mut pings = 0;
    // Read everything for 1.8 s (the span is the behaviour's input: nine ping periods);
    // a close, or the socket ending, fails the test.
    let until = ws::deadline_in(Duration::from_millis(1800));
    while let Some(message) = ws::next_message(&mut live.socket, until).await {
        match message {
            Message::Ping(_) => pings += 1,
            Message::Close(frame) => panic!("a live socket was closed: {frame:?}"),
            _ => {}
        }
    }
    assert!(pings >= 3, "pings arrive ({pings})");

    // A client that stops reading answers no ping; the server closes it after the
    // pong timeout (while the other socket, still read, stays open).
    let mut silent = app.connect("bob", "").await;
    let until = ws::deadline_in(Duration::from_millis(1600));
    while let Some(message) = ws::next_message(&mut live.socket, until).await {
        assert!(!message.is_close(), "a live socket was closed: {message:?}");
    }
    let (close, _) = silent.until_closed().await;
    let close = close.expect("a close frame");
    assert_eq!((close.code, close.reason.as_str()), (CloseCode::Policy, "Ping timeout"));
    live.send(json!({"type": "ping"})).await;
    assert_eq!(live.next_json().await["type"], "pong");
    app.stop().await;
}
