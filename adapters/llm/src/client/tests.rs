//! The client against local servers that speak HTTP/1.1 byte by byte: connections are
//! reused only after a clean end, a stale one is replaced without an error, an exchange
//! dropped early closes its connection, and TLS verifies the server's certificate.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::StreamExt;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use super::*;

const WAIT: Duration = Duration::from_secs(5);
const SSE_HEAD: &str =
    "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n";

/// A chunk of a chunked body.
fn chunk(text: &str) -> String {
    format!("{:x}\r\n{text}\r\n", text.len())
}

/// A whole chunked event-stream response.
fn sse(text: &str) -> String {
    format!("{SSE_HEAD}{}0\r\n\r\n", chunk(text))
}

/// What a connection of the server does with the request it read (its head), by the
/// request's number over the whole server.
enum Reply {
    Send(String),
    /// Sends these bytes and keeps the connection open without another word.
    SendAndHold(String),
    /// Sends the first bytes, then the second when told, then serves the next request.
    SendInTwo(String, String, Arc<tokio::sync::Notify>),
    /// Sends these bytes, then closes the connection when told (its idle timer ran out).
    SendAndCloseWhen(String, Arc<tokio::sync::Notify>),
    /// Closes the connection without answering.
    Close,
}

/// A server that answers every request with `reply(n)`, counting connections and
/// reporting each request's head and each connection's end.
struct Server {
    url: String,
    accepted: Arc<AtomicUsize>,
    heads: mpsc::UnboundedReceiver<String>,
    ended: mpsc::UnboundedReceiver<usize>,
}

impl Server {
    async fn start(reply: impl Fn(usize) -> Reply + Send + Sync + 'static) -> Self {
        Self::start_with(reply, None).await
    }

    async fn start_with(
        reply: impl Fn(usize) -> Reply + Send + Sync + 'static,
        tls: Option<tokio_rustls::TlsAcceptor>,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let scheme = if tls.is_some() { "https://localhost" } else { "http://127.0.0.1" };
        let accepted = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(AtomicUsize::new(0));
        let (heads_tx, heads) = mpsc::unbounded_channel();
        let (ended_tx, ended) = mpsc::unbounded_channel();
        let reply = Arc::new(reply);
        let counted = Arc::clone(&accepted);
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let number = counted.fetch_add(1, Ordering::SeqCst);
                let (reply, requests, heads_tx, ended_tx, tls) = (
                    Arc::clone(&reply),
                    Arc::clone(&requests),
                    heads_tx.clone(),
                    ended_tx.clone(),
                    tls.clone(),
                );
                tokio::spawn(async move {
                    match tls {
                        Some(tls) => {
                            let Ok(stream) = tls.accept(tcp).await else { return };
                            serve(stream, &*reply, &requests, &heads_tx).await;
                        }
                        None => serve(tcp, &*reply, &requests, &heads_tx).await,
                    }
                    let _ = ended_tx.send(number);
                });
            }
        });
        Self { url: format!("{scheme}:{port}/v1/chat"), accepted, heads, ended }
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    async fn next_head(&mut self) -> String {
        tokio::time::timeout(WAIT, self.heads.recv()).await.expect("a request in time").expect("server")
    }

    /// The number of the next connection that ended (the client closed it).
    async fn next_end(&mut self) -> usize {
        tokio::time::timeout(WAIT, self.ended.recv()).await.expect("a connection ended").expect("server")
    }
}

