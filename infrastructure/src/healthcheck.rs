//! `chatbox healthcheck`: asks the running server on this host whether it is alive, for
//! container health checks in images that carry no shell, `curl` or `wget`.
//!
//! It sends `GET ${CHATBOX_PATH_PREFIX:-/chat}/healthz` to `127.0.0.1:${SERVER_PORT:-8080}`
//! as a hand-written HTTP/1.1 request and exits 0 when the status line says 200 within
//! two seconds, else 1 with one line on standard error saying why.
//!
//! It reads only those two variables, never the whole configuration: a health check must
//! not fail because a secret it has no use for is missing from its environment, and must
//! not spend its two seconds validating what the server already validated. A port or
//! prefix set only in the `CHATBOX_CONFIG` file is therefore not seen; container images
//! set both in the environment. `SERVER_HOST` is ignored on purpose: the server in a
//! container listens on `0.0.0.0`, which includes the loopback address.

use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use thiserror::Error;
use tokio::net::TcpStream;

/// How long the whole check (connect, request, status line) may take.
pub const TIMEOUT: Duration = Duration::from_secs(2);

const DEFAULT_PORT: u16 = 8080;
const DEFAULT_PREFIX: &str = "/chat";
/// The status line fits well within this; anything longer is not an HTTP answer.
const MAX_STATUS_LINE: usize = 1024;

/// Why the check failed. The text is the one line printed on standard error.
#[derive(Debug, Error)]
pub enum HealthError {
    /// `SERVER_PORT` or `CHATBOX_PATH_PREFIX` cannot name a local endpoint.
    #[error("{0}")]
    Settings(String),
    /// Nothing accepted the connection.
    #[error("cannot connect to {address}: {source}")]
    Connect {
        /// Where the check connected.
        address: SocketAddr,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// The connection broke while the request was sent or the answer read.
    #[error("connection to {address} failed: {source}")]
    Io {
        /// Where the check connected.
        address: SocketAddr,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// The server closed the connection or sent something that is not an HTTP status line.
    #[error("{url} did not answer with an HTTP status line")]
    Malformed {
        /// What was asked.
        url: String,
    },
    /// The server answered, but not 200.
    #[error("{url} answered HTTP {status}")]
    Status {
        /// What was asked.
        url: String,
        /// The status code received.
        status: u16,
    },
    /// No complete status line within the time allowed.
    #[error("{url} did not answer within {}", humantime::format_duration(*timeout))]
    Timeout {
        /// What was asked.
        url: String,
        /// The time allowed.
        timeout: Duration,
    },
}

/// What to check: the loopback port and the health path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `SERVER_PORT`.
    pub port: u16,
    /// `CHATBOX_PATH_PREFIX` followed by `/healthz`.
    pub path: String,
}

impl Target {
    /// The target for the given `SERVER_PORT` and `CHATBOX_PATH_PREFIX` values (`None`
    /// or blank means the default, as for the server).
    ///
    /// # Errors
    /// When the port is not 1–65535 or the prefix is not a plain URL path; the prefix
    /// is checked here because it is written into the request line verbatim.
    pub fn from_values(port: Option<&str>, prefix: Option<&str>) -> Result<Self, HealthError> {
        let port = match port.map(str::trim).filter(|p| !p.is_empty()) {
            None => DEFAULT_PORT,
            Some(raw) => match raw.parse::<u16>() {
                Ok(0) => {
                    return Err(HealthError::Settings(
                        "SERVER_PORT is 0 (a random port): there is no fixed port to check".into(),
                    ));
                }
                Ok(port) => port,
                Err(_) => return Err(HealthError::Settings(format!("SERVER_PORT {raw:?} is not a port"))),
            },
        };
        let prefix = prefix.map(str::trim).filter(|p| !p.is_empty()).unwrap_or(DEFAULT_PREFIX);
        let plain = prefix.starts_with('/')
            && !prefix.ends_with('/')
            && prefix.chars().all(|c| c.is_ascii_alphanumeric() || "-._~/".contains(c));
        if !plain {
            return Err(HealthError::Settings(format!(
                "CHATBOX_PATH_PREFIX {prefix:?} is not a path such as /chat"
            )));
        }
        Ok(Self { port, path: format!("{prefix}/healthz") })
    }

