//! Recording a frame allocates nothing: counters asked of the port once per frame type
//! and direction, as the HTTP adapter does at start-up, then 10,000 frames in and out
//! counted on them, as the socket tasks count them, under a counting global allocator.
//!
//! The allocator is `stats_alloc`'s (its `GlobalAlloc` impl is the only unsafe code, in
//! that crate); this binary has no test harness so that nothing else allocates while it
//! measures.

use std::alloc::System;
use std::sync::Arc;

use chatbox_application::ports::{FrameCounter, FrameDirection, Metrics};
use chatbox_telemetry::Telemetry;
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static ALLOCATOR: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const FRAMES: usize = 10_000;

/// Some of the wire format's frame types (their names are all this crate sees).
const FRAME_TYPES: [&str; 5] = ["user_message", "ai_response", "ping", "pong", "other"];

fn main() {
    let telemetry = Telemetry::new(["demo"]).expect("telemetry");
    let metrics: Arc<dyn Metrics> = Arc::new(telemetry);
    let counter = |direction| FRAME_TYPES.map(|frame_type| metrics.frame_counter(direction, frame_type));
    let (received, sent): ([FrameCounter; 5], [FrameCounter; 5]) =
        (counter(FrameDirection::Received), counter(FrameDirection::Sent));

    // The control: the counter does see an allocation made in a measured region.
    let region = Region::new(ALLOCATOR);
    let boxed = std::hint::black_box(Box::new([0u8; 64]));
    assert!(region.change().allocations >= 1, "the counting allocator counts");
    drop(boxed);

    let region = Region::new(ALLOCATOR);
    for n in 0..FRAMES {
        let frame = std::hint::black_box(n % FRAME_TYPES.len());
        received[frame].increment();
        sent[frame].increment();
    }
    let change = region.change();
    assert_eq!(
        (change.allocations, change.reallocations, change.bytes_allocated),
        (0, 0, 0),
        "recording {FRAMES} frames each way allocated"
    );
    let counted: u64 = received.iter().chain(&sent).map(FrameCounter::total).sum();
    assert_eq!(counted, 2 * FRAMES as u64, "every frame was counted");
    println!("frame_path_allocates_nothing: {FRAMES} frames each way, 0 allocations");
    println!("1 passed, 0 failed");
}
