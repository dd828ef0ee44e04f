//! Shared by the Redis tests: the server to use, and key prefixes no other test uses.
//! Each test binary uses a subset.
#![allow(dead_code)]

use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// `REDIS_URL`, or `None` after a line saying `test` was skipped; a missing server fails
/// the test when `CHATBOX_REQUIRE_REDIS=1` (CI).
pub fn redis_url(test: &str) -> Option<String> {
    match std::env::var("REDIS_URL") {
        Ok(url) => Some(url),
        Err(_) if std::env::var("CHATBOX_REQUIRE_REDIS").is_ok_and(|v| v == "1" || v == "true") => {
            panic!("CHATBOX_REQUIRE_REDIS is set but REDIS_URL is not")
        }
        Err(_) => {
            let _ = writeln!(
                std::io::stderr(),
                "{test}: Redis checks SKIPPED (no REDIS_URL); run `scripts/redis.sh start` and export REDIS_URL"
            );
            None
        }
    }
}

/// A key prefix no other test or run uses.
pub fn fresh_prefix() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_nanos();
    format!("chatbox-test:{nanos}:{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// `redis-server` on `PATH`, or `None` after a line saying `test` was skipped; a missing
/// binary fails the test when `CHATBOX_REQUIRE_REDIS=1` (CI).
pub fn redis_server(test: &str) -> Option<std::path::PathBuf> {
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path).map(|dir| dir.join("redis-server")).find(|candidate| candidate.is_file())
    });
    if found.is_none() {
        let required = std::env::var("CHATBOX_REQUIRE_REDIS").is_ok_and(|v| v == "1" || v == "true");
        assert!(!required, "CHATBOX_REQUIRE_REDIS is set but `redis-server` is not on PATH");
        let _ = writeln!(std::io::stderr(), "{test}: SKIPPED (no `redis-server` on PATH)");
    }
    found
}
