//! A one-shot signal between the two halves of one socket's task (its reader and its
//! writer): raised once, awaited by one side. Waiting costs no lock and no allocation:
//! both halves are polled whenever the socket's task wakes (for every frame it writes),
//! so the wait is polled far more often than it ends.

use std::future::poll_fn;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Poll;

use futures::task::AtomicWaker;

/// Raised once; then every wait ends at once.
#[derive(Debug, Default)]
pub(super) struct Signal {
    raised: AtomicBool,
    waiter: AtomicWaker,
}

impl Signal {
    /// Raises it and wakes the side waiting for it.
    pub(super) fn raise(&self) {
        self.raised.store(true, Ordering::Release);
        self.waiter.wake();
    }

    /// Completes once raised. One side waits at a time: the last to poll is woken.
    pub(super) async fn raised(&self) {
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
