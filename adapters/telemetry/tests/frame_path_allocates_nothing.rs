//! Recording a frame allocates nothing: 10,000 frames in and out through the port, as
//! the socket tasks record them, under a counting global allocator.
//!
//! The allocator is `stats_alloc`'s (its `GlobalAlloc` impl is the only unsafe code, in
//! that crate); this binary has no test harness so that nothing else allocates while it
//! measures.

use std::alloc::System;
use std::sync::Arc;

use chatbox_application::ports::{FrameType, Metrics};
use chatbox_telemetry::Telemetry;
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static ALLOCATOR: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const FRAMES: usize = 10_000;

fn main() {
    let telemetry = Telemetry::new(["demo"]).expect("telemetry");
    let metrics: Arc<dyn Metrics> = Arc::new(telemetry);

    // The control: the counter does see an allocation made in a measured region.
    let region = Region::new(ALLOCATOR);
    let boxed = std::hint::black_box(Box::new([0u8; 64]));
    assert!(region.change().allocations >= 1, "the counting allocator counts");
    drop(boxed);

    let region = Region::new(ALLOCATOR);
    for n in 0..FRAMES {
        let frame = FrameType::ALL[n % FrameType::ALL.len()];
        metrics.frame_received(std::hint::black_box(frame));
        metrics.frame_sent(std::hint::black_box(frame));
    }
    let change = region.change();
    assert_eq!(
        (change.allocations, change.reallocations, change.bytes_allocated),
        (0, 0, 0),
        "recording {FRAMES} frames each way allocated"
    );
    println!("frame_path_allocates_nothing: {FRAMES} frames each way, 0 allocations");
    println!("1 passed, 0 failed");
}