/// Serves one connection: reads each request (head, then its `content-length` body) and
/// replies, until the client closes or a reply ends the connection.
async fn serve(
    mut stream: impl AsyncRead + AsyncWrite + Unpin,
    reply: &(dyn Fn(usize) -> Reply + Send + Sync),
    requests: &AtomicUsize,
    heads: &mpsc::UnboundedSender<String>,
) {
    let mut buffer = Vec::new();
    loop {
        let head_end = loop {
            if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                break end + 4;
            }
            let mut read = [0u8; 4096];
            match stream.read(&mut read).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buffer.extend_from_slice(&read[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buffer[..head_end]).to_lowercase();
        let length: usize = head
            .lines()
            .find_map(|line| line.strip_prefix("content-length: "))
            .and_then(|value| value.trim().parse().ok())
            .unwrap_or(0);
        while buffer.len() < head_end + length {
            let mut read = [0u8; 4096];
            match stream.read(&mut read).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buffer.extend_from_slice(&read[..n]),
            }
        }
        buffer.drain(..head_end + length);
        let _ = heads.send(head);
        match reply(requests.fetch_add(1, Ordering::SeqCst)) {
            Reply::Send(bytes) => {
                if stream.write_all(bytes.as_bytes()).await.is_err() {
                    return;
                }
            }
            Reply::SendAndHold(bytes) => {
                let _ = stream.write_all(bytes.as_bytes()).await;
                // Held until the client closes it.
                let mut read = [0u8; 64];
                while matches!(stream.read(&mut read).await, Ok(n) if n > 0) {}
                return;
            }
            Reply::SendInTwo(first, second, told) => {
                let _ = stream.write_all(first.as_bytes()).await;
                told.notified().await;
                if stream.write_all(second.as_bytes()).await.is_err() {
                    return;
                }
            }
            Reply::SendAndCloseWhen(bytes, close) => {
                let _ = stream.write_all(bytes.as_bytes()).await;
                close.notified().await;
                return;
            }
            Reply::Close => return,
        }
    }
}

fn client() -> Client {
    Client::new(WAIT, Vec::new()).expect("client")
}

/// Posts and reads the whole body, all within one deadline (a server that trickled
/// bytes for ever would fail it, not hold it).
async fn post_and_read(client: &Client, url: &str) -> Result<(StatusCode, String), ClientError> {
    let deadline = tokio::time::Instant::now() + WAIT;
    let (status, _, mut body) = client.post(url, HeaderMap::new(), b"{}".to_vec()).await?;
    let mut text = Vec::new();
    while let Some(bytes) = tokio::time::timeout_at(deadline, body.next()).await.expect("the body in time") {
        text.extend_from_slice(&bytes.map_err(ClientError::Http)?);
    }
    Ok((status, String::from_utf8(text).expect("utf-8")))
}

#[tokio::test]
async fn a_connection_whose_response_ended_cleanly_serves_the_next_request() {
    let mut server = Server::start(|n| Reply::Send(sse(&format!("data: answer {n}\n\n")))).await;
    let client = client();
    for n in 0..3 {
        let (status, text) = post_and_read(&client, &server.url).await.expect("answered");
        assert_eq!((status, text.as_str()), (StatusCode::OK, format!("data: answer {n}\n\n").as_str()));
        assert_eq!(client.idle_connections(), 1, "given back once the body ended");
    }
    assert_eq!(server.accepted(), 1, "one connection for the three requests");
    let head = server.next_head().await;
    assert!(head.starts_with("post /v1/chat http/1.1\r\n"), "{head}");
    let port = server.url.rsplit(':').next().and_then(|tail| tail.split('/').next()).expect("port");
    assert!(head.contains(&format!("\r\nhost: 127.0.0.1:{port}\r\n")), "{head}");
    assert!(head.contains("\r\ncontent-length: 2\r\n"), "{head}");
}

#[tokio::test]
async fn a_response_with_a_length_or_one_that_closes_is_read_to_its_end() {
    let mut server = Server::start(|n| match n {
        0 => Reply::Send("HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello".into()),
        _ => Reply::Send("HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 3\r\n\r\nbye".into()),
    })
    .await;
    let client = client();
    assert_eq!(post_and_read(&client, &server.url).await.expect("read").1, "hello");
    assert_eq!(client.idle_connections(), 1);
    assert_eq!(post_and_read(&client, &server.url).await.expect("read").1, "bye");
    assert_eq!(client.idle_connections(), 0, "the server said it closes: not kept");
    assert_eq!(server.next_end().await, 0, "and it is closed");
}

