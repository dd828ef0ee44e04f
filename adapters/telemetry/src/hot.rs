//! The counters touched once per WebSocket frame, the open-socket count, the last
//! readiness verdict and whether the shared state store answers.
//!
//! Frame counters are handed out at start-up to the adapter that speaks the wire format
//! (it knows the frame types; this crate only learns their names) and bumped there: one
//! relaxed atomic add on a counter of its own cache line, no lock, no map, no
//! allocation. OpenTelemetry reads the totals only when scraped (observable
//! instruments), so the SDK's attribute bookkeeping stays off the hot path. The list of
//! handed-out counters is locked only when a counter is handed out and when scraped.

use std::sync::atomic::{AtomicI64, AtomicU8, Ordering};
use std::sync::{Mutex, PoisonError};

use chatbox_application::ports::{FrameCounter, FrameDirection};

/// A counter handed out, with what it counts.
#[derive(Debug)]
struct Handed {
    direction: FrameDirection,
    frame_type: &'static str,
    counter: FrameCounter,
}

/// Frames by type and direction, and sockets open.
#[derive(Debug, Default)]
pub(crate) struct HotCounters {
    frames: Mutex<Vec<Handed>>,
    sockets_open: AtomicI64,
    /// [`UNCHECKED`], [`READY`] or [`NOT_READY`].
    readiness: AtomicU8,
    /// The same three states, for the shared state store (unchecked: none configured).
    shared_state: AtomicU8,
}

const UNCHECKED: u8 = 0;
const READY: u8 = 1;
const NOT_READY: u8 = 2;

impl HotCounters {
    /// The counter of `frame_type` frames travelling `direction`: the one handed out
    /// before for this pair, else a new one (so one pair is one series).
    pub(crate) fn frame_counter(&self, direction: FrameDirection, frame_type: &'static str) -> FrameCounter {
        let mut frames = self.frames.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(handed) =
            frames.iter().find(|handed| handed.direction == direction && handed.frame_type == frame_type)
        {
            return handed.counter.clone();
        }
        let counter = FrameCounter::new();
        frames.push(Handed { direction, frame_type, counter: counter.clone() });
        counter
    }

    /// Calls `visit` with each frame type counted in `direction` and its total, in the
    /// order the counters were handed out.
    pub(crate) fn frame_totals(&self, direction: FrameDirection, mut visit: impl FnMut(&'static str, u64)) {
        let frames = self.frames.lock().unwrap_or_else(PoisonError::into_inner);
        for handed in frames.iter().filter(|handed| handed.direction == direction) {
            visit(handed.frame_type, handed.counter.total());
        }
    }

    pub(crate) fn socket_opened(&self) {
        self.sockets_open.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn socket_closed(&self) {
        self.sockets_open.fetch_sub(1, Ordering::Relaxed);
    }

    pub(crate) fn readiness_checked(&self, ready: bool) {
        self.readiness.store(if ready { READY } else { NOT_READY }, Ordering::Relaxed);
    }

    /// The last readiness verdict; `None` before the first check.
    pub(crate) fn ready(&self) -> Option<bool> {
        verdict(&self.readiness)
    }

    pub(crate) fn shared_state_reachable(&self, reachable: bool) {
        self.shared_state.store(if reachable { READY } else { NOT_READY }, Ordering::Relaxed);
    }

    /// Whether the shared state store answered last; `None` when none is configured.
    pub(crate) fn shared_state(&self) -> Option<bool> {
        verdict(&self.shared_state)
    }

    /// Sockets open now (never negative, even if a scrape races a close).
    pub(crate) fn sockets_open(&self) -> i64 {
        self.sockets_open.load(Ordering::Relaxed).max(0)
    }
}

fn verdict(state: &AtomicU8) -> Option<bool> {
    match state.load(Ordering::Relaxed) {
        UNCHECKED => None,
        verdict => Some(verdict == READY),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn totals(hot: &HotCounters, direction: FrameDirection) -> Vec<(&'static str, u64)> {
        let mut totals = Vec::new();
        hot.frame_totals(direction, |frame_type, total| totals.push((frame_type, total)));
        totals
    }

    #[test]
    fn one_type_and_direction_is_one_counter_and_directions_are_apart() {
        let hot = HotCounters::default();
        hot.frame_counter(FrameDirection::Received, "ping").increment();
        hot.frame_counter(FrameDirection::Received, "ping").increment();
        hot.frame_counter(FrameDirection::Sent, "ping");
        hot.frame_counter(FrameDirection::Sent, "pong").increment();
        assert_eq!(totals(&hot, FrameDirection::Received), [("ping", 2)]);
        assert_eq!(totals(&hot, FrameDirection::Sent), [("ping", 0), ("pong", 1)]);
    }
}
