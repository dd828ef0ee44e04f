//! A one-shot signal: raised once, awaited by one waiter at a time. Waiting costs no
//! lock and no allocation, for waits polled far more often than they end: the two
//! halves of a socket's task wait for each other's end, and its writer for the socket's
//! close, at every frame it writes.

use std::future::poll_fn;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Poll;

use futures::task::AtomicWaker;

/// Raised once; then every wait ends at once.
#[derive(Debug, Default)]
pub struct Signal {
    raised: AtomicBool,
    waiter: AtomicWaker,
}

impl Signal {
    /// Raises it and wakes the waiter; true the first time, when it was not yet raised.
    pub fn raise(&self) -> bool {
        let first = !self.raised.swap(true, Ordering::AcqRel);
        if first {
            self.waiter.wake();
        }
        first
    }

    /// True once raised.
    #[must_use]
    pub fn is_raised(&self) -> bool {
        self.raised.load(Ordering::Acquire)
    }

    /// Completes once raised. One side waits at a time: the last to poll is woken.
    pub async fn raised(&self) {
        poll_fn(|cx| {
            if self.raised.load(Ordering::Acquire) {
                return Poll::Ready(());
            }
            self.waiter.register(cx.waker());
            // Raised between the check and the registration: its wake found no waker.
            if self.raised.load(Ordering::Acquire) { Poll::Ready(()) } else { Poll::Pending }
        })
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn a_wait_ends_when_raised_and_not_before() {
        let patience = Duration::from_secs(60);
        let signal = Signal::default();
        assert!(tokio::time::timeout(patience, signal.raised()).await.is_err(), "not raised: waits");
        let raiser = async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            signal.raise();
        };
        let (waited, ()) = tokio::join!(tokio::time::timeout(patience, signal.raised()), raiser);
        waited.expect("woken when raised");
        tokio::time::timeout(patience, signal.raised()).await.expect("once raised, every wait ends at once");
    }
}