#[tokio::test]
async fn a_pooled_connection_the_provider_closed_is_replaced_without_an_error() {
    // The first connection answers once; a second request on it finds it closed (the
    // server read it and hung up, as one whose idle timer ran out does).
    let server =
        Server::start(|n| if n == 1 { Reply::Close } else { Reply::Send(sse("data: ok\n\n")) }).await;
    let client = client();
    post_and_read(&client, &server.url).await.expect("first");
    assert_eq!(client.idle_connections(), 1);
    let (status, text) = post_and_read(&client, &server.url).await.expect("sent again on a new connection");
    assert_eq!((status, text.as_str()), (StatusCode::OK, "data: ok\n\n"));
    assert_eq!(server.accepted(), 2);
}

#[tokio::test]
async fn a_connection_the_provider_closed_while_it_was_idle_is_not_taken_from_the_pool() {
    let close = Arc::new(tokio::sync::Notify::new());
    let closing = Arc::clone(&close);
    let mut server =
        Server::start(move |_| Reply::SendAndCloseWhen(sse("data: ok\n\n"), Arc::clone(&closing))).await;
    let client = client();
    post_and_read(&client, &server.url).await.expect("first");
    assert_eq!(client.idle_connections(), 1);
    close.notify_one();
    assert_eq!(server.next_end().await, 0, "the provider closed it");
    let origin = Origin::of(&server.url.parse().expect("uri")).expect("origin");
    assert!(client.pool.take(&origin).is_none(), "found closed when taken, and dropped");
    assert_eq!(client.idle_connections(), 0);
    post_and_read(&client, &server.url).await.expect("on a new connection");
    assert_eq!(server.accepted(), 2);
}

#[tokio::test]
async fn an_exchange_dropped_before_its_end_closes_its_connection() {
    let mut server =
        Server::start(|_| Reply::SendAndHold(format!("{SSE_HEAD}{}", chunk("data: first\n\n")))).await;
    let client = client();
    let (_, _, mut body) = client.post(&server.url, HeaderMap::new(), b"{}".to_vec()).await.expect("head");
    let first =
        tokio::time::timeout(WAIT, body.next()).await.expect("in time").expect("a chunk").expect("ok");
    assert_eq!(&first[..], b"data: first\n\n");
    drop(body);
    assert_eq!(client.idle_connections(), 0, "an unfinished response is not kept");
    assert_eq!(server.next_end().await, 0, "its connection is closed: the provider stops");
}

#[tokio::test]
async fn an_exchange_dropped_with_its_end_already_arrived_keeps_its_connection() {
    let server = Server::start(|_| Reply::Send(sse("data: all\n\n"))).await;
    let client = client();
    let (_, _, mut body) = client.post(&server.url, HeaderMap::new(), b"{}".to_vec()).await.expect("head");
    let all = tokio::time::timeout(WAIT, body.next()).await.expect("in time").expect("a chunk").expect("ok");
    assert_eq!(&all[..], b"data: all\n\n");
    // The reader stops at the answer's last event; the chunked body's end came with it.
    tokio::task::yield_now().await;
    drop(body);
    assert_eq!(client.idle_connections(), 1);
    post_and_read(&client, &server.url).await.expect("again");
    assert_eq!(server.accepted(), 1);
}

