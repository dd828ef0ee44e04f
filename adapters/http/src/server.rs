//! The HTTP/1 server: the accept loop and the limits on connections that have not become
//! WebSockets, so a client that opens connections and never finishes a request cannot
//! exhaust file descriptors or memory:
//! - the headers of a request must arrive within `header_read_timeout` (counted from the
//!   moment the server waits for them: when the connection opens, and after each
//!   response on a keep-alive connection);
//! - a keep-alive connection with no request in progress is closed after
//!   `keepalive_timeout`;
//! - at most `max_pending` connections may be open and not upgraded; beyond that a new
//!   connection is closed at once. A WebSocket stops counting the moment it is upgraded
//!   (sockets have their own caps).
//!
//! A request body the route did not read is drained after the route answered (at most
//! [`MAX_DRAIN_BYTES`], within `header_read_timeout`): left unread, hyper would close
//! the connection with bytes pending, the kernel would answer them with a reset, and a
//! client still sending could lose the answer, and keep-alive would end for nothing.
//!
//! Every request carries the peer's address as a [`ClientAddr`] extension.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::server::conn::http1;
use hyper::service::Service as _;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::debug;
use warp::filters::BoxedFilter;

use crate::edge::ClientAddr;
use crate::reply::HttpResponse;

/// The limits on connections that are not (yet) WebSockets.
#[derive(Debug, Clone, Copy)]
pub struct ServerLimits {
    /// `HTTP_HEADER_READ_TIMEOUT`.
    pub header_read_timeout: Duration,
    /// `HTTP_KEEPALIVE_TIMEOUT`.
    pub keepalive_timeout: Duration,
    /// `HTTP_MAX_PENDING_CONNECTIONS`.
    pub max_pending: usize,
}

/// How long to wait before accepting again after the listener failed (e.g. out of file
/// descriptors), so the loop does not spin.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(100);

