//! How many cases a property-based fuzz harness runs: a short run in the normal test
//! command, and as many as `CHATBOX_FUZZ_CASES` says for the long run, e.g.
//! `CHATBOX_FUZZ_CASES=100000 cargo test --release -p chatbox-http --test fuzz_wire`.
//!
//! Shared by the fuzz harnesses of several crates.
#![allow(dead_code)]

use proptest::test_runner::Config;

/// The variable that sets the number of cases of every fuzz target.
pub const CASES_VARIABLE: &str = "CHATBOX_FUZZ_CASES";

/// `short_run` cases, or `CHATBOX_FUZZ_CASES` when it is set. A failure is reported
/// with its shrunk input and kept as a named regression case in the harness by hand;
/// no regression file is written next to the sources.
pub fn config(short_run: u32) -> Config {
    let cases = match std::env::var(CASES_VARIABLE) {
        Ok(value) => value
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{CASES_VARIABLE} must be a whole number of cases, got {value:?}")),
        Err(_) => short_run,
    };
    Config {
        cases,
        failure_persistence: None,
        // Inputs are cheap to generate; do not give up on a strategy that filters some.
        max_global_rejects: cases.saturating_mul(4).max(1024),
        ..Config::default()
    }
}
