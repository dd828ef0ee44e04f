//! Connecting: authentication, Origin, socket caps, and the first frame.

use serde_json::json;

use crate::support::{SECRET, open, spawn_app, token, token_with, try_open};
use crate::ws;

#[tokio::test]
async fn connection_status_comes_first_with_user_session_and_ordered_models() {
    let app = spawn_app(&[]).await;
    let client = app.connect("alice", "").await;
    let status = &client.status;
    assert_eq!(status["sender"], "system");
    assert_eq!(status["user_id"], "alice");
    assert!(status["session_id"].as_str().is_some_and(|s| s.len() >= 16));
    assert_eq!(status["models"], json!([{"id": "demo", "name": "Demo"}, {"id": "second", "name": "Second"}]));
    assert_eq!(status["model_id"], "demo");
    assert_eq!(status["metadata"]["state"], "connected");
    assert!(status["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')));
    app.stop().await;
}

#[tokio::test]
async fn the_authorization_header_works_as_well_as_the_query_token() {
    let app = spawn_app(&[]).await;
    let mut request =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(app.ws_url(""))
            .expect("request");
    let bearer = format!("Bearer {}", token("bob"));
    request.headers_mut().insert("authorization", bearer.parse().expect("header"));
    let mut socket = open(request).await;
    let status = ws::next_json(&mut socket, ws::deadline_in(ws::WAIT)).await;
    assert_eq!(status["type"], "connection_status");
    assert_eq!(status["user_id"], "bob");
    app.stop().await;
}

#[tokio::test]
async fn bad_tokens_are_refused_before_the_upgrade_with_their_codes() {
    let app = spawn_app(&[]).await;
    let in_an_hour =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("time").as_secs() + 3600;
    let (status, body, _) = app.refused(&app.ws_url(""), &[]).await;
    assert_eq!((status, body["code"].as_str()), (401, Some("UNAUTHORIZED")));

    let cases = [
        (
            "bad signature",
            token_with(
                &json!({"user_id": "u", "exp": in_an_hour}),
                "another-secret-that-is-long-enough-123",
                jsonwebtoken::Algorithm::HS256,
            ),
        ),
        (
            "algorithm not allowed",
            token_with(&json!({"user_id": "u", "exp": in_an_hour}), SECRET, jsonwebtoken::Algorithm::HS512),
        ),
        (
            "expired",
            token_with(&json!({"user_id": "u", "exp": 1_000_000}), SECRET, jsonwebtoken::Algorithm::HS256),
        ),
        (
            "no user_id",
            token_with(&json!({"name": "x", "exp": in_an_hour}), SECRET, jsonwebtoken::Algorithm::HS256),
        ),
        ("no exp", token_with(&json!({"user_id": "u"}), SECRET, jsonwebtoken::Algorithm::HS256)),
        ("garbage", "not.a.token".to_owned()),
    ];
    for (case, bad) in cases {
        let (status, body, _) = app.refused(&app.ws_url(&format!("?token={bad}")), &[]).await;
        assert_eq!(status, 401, "{case}");
        assert_eq!(body["code"], "INVALID_TOKEN", "{case}");
        assert!(!body.to_string().contains(&bad), "{case}: the token is not echoed");
    }
    app.stop().await;
}

#[tokio::test]
async fn origins_outside_the_allow_list_are_forbidden() {
    let app = spawn_app(&[("ALLOWED_ORIGINS", "https://app.example.com")]).await;
    let url = app.ws_url(&format!("?token={}", token("u")));
    let (status, body, _) = app.refused(&url, &[("origin", "https://evil.example.com")]).await;
    assert_eq!((status, body["code"].as_str()), (403, Some("FORBIDDEN")));
    let mut request =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(url).expect("request");
    request.headers_mut().insert("origin", "https://app.example.com".parse().expect("origin"));
    assert!(try_open(request).await.is_ok(), "the listed origin connects");
    app.stop().await;
}

#[tokio::test]
async fn socket_caps_refuse_with_429_and_failed_attempts_never_leak_slots() {
    let app = spawn_app(&[("MAX_CONNECTIONS_PER_USER", "2"), ("MAX_CONNECTIONS", "3")]).await;
    // Requests that fail before or during the upgrade must not hold a slot.
    for _ in 0..5 {
        let (status, _) = app.http("GET", &format!("/chat/ws?token={}", token("carol")), None).await;
        assert_eq!(status, 400, "a plain GET is not an upgrade");
    }
    let mut first = app.connect("carol", "").await;
    let mut second = app.connect("carol", "").await;
    let (status, body, retry_after) =
        app.refused(&app.ws_url(&format!("?token={}", token("carol"))), &[]).await;
    assert_eq!((status, body["code"].as_str()), (429, Some("CONNECTION_LIMIT_EXCEEDED")));
    let notice = second.next_json().await;
    assert_eq!(notice["type"], "notification", "the user's open sockets learn why: {notice}");
    assert!(notice["content"].as_str().is_some_and(|c| c.contains("Connection limit")));
    assert!(retry_after.is_some_and(|s| s.parse::<u64>().is_ok_and(|n| n >= 1)));
    let _other_user = app.connect("dave", "").await;
    let (status, _, _) = app.refused(&app.ws_url(&format!("?token={}", token("erin"))), &[]).await;
    assert_eq!(status, 429, "the global cap");

    first.socket.close(None).await.expect("close");
    first.until_closed().await;
    // The slot comes back right after the server's side of the closing handshake, a
    // moment the client cannot observe; so poll the condition itself (each try is a full
    // HTTP round trip, refused with 429 until then) up to a deadline.
    let deadline = ws::deadline_in(ws::WAIT);
    let url = app.ws_url(&format!("?token={}", token("carol")));
    let mut tries = 0;
    while try_open(url.as_str()).await.is_err() {
        tries += 1;
        assert!(
            tokio::time::Instant::now() < deadline,
            "closing a socket gives its slot back ({tries} tries)"
        );
    }
    // Each refused try told carol's open socket why; it must still be open (had its
    // queue overflowed, its close would have freed the slot instead).
    let notices = second.frames_before_pong().await;
    assert!(notices.iter().all(|f| f["type"] == "notification"), "{notices:#?}");
    app.stop().await;
}

/// Writes one raw, masked client frame (`first` is FIN, RSV and opcode) under the codec.
async fn write_raw_frame(socket: &mut ws::Socket, first: u8, payload: &[u8]) {
    use tokio::io::AsyncWriteExt;
    let mask = [0x37, 0xfa, 0x21, 0x3d];
    let mut frame = vec![first, 0x80 | u8::try_from(payload.len()).expect("a short payload")];
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, byte)| byte ^ mask[i % 4]));
    match socket.get_mut() {
        tokio_tungstenite::MaybeTlsStream::Plain(tcp) => tcp.write_all(&frame).await.expect("write"),
        _ => panic!("a plain TCP test socket"),
    }
}