#[tokio::test]
async fn a_released_exchange_reads_the_rest_of_its_response_in_the_background_and_keeps_the_connection() {
    let told = Arc::new(tokio::sync::Notify::new());
    let telling = Arc::clone(&told);
    let server = Server::start(move |n| match n {
        0 => Reply::SendInTwo(
            format!("{SSE_HEAD}{}", chunk("data: [DONE]\n\n")),
            "0\r\n\r\n".into(),
            Arc::clone(&telling),
        ),
        _ => Reply::Send(sse("data: next\n\n")),
    })
    .await;
    let client = client();
    let (_, _, mut body) = client.post(&server.url, HeaderMap::new(), b"{}".to_vec()).await.expect("head");
    let last = tokio::time::timeout(WAIT, body.next()).await.expect("in time").expect("a chunk").expect("ok");
    assert_eq!(&last[..], b"data: [DONE]\n\n");
    body.release();
    assert_eq!(client.idle_connections(), 0, "the response's end has not come yet");
    told.notify_one();
    tokio::time::timeout(WAIT, async {
        while client.idle_connections() == 0 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("kept once its end came");
    assert_eq!(post_and_read(&client, &server.url).await.expect("next").1, "data: next\n\n");
    assert_eq!(server.accepted(), 1);
}

#[tokio::test]
async fn a_released_exchange_whose_rest_is_too_long_closes_its_connection() {
    // More than what the drop reads without waiting and the drain's bound together.
    let long = chunk(&"x".repeat(4 * DRAIN_BYTES));
    let mut server =
        Server::start(move |_| Reply::SendAndHold(format!("{SSE_HEAD}{}{long}", chunk("data: [DONE]\n\n"))))
            .await;
    let client = client();
    let (_, _, mut body) = client.post(&server.url, HeaderMap::new(), b"{}".to_vec()).await.expect("head");
    tokio::time::timeout(WAIT, body.next()).await.expect("in time").expect("a chunk").expect("ok");
    body.release();
    assert_eq!(server.next_end().await, 0, "closed, not read for ever");
    assert_eq!(client.idle_connections(), 0);
}

fn tls_acceptor() -> tokio_rustls::TlsAcceptor {
    let certs = CertificateDer::pem_slice_iter(include_bytes!("testdata/localhost.pem"))
        .collect::<Result<Vec<_>, _>>()
        .expect("certificate");
    let key = PrivateKeyDer::from_pem_slice(include_bytes!("testdata/localhost.key")).expect("key");
    let config =
        rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .expect("server config");
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

fn test_ca() -> CertificateDer<'static> {
    CertificateDer::from_pem_slice(include_bytes!("testdata/ca.pem")).expect("ca")
}

#[tokio::test]
async fn https_verifies_the_providers_certificate_and_reuses_the_connection() {
    let server = Server::start_with(|_| Reply::Send(sse("data: secure\n\n")), Some(tls_acceptor())).await;
    let trusting = Client::new(WAIT, vec![test_ca()]).expect("client");
    for _ in 0..2 {
        let (status, text) = post_and_read(&trusting, &server.url).await.expect("over TLS");
        assert_eq!((status, text.as_str()), (StatusCode::OK, "data: secure\n\n"));
    }
    assert_eq!(server.accepted(), 1);

    let refused = post_and_read(&client(), &server.url).await.expect_err("an unknown authority");
    assert!(matches!(refused, ClientError::Connect(_)), "{refused:?}");
    assert!(refused.to_string().contains("connecting failed"), "{refused}");
}

#[tokio::test]
async fn urls_that_are_not_http_are_refused_before_any_connection() {
    let client = client();
    for url in ["ftp://example.com/x", "/relative", "http:///no-host"] {
        let refused = client.post(url, HeaderMap::new(), Vec::new()).await.expect_err(url);
        assert!(matches!(refused, ClientError::Url(_)), "{url}: {refused:?}");
    }
}

#[tokio::test]
async fn a_provider_that_hangs_up_without_answering_is_an_error_not_a_wait() {
    let server = Server::start(|_| Reply::Close).await;
    let refused = tokio::time::timeout(WAIT, post_and_read(&client(), &server.url))
        .await
        .expect("no wait")
        .expect_err("no answer");
    assert!(matches!(refused, ClientError::Http(_)), "{refused:?}");
    assert_eq!(server.accepted(), 1, "a new connection is not tried again");
}

#[tokio::test]
async fn a_provider_nobody_listens_for_is_a_connect_error() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://localhost:{}/v1", closed.local_addr().expect("addr").port());
    drop(closed);
    let refused = client().post(&url, HeaderMap::new(), Vec::new()).await.expect_err("nothing listens");
    assert!(matches!(refused, ClientError::Connect(_)), "{refused:?}");
}

#[test]
fn the_host_header_names_the_port_only_when_it_is_not_the_schemes() {
    let host = |url: &str| Origin::of(&url.parse().expect("uri")).expect("origin").host_header();
    assert_eq!(host("https://api.openai.com/v1"), "api.openai.com");
    assert_eq!(host("https://api.openai.com:8443/v1"), "api.openai.com:8443");
    assert_eq!(host("http://localhost:80/v1"), "localhost");
    assert_eq!(host("http://[::1]:8080/v1"), "[::1]:8080");
}
