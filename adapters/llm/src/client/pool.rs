//! Idle provider connections kept for the next request to the same origin, so an answer
//! does not pay for a TCP and TLS handshake.
//!
//! Nothing polls a connection while it is idle here: whether the provider closed it
//! meanwhile is found out when it is taken (one poll that reads what arrived), and a
//! connection idle for longer than [`IDLE_TIMEOUT`] is closed rather than reused.
//! Bounded by [`MAX_IDLE`]: beyond it, a connection given back is closed.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Mutex, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::client::conn::http1::{Connection, SendRequest};
use hyper_util::rt::TokioIo;

use super::connect::{Io, Origin};

/// How long a connection may wait here: less than common servers' own keep-alive
/// timeouts (nginx's is 75 s), so a provider rarely closes one first.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(50);
/// The most connections kept idle (about the concurrent answers a replica streams).
pub const MAX_IDLE: usize = 1024;

pub type Sender = SendRequest<Full<Bytes>>;
pub type Driver = Connection<TokioIo<Io>, Full<Bytes>>;

/// An HTTP/1.1 connection: the half that sends requests and the half that drives the
/// socket, which whoever waits on the connection polls (no task of its own).
pub struct Conn {
    pub sender: Sender,
    pub driver: Driver,
}

impl Conn {
    /// Polls the connection once without waiting: reads what arrived, and lets a
    /// finished exchange go idle. False when the connection ended.
    pub fn poll_now(&mut self) -> bool {
        let mut cx = Context::from_waker(Waker::noop());
        matches!(Pin::new(&mut self.driver).poll(&mut cx), Poll::Pending)
    }

    /// Whether it can take a request now.
    pub fn is_ready(&self) -> bool {
        self.sender.is_ready()
    }
}

struct Idle {
    origin: Origin,
    conn: Conn,
    since: Instant,
}

/// The idle connections of one provider client, newest last.
#[derive(Default)]
pub struct Pool {
    idle: Mutex<VecDeque<Idle>>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool").field("idle", &self.lock().len()).finish()
    }
}

impl Pool {
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Idle>> {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The most recently used live connection to `origin`, if one is idle.
    pub fn take(&self, origin: &Origin) -> Option<Conn> {
        loop {
            let idle = {
                let mut idle = self.lock();
                expire(&mut idle, Instant::now());
                let newest = idle.iter().rposition(|entry| &entry.origin == origin)?;
                idle.remove(newest)?
            };
            // Closed by the provider meanwhile: dropped here, outside the lock.
            let mut conn = idle.conn;
            if conn.poll_now() && conn.is_ready() {
                return Some(conn);
            }
        }
    }

    /// Keeps a connection whose exchange ended cleanly, if it can take another request.
    pub fn give_back(&self, origin: Origin, mut conn: Conn) {
        if !(conn.poll_now() && conn.is_ready()) {
            return;
        }
        let now = Instant::now();
        let mut idle = self.lock();
        expire(&mut idle, now);
        if idle.len() >= MAX_IDLE {
            idle.pop_front();
        }
        idle.push_back(Idle { origin, conn, since: now });
    }

    /// How many connections are idle.
    #[cfg(test)]
    pub fn idle(&self) -> usize {
        self.lock().len()
    }
}

/// Closes the connections idle for longer than [`IDLE_TIMEOUT`] (the oldest are first).
fn expire(idle: &mut VecDeque<Idle>, now: Instant) {
    while idle.front().is_some_and(|entry| now.saturating_duration_since(entry.since) >= IDLE_TIMEOUT) {
        idle.pop_front();
    }
}