/// A frame that breaks the WebSocket protocol closes the socket with 1002, a text frame
/// that is not UTF-8 with 1007: the standard codes, not a close without any.
#[tokio::test]
async fn protocol_violations_close_with_1002_and_bad_text_with_1007() {
    let app = spawn_app(&[]).await;
    let cases: [(u8, &[u8], u16); 3] = [
        (0x83, b"", 1002),           // a reserved opcode
        (0xC1, b"hi", 1002),         // RSV1 set with no extension negotiated
        (0x81, &[0xC3, 0x28], 1007), // a text frame that is not UTF-8
    ];
    for (first, payload, expected) in cases {
        let mut client = app.connect("alice", "").await;
        write_raw_frame(&mut client.socket, first, payload).await;
        let (close, _) = client.until_closed().await;
        let code = close.map(|frame| u16::from(frame.code));
        assert_eq!(code, Some(expected), "frame {first:#04x} {payload:?}");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_frame_sent_right_behind_the_handshake_is_read() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_tungstenite::WebSocketStream;
    use tokio_tungstenite::tungstenite::protocol::Role;

    let app = spawn_app(&[]).await;
    let mut tcp = tokio::net::TcpStream::connect(app.address).await.expect("connect");
    let handshake = format!(
        "GET /chat/ws?token={} HTTP/1.1\r\nHost: {}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        token("alice"),
        app.address
    );
    // The handshake and a client's first frame (masked, as a client's must be) in one
    // write: the server reads both at once and must keep the frame for the socket.
    let payload = br#"{"type":"ping"}"#;
    let mask = [0x37, 0xfa, 0x21, 0x3d];
    let mut bytes = handshake.into_bytes();
    bytes.extend([0x81, 0x80 | u8::try_from(payload.len()).expect("short")]);
    bytes.extend(mask);
    bytes.extend(payload.iter().zip(mask.iter().cycle()).map(|(byte, key)| byte ^ key));
    tcp.write_all(&bytes).await.expect("write");

    // The answer's head, then whatever frames came with it, all within one deadline.
    let deadline = ws::deadline_in(crate::support::WAIT);
    let mut received = Vec::new();
    let head_end = loop {
        let mut chunk = [0; 1024];
        let read = tokio::time::timeout_at(deadline, tcp.read(&mut chunk)).await.expect("in time");
        let read = read.expect("read");
        assert!(read > 0, "the server closed before answering: {}", String::from_utf8_lossy(&received));
        received.extend_from_slice(&chunk[..read]);
        if let Some(at) = received.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
    };
    assert!(received.starts_with(b"HTTP/1.1 101"), "{}", String::from_utf8_lossy(&received[..head_end]));
    let rest = received.split_off(head_end);
    let mut socket = WebSocketStream::from_partially_read(tcp, rest, Role::Client, None).await;
    let first = ws::next_json(&mut socket, ws::deadline_in(crate::support::WAIT)).await;
    assert_eq!(first["type"], "connection_status");
    let second = ws::next_json(&mut socket, ws::deadline_in(crate::support::WAIT)).await;
    assert_eq!(second["type"], "pong", "the frame sent with the handshake was answered: {second}");
    app.stop().await;
}
