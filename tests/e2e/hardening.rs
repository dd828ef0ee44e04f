//! Hostile and unlucky input from a client with a valid account: odd and huge claim
//! values, floods of every command type, tokens in the subprotocol header, credentials
//! naming different users, paging offsets past what a store can skip, half-open HTTP
//! requests, idle keep-alive connections, and the binary's refusal of bad configuration.
//! Each gets its documented answer and the server keeps serving.

use std::process::Stdio;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::Command;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use tokio_tungstenite::tungstenite;

use crate::mongo;
use crate::support::{
    SECRET, TestApp, WAIT, admin_token, spawn_app, token, token_expiring, token_with, upgrade_request,
};
use crate::ws;

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("time").as_secs()
}

/// Reads from a raw connection until the server closes it; false if `within` passes
/// first.
async fn closed_by_server(stream: &mut TcpStream, within: Duration) -> bool {
    let mut buffer = [0u8; 1024];
    let read_until_eof = async {
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(within, read_until_eof).await.is_ok()
}

async fn assert_still_serving(app: &TestApp) {
    let (status, _) = app.http("GET", "/chat/healthz", None).await;
    assert_eq!(status, 200, "the server keeps serving");
    let mut client = app.connect("bystander", "").await;
    let done = crate::support::done(&client.ask("still there?").await).clone();
    assert_eq!(done["metadata"]["finish_reason"], "stop");
}

#[tokio::test]
async fn huge_and_odd_claim_values_are_invalid_tokens_and_harm_nothing() {
    let app = spawn_app(&[]).await;
    let hs256 = jsonwebtoken::Algorithm::HS256;
    let later = now_secs() + 3600;
    for claims in [
        json!({"user_id": "u", "exp": i64::MAX}),
        json!({"user_id": "u", "exp": u64::MAX}),
        json!({"user_id": "u", "exp": 1e300}),
        json!({"user_id": "u", "exp": -5}),
        json!({"user_id": "u", "exp": "tomorrow"}),
        json!({"user_id": "u", "exp": later, "nbf": u64::MAX}),
        json!({"user_id": "u", "exp": later, "nbf": "now"}),
        json!({"user_id": 42, "exp": later}),
        json!({"user_id": ["u"], "exp": later}),
        json!({"user_id": "u", "exp": later, "roles": "admin"}),
        json!({"user_id": "", "sub": null, "exp": later}),
    ] {
        let url = app.ws_url(&format!("?token={}", token_with(&claims, SECRET, hs256)));
        let (status, body, _) = app.refused(&url, &[]).await;
        assert_eq!((status, body["code"].as_str()), (401, Some("INVALID_TOKEN")), "claims {claims}");
    }
    assert_still_serving(&app).await;
    app.stop().await;
}

#[tokio::test]
async fn the_token_can_travel_in_the_subprotocol_header_and_only_the_real_name_comes_back() {
    let app = spawn_app(&[]).await;
    let mut request = app.ws_url("").into_client_request().expect("request");
    let offer = format!("chatbox.v1, bearer.{}", token("alice"));
    request.headers_mut().insert("sec-websocket-protocol", offer.parse().expect("header"));
    let (mut socket, response) = tokio_tungstenite::connect_async(request).await.expect("upgrade");
    assert_eq!(
        response.headers().get("sec-websocket-protocol").and_then(|v| v.to_str().ok()),
        Some("chatbox.v1"),
        "only the real subprotocol is echoed, never the token"
    );
    let status = socket.next().await.expect("frame").expect("text");
    let status: Value = serde_json::from_str(status.to_text().expect("text")).expect("json");
    assert_eq!(
        (status["type"].as_str(), status["user_id"].as_str()),
        (Some("connection_status"), Some("alice"))
    );

    let alone = [("Sec-WebSocket-Protocol", format!("bearer.{}", token("alice")))];
    let headers: Vec<(&str, &str)> = alone.iter().map(|(n, v)| (*n, v.as_str())).collect();
    let (status, body, _) = app.refused(&app.ws_url(""), &headers).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("BAD_REQUEST")),
        "the bearer entry needs chatbox.v1"
    );
    let (status, body, _) =
        app.refused(&app.ws_url(""), &[("Sec-WebSocket-Protocol", "chatbox.v1, bearer.not-a-token")]).await;
    assert_eq!((status, body["code"].as_str()), (401, Some("INVALID_TOKEN")));
    app.stop().await;
}

