//! When the client was last heard from. The reader records every frame it reads; the
//! writer's one timer (which already serves the pings and the token's expiry) closes a
//! socket silent for longer than the pong timeout. The reader thus waits for frames with
//! no timer of its own: it registers none per frame, and an idle socket holds one timer,
//! not two.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// The instant of the last frame read, kept as an offset from the socket's start so it
/// fits one atomic.
#[derive(Debug)]
pub(super) struct LastHeard {
    start: Instant,
    nanos_after_start: AtomicU64,
}

impl LastHeard {
    /// Heard from at `start` (the socket was just opened).
    pub(super) fn new(start: Instant) -> Self {
        Self { start, nanos_after_start: AtomicU64::new(0) }
    }

    /// The client was heard from now.
    pub(super) fn heard(&self) {
        let since = Instant::now().saturating_duration_since(self.start);
        let nanos = u64::try_from(since.as_nanos()).unwrap_or(u64::MAX);
        // Reader and writer run in one task: no ordering beyond the value is needed.
        self.nanos_after_start.store(nanos, Ordering::Relaxed);
    }

    /// When the client was last heard from.
    pub(super) fn at(&self) -> Instant {
        let nanos = self.nanos_after_start.load(Ordering::Relaxed);
        // Far beyond any socket's life; `checked_add` only guards the arithmetic.
        self.start.checked_add(Duration::from_nanos(nanos)).unwrap_or(self.start)
    }

    /// When the socket counts as silent: `patience` after it was last heard from, or
    /// never when that lies beyond the clock's range.
    pub(super) fn silent_at(&self, patience: Duration) -> Option<Instant> {
        self.at().checked_add(patience)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_silence_is_counted_from_the_last_frame() {
        let patience = Duration::from_secs(60);
        let start = Instant::now();
        let last_heard = LastHeard::new(start);
        assert_eq!(last_heard.silent_at(patience), Some(start + patience), "counted from the start");
        tokio::time::advance(Duration::from_secs(45)).await;
        last_heard.heard();
        assert_eq!(last_heard.at(), start + Duration::from_secs(45));
        assert_eq!(last_heard.silent_at(patience), Some(start + Duration::from_secs(105)), "moved on");
        assert_eq!(last_heard.silent_at(Duration::MAX), None, "beyond the clock: never");
    }
}
