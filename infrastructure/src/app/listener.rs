//! The listening socket and the HTTP server on it. The socket is bound while the
//! application is built (so a taken port fails the start and `SERVER_PORT=0` has its
//! real port before serving); the server runs as its own task until told to stop, which
//! shutdown does last, so probes keep getting answers while the service drains.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use chatbox_http::HttpState;
use chatbox_http::server::ServerLimits;
use tokio::net::{TcpListener, TcpSocket};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How long stopping waits for the accept loop to end.
const STOP_WAIT: Duration = Duration::from_secs(1);

/// The listening socket. `TCP_NODELAY` is set on it so that every accepted connection
/// inherits it (Linux and the BSDs copy it to accepted sockets): streamed chunks are small
/// writes, and Nagle's algorithm would hold each one back until the previous was
/// acknowledged, adding up to 40 ms (the peer's delayed ACK) per chunk.
pub(super) fn listen(address: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if address.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.set_nodelay(true)?;
    socket.bind(address)?;
    socket.listen(1024)
}

/// The HTTP server, running.
pub(super) struct Server {
    task: JoinHandle<()>,
    done: CancellationToken,
}

impl Server {
    /// Serves the routes of `http` on `listener`.
    pub(super) fn start(listener: TcpListener, http: &Arc<HttpState>, limits: ServerLimits) -> Self {
        let done = CancellationToken::new();
        let routes = chatbox_http::routes(Arc::clone(http));
        let task = tokio::spawn(chatbox_http::server::serve(listener, routes, limits, done.clone()));
        Self { task, done }
    }

    /// Stops accepting and closes the listener.
    pub(super) async fn stop(self) {
        self.done.cancel();
        let _ = tokio::time::timeout(STOP_WAIT, self.task).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn accepted_connections_inherit_tcp_nodelay() {
        let listener = listen(SocketAddr::from(([127, 0, 0, 1], 0))).expect("listen");
        let address = listener.local_addr().expect("address");
        let client = tokio::net::TcpStream::connect(address);
        let (accepted, _client) = tokio::join!(listener.accept(), client);
        let (stream, _) = accepted.expect("accept");
        assert!(stream.nodelay().expect("nodelay"), "small streamed frames must not wait for Nagle");
    }
}