/// Opens a socket at `query` with `headers`, each its own header line (so a name may
/// repeat). The user of its `connection_status` when accepted; the refusal's status and
/// JSON body otherwise.
async fn upgrade(app: &TestApp, query: &str, headers: &[(&str, &str)]) -> Result<String, (u16, Value)> {
    let request = upgrade_request(&app.ws_url(query), headers);
    match tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(request))
        .await
        .expect("answered in time")
    {
        Ok((mut socket, _)) => {
            let status = ws::next_json(&mut socket, ws::deadline_in(WAIT)).await;
            let _ = socket.close(None).await;
            Ok(status["user_id"].as_str().expect("user_id").to_owned())
        }
        Err(tungstenite::Error::Http(response)) => {
            let body =
                response.body().as_deref().map_or(Value::Null, |b| serde_json::from_slice(b).expect("json"));
            Err((response.status().as_u16(), body))
        }
        Err(other) => panic!("unexpected error {other}"),
    }
}

/// A refusal for conflicting credentials, whose text shows none of `tokens`.
fn assert_conflicting(refusal: &(u16, Value), tokens: &[&str], what: &str) {
    let (status, body) = refusal;
    assert_eq!((*status, body["code"].as_str()), (400, Some("BAD_REQUEST")), "{what}: {body}");
    let text = body.to_string();
    assert!(text.contains("Conflicting credentials"), "{what}: {text}");
    assert!(tokens.iter().all(|token| !text.contains(token)), "{what}: no token in the reply");
}

#[tokio::test]
async fn two_authorization_headers_naming_different_users_are_a_bad_request() {
    let app = spawn_app(&[]).await;
    let (alice, bob, boss) = (token("alice"), token("bob"), admin_token("boss"));
    let alice_later = token_expiring("alice", 600);
    let line = |token: &str| format!("Bearer {token}");
    for (path, first, second) in [
        ("/chat/sessions", &alice, &bob),
        ("/chat/sessions", &bob, &alice),
        ("/chat/admin/sessions", &boss, &alice),
        ("/chat/admin/sessions", &alice, &boss),
    ] {
        let headers = [("Authorization", line(first)), ("Authorization", line(second))];
        let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let (status, _, body) = app.http_raw("GET", path, &headers).await;
        let body: Value = serde_json::from_str(&body).expect("json");
        assert_conflicting(&(status, body), &[first, second], path);
    }
    for (path, first, second) in [
        ("/chat/sessions", &alice, &alice),
        ("/chat/sessions", &alice, &alice_later),
        ("/chat/admin/sessions", &boss, &boss),
    ] {
        let headers = [("Authorization", line(first)), ("Authorization", line(second))];
        let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let (status, _, body) = app.http_raw("GET", path, &headers).await;
        assert_eq!(status, 200, "{path}: one user's tokens are one credential: {body}");
    }
    let headers = [("Authorization", line(&alice)), ("Authorization", "Bearer not-a-token".to_owned())];
    let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
    let (status, _, body) = app.http_raw("GET", "/chat/sessions", &headers).await;
    assert_eq!(status, 401, "a bad token beside a good one is still a bad token: {body}");
    app.stop().await;
}

