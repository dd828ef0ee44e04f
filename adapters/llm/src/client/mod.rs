//! The providers' HTTP/1.1 client, driven by whoever reads the answer.
//!
//! A general-purpose client (reqwest over hyper) gives each connection a task of its
//! own: every token the provider sends wakes that task, which reads it and hands it
//! through a channel to the session's actor, a second wake-up. Here the actor polls
//! the connection itself, as part of polling the answer stream: a token read from the
//! socket is decoded in the same poll. hyper still parses HTTP; this module opens the
//! connections (`connect`), keeps the idle ones (`pool`), and drives one exchange
//! (`Exchange`).
//!
//! Invariants: a connection is polled only by the exchange that uses it, so it makes no
//! progress between polls (reading ahead is bounded by hyper's buffer and TCP's window);
//! a connection goes back to the pool only after its response ended cleanly, and is
//! closed when the exchange is dropped before that (which is how `stop`, timeouts and
//! shutdown abort a request).

mod connect;
mod pool;

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use http::header::{self, HeaderMap, HeaderValue};
use http::{Request, StatusCode, Uri};
use http_body_util::Full;
use hyper::body::{Body, Incoming};
use hyper_util::rt::TokioIo;

use connect::{Connector, Origin};
use pool::{Conn, Pool};

/// At most this many body frames are read, without waiting, from an exchange dropped
/// before its end, to see whether its connection can be kept.
const FINISH_FRAMES: usize = 8;
/// How long, and how much, the rest of a response whose reader has what it wants is
/// read in the background to keep its connection (see [`Exchange::release`]).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);
const DRAIN_BYTES: usize = 64 * 1024;