/// Serves `routes` on `listener` until `stop`, then lets every open connection finish its
/// request and returns once they have.
pub async fn serve(
    listener: TcpListener,
    routes: BoxedFilter<(HttpResponse,)>,
    limits: ServerLimits,
    stop: CancellationToken,
) {
    let pending = Arc::new(Semaphore::new(limits.max_pending.max(1)));
    let connections = TaskTracker::new();
    loop {
        let accepted = tokio::select! {
            biased;
            () = stop.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(error) => {
                debug!(%error, "accept failed");
                tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&pending).try_acquire_owned() else {
            debug!(%peer, "connection refused: too many connections waiting for a request");
            continue;
        };
        let drains = connections.clone();
        connections.spawn(serve_connection(
            stream,
            peer,
            routes.clone(),
            limits,
            stop.clone(),
            permit,
            drains,
        ));
    }
    drop(listener);
    connections.close();
    connections.wait().await;
}

/// The most of an unread request body drained to keep its connection; a longer one is
/// left to hyper, which closes the connection (as it would without draining).
const MAX_DRAIN_BYTES: u64 = 1024 * 1024;

/// When the connection last finished a request, and how many are in progress.
#[derive(Debug)]
struct Activity {
    in_flight: AtomicUsize,
    last_done: Mutex<Instant>,
}

/// Marks a request in progress until dropped.
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        *self.0.last_done.lock().unwrap_or_else(PoisonError::into_inner) = Instant::now();
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Activity {
    fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(Arc::clone(self))
    }

    /// When the connection will have idled for `keepalive`, or, while a request is in
    /// progress, when to look again.
    fn idle_deadline(&self, keepalive: Duration) -> Instant {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return Instant::now() + keepalive;
        }
        *self.last_done.lock().unwrap_or_else(PoisonError::into_inner) + keepalive
    }

    fn is_idle_for(&self, keepalive: Duration) -> bool {
        self.in_flight.load(Ordering::Acquire) == 0
            && self.last_done.lock().unwrap_or_else(PoisonError::into_inner).elapsed() >= keepalive
    }
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    routes: BoxedFilter<(HttpResponse,)>,
    limits: ServerLimits,
    stop: CancellationToken,
    permit: OwnedSemaphorePermit,
    drains: TaskTracker,
) {
    let activity =
        Arc::new(Activity { in_flight: AtomicUsize::new(0), last_done: Mutex::new(Instant::now()) });
    let routes = TowerToHyperService::new(warp::service(routes));
    let service = {
        let activity = Arc::clone(&activity);
        let drains = drains.clone();
        hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(ClientAddr(peer));
            let in_flight = activity.begin();
            // Draining would make hyper send `100 Continue` after the answer: a client
            // that waits for it has sent no body, and hyper closes the connection.
            let expects_continue = request.headers().contains_key(hyper::header::EXPECT);
            let unread = UnreadSlot::default();
            let request = request.map(|body| TrackedBody { body: Some(body), unread: Arc::clone(&unread) });
            let response = routes.call(request);
            let drain_within = limits.header_read_timeout;
            let drains = drains.clone();
            async move {
                // The route and its request (and so its body) are dropped once answered.
                let response = response.await;
                let unread = unread.lock().unwrap_or_else(PoisonError::into_inner).take();
                match unread {
                    // Drained while hyper writes the answer; the request counts as in
                    // progress until then, so the idle timer leaves the connection be.
                    Some(body) if !expects_continue => {
                        // Tracked with the connections, so the server's end waits for it.
                        drains.spawn(drain(body, drain_within, in_flight));
                    }
                    _ => drop(in_flight),
                }
                response.map_err(|never: Infallible| match never {})
            }
        })
    };
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true)
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    let mut connection = pin!(connection);
    let mut closing = false;
    loop {
        let idle_deadline = activity.idle_deadline(limits.keepalive_timeout);
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(error) = result {
                    debug!(%peer, %error, "HTTP connection ended with an error");
                }
                break;
            }
            () = stop.cancelled(), if !closing => {
                closing = true;
                connection.as_mut().graceful_shutdown();
            }
            () = sleep_until(idle_deadline), if !closing => {
                if activity.is_idle_for(limits.keepalive_timeout) {
                    debug!(%peer, "idle keep-alive connection closed");
                    closing = true;
                    connection.as_mut().graceful_shutdown();
                }
            }
        }
    }
    // Upgraded (the WebSocket lives on in its own task) or closed: either way this
    // connection no longer waits for a request.
    drop(permit);
}

/// Where a request body the route dropped before its end is left for draining.
type UnreadSlot = Arc<Mutex<Option<Incoming>>>;

/// A request body that, dropped before its end, leaves itself in its [`UnreadSlot`].
struct TrackedBody {
    body: Option<Incoming>,
    unread: UnreadSlot,
}

impl Body for TrackedBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        match self.get_mut().body.as_mut() {
            Some(body) => Pin::new(body).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.body.as_ref().map_or_else(|| SizeHint::with_exact(0), Body::size_hint)
    }
}

impl Drop for TrackedBody {
    fn drop(&mut self) {
        if let Some(body) = self.body.take().filter(|body| !body.is_end_stream()) {
            *self.unread.lock().unwrap_or_else(PoisonError::into_inner) = Some(body);
        }
    }
}

/// Reads `body` to its end, unless it is longer than [`MAX_DRAIN_BYTES`] or takes longer
/// than `within`; then drops it (hyper closes the connection). `in_flight` ends after.
async fn drain(mut body: Incoming, within: Duration, in_flight: InFlight) {
    if body.size_hint().lower() > MAX_DRAIN_BYTES {
        return;
    }
    let read = async {
        let mut left = MAX_DRAIN_BYTES;
        while let Some(Ok(frame)) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
            let len = frame.data_ref().map_or(0, |data| data.len() as u64);
            let Some(rest) = left.checked_sub(len) else { return };
            left = rest;
        }
    };
    if tokio::time::timeout(within, read).await.is_err() {
        debug!("an unread request body was not drained in time");
    }
    drop(in_flight);
}
