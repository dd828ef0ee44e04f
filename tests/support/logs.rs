//! Capturing log lines in tests: everything logged on this thread while the returned
//! guard lives, as text, so a test can assert a line is there and a secret is not.
//! Shared by the test binaries and the unit tests of several crates.
#![allow(dead_code)]

use std::sync::{Arc, Mutex, PoisonError};

/// The captured text so far, and the guard that keeps the capture installed.
pub type Captured = (Arc<Mutex<Vec<u8>>>, tracing::subscriber::DefaultGuard);

/// Installs a capture of every line at `max_level` or above, on this thread.
pub fn capture_logs(max_level: tracing::Level) -> Captured {
    #[derive(Clone)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap_or_else(PoisonError::into_inner).extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buffer = Arc::new(Mutex::new(Vec::new()));
    let writer = Buffer(Arc::clone(&buffer));
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_max_level(max_level)
        .with_writer(move || writer.clone())
        .finish();
    let guard = tracing::subscriber::set_default(subscriber);
    // A log line's callsite caches whether anyone listens when first reached: another
    // test may have reached it before this capture existed.
    tracing::callsite::rebuild_interest_cache();
    (buffer, guard)
}