    /// The target named by the process environment.
    ///
    /// # Errors
    /// See [`Target::from_values`].
    pub fn from_env() -> Result<Self, HealthError> {
        let port = std::env::var("SERVER_PORT").ok();
        let prefix = std::env::var("CHATBOX_PATH_PREFIX").ok();
        Self::from_values(port.as_deref(), prefix.as_deref())
    }

    /// The loopback address of the server.
    #[must_use]
    pub fn address(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    fn url(&self) -> String {
        format!("http://{}{}", self.address(), self.path)
    }
}

/// Runs the check from the environment and turns the outcome into the exit status.
#[must_use]
pub fn run() -> ExitCode {
    let outcome = Target::from_env().and_then(|target| {
        // A current-thread runtime: one connection needs no worker threads.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| HealthError::Settings(format!("cannot start the async runtime: {e}")))?;
        runtime.block_on(check(&target, TIMEOUT))
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("healthcheck failed: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Succeeds when `target` answers 200 within `timeout`.
///
/// # Errors
/// Why it did not: no connection, a broken connection, another status, or no answer in
/// time.
pub async fn check(target: &Target, timeout: Duration) -> Result<(), HealthError> {
    let url = target.url();
    let status = tokio::time::timeout(timeout, status_of(target))
        .await
        .map_err(|_| HealthError::Timeout { url: url.clone(), timeout })??;
    match status {
        Some(200) => Ok(()),
        Some(status) => Err(HealthError::Status { url, status }),
        None => Err(HealthError::Malformed { url }),
    }
}

/// Sends the request and reads the status code (`None` when the answer is not HTTP).
async fn status_of(target: &Target) -> Result<Option<u16>, HealthError> {
    let address = target.address();
    let stream =
        TcpStream::connect(address).await.map_err(|source| HealthError::Connect { address, source })?;
    let io = |source| HealthError::Io { address, source };
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {address}\r\nUser-Agent: chatbox-healthcheck\r\nAccept: */*\r\nConnection: close\r\n\r\n",
        target.path
    );
    write_all(&stream, request.as_bytes()).await.map_err(io)?;
    let mut received = Vec::with_capacity(128);
    let mut buffer = [0_u8; 256];
    // Only the status line matters; headers and body are never read.
    while !received.windows(2).any(|w| w == b"\r\n") {
        if received.len() > MAX_STATUS_LINE {
            return Ok(None);
        }
        stream.readable().await.map_err(io)?;
        match stream.try_read(&mut buffer) {
            Ok(0) => return Ok(None),
            Ok(n) => received.extend_from_slice(&buffer[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(io(e)),
        }
    }
    Ok(parse_status(&received))
}

/// Writes all of `bytes`. The readiness-based calls need only tokio's `net` feature.
async fn write_all(stream: &TcpStream, mut bytes: &[u8]) -> std::io::Result<()> {
    while !bytes.is_empty() {
        stream.writable().await?;
        match stream.try_write(bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The code of a status line such as `HTTP/1.1 200 OK`.
fn parse_status(received: &[u8]) -> Option<u16> {
    let line = received.split(|&b| b == b'\r').next()?;
    let line = std::str::from_utf8(line).ok()?;
    let mut parts = line.split(' ');
    let version = parts.next()?;
    let code = parts.next()?;
    if !version.starts_with("HTTP/1.") || code.len() != 3 {
        return None;
    }
    code.parse().ok()
}

#[cfg(test)]
mod tests {
    use tokio::net::TcpListener;

    use super::*;

    /// A one-connection server on a free loopback port. It reads the request, hands it
    /// to the test, then answers `reply` (or, when `None`, holds the connection open
    /// without answering until the test ends).
    async fn server(reply: Option<&'static str>) -> (Target, tokio::task::JoinHandle<String>) {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.expect("bind");
        let port = listener.local_addr().expect("address").port();
        let handle = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.expect("accept");
            let mut request = Vec::new();
            let mut buffer = [0_u8; 512];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                stream.readable().await.expect("readable");
                match stream.try_read(&mut buffer) {
                    Ok(0) => break,
                    Ok(n) => request.extend_from_slice(&buffer[..n]),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(e) => panic!("read: {e}"),
                }
            }
            match reply {
                Some(reply) => write_all(&stream, reply.as_bytes()).await.expect("write"),
                None => std::future::pending::<()>().await,
            }
            String::from_utf8(request).expect("utf-8 request")
        });
        let target = Target::from_values(Some(&port.to_string()), Some("/chat")).expect("target");
        (target, handle)
    }

    #[tokio::test]
    async fn a_200_passes_and_the_request_asks_for_the_health_path() {
        let (target, server) =
            server(Some("HTTP/1.1 200 OK\r\ncontent-length: 15\r\n\r\n{\"status\":\"ok\"}")).await;
        check(&target, TIMEOUT).await.expect("healthy");
        let request = server.await.expect("server");
        assert!(request.starts_with("GET /chat/healthz HTTP/1.1\r\n"), "{request:?}");
        assert!(request.contains("\r\nHost: 127.0.0.1:"), "{request:?}");
    }

    #[tokio::test]
    async fn a_503_fails_with_the_status() {
        let (target, _server) =
            server(Some("HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n")).await;
        let error = check(&target, TIMEOUT).await.expect_err("unhealthy");
        assert!(matches!(error, HealthError::Status { status: 503, .. }), "{error:?}");
        assert!(error.to_string().ends_with("/chat/healthz answered HTTP 503"), "{error}");
    }

    #[tokio::test]
    async fn silence_fails_after_the_timeout() {
        let (target, server) = server(None).await;
        // The outer limit proves the check gives up by itself, at its own timeout.
        let error = tokio::time::timeout(Duration::from_secs(1), check(&target, Duration::from_millis(100)))
            .await
            .expect("the check stops waiting after its timeout")
            .expect_err("no answer");
        assert!(matches!(error, HealthError::Timeout { .. }), "{error:?}");
        assert!(error.to_string().contains("did not answer within 100ms"), "{error}");
        server.abort();
    }

    #[tokio::test]
    async fn a_closed_port_fails_to_connect() {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.expect("bind");
        let port = listener.local_addr().expect("address").port();
        drop(listener);
        let target = Target::from_values(Some(&port.to_string()), None).expect("target");
        let error = check(&target, TIMEOUT).await.expect_err("nothing listens");
        assert!(matches!(error, HealthError::Connect { .. }), "{error:?}");
    }

    #[tokio::test]
    async fn an_answer_that_is_not_http_fails() {
        let (target, _server) = server(Some("SSH-2.0-OpenSSH\r\n")).await;
        let error = check(&target, TIMEOUT).await.expect_err("not http");
        assert!(matches!(error, HealthError::Malformed { .. }), "{error:?}");
    }

    #[test]
    fn defaults_and_bad_values() {
        let target = Target::from_values(None, None).expect("defaults");
        assert_eq!(target, Target { port: 8080, path: "/chat/healthz".into() });
        let target = Target::from_values(Some(" 9000 "), Some("/api/v2/chat")).expect("custom");
        assert_eq!(target, Target { port: 9000, path: "/api/v2/chat/healthz".into() });
        assert_eq!(Target::from_values(Some(""), Some("")).expect("blank is default").port, 8080);
        for (port, prefix) in [
            (Some("0"), None),
            (Some("http"), None),
            (Some("70000"), None),
            (None, Some("chat")),
            (None, Some("/chat/")),
            (None, Some("/chat HTTP/1.1\r\nX: y")),
        ] {
            assert!(
                matches!(Target::from_values(port, prefix), Err(HealthError::Settings(_))),
                "{port:?} {prefix:?}"
            );
        }
    }

    #[test]
    fn status_lines() {
        assert_eq!(parse_status(b"HTTP/1.1 200 OK\r\n"), Some(200));
        assert_eq!(parse_status(b"HTTP/1.0 503 Service Unavailable\r\n"), Some(503));
        assert_eq!(parse_status(b"HTTP/1.1 20 OK\r\n"), None);
        assert_eq!(parse_status(b"ICY 200 OK\r\n"), None);
    }
}
