//! Connecting: authentication, Origin, socket caps, and the first frame.

use serde_json::json;

use crate::support::{SECRET, spawn_app, token, token_with};

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
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.expect("connect with header");
    let first = futures::StreamExt::next(&mut socket).await.expect("frame").expect("ok");
    let status: serde_json::Value = serde_json::from_str(first.to_text().expect("text")).expect("json");
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
    assert!(tokio_tungstenite::connect_async(request).await.is_ok(), "the listed origin connects");
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
    let first = app.connect("carol", "").await;
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

    drop(first);
    let mut freed = false;
    for _ in 0..50 {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let url = app.ws_url(&format!("?token={}", token("carol")));
        if tokio_tungstenite::connect_async(url).await.is_ok() {
            freed = true;
            break;
        }
    }
    assert!(freed, "closing a socket gives its slot back");
    app.stop().await;
}
