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
//! Every request carries the peer's address as a [`ClientAddr`] extension.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use hyper::body::Incoming;
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
        connections.spawn(serve_connection(stream, peer, routes.clone(), limits, stop.clone(), permit));
    }
    drop(listener);
    connections.close();
    connections.wait().await;
}

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
) {
    let activity =
        Arc::new(Activity { in_flight: AtomicUsize::new(0), last_done: Mutex::new(Instant::now()) });
    let routes = TowerToHyperService::new(warp::service(routes));
    let service = {
        let activity = Arc::clone(&activity);
        hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(ClientAddr(peer));
            let in_flight = activity.begin();
            let response = routes.call(request);
            async move {
                let response = response.await;
                drop(in_flight);
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
