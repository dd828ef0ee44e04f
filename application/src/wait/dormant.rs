//! A future polled only when it woke its task itself.
//!
//! Several futures that share a task (`join!`, `select!`) are all polled whenever any of
//! them wakes it. A socket's writer wakes its task for every frame, and each time its
//! reader and its wait for shutdown were polled too, for nothing: the reader went down
//! to the socket's readiness (a lock in tokio's I/O driver), the shutdown wait took two
//! locks in tokio-util's cancellation token. Wrapped in [`Dormant`], such a future is
//! polled with a waker of its own, and only again after that waker was used.
//!
//! Invariant: the inner future is polled on the first poll and after every wake-up it
//! asked for, so it misses none; it costs one small allocation for its waker.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};

use futures::task::AtomicWaker;

pin_project_lite::pin_project! {
    /// `inner`, polled only on its first poll and after it woke the task.
    #[must_use = "futures do nothing unless polled"]
    pub struct Dormant<F> {
        #[pin]
        inner: F,
        alarm: Arc<Alarm>,
    }
}

impl<F> Dormant<F> {
    /// Wraps `inner`.
    pub fn new(inner: F) -> Self {
        Self { inner, alarm: Arc::new(Alarm { rang: AtomicBool::new(true), task: AtomicWaker::new() }) }
    }
}

impl<F: Future> Future for Dormant<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        // Registered before the alarm is looked at: a wake-up in between rings it after
        // the registration, and so reaches this task.
        this.alarm.task.register(cx.waker());
        if !this.alarm.rang.swap(false, Ordering::AcqRel) {
            return Poll::Pending;
        }
        let waker = Waker::from(Arc::clone(this.alarm));
        this.inner.poll(&mut Context::from_waker(&waker))
    }
}

/// The inner future's waker: rings, then wakes the task that last polled.
#[derive(Debug)]
struct Alarm {
    rang: AtomicBool,
    task: AtomicWaker,
}

impl Wake for Alarm {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.rang.store(true, Ordering::Release);
        self.task.wake();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    /// Counts its polls; ready once `open` is set, and wakes its waker when opened.
    struct Gate<'a> {
        polls: &'a AtomicUsize,
        open: &'a AtomicBool,
        waiter: &'a AtomicWaker,
    }

    impl Future for Gate<'_> {
        type Output = ();

        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            self.polls.fetch_add(1, Ordering::Relaxed);
            self.waiter.register(cx.waker());
            if self.open.load(Ordering::Acquire) { Poll::Ready(()) } else { Poll::Pending }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_inner_future_is_polled_only_when_it_woke_the_task() {
        let (polls, open, waiter) = (AtomicUsize::new(0), AtomicBool::new(false), AtomicWaker::new());
        let ticked = AtomicUsize::new(0);
        let dormant = Dormant::new(Gate { polls: &polls, open: &open, waiter: &waiter });
        // Another future in the same task wakes it ten times; then the gate opens.
        let neighbour = async {
            for _ in 0..10 {
                tokio::time::sleep(Duration::from_millis(1)).await;
                ticked.fetch_add(1, Ordering::Relaxed);
            }
            open.store(true, Ordering::Release);
            waiter.wake();
        };
        let patience = Duration::from_secs(60);
        tokio::time::timeout(patience, async { tokio::join!(dormant, neighbour) })
            .await
            .expect("the gate's wake-up reaches the wrapped future");
        assert_eq!(ticked.load(Ordering::Relaxed), 10, "the task woke for its neighbour");
        assert_eq!(polls.load(Ordering::Relaxed), 2, "polled first, then once, when it woke the task");
    }

    #[tokio::test(start_paused = true)]
    async fn a_wake_up_between_polls_is_not_lost() {
        let (polls, open, waiter) = (AtomicUsize::new(0), AtomicBool::new(false), AtomicWaker::new());
        let mut dormant = std::pin::pin!(Dormant::new(Gate { polls: &polls, open: &open, waiter: &waiter }));
        assert!(futures::poll!(dormant.as_mut()).is_pending());
        // Woken while nobody polls: the next poll must look.
        open.store(true, Ordering::Release);
        waiter.wake();
        assert!(futures::poll!(dormant.as_mut()).is_ready());
        assert_eq!(polls.load(Ordering::Relaxed), 2);
    }
}
