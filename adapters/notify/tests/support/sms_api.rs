//! A local HTTP/1 server standing in for a Twilio-style SMS API: it reads each request
//! (head and `Content-Length` body, both bounded), records it, and answers as the test's
//! responder says, or stalls (answers nothing and waits for the client to hang up).
//! Every connection is answered once and closed, and bounded by a deadline.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

const MAX_REQUEST_BYTES: usize = 64 * 1024;
const CONNECTION_DEADLINE: Duration = Duration::from_secs(10);

/// A request as received.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    /// The form-decoded body.
    pub form: Vec<(String, String)>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The one value of form field `name`.
    pub fn field(&self, name: &str) -> Option<&str> {
        let values: Vec<&str> =
            self.form.iter().filter(|(n, _)| n == name).map(|(_, v)| v.as_str()).collect();
        assert!(values.len() <= 1, "one {name} field: {values:?}");
        values.first().copied()
    }
}

/// How the server answers one request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// A status and a JSON body.
    Status(u16, String),
    /// Nothing; wait for the client to hang up.
    Stall,
}

type Responder = Arc<dyn Fn(&Request) -> Reply + Send + Sync>;

/// A running stand-in API.
#[derive(Debug)]
pub struct SmsApi {
    addr: SocketAddr,
    requests: mpsc::Receiver<Request>,
}

impl SmsApi {
    /// A server on a free loopback port answering with `responder`.
    pub async fn start(responder: impl Fn(&Request) -> Reply + Send + Sync + 'static) -> Self {
        let responder: Responder = Arc::new(responder);
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tx, requests) = mpsc::channel(16);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (tx, responder) = (tx.clone(), Arc::clone(&responder));
                tokio::spawn(async move {
                    let _ = tokio::time::timeout(CONNECTION_DEADLINE, serve(stream, &responder, &tx)).await;
                });
            }
        });
        Self { addr, requests }
    }

    /// The base URL, as `SMS_ENDPOINT` would give it.
    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The next request received (waits at most 5 s).
    pub async fn next_request(&mut self) -> Request {
        tokio::time::timeout(Duration::from_secs(5), self.requests.recv())
            .await
            .expect("a request within 5 s")
            .expect("the server is running")
    }

    /// True when no further request has arrived by now.
    pub fn no_more_requests(&mut self) -> bool {
        self.requests.try_recv().is_err()
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        201 => "Created",
        400 => "Bad Request",
        401 => "Unauthorized",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        _ => "Status",
    }
}

/// Reads one request; `None` when the client closed early or sent too much.
async fn read_request(stream: &mut TcpStream) -> Option<Request> {
    let mut buffer = Vec::new();
    let mut chunk = [0_u8; 4096];
    let head_end = loop {
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break end;
        }
        let n = stream.read(&mut chunk).await.ok().filter(|n| *n > 0)?;
        buffer.extend_from_slice(&chunk[..n]);
        if buffer.len() > MAX_REQUEST_BYTES {
            return None;
        }
    };
    let head = String::from_utf8(buffer[..head_end].to_vec()).ok()?;
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next()?.split(' ');
    let (method, path) = (request_line.next()?.to_owned(), request_line.next()?.to_owned());
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    if length > MAX_REQUEST_BYTES {
        return None;
    }
    let mut body = buffer[head_end + 4..].to_vec();
    while body.len() < length {
        let n = stream.read(&mut chunk).await.ok().filter(|n| *n > 0)?;
        body.extend_from_slice(&chunk[..n]);
    }
    let form = form_urlencoded::parse(&body).map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
    Some(Request { method, path, headers, form })
}

async fn serve(mut stream: TcpStream, responder: &Responder, tx: &mpsc::Sender<Request>) {
    let Some(request) = read_request(&mut stream).await else { return };
    let reply = responder(&request);
    let _ = tx.send(request).await;
    match reply {
        Reply::Status(status, body) => {
            let response = format!(
                "HTTP/1.1 {status} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                reason(status),
                body.len()
            );
            let _ = stream.write_all(response.as_bytes()).await;
            let _ = stream.shutdown().await;
        }
        Reply::Stall => {
            let mut rest = Vec::new();
            let _ = stream.read_to_end(&mut rest).await;
        }
    }
}