/// Why a request failed before its response began.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("invalid provider URL: {0}")]
    Url(&'static str),
    #[error("connecting failed: {0}")]
    Connect(#[source] std::io::Error),
    #[error("connecting timed out")]
    ConnectTimeout,
    #[error("TLS setup failed: {0}")]
    Tls(#[source] rustls::Error),
    #[error("the request failed: {0}")]
    Http(#[source] hyper::Error),
}

/// An HTTP/1.1 client for one provider: its connector and its idle connections.
#[derive(Debug, Clone)]
pub struct Client {
    connector: Connector,
    pool: Arc<Pool>,
}

impl Client {
    /// A client that trusts the platform's certificate authorities (and `extra_roots`).
    ///
    /// # Errors
    /// When TLS cannot be set up.
    pub fn new(
        connect_timeout: Duration,
        extra_roots: Vec<rustls::pki_types::CertificateDer<'static>>,
    ) -> Result<Self, ClientError> {
        Ok(Self { connector: Connector::new(connect_timeout, extra_roots)?, pool: Arc::default() })
    }

    /// Posts `body` to `url` and returns the response's status and headers, and its body
    /// as an [`Exchange`] that drives the connection while it is read. A pooled
    /// connection that turns out to be closed is replaced once by a new one.
    ///
    /// # Errors
    /// When no connection can be opened or the request fails before the response.
    pub async fn post(
        &self,
        url: &str,
        mut headers: HeaderMap,
        body: Vec<u8>,
    ) -> Result<(StatusCode, HeaderMap, Exchange), ClientError> {
        let uri: Uri = url.parse().map_err(|_| ClientError::Url("the URL does not parse"))?;
        let origin = Origin::of(&uri)?;
        let path = uri.path_and_query().map_or("/", http::uri::PathAndQuery::as_str).to_owned();
        let host = HeaderValue::from_str(&origin.host_header())
            .map_err(|_| ClientError::Url("the host is not valid"))?;
        headers.insert(header::HOST, host);
        let body = Bytes::from(body);
        let request = |headers: HeaderMap| {
            let mut request = Request::post(path.as_str())
                .body(Full::new(body.clone()))
                .map_err(|_| ClientError::Url("the path is not valid"))?;
            *request.headers_mut() = headers;
            Ok::<_, ClientError>(request)
        };
        if let Some(conn) = self.pool.take(&origin) {
            match send(conn, request(headers.clone())?).await {
                Ok(response) => return Ok(self.exchange(origin, response)),
                // The provider closed it as the request left (it had been idle): the
                // request never reached it, so it goes again on a new connection.
                Err(error) if is_stale(&error) => {}
                Err(error) => return Err(ClientError::Http(error)),
            }
        }
        let io = self.connector.connect(&origin).await?;
        let conn = handshake(io).await?;
        let response = send(conn, request(headers)?).await.map_err(ClientError::Http)?;
        Ok(self.exchange(origin, response))
    }

    fn exchange(
        &self,
        origin: Origin,
        (conn, response): (Option<Conn>, http::Response<Incoming>),
    ) -> (StatusCode, HeaderMap, Exchange) {
        let (parts, body) = response.into_parts();
        let exchange =
            Exchange { conn, body, pool: Arc::clone(&self.pool), origin, failure: None, ended: false };
        (parts.status, parts.headers, exchange)
    }

    /// How many connections wait idle.
    #[cfg(test)]
    fn idle_connections(&self) -> usize {
        self.pool.idle()
    }
}

async fn handshake(io: connect::Io) -> Result<Conn, ClientError> {
    // hyper's defaults, as reqwest had them: a read buffer of 8 KiB that grows for a
    // long head (a body is handed on in pieces whatever its chunks' sizes).
    let (sender, driver) = hyper::client::conn::http1::Builder::new()
        .handshake(TokioIo::new(io))
        .await
        .map_err(ClientError::Http)?;
    Ok(Conn { sender, driver })
}

/// Sends the request and waits for the response's head, driving the connection
/// meanwhile. The connection comes back unless it ended with the head (the body it read
/// is then all in the response).
async fn send(
    conn: Conn,
    request: Request<Full<Bytes>>,
) -> Result<(Option<Conn>, http::Response<Incoming>), hyper::Error> {
    let Conn { mut sender, driver } = conn;
    let mut driver = Some(driver);
    let mut response = std::pin::pin!(sender.send_request(request));
    let response = poll_fn(|cx| {
        if let Some(running) = driver.as_mut()
            && let Poll::Ready(ended) = Pin::new(running).poll(cx)
        {
            // Dropped: a response still awaited then fails (canceled) instead of
            // waiting for a connection that is gone.
            driver = None;
            ended?;
        }
        response.as_mut().poll(cx)
    })
    .await?;
    Ok((driver.map(|driver| Conn { sender, driver }), response))
}

/// A pooled connection the provider had closed: the request never reached it.
fn is_stale(error: &hyper::Error) -> bool {
    error.is_canceled() || error.is_incomplete_message() || error.is_closed()
}

/// One response body, read by polling it: each poll drives the connection first (reads
/// the socket, hands hyper's body its bytes), then takes what the body has. Dropped
/// before the body ended, it closes the connection; once the body ended cleanly, the
/// connection goes back to the pool.
pub struct Exchange {
    conn: Option<Conn>,
    body: Incoming,
    pool: Arc<Pool>,
    origin: Origin,
    /// The connection failed: reported once the body delivered what came before.
    failure: Option<hyper::Error>,
    ended: bool,
}

impl std::fmt::Debug for Exchange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exchange")
            .field("origin", &self.origin)
            .field("ended", &self.ended)
            .finish_non_exhaustive()
    }
}

impl Exchange {
    fn poll_body(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, hyper::Error>>> {
        if self.ended {
            return Poll::Ready(None);
        }
        if let Some(conn) = &mut self.conn
            && let Poll::Ready(result) = Pin::new(&mut conn.driver).poll(cx)
        {
            // The connection ended. What it read before is still in the body, which ends
            // too: its failure is reported after that, not before.
            self.conn = None;
            self.failure = result.err();
        }
        loop {
            match Pin::new(&mut self.body).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        return Poll::Ready(Some(Ok(data)));
                    }
                }
                Poll::Ready(Some(Err(error))) => {
                    self.ended = true;
                    return Poll::Ready(Some(Err(error)));
                }
                Poll::Ready(None) => {
                    self.ended = true;
                    if let Some(failure) = self.failure.take() {
                        return Poll::Ready(Some(Err(failure)));
                    }
                    if let Some(conn) = self.conn.take() {
                        self.pool.give_back(self.origin.clone(), conn);
                    }
                    return Poll::Ready(None);
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    /// The reader has what it wants (the answer ended) but the response has not: its
    /// last bytes are usually on their way. They are read by a task of their own, within
    /// [`DRAIN_TIMEOUT`] and [`DRAIN_BYTES`], so the connection can serve another
    /// request; past either, it is closed. (Dropping an exchange instead closes it at
    /// once: that is how a request is aborted.)
    ///
    /// The exchange is not polled here first: a poll here would leave hyper's wakers
    /// pointing at this task, and the task that reads it next might never be woken.
    pub fn release(self) {
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(self.drain());
        }
    }

    /// Reads the rest of the response, within [`DRAIN_TIMEOUT`] and [`DRAIN_BYTES`].
    async fn drain(mut self) {
        let mut left = DRAIN_BYTES;
        let drain = async {
            while let Some(Ok(bytes)) = self.next().await {
                let Some(rest) = left.checked_sub(bytes.len()) else { return };
                left = rest;
            }
        };
        let _ = tokio::time::timeout(DRAIN_TIMEOUT, drain).await;
    }

    /// Reads what already arrived up to the body's end, without waiting, so a
    /// connection whose last bytes came with the answer's end goes back to the pool.
    fn finish_now(&mut self) {
        let mut cx = Context::from_waker(Waker::noop());
        for _ in 0..FINISH_FRAMES {
            if !matches!(self.poll_body(&mut cx), Poll::Ready(Some(Ok(_)))) {
                return;
            }
        }
    }
}

impl Stream for Exchange {
    type Item = Result<Bytes, hyper::Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_body(cx)
    }
}

impl Drop for Exchange {
    fn drop(&mut self) {
        if !self.ended {
            self.finish_now();
        }
    }
}

#[cfg(test)]
mod tests;
