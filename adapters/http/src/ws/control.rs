//! The reader's side of a socket's connection, and the control frames it makes.
//!
//! tungstenite reads the client's frames and, while reading, writes a few of its own: a
//! pong for every ping, the reply to a client's close. The writer owns the connection's
//! write half (`outgoing.rs`), so what tungstenite writes is kept here, in [`Control`],
//! and the writer sends it between its batches of frames, never inside one.
//!
//! Invariant: `Control` holds at most [`CONTROL_MAX_BYTES`]; a client that sends pings
//! faster than it reads the pongs is refused there (its reader ends with an error)
//! rather than given memory.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use futures::task::AtomicWaker;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::tcp::OwnedReadHalf;

/// The most control-frame bytes kept for the writer: pongs echo the pings' payloads (at
/// most 125 bytes each), so this is over a hundred pongs the client has not taken.
pub(super) const CONTROL_MAX_BYTES: usize = 16 * 1024;

/// Control frames written by the protocol layer while reading, waiting for the writer.
#[derive(Debug, Default)]
pub(super) struct Control {
    bytes: Mutex<Vec<u8>>,
    /// Set when bytes are added, so the writer's wait needs no lock.
    pending: AtomicBool,
    /// The writer, waiting for bytes (one task).
    writer: AtomicWaker,
}

impl Control {
    /// Keeps `frames` (whole frames, as tungstenite writes them) for the writer.
    fn keep(&self, frames: &[u8]) -> io::Result<()> {
        let mut bytes = self.bytes.lock().unwrap_or_else(PoisonError::into_inner);
        if bytes.len().saturating_add(frames.len()) > CONTROL_MAX_BYTES {
            return Err(io::Error::other("the client does not read its control frames"));
        }
        bytes.extend_from_slice(frames);
        drop(bytes);
        self.pending.store(true, Ordering::Release);
        self.writer.wake();
        Ok(())
    }

    /// Everything kept so far, if anything.
    pub(super) fn take(&self) -> Option<Vec<u8>> {
        if !self.pending.swap(false, Ordering::AcqRel) {
            return None;
        }
        let bytes = std::mem::take(&mut *self.bytes.lock().unwrap_or_else(PoisonError::into_inner));
        (!bytes.is_empty()).then_some(bytes)
    }

    /// Completes when bytes wait for the writer. One task waits (the writer).
    pub(super) fn pending(&self) -> impl Future<Output = ()> + Send + '_ {
        std::future::poll_fn(|cx| {
            self.writer.register(cx.waker());
            if self.pending.load(Ordering::Acquire) { Poll::Ready(()) } else { Poll::Pending }
        })
    }
}

/// The stream tungstenite reads the client from: reads come from the connection, and
/// what it writes goes to [`Control`].
#[derive(Debug)]
pub(super) struct ReadSide {
    read: OwnedReadHalf,
    control: Arc<Control>,
}

impl ReadSide {
    pub(super) const fn new(read: OwnedReadHalf, control: Arc<Control>) -> Self {
        Self { read, control }
    }
}

impl AsyncRead for ReadSide {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.read).poll_read(cx, buf)
    }
}

impl AsyncWrite for ReadSide {
    fn poll_write(self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Poll::Ready(self.control.keep(buf).map(|()| buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // The writer sends what was kept; nothing is buffered on this side.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // The writer owns the write half and its end.
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn kept_frames_wake_the_writer_and_are_taken_once() {
        let control = Arc::new(Control::default());
        assert!(control.take().is_none(), "nothing kept");
        // The writer waits in a task of its own: only a wake-up moves it on.
        let writer = tokio::spawn({
            let control = Arc::clone(&control);
            async move { control.pending().await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        assert!(!writer.is_finished(), "nothing kept: the writer waits");
        control.keep(&[0x8a, 0x00]).expect("room");
        tokio::time::timeout(std::time::Duration::from_secs(1), writer)
            .await
            .expect("the writer is woken")
            .expect("the writer's task");
        control.keep(&[0x8a, 0x01, b'x']).expect("room");
        assert_eq!(control.take(), Some(vec![0x8a, 0x00, 0x8a, 0x01, b'x']), "in order, whole");
        assert!(control.take().is_none(), "taken once");
    }

    #[test]
    fn a_client_that_does_not_read_its_pongs_is_refused_past_the_limit() {
        let control = Control::default();
        let pong = [0u8; 127];
        let fits = CONTROL_MAX_BYTES / pong.len();
        for _ in 0..fits {
            control.keep(&pong).expect("under the limit");
        }
        assert!(control.keep(&pong).is_err(), "past the limit");
        assert_eq!(control.take().map(|bytes| bytes.len()), Some(fits * pong.len()), "what fitted is kept");
        control.keep(&pong).expect("room again once taken");
    }
}
