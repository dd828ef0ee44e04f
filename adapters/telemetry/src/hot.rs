//! The counters touched once per WebSocket frame, and the open-socket count.
//!
//! Recording is one relaxed atomic add on a counter of its own cache line: no lock, no
//! map, no allocation, and sockets counting different frame types never share a line.
//! OpenTelemetry reads these totals only when scraped (observable instruments), so the
//! SDK's attribute bookkeeping stays off the hot path.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use chatbox_application::ports::FrameType;

/// One counter alone on its cache line.
#[derive(Debug, Default)]
#[repr(align(64))]
struct Padded(AtomicU64);

/// For each frame type (by [`FrameType::index`]), its slot in `directed`: its own if it
/// travels in that direction, else the slot of `other`, so a misclassified frame is
/// still counted (as `other`) instead of vanishing from the scrape.
const fn slots<const N: usize>(directed: [FrameType; N]) -> [usize; FrameType::ALL.len()] {
    let mut other = 0;
    while other < N && !matches!(directed[other], FrameType::Other) {
        other += 1;
    }
    let mut slots = [other; FrameType::ALL.len()];
    let mut slot = 0;
    while slot < N {
        slots[directed[slot].index()] = slot;
        slot += 1;
    }
    slots
}

const RECEIVED_SLOTS: [usize; FrameType::ALL.len()] = slots(FrameType::RECEIVED);
const SENT_SLOTS: [usize; FrameType::ALL.len()] = slots(FrameType::SENT);

/// Frames by type and direction, and sockets open.
#[derive(Debug)]
pub(crate) struct HotCounters {
    received: [Padded; FrameType::RECEIVED.len()],
    sent: [Padded; FrameType::SENT.len()],
    sockets_open: AtomicI64,
}

impl Default for HotCounters {
    fn default() -> Self {
        Self {
            received: std::array::from_fn(|_| Padded::default()),
            sent: std::array::from_fn(|_| Padded::default()),
            sockets_open: AtomicI64::new(0),
        }
    }
}

impl HotCounters {
    pub(crate) fn frame_received(&self, frame: FrameType) {
        // Totals only: no ordering with anything else is needed.
        self.received[RECEIVED_SLOTS[frame.index()]].0.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn frame_sent(&self, frame: FrameType) {
        self.sent[SENT_SLOTS[frame.index()]].0.fetch_add(1, Ordering::Relaxed);
    }

    /// Received frames of `frame`'s slot (its own, or `other`'s).
    pub(crate) fn received(&self, frame: FrameType) -> u64 {
        self.received[RECEIVED_SLOTS[frame.index()]].0.load(Ordering::Relaxed)
    }

    /// Sent frames of `frame`'s slot (its own, or `other`'s).
    pub(crate) fn sent(&self, frame: FrameType) -> u64 {
        self.sent[SENT_SLOTS[frame.index()]].0.load(Ordering::Relaxed)
    }
    pub(crate) fn socket_opened(&self) {
        self.sockets_open.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn socket_closed(&self) {
        self.sockets_open.fetch_sub(1, Ordering::Relaxed);
    }

    /// Sockets open now (never negative, even if a scrape races a close).
    pub(crate) fn sockets_open(&self) -> i64 {
        self.sockets_open.load(Ordering::Relaxed).max(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_type_outside_its_direction_counts_as_other() {
        let hot = HotCounters::default();
        hot.frame_received(FrameType::Loading);
        hot.frame_received(FrameType::Ping);
        hot.frame_sent(FrameType::Resume);
        hot.frame_sent(FrameType::Pong);
        assert_eq!(hot.received(FrameType::Other), 1);
        assert_eq!(hot.received(FrameType::Ping), 1);
        assert_eq!(hot.sent(FrameType::Other), 1);
        assert_eq!(hot.sent(FrameType::Pong), 1);
        assert_eq!(hot.received(FrameType::UserMessage), 0);
    }
}
