//! What the use-cases take from the system as values: the clock, ids, and randomness.
//! The domain and application do no I/O; these are the real implementations of their
//! ports.

use std::time::Duration;

use chatbox_application::ports::{Clock, IdGenerator, Randomness};
use chatbox_domain::Timestamp;

/// Wall-clock time from the operating system, and monotonic time from the runtime's
/// clock: the same clock the runtime's timers use, so deadlines computed from
/// [`Clock::monotonic`] and the sleeps that wait for them always agree (also under a
/// paused test clock).
#[derive(Debug)]
pub struct SystemClock {
    origin: tokio::time::Instant,
}

impl Default for SystemClock {
    fn default() -> Self {
        Self { origin: tokio::time::Instant::now() }
    }
}

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        chrono::Utc::now()
    }

    fn monotonic(&self) -> Duration {
        self.origin.elapsed()
    }
}

/// Random 128-bit ids as 32 hex characters.
#[derive(Debug, Default)]
pub struct RandomIds;

impl IdGenerator for RandomIds {
    fn new_id(&self) -> String {
        uuid::Uuid::new_v4().simple().to_string()
    }
}

/// Randomness from the thread-local generator.
#[derive(Debug, Default)]
pub struct ThreadRandomness;

impl Randomness for ThreadRandomness {
    fn unit(&self) -> f64 {
        rand::random::<f64>()
    }
}
