//! Request bodies the routes never read: the server drains them (up to a bound), so the
//! client reads its whole answer and the keep-alive connection serves the next request.

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedReadHalf;

use crate::support::{WAIT, spawn_app, token};

/// One response off `reader`: its status and body (by `Content-Length` or chunked).
async fn read_response(reader: &mut BufReader<OwnedReadHalf>) -> (u16, String) {
    let mut status_line = String::new();
    reader.read_line(&mut status_line).await.expect("status line");
    let status = status_line.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        panic!("no status line: {status_line:?}");
    });
    let (mut length, mut chunked) = (0, false);
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).await.expect("header");
        let line = line.trim_end().to_ascii_lowercase();
        if line.is_empty() {
            break;
        }
        if let Some(value) = line.strip_prefix("content-length:") {
            length = value.trim().parse().expect("length");
        }
        chunked |= line.starts_with("transfer-encoding:") && line.contains("chunked");
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size).await.expect("chunk size");
            let size = usize::from_str_radix(size.trim(), 16).expect("hex size");
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk).await.expect("chunk");
            body.extend_from_slice(&chunk[..size]);
            if size == 0 {
                break;
            }
        }
    } else {
        body.resize(length, 0);
        reader.read_exact(&mut body).await.expect("body");
    }
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// Sends `method path` with a `body_len`-byte body, then an ordinary request on the same
/// connection, and returns both answers.
async fn body_then_next(
    address: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &str,
    body_len: usize,
) -> ((u16, String), (u16, String)) {
    let exchange = async {
        let stream = TcpStream::connect(address).await.expect("connect");
        let (read, mut write) = stream.into_split();
        let mut reader = BufReader::new(read);
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: test\r\n{headers}Content-Type: application/json\r\nContent-Length: {body_len}\r\n\r\n"
        );
        // The whole request is written before the answer is read, as a simple client does.
        let mut request = head.into_bytes();
        request.extend(std::iter::repeat_n(b'x', body_len));
        write.write_all(&request).await.expect("write the request and its body");
        let first = read_response(&mut reader).await;
        write
            .write_all(b"GET /chat/healthz HTTP/1.1\r\nHost: test\r\nContent-Length: 0\r\n\r\n")
            .await
            .expect("write the second request");
        let second = read_response(&mut reader).await;
        (first, second)
    };
    tokio::time::timeout(WAIT, exchange).await.expect("answered in time")
}

#[tokio::test]
async fn an_unread_body_is_drained_and_the_connection_serves_the_next_request() {
    let app = spawn_app(&[]).await;
    let auth = format!("Authorization: Bearer {}\r\n", token("alice"));
    let cases = [
        ("POST", "/chat/sessions/no-such-session/end", auth.as_str(), 100 * 1024),
        ("GET", "/chat/healthz", "", 100 * 1024),
        ("GET", "/chat/sessions", "", 64 * 1024),
        ("POST", "/chat/no-such-route", "", 200 * 1024),
    ];
    for (method, path, headers, body_len) in cases {
        let ((status, body), (next_status, next_body)) =
            body_then_next(app.address, method, path, headers, body_len).await;
        assert!((200..500).contains(&status), "{method} {path}: {status} {body}");
        assert!(!body.is_empty(), "{method} {path}: the whole answer was read");
        assert_eq!(next_status, 200, "{method} {path}: the next request on the connection: {next_body}");
    }
    app.stop().await;
}