/// `chatbox.v1` and a `bearer.` entry per token, in one `Sec-WebSocket-Protocol` value.
fn offer(tokens: &[&str]) -> String {
    let entries: Vec<String> = tokens.iter().map(|token| format!("bearer.{token}")).collect();
    format!("chatbox.v1, {}", entries.join(", "))
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

#[tokio::test]
async fn two_bearer_subprotocol_entries_naming_different_users_are_a_bad_request() {
    let app = spawn_app(&[]).await;
    let (alice, bob) = (token("alice"), token("bob"));
    let refusal = upgrade(&app, "", &[("Sec-WebSocket-Protocol", &offer(&[&alice, &bob]))]).await;
    assert_conflicting(&refusal.expect_err("refused"), &[&alice, &bob], "two entries in one header");
    let (bob_entry, alice_entry) = (format!("bearer.{bob}"), format!("bearer.{alice}"));
    let lines = [
        ("Sec-WebSocket-Protocol", "chatbox.v1"),
        ("Sec-WebSocket-Protocol", bob_entry.as_str()),
        ("Sec-WebSocket-Protocol", alice_entry.as_str()),
    ];
    let refusal = upgrade(&app, "", &lines).await;
    assert_conflicting(&refusal.expect_err("refused"), &[&alice, &bob], "entries on two header lines");

    let repeated = upgrade(&app, "", &[("Sec-WebSocket-Protocol", &offer(&[&alice, &alice]))]).await;
    assert_eq!(repeated, Ok("alice".to_owned()), "one token in two entries is one credential");
    assert_still_serving(&app).await;
    app.stop().await;
}

#[tokio::test]
async fn a_socket_token_in_a_header_and_another_users_in_the_query_is_a_bad_request() {
    let app = spawn_app(&[]).await;
    let (alice, bob) = (token("alice"), token("bob"));
    let alice_later = token_expiring("alice", 600);
    let (to_alice, to_bob) = (format!("?token={alice}"), format!("?token={bob}"));

    let refusal = upgrade(&app, &to_alice, &[("Authorization", &bearer(&bob))]).await;
    assert_conflicting(&refusal.expect_err("refused"), &[&alice, &bob], "header and query");
    let refusal = upgrade(&app, &to_bob, &[("Sec-WebSocket-Protocol", &offer(&[&alice]))]).await;
    assert_conflicting(&refusal.expect_err("refused"), &[&alice, &bob], "subprotocol and query");
    let refusal =
        upgrade(&app, "", &[("Authorization", &bearer(&alice)), ("Authorization", &bearer(&bob))]).await;
    assert_conflicting(&refusal.expect_err("refused"), &[&alice, &bob], "two Authorization headers");
    let everywhere = [("Authorization", bearer(&alice)), ("Sec-WebSocket-Protocol", offer(&[&bob]))];
    let everywhere: Vec<(&str, &str)> = everywhere.iter().map(|(n, v)| (*n, v.as_str())).collect();
    let refusal = upgrade(&app, &to_alice, &everywhere).await;
    assert_conflicting(&refusal.expect_err("refused"), &[&alice, &bob], "header, subprotocol and query");

    // The same user's credentials, repeated or refreshed, are one caller.
    let same = upgrade(&app, &to_alice, &[("Authorization", &bearer(&alice))]).await;
    assert_eq!(same, Ok("alice".to_owned()), "the same token in header and query");
    let refreshed = [("Authorization", bearer(&alice)), ("Sec-WebSocket-Protocol", offer(&[&alice_later]))];
    let refreshed: Vec<(&str, &str)> = refreshed.iter().map(|(n, v)| (*n, v.as_str())).collect();
    let caller = upgrade(&app, &format!("?token={alice_later}"), &refreshed).await;
    assert_eq!(caller, Ok("alice".to_owned()), "two tokens of one user everywhere");
    assert_still_serving(&app).await;
    app.stop().await;
}

/// The memory store, and MongoDB when one is reachable.
async fn on_every_store(test: &str) -> Vec<TestApp> {
    let mut apps = vec![spawn_app(&[]).await];
    if let Some(mongo) = mongo::reachable(test).await {
        let database = mongo::fresh_database(test);
        apps.push(
            spawn_app(&[
                ("STORAGE_BACKEND", "mongodb"),
                ("MONGO_URI", mongo.uri.as_str()),
                ("MONGO_DATABASE", database.as_str()),
            ])
            .await,
        );
    }
    apps
}

#[tokio::test]
async fn an_offset_past_the_largest_skip_is_a_bad_request_on_every_store() {
    for app in on_every_store("offset bound").await {
        let mut client = app.connect("pager", "").await;
        let session = client.session_id();
        client.ask("hello").await;
        let (user, admin) = (token("pager"), admin_token("boss"));
        let pages = [
            ("/chat/sessions".to_owned(), &user),
            (format!("/chat/sessions/{session}"), &user),
            ("/chat/admin/sessions".to_owned(), &admin),
            ("/chat/admin/users/pager/sessions".to_owned(), &admin),
            (format!("/chat/admin/sessions/{session}"), &admin),
        ];
        for (path, bearer) in &pages {
            let largest = format!("{path}?offset=9223372036854775807");
            let (status, _, body) = app.json("GET", &largest, Some(bearer)).await;
            assert_eq!(status, 200, "{largest}: the largest offset is served: {body}");
            for above in ["9223372036854775808", "18446744073709551615", "99999999999999999999"] {
                let url = format!("{path}?offset={above}");
                let (status, _, body) = app.json("GET", &url, Some(bearer)).await;
                assert_eq!((status, body["code"].as_str()), (400, Some("BAD_REQUEST")), "{url}: {body}");
                let text = body["error"].as_str().unwrap_or_default();
                assert!(text.contains("offset") && text.contains("9223372036854775807"), "{url}: {text}");
            }
        }
        app.stop().await;
    }
}

#[tokio::test]
async fn flooding_any_command_gets_too_many_requests_then_close_1008() {
    let app = spawn_app(&[]).await;
    let floods: [(&str, Value); 6] = [
        ("typing", json!({"type": "typing_indicator", "metadata": {"typing": "true"}})),
        ("model_select", json!({"type": "model_select", "model_id": "second"})),
        ("help_request", json!({"type": "help_request"})),
        ("resume", json!({"type": "resume", "session_id": "s-unknown", "last_seq": 0})),
        ("stop", json!({"type": "stop"})),
        ("garbage", json!("not a frame")),
    ];
    for (name, frame) in floods {
        let mut client = app.connect(&format!("flooder-{name}"), "").await;
        let text = frame.as_str().map_or_else(|| frame.to_string(), str::to_owned);
        for _ in 0..400 {
            client.send_text(&text).await;
        }
        let (close, frames) = client.until_closed().await;
        let refusal = frames
            .iter()
            .find(|f| f["error"]["code"] == "TOO_MANY_REQUESTS")
            .unwrap_or_else(|| panic!("{name}: no TOO_MANY_REQUESTS before the close"));
        assert!(refusal["error"]["retry_after"].as_u64().is_some_and(|ms| ms > 0), "{name}: {refusal}");
        let close = close.unwrap_or_else(|| panic!("{name}: closed without a close frame"));
        assert_eq!((close.code, close.reason.as_str()), (CloseCode::Policy, "Too many requests"), "{name}");
    }
    assert_still_serving(&app).await;
    app.stop().await;
}

#[tokio::test]
async fn half_open_requests_are_closed_at_the_header_deadline_and_capped() {
    let app = spawn_app(&[("HTTP_HEADER_READ_TIMEOUT", "1s"), ("HTTP_MAX_PENDING_CONNECTIONS", "4")]).await;
    let mut held = Vec::new();
    for _ in 0..4 {
        let mut stream = TcpStream::connect(app.address).await.expect("connect");
        stream.write_all(b"GET /chat/healthz HTTP/1.1\r\nHost: x\r\n").await.expect("half a request");
        held.push(stream);
    }
    // The cap is reached: the next connection is closed at once, before any deadline.
    let mut refused = TcpStream::connect(app.address).await.expect("the kernel still accepts");
    assert!(closed_by_server(&mut refused, Duration::from_millis(900)).await, "over the cap: closed");
    for stream in &mut held {
        assert!(
            closed_by_server(stream, WAIT).await,
            "a request without its headers is closed at the deadline"
        );
    }
    assert_still_serving(&app).await;
    app.stop().await;
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_its_timeout() {
    let app = spawn_app(&[("HTTP_KEEPALIVE_TIMEOUT", "1s"), ("HTTP_HEADER_READ_TIMEOUT", "60s")]).await;
    let mut stream = TcpStream::connect(app.address).await.expect("connect");
    stream.write_all(b"GET /chat/healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.expect("request");
    let mut response = vec![0u8; 512];
    let read = tokio::time::timeout(WAIT, stream.read(&mut response)).await.expect("in time").expect("read");
    assert!(String::from_utf8_lossy(&response[..read]).starts_with("HTTP/1.1 200"), "served first");
    assert!(
        closed_by_server(&mut stream, WAIT).await,
        "then closed once idle, long before the header timeout"
    );
    app.stop().await;
}

/// Runs the binary with exactly `vars`; returns its exit success and all its output.
async fn run_binary(vars: &[(&str, &str)]) -> (bool, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_chatbox"));
    command.env_clear().env("PATH", std::env::var("PATH").unwrap_or_default());
    command.envs(vars.iter().copied()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
    let output = tokio::time::timeout(WAIT, command.output()).await.expect("exits in time").expect("run");
    let text =
        String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
    (output.status.success(), text)
}

#[tokio::test]
async fn a_mistyped_log_level_refuses_to_start_and_failures_print_whatever_the_level() {
    let base = [("JWT_SECRET", SECRET), ("LLM_PROVIDER_1_ID", "demo"), ("LLM_PROVIDER_1_TYPE", "demo")];
    let mut vars = base.to_vec();
    vars.push(("LOG_LEVEL", "warning"));
    let (started, text) = run_binary(&vars).await;
    assert!(!started && text.contains("LOG_LEVEL") && text.contains("validation failed"), "{text}");

    let mut vars = base.to_vec();
    vars.extend([("LOG_LEVEL", "off"), ("SERVER_PORT", "70000")]);
    let (started, text) = run_binary(&vars).await;
    assert!(!started, "{text}");
    assert!(text.contains("SERVER_PORT: must be between 0 and 65535"), "{text}");
    assert!(text.contains("validation failed"), "printed even with LOG_LEVEL=off: {text}");
}

#[tokio::test]
async fn a_broken_config_file_is_reported_by_line_and_key_never_by_its_text() {
    let dir = std::env::temp_dir().join(format!("chatbox-hardening-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("broken.toml");
    let secret = "Vb7#Qm2LpX9zR4tK8wN3jH6sD1fG5cA0";
    std::fs::write(
        &path,
        format!("[server]\nport = 8080\n[jwt]\nsecret = \"{secret}\nalgorithms = \"HS256\"\n"),
    )
    .expect("write");
    let path_text = path.to_string_lossy().into_owned();
    let (started, text) = run_binary(&[("CHATBOX_CONFIG", path_text.as_str())]).await;
    assert!(!started, "{text}");
    assert!(text.contains("line 4, key secret"), "{text}");
    assert!(!text.contains("Vb7") && !text.contains("Qm2LpX9"), "the line's text never appears: {text}");
    assert!(text.contains("validation failed"), "{text}");
}

#[tokio::test]
async fn a_wrong_method_is_405_with_its_own_code() {
    let app = spawn_app(&[]).await;
    let (status, body) = app.http("DELETE", "/chat/healthz", None).await;
    assert_eq!(status, 405, "{body}");
    let body: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(body["code"], "METHOD_NOT_ALLOWED");
    app.stop().await;
}
