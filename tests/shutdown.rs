//! Graceful shutdown of the compiled binary under SIGTERM (being written; see issue 9).
